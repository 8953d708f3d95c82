"""Keyset (cursor) pagination: `?limit=&cursor=` → `{"items", "next_cursor"}`.

A cursor carries the last item's key values, signed with SECRET_KEY for the list's key columns and
direction (so it cannot be forged, edited or moved to another list) and type-checked against those
columns when it comes back; any cursor that fails is a 400 `invalid_cursor`. Lists a person reads for
what is new (orders, uploads, payout batches) run newest first.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from marshmallow import Schema, fields, validate
from sqlalchemy import BigInteger, Integer, Select, String, tuple_

from shop.db import db
from shop.errors import AppError, ShopCode
from shop.fields import BoundedInt

MAX_CURSOR_LENGTH = 512
_INT_RANGES = ((BigInteger, 2**63 - 1), (Integer, 2**31 - 1))


class PageQuery(Schema):
    """The paging arguments every list accepts."""

    limit = BoundedInt(minimum=1, maximum=100, strict=False, load_default=20)
    cursor = fields.String(load_default=None, validate=validate.Length(min=1, max=MAX_CURSOR_LENGTH))


class InvalidCursor(AppError):
    """The cursor was not issued by this list (forged, truncated, edited or from another list)."""

    status, code = 400, ShopCode.INVALID_CURSOR

    def __init__(self):
        super().__init__("The cursor is not valid.", details={"cursor": ["Not a cursor issued by this list."]})


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """A `{"items": [...], "next_cursor"}` response schema around `item_schema`."""
    return Schema.from_dict(
        {"items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)},
        name=f"{item_schema.__name__.removesuffix('Out')}Page",
    )


def _serializer(keys: Sequence, newest_first: bool = False) -> URLSafeSerializer:
    """The signer of one list's cursors: the salt names the list's key columns and its direction."""
    columns = ",".join(f"{key.class_.__tablename__}.{key.key}" for key in keys)
    return URLSafeSerializer(current_app.config["SECRET_KEY"],
                             salt=f"shop.cursor:{columns}{':desc' if newest_first else ''}")


def _fits(key, value: Any) -> bool:
    """Whether `value` is a value the key column can hold."""
    column_type = key.type
    for int_type, bound in _INT_RANGES:
        if isinstance(column_type, int_type):
            return type(value) is int and -bound - 1 <= value <= bound
    if isinstance(column_type, String):
        return type(value) is str and len(value) <= (column_type.length or MAX_CURSOR_LENGTH)
    return False


def decode_cursor(cursor: str, keys: Sequence, *, newest_first: bool = False) -> list:
    """The key values a cursor of this list carries, or `InvalidCursor`."""
    try:
        values = _serializer(keys, newest_first).loads(cursor)
    except (BadData, ValueError, UnicodeError) as exc:
        raise InvalidCursor() from exc
    if not (isinstance(values, list) and len(values) == len(keys)
            and all(_fits(key, value) for key, value in zip(keys, values, strict=True))):
        raise InvalidCursor()
    return values


def encode_cursor(values: Sequence[Any], keys: Sequence, *, newest_first: bool = False) -> str:
    """A signed, opaque cursor of the list ordered by `keys`, from the last item's key values."""
    return _serializer(keys, newest_first).dumps(list(values))


def paginate(query: Select, *, keys: Sequence, limit: int, cursor: str | None, newest_first: bool = False) -> dict:
    """Run `query` ordered by the unique `keys` tuple (descending with `newest_first`), returning one page after
    `cursor`."""
    if cursor:
        after = tuple_(*decode_cursor(cursor, keys, newest_first=newest_first))
        query = query.where(tuple_(*keys) < after if newest_first else tuple_(*keys) > after)
    rows = db.session.scalars(query.order_by(*(key.desc() if newest_first else key for key in keys))
                              .limit(limit + 1)).all()
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([getattr(last, key.key) for key in keys], keys, newest_first=newest_first)
    return {"items": items, "next_cursor": next_cursor}
