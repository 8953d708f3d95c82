"""Side effects wait for the commit; timestamps stay timezone-aware on SQLite."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import func, select

from shop.auth.models import User
from shop.db import after_commit, among, db, insert_new
from tests.factories import UserFactory


def test_after_commit_callbacks_run_only_when_the_transaction_commits(app):
    fired = []
    UserFactory()
    after_commit(lambda: fired.append("rolled back"))
    db.session.rollback()
    db.session.commit()
    assert fired == []
    UserFactory()
    after_commit(lambda: fired.append("committed"))
    assert fired == []
    db.session.commit()
    assert fired == ["committed"]
    db.session.commit()
    assert fired == ["committed"]


def test_timestamps_read_back_with_a_utc_offset(app):
    user = UserFactory()
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(type(user), user.id).created_at.utcoffset().total_seconds() == 0


def test_a_failing_after_commit_callback_is_logged_and_the_others_still_run(app, caplog):
    fired = []
    user = UserFactory()

    def broker_down():
        raise ConnectionError("broker unreachable")

    after_commit(lambda: fired.append("first"))
    after_commit(broker_down)
    after_commit(lambda: fired.append("last"))
    db.session.commit()
    assert fired == ["first", "last"]
    assert "broker_down failed" in caplog.text
    db.session.expire_all()
    assert db.session.get(type(user), user.id) is not None


def test_callbacks_wait_for_the_real_commit_not_a_savepoint(app):
    fired = []
    after_commit(lambda: fired.append("queued"))
    with db.session.begin_nested():
        UserFactory()
    assert fired == []
    db.session.rollback()
    db.session.commit()
    assert fired == []


def test_a_callback_registered_by_several_writes_of_one_transaction_runs_once(app):
    ran = []

    def wake():
        ran.append("wake")

    for _ in range(3):
        after_commit(wake)
    after_commit(lambda: ran.append("other"))
    after_commit(lambda: ran.append("other"))
    db.session.commit()
    after_commit(wake)  # the next transaction registers it afresh
    db.session.commit()

    assert ran == ["wake", "other", "other", "wake"]


def test_among_selects_what_an_in_list_selects_with_one_parameter(racing_app):
    """A batch of ids or codes (the ledger's thousands) is one bound array on PostgreSQL, an IN list on SQLite."""
    from sqlalchemy import select

    from shop.regions.models import Region

    codes = db.session.scalars(select(Region.code).order_by(Region.code)).all()[::7]
    wanted = codes + ["no-such-region"]
    statement = select(Region.code).where(among(Region.code, wanted)).order_by(Region.code)
    assert db.session.scalars(statement).all() == codes
    sql = str(statement.compile(db.session.get_bind(), compile_kwargs={"render_postcompile": True}))
    if db.session.get_bind().dialect.name == "postgresql":
        assert "= ANY (" in sql and sql.count("%(") == 1, sql
    assert db.session.scalars(select(Region.code).where(among(Region.code, []))).all() == []
    many = wanted + [f"x{n}" for n in range(40_000)]  # an upload's 40,000 lot codes
    assert db.session.scalars(select(Region.code).where(among(Region.code, many)).order_by(Region.code)).all() == codes


def test_insert_new_writes_the_rows_with_their_defaults_and_ids_in_order(racing_app):
    first, second, third = (User(username=name, password_hash="x", role="consumer") for name in ("b-user", "a-user",
                                                                                                   "c-user"))
    third.active = False
    insert_new([first, second, third])
    assert first.id < second.id < third.id  # each object got its own row's id, whatever the usernames' order
    assert (first.active, first.token_version, first.last_login_at) == (True, 0, None)  # the defaults, on the object
    assert first.created_at.utcoffset().total_seconds() == 0
    assert first not in db.session  # a record of what was written, not a row the session tracks
    insert_new([])  # nothing to write: no statement
    db.session.commit()
    written = {user.username: user for user in db.session.scalars(select(User).where(
        User.username.in_(["a-user", "b-user", "c-user"])))}
    assert {name: (u.id, u.active, u.token_version) for name, u in written.items()} == {
        "b-user": (first.id, True, 0), "a-user": (second.id, True, 0), "c-user": (third.id, False, 0)}


def test_a_savepoint_on_sqlite_commits_nothing_before_the_session_does(app):
    """pysqlite begins a transaction only before a write; a SAVEPOINT outside one would open its own, and its
    RELEASE commit the work (and drop the write lock) before the session commits."""
    other = sqlite3.connect(db.engine.url.database, timeout=0)
    users_before = other.execute("SELECT count(*) FROM users").fetchone()[0]
    db.session.scalar(select(func.count()).select_from(User))  # a read: no transaction begun yet
    with db.session.begin_nested():
        UserFactory()
    assert other.execute("SELECT count(*) FROM users").fetchone()[0] == users_before  # released, not committed
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # the session still holds the write lock
        other.execute("UPDATE users SET id = id")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(User)) == users_before
    other.close()


def test_a_database_error_never_reaches_a_log_with_the_row_it_was_writing(racing_app, caplog):
    """A failed write's traceback (a task logs it) names the statement, not the household's name or account that
    SQLAlchemy's parameters or PostgreSQL's "Failing row contains (…)" would quote; wrapped errors too."""
    import logging

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    log = logging.getLogger("tests.payouts")
    try:
        db.session.execute(text("INSERT INTO users (username, role) VALUES (:name, :role)"),
                           {"name": "阿说木呷-6217000012345678901", "role": None})
    except DBAPIError:
        log.exception("payout batch 2 failed unexpectedly")
        try:
            raise RuntimeError("the batch could not be built")  # raised while handling: its context is the error
        except RuntimeError:
            log.exception("wrapped")
    db.session.rollback()

    assert [record.getMessage() for record in caplog.records] == ["payout batch 2 failed unexpectedly", "wrapped"]
    assert "INSERT INTO users" in caplog.text and "IntegrityError" in caplog.text
    assert "阿说木呷" not in caplog.text and "6217000012345678901" not in caplog.text


def test_a_long_write_on_sqlite_never_blocks_a_reader(app):
    """An inventory import is one long transaction; while it writes, a page or the import's own progress is still
    read (the last committed state) instead of waiting for the write's lock."""
    before = db.session.scalar(select(func.count()).select_from(User))
    writer = db.session.connection().connection.dbapi_connection
    writer.execute("PRAGMA cache_size = 1")  # the write spills to the file at once, as a big import's does
    UserFactory.create_batch(300)
    db.session.flush()
    reader = sqlite3.connect(db.engine.url.database, timeout=0)

    assert reader.execute("SELECT count(*) FROM users").fetchone()[0] == before
    reader.close()
    db.session.rollback()
