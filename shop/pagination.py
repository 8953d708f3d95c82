"""Keyset (cursor) pagination: `?limit=&cursor=` → `{"items", "next_cursor"}`.

A cursor carries the last item's key values, signed with SECRET_KEY for the list's key columns, its direction and the
list that issued it: in a request, the route (endpoint and path arguments, e.g. the store's id), every query
parameter but `cursor` and `limit` and the signed-in user it was issued to (`list_scope`), and any `filters` the
caller adds (values the URL does not show). So it cannot be forged, edited, moved to another list, reused with other
filters or handed to another user (whose list at the same URL is its own scope's), and no list has to remember to
bind it; it is type-checked against those columns when it comes back; any cursor that fails is a 400
`invalid_cursor`. Lists a person reads for what is new (orders, uploads, payout batches) run newest first. Audit and
history lists are read by period (`DatedPageQuery`: `from` inclusive, `to` exclusive, as every ledger read) and in
commit order (`paginate_committed`), so a row committed late is never behind a page already read.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from flask import current_app, g, has_request_context, request
from itsdangerous import BadData, URLSafeSerializer
from marshmallow import Schema, fields
from sqlalchemy import BigInteger, Integer, Select, String, tuple_

from shop.blueprint import query_args
from shop.clock import shanghai_midnight
from shop.db import db
from shop.errors import AppError, ShopCode
from shop.fields import BoundedInt, Date, ordered_range

MAX_CURSOR_LENGTH = 512
PAGING_PARAMETERS = ("cursor", "limit")
_INT_RANGES = ((BigInteger, 2**63 - 1), (Integer, 2**31 - 1))


class Cursor(fields.String):
    """A list's cursor: one that cannot be a cursor the list issued (longer than any it issues) is refused as a
    forged one is, `InvalidCursor` (one answer for every bad cursor)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > MAX_CURSOR_LENGTH:
            raise InvalidCursor()
        return text


class PageQuery(Schema):
    """The paging arguments every list accepts."""

    limit = BoundedInt(minimum=1, maximum=100, strict=False, load_default=20)
    cursor = Cursor(load_default=None, metadata={"maxLength": MAX_CURSOR_LENGTH})


class PeriodQuery(Schema):
    """`?from=&to=`: Asia/Shanghai dates, `from` inclusive, `to` exclusive; an empty period is a 422."""

    from_date = Date(data_key="from")
    to_date = Date(data_key="to")
    _not_empty = ordered_range("from_date", "to_date", strict=True,
                               message="Must be after `from`: the period is empty.")


class DatedPageQuery(PageQuery, PeriodQuery):
    """The paging arguments of an audit or history list, and the period its rows were recorded in."""

    from_date = Date(data_key="from", load_default=None, metadata={
        "description": "The first day (Asia/Shanghai) of the period, inclusive: rows recorded on it or later."})
    to_date = Date(data_key="to", load_default=None, metadata={
        "description": "The day (Asia/Shanghai) the period ends before, exclusive: rows recorded before it. "
                       "A year is `from=2026-01-01&to=2027-01-01`."})


def recorded_in(column, *, from_date: date | None, to_date: date | None) -> list:
    """Conditions: the moment `column` is in [from_date, to_date) (Asia/Shanghai dates), either end open when None."""
    return ([] if from_date is None else [column >= shanghai_midnight(from_date)]) + \
        ([] if to_date is None else [column < shanghai_midnight(to_date)])


