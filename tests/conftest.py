"""Fixtures: a migrated SQLite app per test; PostgreSQL and Redis for the integration suite.

SQLite tests copy a database file migrated once per session (with reference data), so
each test starts clean and views can commit as in production. PostgreSQL and Redis tests
use TEST_DATABASE_URL / TEST_REDIS_URL; when those servers are unreachable the tests skip
loudly, except under CI=true, where they fail. After every test the ledger it left must verify
(balanced, chain intact), as an auditor would check it, and every order line's units must be held
as its order's status says (all reserved, all allocated to lots, or none held); a test that damages
these books on purpose is marked `no_books_check`, and so is one that leaves a schema without them.
"""
from __future__ import annotations

import os
import shutil

import pytest

for _name in ("DATABASE_URL", "REDIS_URL", "SHOP_ENV", "STRIPE_API_KEY", "PAYMENTS"):
    os.environ.pop(_name, None)
# the suite's own secrets, also for the worker processes it starts (which inherit the environment)
TEST_SECRETS = {"SECRET_KEY": "test-secret-key",
                "FIELD_ENCRYPTION_KEY": "test:dGVzdC1maWVsZC1rZXktb2YtdGhlLXRlc3Qtc3VpdGU",
                "FIELD_HASH_KEY": "dGVzdC1oYXNoLWtleS1vZi10aGUtdGVzdC1zdWl0ZS0",
                "STRIPE_WEBHOOK_SECRET": "whsec_test_suite"}
os.environ.update(TEST_SECRETS)

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from orders.ledger.chain import GENESIS_HASH  # noqa: E402
from shop import create_app  # noqa: E402
from shop.config import load_config  # noqa: E402
from shop.db import db  # noqa: E402
from shop.regions.service import load_reference_data  # noqa: E402

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/shop_test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"
_unavailable: dict[str, str] = {}


def make_app(instance_path, **env) -> Flask:  # noqa: F821
    """An app configured from `env` as production would be, with test settings on top."""
    config = load_config({**TEST_SECRETS, **env}, str(instance_path))
    config.update(TESTING=True)
    return create_app(config)


def migrate_database(app) -> None:
    """Bring `app`'s database to the head revision and load reference data."""
    with app.app_context():
        upgrade()
        load_reference_data()
        db.session.commit()
        db.session.remove()
        db.engine.dispose()  # a SQLite file is whole (its write-ahead log checkpointed) only once nothing holds it


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file with reference data, copied by every test."""
    folder = tmp_path_factory.mktemp("template")
    migrate_database(make_app(folder))
    return folder / "shop.db"


# (line, order status, quantity, allocation state, units): a pending order's units are all reserved, a paid (or later)
# order's all allocated to lots, a cancelled or expired order's none held
_LINES_OFF_THEIR_ALLOCATIONS = text(
    "SELECT l.id, o.status, l.quantity, a.state, SUM(a.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id "
    "LEFT JOIN allocations a ON a.order_line_id = l.id AND a.state IN ('reserved', 'allocated') "
    "GROUP BY l.id, o.status, l.quantity, a.state HAVING "
    "(o.status IN ('paid', 'shipped', 'delivered', 'fulfilled', 'refunded') "
    " AND (a.state IS NULL OR a.state <> 'allocated' OR SUM(a.quantity) <> l.quantity)) "
    "OR (o.status = 'pending_payment' AND (a.state IS NULL OR a.state <> 'reserved' OR SUM(a.quantity) <> l.quantity)) "
    "OR (o.status IN ('cancelled', 'expired') AND a.state IS NOT NULL)")


def check_books(request) -> None:
    """After a test (in its app's context): the ledger balances and its chain verifies, and every order line's units
    are held as its order's status says, unless the test is marked `no_books_check` (it damages them on purpose,
    or leaves a schema from before them)."""
    from orders.ledger.verify import verify_ledger

    if request.node.get_closest_marker("no_books_check"):
        return
    db.session.rollback()  # what the test committed, not what it left pending
    result, off = verify_ledger(), db.session.execute(_LINES_OFF_THEIR_ALLOCATIONS).all()
    db.session.rollback()
    assert result["ok"], f"the ledger does not verify after this test: {result}"
    assert not off, f"order lines whose allocations do not match their order's status: {off}"


def close_checked(request) -> None:
    """End a test's app context: check the books it left (`check_books`), then drop its connections."""
    try:
        check_books(request)
    finally:
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(sqlite_template, tmp_path, request):
    """The embedded-mode app on a fresh copy of the migrated database."""
    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path)
    with app.app_context():
        yield app
        close_checked(request)


