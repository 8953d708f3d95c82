"""The declarative base and column helpers shared by every domain's models."""
from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CursorResult,
    DateTime,
    Engine,
    Executable,
    Index,
    Insert,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    UniqueConstraint,
    any_,
    bindparam,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import OperationalError, StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from shop.outages import REDIS_UNAVAILABLE

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of all models; constraint names are deterministic for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
log = logging.getLogger(__name__)
TURN_WAIT_SECONDS = 24 * 3600  # SQLite: how long `one_at_a_time` waits (PostgreSQL's advisory lock has no limit)
_in_memory_turns: dict[str, threading.Lock] = {}  # SQLite in memory: the database is one process's, so are its locks


class UTCDateTime(TypeDecorator):
    """A timezone-aware timestamp, also on SQLite (which drops the offset): stored and read as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """Store aware values as UTC."""
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value, dialect):
        """Read values back as aware UTC datetimes."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _commit(keep_loaded: bool) -> None:
    """Commit the session; with `keep_loaded` its objects stay as they are instead of being expired."""
    session = db.session()
    if not keep_loaded:
        session.commit()
        return
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def commit(*, keep_loaded: bool = False) -> None:
    """Commit the request's unit of work, unless an enclosing one (an idempotent write) will. `keep_loaded`:
    the objects are not reloaded afterwards (for a view answering with what it has just written and read)."""
    if not db.session.info.get("defer_commit"):
        _commit(keep_loaded)
    else:
        db.session.flush()


def commit_now(*, keep_loaded: bool = False) -> None:
    """Commit the work so far even inside a deferred unit of work (a write that must be durable before an
    external call, e.g. a stock reservation before the payment provider); the enclosing unit of work is told.
    `keep_loaded` as for `commit`."""
    if db.session.info.get("defer_commit"):
        db.session.info["committed_early"] = True
    _commit(keep_loaded)


@contextmanager
def defer_commit() -> Iterator[None]:
    """Within this block `commit()` only flushes: the caller commits the whole unit of work itself."""
    db.session.info["defer_commit"] = True
    try:
        yield
    finally:
        db.session.info.pop("defer_commit", None)


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current transaction commits (dropped if it rolls back); a callback already waiting
    for this commit is not added twice (so a per-transaction wake-up is registered by every write that needs it)."""
    pending = db.session.info.setdefault("after_commit", [])
    if callback not in pending:
        pending.append(callback)


@event.listens_for(Session, "after_commit")
def _take_after_commit(session: Session) -> None:
    """Keep the callbacks of the transaction that has just committed until its connection is released
    (a savepoint's release fires this event too: its callbacks wait for the real commit)."""
    if not session.in_nested_transaction() and "after_commit" in session.info:
        session.info.setdefault("committed", []).extend(session.info.pop("after_commit"))


@event.listens_for(Session, "after_transaction_end")
def _run_after_commit(session: Session, transaction) -> None:
    """Fire a committed transaction's callbacks once its connection is back in the pool (so one may write
    through another, e.g. an eager task on SQLite), each isolated from the others: the work is committed,
    so a failing side effect is logged (a sweeper re-queues it), never raised."""
    if transaction.parent is not None:
        return
    for callback in session.info.pop("committed", []):
        name = getattr(callback, "__qualname__", type(callback).__name__)
        try:
            callback()
        except REDIS_UNAVAILABLE as exc:  # the broker or cache is down: an outage, not a bug
            log.warning("after-commit callback %s not done, redis unavailable (%s); the committed work stands",
                        name, exc.__class__.__name__)
        except Exception:  # noqa: BLE001 - the committed request must still answer
            log.exception("after-commit callback %s failed; the committed work stands", name)


@event.listens_for(Engine, "connect")
def _sqlite_write_ahead_log(driver_connection, _record) -> None:
    """On a SQLite file, keep a write-ahead log: readers (a page, an upload's progress) are never blocked by a
    long write such as an inventory import, which in the default rollback journal locks out everyone."""
    if type(driver_connection).__module__.startswith("sqlite3"):
        driver_connection.execute("PRAGMA journal_mode=WAL")


@event.listens_for(Engine, "savepoint")
def _begin_before_a_savepoint(connection, name) -> None:
    """On SQLite, open the transaction before its first savepoint. pysqlite begins one only before a write, and a
    SAVEPOINT outside a transaction opens its own, which the savepoint's RELEASE commits, write lock and all: the
    work so far would be committed before the session commits, and another writer could slip in between."""
    if connection.dialect.name == "sqlite":
        driver = connection.connection.dbapi_connection
        if not driver.in_transaction:
            driver.execute("BEGIN")


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, previous_transaction) -> None:
    """Forget the callbacks of a transaction that rolled back."""
    if previous_transaction.parent is None:
        session.info.pop("after_commit", None)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (a callable default, never an import-time value)."""
    return datetime.now(UTC)


def lock_on_sqlite(statement: str, **params) -> None:
    """On SQLite, take the database's write lock now with a no-op UPDATE (`UPDATE t SET id = id WHERE id = :id`),
    so that a check-then-insert that follows cannot interleave with another writer's."""
    from sqlalchemy import text

    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text(statement), params)