class InvalidCursor(AppError):
    """The cursor was not issued by this list (forged, truncated, edited, from another list or other filters)."""

    status, code = 400, ShopCode.INVALID_CURSOR

    def __init__(self):
        super().__init__("The cursor is not valid.", details={
            "cursor": ["Not a cursor issued by this list with these filters: start again without it."]})


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """A `{"items": [...], "next_cursor"}` response schema around `item_schema`."""
    return Schema.from_dict(
        {"items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)},
        name=f"{item_schema.__name__.removesuffix('Out')}Page",
    )


def list_scope() -> dict | None:
    """The list the current request reads: its endpoint, path arguments and query parameters (as the API reads them,
    `query_args`) but `cursor` and `limit`, and its signed-in user; None outside a request (the CLI, a task)."""
    if not has_request_context():
        return None
    return {"endpoint": request.endpoint, "path": request.view_args or {}, "reader": _reader(),
            "query": sorted((key, value) for key, value in query_args(request.args).items(multi=True)
                            if key not in PAGING_PARAMETERS)}


def _reader() -> int | None:
    """The id of the request's signed-in user, or None (anonymous)."""
    user = g.get("user")
    return user.id if user is not None else None


def scope_of(endpoint: str, **path: Any) -> dict:
    """The list at `endpoint` with these path arguments and no query, for this request's user: where a cursor issued
    elsewhere continues (a payout batch's first lines go on in its lines list)."""
    return {"endpoint": endpoint, "path": path, "reader": _reader() if has_request_context() else None, "query": []}


def _serializer(keys: Sequence, newest_first: bool = False, filters: Mapping[str, Any] | None = None,
                scope: dict | None = None) -> URLSafeSerializer:
    """The signer of one list's cursors: the salt names the list's key columns, its direction, the list the request
    reads (`list_scope`, or the `scope` the cursor is issued for) and the caller's `filters`."""
    columns = ",".join(f"{key.class_.__tablename__}.{key.key}" for key in keys)
    bound = {"list": scope or list_scope(), "filters": filters}
    scope = f":{json.dumps(bound, sort_keys=True, default=str, ensure_ascii=False)}" if any(bound.values()) else ""
    return URLSafeSerializer(current_app.config["SECRET_KEY"],
                             salt=f"shop.cursor:{columns}{':desc' if newest_first else ''}{scope}")


def _fits(key, value: Any) -> bool:
    """Whether `value` is a value the key column can hold."""
    column_type = key.type
    for int_type, bound in _INT_RANGES:
        if isinstance(column_type, int_type):
            return type(value) is int and -bound - 1 <= value <= bound
    if isinstance(column_type, String):
        return type(value) is str and len(value) <= (column_type.length or MAX_CURSOR_LENGTH)
    return False


def decode_cursor(cursor: str, keys: Sequence, *, newest_first: bool = False,
                  filters: Mapping[str, Any] | None = None) -> list:
    """The key values a cursor of this list (this request's, with these filters) carries, or `InvalidCursor`."""
    try:
        values = _serializer(keys, newest_first, filters).loads(cursor)
    except (BadData, ValueError, UnicodeError) as exc:
        raise InvalidCursor() from exc
    if not (isinstance(values, list) and len(values) == len(keys)
            and all(_fits(key, value) for key, value in zip(keys, values, strict=True))):
        raise InvalidCursor()
    return values


def encode_cursor(values: Sequence[Any], keys: Sequence, *, newest_first: bool = False,
                  filters: Mapping[str, Any] | None = None, scope: dict | None = None) -> str:
    """A signed, opaque cursor of the list ordered by `keys` (this request's, or `scope`'s, with these filters), from
    the last item's key values."""
    return _serializer(keys, newest_first, filters, scope).dumps(list(values))


def paginate(query: Select, *, keys: Sequence, limit: int, cursor: str | None, newest_first: bool = False,
             filters: Mapping[str, Any] | None = None, next_on: dict | None = None) -> dict:
    """Run `query` ordered by the unique `keys` tuple (descending with `newest_first`), returning one page after
    `cursor`; its cursors are valid only on the list the request reads (its route and query parameters; `next_on`:
    the list `scope_of` names instead) and, with `filters`, only with the same filter values."""
    if cursor:
        after = tuple_(*decode_cursor(cursor, keys, newest_first=newest_first, filters=filters))
        query = query.where(tuple_(*keys) < after if newest_first else tuple_(*keys) > after)
    rows = db.session.scalars(query.order_by(*(key.desc() if newest_first else key for key in keys))
                              .limit(limit + 1)).all()
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([getattr(last, key.key) for key in keys], keys, newest_first=newest_first,
                                    filters=filters, scope=next_on)
    return {"items": items, "next_cursor": next_cursor}


def paginate_committed(query: Select, *, model: type, limit: int, cursor: str | None, newest_first: bool = False,
                       filters: Mapping[str, Any] | None = None) -> dict:
    """`paginate` an audit or change list of a `shop.db.CommitOrdered` model in commit order (`commit_seq`): a row
    committed after a reader read past rows with larger ids still comes after them (oldest first) or on top (newest
    first); rows not yet committed (this transaction's) are not listed. On SQLite writers are serialised, so this is
    also id order."""
    return paginate(query.where(model.commit_seq.is_not(None)), keys=[model.commit_seq], limit=limit, cursor=cursor,
                    newest_first=newest_first, filters=filters)