@pytest.fixture
def client(app):
    """A test client of the embedded-mode app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner of the embedded-mode app."""
    return app.test_cli_runner()


def _unreachable(kind: str, error: Exception) -> None:
    """Fail under CI, otherwise skip loudly, when an integration server is missing."""
    message = f"{kind} is unreachable ({error.__class__.__name__}: {str(error).splitlines()[0]})"
    _unavailable[kind] = message
    if IN_CI:
        pytest.fail(f"CI=true and {message}: the integration suite must run.", pytrace=False)
    pytest.skip(message)


def _sqlalchemy_url(url: str) -> str:
    """The psycopg 3 form of a PostgreSQL URL."""
    return str(make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def pg_url():
    """TEST_DATABASE_URL, created if missing and migrated to head from an empty schema."""
    url = _sqlalchemy_url(TEST_DATABASE_URL)
    try:
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = make_url(url).database
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        _unreachable("PostgreSQL", exc)
    return url


@pytest.fixture(scope="session")
def redis_url():
    """TEST_REDIS_URL, checked with a PING."""
    import redis

    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        _unreachable("Redis", exc)
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def _pg_migrated(pg_url, tmp_path_factory):
    """Migrate the PostgreSQL test database once per session."""
    migrate_database(make_app(tmp_path_factory.mktemp("pg"), DATABASE_URL=pg_url))
    return pg_url


def _emptied(app, request):
    """Enter `app`'s context with every table emptied and reference data reloaded; yield it (and check the books
    it leaves)."""
    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        db.session.execute(text("INSERT INTO ledger_chain_head (id, seq, last_hash) VALUES (1, 0, :genesis)"),
                           {"genesis": GENESIS_HASH})  # as the migration leaves it
        load_reference_data()
        db.session.commit()
        yield app
        close_checked(request)


@pytest.fixture
def pg_app(_pg_migrated, tmp_path, request):
    """An app on PostgreSQL, with every table emptied and reference data reloaded."""
    yield from _emptied(make_app(tmp_path, DATABASE_URL=_pg_migrated), request)


@pytest.fixture
def redis_app(_pg_migrated, redis_url, tmp_path, request):
    """An app in production shape: PostgreSQL plus Redis for cache, limits and Celery (all emptied)."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    yield from _emptied(make_app(tmp_path, DATABASE_URL=_pg_migrated, REDIS_URL=redis_url), request)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def racing_app(request):
    """The app on SQLite (a file, as `make run` serves it) and on PostgreSQL, for races that must hold on both."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


@pytest.fixture(autouse=True)
def _celery_join_flag():
    """Eager tasks run in concurrent threads leave Celery's process-global "join would block" flag set (each
    run saves and restores it, interleaved): put it back after each test so later ones may call `.get()`."""
    from celery._state import _set_task_join_will_block, task_join_will_block

    before = task_join_will_block()
    yield
    _set_task_join_will_block(before)


def pytest_terminal_summary(terminalreporter):
    """Say loudly when the PostgreSQL/Redis suite did not run."""
    for message in _unavailable.values():
        terminalreporter.write_sep("!", f"INTEGRATION TESTS SKIPPED: {message}", red=True, bold=True)


@pytest.fixture
def login(client):
    """Create a user of `role` (with its scope ids) and return Authorization headers for it."""
    from tests.factories import DEFAULT_PASSWORD, UserFactory

    def _login(role: str = "admin", **scope) -> dict:
        user = UserFactory(role=role, **scope)
        db.session.commit()
        response = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
        assert response.status_code == 200, response.json
        return {"Authorization": f"Bearer {response.json['access_token']}"}

    return _login