class TurnTaken(Exception):
    """Another process or thread is running the work `one_at_a_time` was asked to run alone."""


@contextmanager
def one_at_a_time(name: str, *, wait: bool = True) -> Iterator[None]:
    """Run the block while no other process or thread runs one under `name`: waiting for it if `wait`, else
    `TurnTaken`. PostgreSQL: a transaction-level advisory lock on a connection of its own; SQLite: an exclusive
    transaction on the file `<database>-<name>.lock` beside the database (so writers to the database are never held
    up). Either is let go when the block ends, or when its process dies."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with engine.connect() as connection, connection.begin():
            if wait:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            elif not connection.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}):
                raise TurnTaken(name)
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        turn = _in_memory_turns.setdefault(name, threading.Lock())
        if not turn.acquire(blocking=wait):
            raise TurnTaken(name)
        try:
            yield
        finally:
            turn.release()
        return
    try:  # a lock file out of reach is the database's directory out of reach: the database error it would be
        lock = sqlite3.connect(f"{database}-{name}.lock", timeout=TURN_WAIT_SECONDS if wait else 0,
                               isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise OperationalError("connect", None, exc) from exc
    with closing(lock):  # closing it ends its transaction: the lock is let go
        try:
            lock.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise TurnTaken(name) from None
            raise OperationalError("BEGIN EXCLUSIVE", None, exc) from exc
        yield


COMMIT_ORDER = 0x73657120  # the advisory lock space ("seq ") of commit-ordered tables, keyed by hashtext(name)
_COMMIT_ORDERED = "commit_ordered_tables"


class CommitOrdered:
    """A row an audit or change list pages through (`shop.pagination.paginate_committed`): `commit_seq`, its table's
    commit order, is given as the last step before its transaction commits, under a lock on the table's order held
    until that commit, so a row that commits late never lands behind one committed before it, as its id could."""

    commit_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)

    def __init_subclass__(cls, **kwargs) -> None:
        """Map the model, then index its rows still to be numbered (the commit's step finds them without a scan)."""
        super().__init_subclass__(**kwargs)
        table = cls.__table__
        Index(f"ix_{table.name}_uncommitted", table.c.id, postgresql_where=table.c.commit_seq.is_(None),
              sqlite_where=table.c.commit_seq.is_(None))


def commit_ordered_tables() -> list[str]:
    """The tables of the `CommitOrdered` models (their `commit_seq` is set at commit: no client request can break
    its uniqueness)."""
    return sorted(mapper.local_table.name for mapper in Base.registry.mappers
                  if issubclass(mapper.class_, CommitOrdered))


@event.listens_for(Session, "after_flush")
def _note_commit_ordered(session: Session, _context) -> None:
    """Remember the commit-ordered tables this transaction wrote rows to."""
    tables = {obj.__tablename__ for obj in session.new if isinstance(obj, CommitOrdered)}
    if tables:
        session.info.setdefault(_COMMIT_ORDERED, set()).update(tables)


@event.listens_for(Session, "before_commit")
def _order_at_commit(session: Session) -> None:
    """The last step before a (top-level) commit: give this transaction's new rows of each commit-ordered table the
    next `commit_seq` values, in id order, tables by name. PostgreSQL: under a transaction-level advisory lock on the
    table's order (`COMMIT_ORDER`), held until the commit, so the next writer reads the last value after it; SQLite:
    the transaction already holds the database's write lock."""
    if session.in_nested_transaction():
        return
    if any(isinstance(obj, CommitOrdered) for obj in session.new):
        session.flush()  # rows added since the last flush: the commit would flush them after this step
    if not session.info.get(_COMMIT_ORDERED):
        return
    session.flush()
    postgres = session.get_bind().dialect.name == "postgresql"
    for table in sorted(session.info.pop(_COMMIT_ORDERED)):
        if postgres:
            session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:table))"),
                            {"space": COMMIT_ORDER, "table": table})
        session.execute(text(
            f"UPDATE {table} SET commit_seq = o.seq FROM (SELECT id, (SELECT coalesce(max(commit_seq), 0) "
            f"FROM {table}) + row_number() OVER (ORDER BY id) AS seq FROM {table} WHERE commit_seq IS NULL) AS o "
            f"WHERE {table}.id = o.id"))


