"""The servers' access logs: a request line names no person's number (a consumer's phone in `?username=`)."""
from __future__ import annotations

import logging
import threading
from urllib.parse import quote

import pytest
from werkzeug.serving import make_server

from shop.db import db
from tests.factories import DEFAULT_PASSWORD, UserFactory

PHONE = "13912345678"
# the spellings a client may send: plain, percent-encoded with spaces and +86, full width (percent-encoded UTF-8)
SPELLINGS = [PHONE, quote("+86 139 1234 5678"), quote("１３９１２３４５６７８"), "139+1234+5678"]


@pytest.fixture
def served(app):
    """The app under Werkzeug's development server (`make run`), on a free port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


def _admin_token(app) -> str:
    """A bearer token of a fresh admin."""
    admin = UserFactory(role="admin")
    db.session.commit()
    response = app.test_client().post("/api/v1/auth/token", json={"username": admin.username,
                                                                  "password": DEFAULT_PASSWORD})
    return response.json["access_token"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_development_servers_access_log_masks_a_phone_number_in_a_query(app, served, caplog, spelling):
    import http.client

    token = _admin_token(app)
    caplog.set_level(logging.INFO, logger="werkzeug")
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    connection.request("GET", f"/api/v1/users?username={spelling}", headers={"Authorization": f"Bearer {token}"})
    assert connection.getresponse().status == 200
    connection.close()
    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug" and "/users" in
             record.getMessage()]
    assert lines, "the request was logged"
    assert not [line for line in lines if "1234" in line or "5678" in line], lines
    assert "/api/v1/users?username=" in lines[0] and "***" in lines[0]


def test_gunicorns_access_log_masks_a_phone_number_in_the_request_line_the_query_and_the_referer(app, caplog):
    caplog.set_level(logging.INFO, logger="gunicorn.access")
    atoms = {"r": f"GET /api/v1/users?username={quote('139 1234 5678')} HTTP/1.1", "q": f"username={PHONE}",
             "f": f"https://shop.example/login?next=/x&phone={PHONE}", "s": "200"}
    logging.getLogger("gunicorn.access").info('"%(r)s" %(s)s q=%(q)s "%(f)s"', atoms)  # as gunicorn's Logger.access
    [line] = [record.getMessage() for record in caplog.records if record.name == "gunicorn.access"]
    assert "1234" not in line and "5678" not in line and line.startswith('"GET /api/v1/users?username=')


def test_an_access_log_line_without_a_persons_number_is_kept_as_it_was(app, caplog):
    caplog.set_level(logging.INFO, logger="gunicorn.access")
    line = '"GET /api/v1/orders/2147483647?limit=20&cursor=abc%2Fdef HTTP/1.1" 200 13800 [29/Nov/2026 14:16:03]'
    logging.getLogger("gunicorn.access").info(line)
    assert [record.getMessage() for record in caplog.records if record.name == "gunicorn.access"] == [line]
