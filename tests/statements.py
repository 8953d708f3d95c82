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


@contextmanager
def orm_executions() -> Iterator[list[str]]:
    """The statements run through the session's ORM execution layer inside the block (a Core statement run on the
    session's connection, `shop.db.run_core`, is not: the layer cost a hot read as much CPU as the rest of it)."""
    seen: list[str] = []

    def record(orm_execute_state):
        seen.append(str(orm_execute_state.statement))

    event.listen(db.session, "do_orm_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.session, "do_orm_execute", record)