@event.listens_for(Session, "after_soft_rollback")
def _forget_commit_ordered(session: Session, previous_transaction) -> None:
    """A rolled-back transaction's rows are gone: nothing to order."""
    if previous_transaction.parent is None:
        session.info.pop(_COMMIT_ORDERED, None)


SUPPLIER_SALES = 0x73616C65  # the advisory lock space ("sale") of suppliers' sale dates, keyed by supplier id
DONOR_SALES = 0x646F6E6F  # the advisory lock space ("dono") of donor regions' sale dates, keyed by hashtext(code)
_HOLD_SALES = {mode: text(f"SELECT {function}(space, key) FROM ("
                          "SELECT CAST(:suppliers AS integer) AS space, supplier_id AS key "
                          "FROM unnest(:ids) AS supplier_id "
                          "UNION ALL SELECT CAST(:donors AS integer), hashtext(code) "
                          "FROM unnest(CAST(:codes AS text[])) AS code) AS held ORDER BY space, key")
               .bindparams(bindparam("ids", type_=ARRAY(Integer)))
               for mode, function in (("shared", "pg_advisory_xact_lock_shared"),
                                      ("exclusive", "pg_advisory_xact_lock"))}


def hold_sales(*, supplier_ids: Iterable[int] = (), donor_code: str | None = None, exclusive: bool = False) -> None:
    """Hold the sale dates of the suppliers and of the donor region until the transaction ends, in one statement:
    shared by a sale being made paid (sales never wait for each other), exclusive by what must see every sale dated so
    far and be seen by every later one (a dividend link's check of the supplier's last sale and its write; a pairing
    end's check of its donor's last paired sale and its write). PostgreSQL: transaction-level advisory locks in
    `SUPPLIER_SALES` (by supplier id) and `DONOR_SALES` (by the code's hashtext), taken in ascending (space, key)
    order; SQLite: the database's write lock."""
    ids, codes = sorted(set(supplier_ids)), [donor_code] if donor_code is not None else []
    if not ids and not codes:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_HOLD_SALES["exclusive" if exclusive else "shared"],
                           {"suppliers": SUPPLIER_SALES, "ids": ids, "donors": DONOR_SALES, "codes": codes})
    elif ids:
        lock_on_sqlite("UPDATE suppliers SET id = id WHERE id = :id", id=ids[0])
    else:
        lock_on_sqlite("UPDATE regions SET code = code WHERE code = :code", code=donor_code)


def lock_row(model: type[Base], row_id: int) -> Base | None:
    """The row of `model` with id `row_id` (None if there is none), locked for the rest of the transaction and read
    afresh (PostgreSQL: FOR UPDATE; SQLite: the database's write lock), so a read-then-change of it cannot interleave
    with another's."""
    lock_on_sqlite(f"UPDATE {model.__tablename__} SET id = id WHERE id = :id", id=row_id)
    return db.session.scalar(select(model).where(model.id == row_id).with_for_update(of=model)
                             .execution_options(populate_existing=True))


def among(column, values: Iterable) -> ColumnElement[bool]:
    """`column IN values` for a batch: on PostgreSQL `column = ANY(:values)`, one array parameter (a thousand
    ids are one value to bind, not a thousand placeholders to render, parse and send); an IN list elsewhere."""
    values = list(values)
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def run_core(statement: Executable, params: Mapping | None = None) -> CursorResult:
    """Run a statement of columns (no entities) on the session's connection, in its transaction, without the ORM's
    execution layer, which cost a hot read some 0.17 ms of CPU, as much as the rest of it: the session is not
    flushed first, so the statement must not depend on changes it holds unflushed."""
    return db.session.connection().execute(statement, params)


_INSERTS: dict[type, tuple[Insert, list]] = {}


def _insert_of(model: type[Base]) -> tuple[Insert, list]:
    """A model's INSERT of new rows and the columns it writes (attribute key, column key, default), built once."""
    if model not in _INSERTS:
        table = model.__table__
        _INSERTS[model] = (insert(table).returning(table.c.id, sort_by_parameter_order=True),
                           [(prop.key, prop.columns[0].key, prop.columns[0].default)
                            for prop in inspect(model).column_attrs if not prop.columns[0].primary_key])
    return _INSERTS[model]


