"""Counting the SQL a piece of code runs: the statement budgets of the hot paths are asserted with this."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from shop.db import db


@contextmanager
def statements() -> Iterator[list[str]]:
    """The statements the app's engine runs inside the block (commits are not statements)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
