"""The load balancer's probes: liveness asks nothing of the database, readiness names what is down and nothing more."""
from __future__ import annotations

import base64
import os
import shutil
import socket
import threading
import time

import pytest
from sqlalchemy import text

from shop.db import db
from tests.conftest import make_app
from tests.shop.test_errors import assert_error
from tests.shop.test_outages import _dead_redis_url


def _dead_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def database_down_app(tmp_path):
    """The app configured with a PostgreSQL server that is not there."""
    app = make_app(tmp_path, DATABASE_URL=f"postgresql://shop:hunter2@127.0.0.1:{_dead_port()}/shop")
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_both_probes_answer_ok_when_everything_is_up(client):
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert (response.status_code, response.json) == (200, {"ok": True})


@pytest.mark.parametrize("method, path, status, code", [
    ("POST", "/healthz", 405, "method_not_allowed"), ("DELETE", "/readyz", 405, "method_not_allowed"),
    ("GET", "/healthz/", 404, "not_found"), ("GET", "/readyz/", 404, "not_found"),
    ("GET", "/readyz/x", 404, "not_found")])
def test_a_probe_asked_wrongly_answers_the_apis_json_error_not_the_sites_page(client, method, path, status, code):
    """The probes are machines' endpoints, as the API is: their errors are JSON, never the storefront's HTML page;
    a path that merely begins with their letters (`/healthzone`) is the site's."""
    response = client.open(path, method=method)
    assert_error(response, status, code)
    if status == 405:
        assert "GET" in response.headers["Allow"]
    other = client.get("/healthzone")
    assert other.status_code == 404 and other.mimetype == "text/html"


def test_with_the_database_down_the_process_is_live_but_not_ready(database_down_app):
    client = database_down_app.test_client()
    assert client.get("/healthz").json == {"ok": True}
    error = assert_error(client.get("/readyz"), 503, "service_unavailable")
    assert error["details"] == {"unavailable": ["database"]} and "hunter2" not in str(error)


def test_a_database_server_that_never_answers_makes_readiness_say_so_within_seconds(tmp_path):
    from shop.config import DATABASE_CONNECT_TIMEOUT_SECONDS

    with socket.socket() as silent:  # a server that takes the connection and never speaks (hung, or half the path)
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app = make_app(tmp_path, DATABASE_URL=f"postgresql://shop@127.0.0.1:{silent.getsockname()[1]}/shop")
        answers = []
        probe = threading.Thread(target=lambda: answers.append(app.test_client().get("/readyz")), daemon=True)
        started = time.monotonic()
        probe.start()
        probe.join(timeout=DATABASE_CONNECT_TIMEOUT_SECONDS + 10)
        waited = time.monotonic() - started
    probe.join(timeout=10)
    with app.app_context():
        db.engine.dispose()
    assert waited < DATABASE_CONNECT_TIMEOUT_SECONDS + 5, "readiness waited on the silent server without end"
    assert assert_error(answers[0], 503, "service_unavailable")["details"] == {"unavailable": ["database"]}


def test_with_redis_down_the_process_is_not_ready(sqlite_template, tmp_path):
    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path, REDIS_URL=_dead_redis_url())
    with app.app_context():
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        error = assert_error(client.get("/readyz"), 503, "service_unavailable")
        assert error["details"] == {"unavailable": ["redis"]}
        db.session.remove()
        db.engine.dispose()


def test_readiness_sees_redis_when_it_is_up(redis_app):
    assert redis_app.test_client().get("/readyz").json == {"ok": True}


def test_a_mismatched_hash_key_leaves_the_process_live_and_not_ready(app, client):
    app.config["FIELD_HASH_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    assert client.get("/healthz").status_code == 200
    error = assert_error(client.get("/readyz"), 503, "service_unavailable")
    assert error["details"] == {"unavailable": ["configuration"]} and "FIELD_HASH_KEY" not in str(error)


def test_the_probes_are_not_rate_limited(sqlite_template, tmp_path):
    from shop import create_app
    from shop.config import load_config
    from shop.extensions import limiter
    from tests.conftest import TEST_SECRETS

    shutil.copy(sqlite_template, tmp_path / "shop.db")
    config = load_config(TEST_SECRETS, str(tmp_path))
    before = limiter.limit_manager._default_limits  # the limiter is process-wide: put its defaults back after
    app = create_app({**config, "TESTING": True, "RATELIMIT_DEFAULT": "1 per minute"})  # a limit on every route
    try:
        with app.app_context():
            client = app.test_client()
            assert [client.get(path).status_code for path in ("/healthz", "/readyz") * 3] == [200] * 6
            assert client.get("/api/v1/regions").status_code == 200
            assert client.get("/api/v1/regions").status_code == 429  # the limit does hold elsewhere
            db.session.remove()
            db.engine.dispose()
    finally:
        limiter.limit_manager.set_default_limits(before)


@pytest.fixture
def unmigrated_app(tmp_path):
    """The app on an SQLite file no `flask db upgrade` has run on."""
    app = make_app(tmp_path)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_a_database_without_its_schema_is_not_ready_and_says_to_upgrade(unmigrated_app):
    error = assert_error(unmigrated_app.test_client().get("/readyz"), 503, "service_unavailable")
    assert error["details"] == {"unavailable": ["database"]}
    assert "the database has no schema: run `flask --app shop db upgrade`" in error["message"]


def test_a_schema_behind_the_migrations_head_is_not_ready(app, client):
    db.session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    db.session.commit()
    error = assert_error(client.get("/readyz"), 503, "service_unavailable")
    assert error["details"] == {"unavailable": ["database"]}
    assert "not at the migrations' head: run `flask --app shop db upgrade`" in error["message"]


@pytest.mark.no_books_check
def test_the_hash_key_is_checked_once_the_schema_is_upgraded_under_a_running_process(unmigrated_app):
    from flask_migrate import upgrade

    client = unmigrated_app.test_client()
    assert client.get("/api/v1/regions").status_code == 503  # no schema yet: nothing to check the key against
    upgrade()  # another process upgrades, and its key's fingerprint is not this one's
    db.session.execute(text("UPDATE key_fingerprints SET fingerprint = 'another key'"))
    db.session.commit()
    error = assert_error(client.get("/readyz"), 503, "service_unavailable")
    assert error["details"] == {"unavailable": ["configuration"]}