def new_row(obj: Base) -> dict:
    """The values of a new object's row by column key, every column but its primary key; unset columns get their
    (Python) defaults on the object first."""
    values, row = obj.__dict__, {}
    for key, column, default in _insert_of(type(obj))[1]:
        if key not in values:
            setattr(obj, key, None if default is None else default.arg(None) if default.is_callable else default.arg)
        row[column] = values[key]
    return row


def insert_new(objects: list[Base]) -> None:
    """Write new objects of one model with one Core INSERT on the session's connection, outside the unit of work and
    the ORM's execution layer (whose bookkeeping costs a hot path more than the statement), and set their ids. Unset
    columns get their defaults on the objects first; the objects stay out of the session: what was written, to answer
    with, not to change. (Columns default in Python here; a server-side default would be overridden by NULL.)"""
    if not objects:
        return
    statement = _insert_of(type(objects[0]))[0]
    ids = run_core(statement, [new_row(obj) for obj in objects]).scalars().all()
    for obj, new_id in zip(objects, ids, strict=True):
        obj.id = new_id


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (\w+)\.\w+(?:, \1\.\w+)*$")
_INSERTED_COLUMNS = re.compile(r"INSERT INTO \"?(\w+)\"? \(([^)]*)\) VALUES ")


def _unique_named(table: str, columns: set[str]) -> str | None:
    """The name of `table`'s unique constraint, unique index or primary key over exactly `columns`."""
    model = db.metadata.tables.get(table)
    if model is None:
        return None
    keys = [c for c in model.constraints if isinstance(c, UniqueConstraint | PrimaryKeyConstraint)]
    keys += [index for index in model.indexes if index.unique]
    return next((key.name for key in keys if {column.name for column in key.columns} == columns), None)


def violated_constraint(error: Exception) -> str | None:
    """The name of the constraint a database error (an `IntegrityError`) violates: PostgreSQL names it; SQLite names
    a unique key's table and columns, which name it through the models' metadata."""
    orig = getattr(error, "orig", None)
    diag = getattr(orig, "diag", None)
    if diag is not None:
        return getattr(diag, "constraint_name", None)
    match = _SQLITE_UNIQUE.match(str(orig))
    if match is None:
        return None
    columns = {part.split(".", 1)[1] for part in str(orig).split(": ", 1)[1].split(", ")}
    return _unique_named(match.group(1), columns)


def failed_row(error: Exception) -> Mapping[str, object]:
    """The column values of the one row whose INSERT raised a database error: PostgreSQL's parameters are named,
    SQLite's are in the order of the statement's columns; empty for a statement of several rows or none."""
    params = getattr(error, "params", None)
    if isinstance(params, Mapping):
        return params
    match = _INSERTED_COLUMNS.match(getattr(error, "statement", None) or "")
    if match is None or not isinstance(params, tuple):
        return {}
    columns = [column.strip().strip('"') for column in match.group(2).split(",")]
    return dict(zip(columns, params, strict=True)) if len(columns) == len(params) else {}


def violates(error: Exception, constraint: str) -> bool:
    """Whether a database error (an `IntegrityError`) is a violation of the named constraint."""
    return violated_constraint(error) == constraint


class HiddenDatabaseError(Exception):
    """A database error as a log shows it: what failed and in which statement, never its text, which may quote the
    row being written (PostgreSQL's "Failing row contains (…)": a household's name, an account)."""


def _hidden(error: BaseException) -> HiddenDatabaseError | None:
    """The loggable stand-in of `error` if it is, or was caused by, a database error; else None."""
    cause, seen = error, set()
    while cause is not None and not isinstance(cause, StatementError):
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
        if id(cause) in seen:
            return None
    if cause is None:
        return None
    statement = " ".join((cause.statement or "").split())[:200]
    outer = "" if cause is error else f"{type(error).__name__} after "
    hidden = HiddenDatabaseError(f"{outer}{type(cause).__name__} ({type(cause.orig).__name__}) in: {statement}")
    return hidden.with_traceback(error.__traceback__)


def hide_database_errors_in_logs() -> None:
    """Make every log record (the app's, a task's, the web server's) carry a database error's stand-in, once per
    process."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "hides_database_errors", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.exc_info and record.exc_info[1] is not None:
            hidden = _hidden(record.exc_info[1])
            if hidden is not None:
                record.exc_info = (HiddenDatabaseError, hidden, hidden.__traceback__)
        return record

    factory.hides_database_errors = True
    logging.setLogRecordFactory(factory)
