"""Keyset (cursor) pagination: `?limit=&cursor=` → `{"items", "next_cursor"}`."""
from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import Select, tuple_

from shop.db import db
from shop.errors import AppError


class PageQuery(Schema):
    """The paging arguments every list accepts."""

    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None)


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """A `{"items": [...], "next_cursor"}` response schema around `item_schema`."""
    return Schema.from_dict(
        {"items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)},
        name=f"{item_schema.__name__.removesuffix('Out')}Page",
    )


def _decode(cursor: str) -> list:
    """Read an opaque cursor back into the key values it carries."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AppError("The cursor is not valid.", code="invalid_cursor",
                       details={"cursor": ["Not a cursor issued by this list."]}) from exc
    if not isinstance(values, list):
        raise AppError("The cursor is not valid.", code="invalid_cursor",
                       details={"cursor": ["Not a cursor issued by this list."]})
    return values


def _encode(values: Sequence[Any]) -> str:
    """Make an opaque cursor from the last item's key values."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def paginate(query: Select, *, keys: Sequence, limit: int, cursor: str | None) -> dict:
    """Run `query` ordered by the unique `keys` tuple, returning one page after `cursor`."""
    if cursor:
        values = _decode(cursor)
        if len(values) != len(keys):
            raise AppError("The cursor is not valid.", code="invalid_cursor",
                           details={"cursor": ["Not a cursor issued by this list."]})
        query = query.where(tuple_(*keys) > tuple_(*values))
    rows = db.session.scalars(query.order_by(*keys).limit(limit + 1)).all()
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = _encode([getattr(last, key.key) for key in keys])
    return {"items": items, "next_cursor": next_cursor}
