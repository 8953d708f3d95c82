"""Redis down (the rate limits' store, the cache, the broker): the routes that need it answer 503 at once, in the API
shape or as a page, with one log line; writes whose side effects are queued after commit still commit, quickly."""
from __future__ import annotations

import io
import logging
import shutil
import socket
import time

import pytest

from shop import create_app
from shop.auth.models import User
from shop.config import load_config
from shop.db import db
from tests.conftest import TEST_SECRETS, make_app
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.shop.test_errors import assert_error
from tests.web.test_pages_security import _csrf


def _dead_redis_url() -> str:
    """A Redis URL on a local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def redis_down_app(sqlite_template, tmp_path):
    """The app configured with a Redis that is not there (SQLite for the database)."""
    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path, REDIS_URL=_dead_redis_url())
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _one_line_logged(caplog) -> None:
    """Exactly one error record, about Redis, without a traceback."""
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "redis unavailable" in errors[0].getMessage(), caplog.text
    assert errors[0].exc_info is None and "Traceback" not in caplog.text


def test_api_sign_in_and_registration_answer_503_while_the_limits_store_is_down(redis_down_app, caplog):
    user = UserFactory()
    db.session.commit()
    client = redis_down_app.test_client()
    with caplog.at_level(logging.INFO):
        signed_in = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    assert_error(signed_in, 503, "service_unavailable")  # denied: the limit is never skipped
    _one_line_logged(caplog)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        registered = client.post("/api/v1/auth/register", json={"phone": "13912345678", "password": "long enough pw"})
    assert_error(registered, 503, "service_unavailable")
    _one_line_logged(caplog)
    assert db.session.query(User).filter_by(username="13912345678").count() == 0


@pytest.mark.parametrize("path, form", [
    ("/login", {"username": "someone", "password": DEFAULT_PASSWORD}),
    ("/register", {"phone": "13912345678", "password": "long enough pw", "password_again": "long enough pw"}),
])
def test_page_sign_in_and_registration_answer_the_503_page_while_the_limits_store_is_down(
        redis_down_app, caplog, path, form):
    client = redis_down_app.test_client()
    with caplog.at_level(logging.INFO):
        response = client.post(path, data={**form, "csrf_token": _csrf(client, path)})
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert "服务暂时不可用" in response.get_data(as_text=True)
    _one_line_logged(caplog)


def test_a_write_whose_task_cannot_be_queued_commits_and_answers_at_once(redis_down_app, caplog):
    """An inventory upload answered 202 after 19 s while Celery retried its publish 20 times: the row is committed and
    the sweeper re-queues it, so the request must not wait on the broker."""
    from catalog.models import InventoryUpload
    from shop.auth.security import issue_token
    from tests.catalog.factories import LocationFactory, ProductFactory, linked_households
    from tests.catalog.test_uploads import csv_bytes
    from tests.suppliers.factories import SupplierFactory

    supplier = SupplierFactory()
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500", unit="bag")
    LocationFactory(code="XC-WH")
    household = linked_households(supplier, 1)[0]
    user = UserFactory(role="coop", supplier_id=supplier.id)
    db.session.commit()
    token, _ = issue_token(user)  # signing in needs the limits' store, which is down
    data = csv_bytes([["ZJ-KQ-500", "LOT-Q", "2026-09-03", "XC-WH", household.code, 4]])
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        response = redis_down_app.test_client().post(
            f"/api/v1/suppliers/{supplier.id}/inventory-uploads", data={"file": (io.BytesIO(data), "inventory.csv")},
            content_type="multipart/form-data", headers={"Authorization": f"Bearer {token}"})
    assert time.monotonic() - started < 3
    assert response.status_code == 202 and response.json["status"] == "pending"
    db.session.expire_all()
    assert db.session.get(InventoryUpload, response.json["id"]).status == "pending"  # committed, for the sweeper
    queueing = [record.getMessage() for record in caplog.records if "after-commit" in record.getMessage()]
    assert len(queueing) == 1 and "redis unavailable" in queueing[0], caplog.text
    assert "Traceback" not in caplog.text


def test_a_request_that_finds_every_database_connection_taken_is_503_not_500(sqlite_template, tmp_path, caplog):
    """A burst that outnumbers the connection pool: the request waits its turn, then is told to try again."""
    shutil.copy(sqlite_template, tmp_path / "shop.db")
    config = load_config(TEST_SECRETS, str(tmp_path))
    config.update(TESTING=True, SQLALCHEMY_ENGINE_OPTIONS={
        **config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_size": 1, "max_overflow": 0, "pool_timeout": 0.2})
    app = create_app(config)
    with app.app_context():
        taken = db.engine.connect()  # the pool's only connection, held by another request
        with caplog.at_level(logging.INFO):
            answer = app.test_client().get("/api/v1/orders", headers={"Authorization": "Bearer x"})
        taken.close()
        db.engine.dispose()

    assert_error(answer, 503, "service_unavailable")
    assert "Traceback" not in caplog.text


def test_a_redis_that_refuses_every_command_is_an_outage_not_a_500(sqlite_template, tmp_path, redis_url, caplog):
    """A Redis URL naming a database the server does not have (db 99): sign-in is 503 in one log line."""
    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path, REDIS_URL=redis_url.rsplit("/", 1)[0] + "/99")
    with app.app_context():
        user = UserFactory()
        db.session.commit()
        with caplog.at_level(logging.INFO):
            answer = app.test_client().post("/api/v1/auth/token", json={"username": user.username,
                                                                       "password": DEFAULT_PASSWORD})
        db.session.remove()
        db.engine.dispose()

    assert_error(answer, 503, "service_unavailable")
    _one_line_logged(caplog)


def test_a_write_that_waits_past_sqlites_busy_timeout_is_told_the_database_is_busy_and_when_to_retry(
        sqlite_template, tmp_path, caplog):
    """Another process holds SQLite's write lock longer than the busy timeout: the write is 503 with Retry-After
    and a message that says busy, not down; nothing is written."""
    import sqlite3

    shutil.copy(sqlite_template, tmp_path / "shop.db")
    config = load_config(TEST_SECRETS, str(tmp_path))
    config.update(TESTING=True, SQLALCHEMY_ENGINE_OPTIONS={
        **config["SQLALCHEMY_ENGINE_OPTIONS"], "connect_args": {"timeout": 0.2}})
    app = create_app(config)
    with app.app_context():
        user = UserFactory(role="admin")
        db.session.commit()
        client = app.test_client()
        token = client.post("/api/v1/auth/token", json={"username": user.username,
                                                        "password": DEFAULT_PASSWORD}).json["access_token"]
        other = sqlite3.connect(tmp_path / "shop.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writing
        with caplog.at_level(logging.INFO):
            answer = client.post("/api/v1/locations", headers={"Authorization": f"Bearer {token}"},
                                 json={"code": "BUSY-WH", "name": "忙仓", "kind": "warehouse",
                                       "region_code": "440604"})
        other.execute("ROLLBACK")
        other.close()
        listed = client.get("/api/v1/locations", headers={"Authorization": f"Bearer {token}"}).json["items"]
        db.session.remove()
        db.engine.dispose()

    assert_error(answer, 503, "service_unavailable")
    assert "busy" in answer.json["error"]["message"] and int(answer.headers["Retry-After"]) >= 1
    assert "BUSY-WH" not in [location["code"] for location in listed]
    assert "Traceback" not in caplog.text


def test_every_outage_answer_says_when_to_retry(redis_down_app):
    """The rate limits' store down: the 503 carries Retry-After, so a client's retry waits rather than hammers."""
    answer = redis_down_app.test_client().post("/api/v1/auth/token", json={"username": "x", "password": "y"})

    assert_error(answer, 503, "service_unavailable")
    assert int(answer.headers["Retry-After"]) >= 1
