"""What a newcomer and an operator meet first: the offline API docs and one-line configuration errors."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shop import create_app
from shop.config import ConfigError, load_config
from tests.conftest import TEST_SECRETS

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "A" * 43  # 32 bytes in base64url


def test_the_docs_page_loads_swagger_ui_from_this_service_only(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "//" not in "".join(re.findall(r'(?:src|href|url)\s*[:=]\s*"([^"]*)"', html))
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(assets) == [f"/api/v1/docs/assets/{name}" for name in
                              ("swagger-init.js", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                               "swagger-ui.css")]
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.data) > 400
        assert response.mimetype in {"text/javascript", "application/javascript", "text/css"}
    assert "<script>" not in html  # the start-up script is a file: the CSP runs no inline script
    assert client.get("/api/v1/docs/assets/index.html").status_code == 404
    assert client.get("/api/v1/docs/assets/..%2F..%2Fopenapi.json").status_code == 404


def _entry_point_env(**settings) -> dict:
    """The environment of a fresh process: this one's, without service settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"SHOP_ENV", "DATABASE_URL", "REDIS_URL", "STRIPE_API_KEY", "PAYMENTS", *TEST_SECRETS}}
    return {**env, **settings}


def _flask_routes(**settings) -> subprocess.CompletedProcess:
    """Run `flask --app shop routes` in a new process with `settings` in its environment."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "shop", "routes"], env=_entry_point_env(**settings),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("settings, line", [
    ({"SHOP_ENV": "production"}, "configuration error: SHOP_ENV=production requires: SECRET_KEY, "),
    ({"TOKEN_TTL_SECONDS": "abc"}, "configuration error: TOKEN_TTL_SECONDS must be an integer, got 'abc'"),
    ({"MAX_CONTENT_LENGTH": "10MB"}, "configuration error: MAX_CONTENT_LENGTH must be an integer, got '10MB'"),
    ({"TRUSTED_PROXY_HOPS": "-1"}, "configuration error: TRUSTED_PROXY_HOPS must be at least 0, got -1"),
    ({"FIELD_ENCRYPTION_KEY": "no key id"}, "configuration error: FIELD_ENCRYPTION_KEY "),
    ({"FIELD_HASH_KEY": "too-short"}, "configuration error: FIELD_HASH_KEY is not 32 bytes in base64url."),
    ({"SHOP_ENV": "Production"}, "configuration error: SHOP_ENV must be one of development, production, "
                                 "got 'Production'"),
    ({"DATABASE_URL": "mysql://shop@db/shop"}, "configuration error: DATABASE_URL must be a PostgreSQL "),
    ({"DATABASE_URL": "not a url"}, "configuration error: DATABASE_URL is not a database URL"),
])
def test_a_configuration_error_is_one_line_and_a_failed_exit_for_the_cli(settings, line):
    result = _flask_routes(**settings)
    assert result.returncode == 4
    assert result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_key_material_is_never_quoted_in_a_configuration_error():
    result = _flask_routes(FIELD_ENCRYPTION_KEY="k1:c2VjcmV0LWJ1dC1zaG9ydA")
    assert result.returncode == 4 and "c2VjcmV0" not in result.stderr


def test_a_sound_configuration_starts():
    result = _flask_routes(TOKEN_TTL_SECONDS="600", TRUSTED_PROXY_HOPS="1", FIELD_HASH_KEY=GOOD_KEY)
    assert result.returncode == 0, result.stderr
    assert "/api/v1/docs/assets/" in result.stdout


def test_gunicorn_as_the_readme_runs_it_stops_with_the_line_alone():
    # --preload builds the app once in the master, before any worker forks: one line, exit 4, no respawning
    result = subprocess.run([sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", "127.0.0.1:0",
                             "shop:create_app()"],
                            env=_entry_point_env(SHOP_ENV="production"), cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 4
    assert result.stderr.startswith("configuration error: SHOP_ENV=production requires:")
    assert result.stderr.count("\n") == 1, result.stderr


def test_create_app_with_a_config_raises_configuration_errors_for_callers(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "twelve hours")
    with pytest.raises(ConfigError, match="TOKEN_TTL_SECONDS must be an integer"):
        create_app({})
    with pytest.raises(ConfigError, match="LOGIN_FAILURE_ALERT_PER_MINUTE must be at least 1"):
        load_config({"LOGIN_FAILURE_ALERT_PER_MINUTE": "0"}, str(tmp_path))
    assert load_config({"TRUSTED_PROXY_HOPS": " 2 "}, str(tmp_path))["TRUSTED_PROXY_HOPS"] == 2
    assert load_config({}, str(tmp_path))["TRUSTED_PROXY_HOPS"] == 0


def test_gunicorns_own_error_answers_are_in_the_apis_json_shape(tmp_path):
    """Requests gunicorn refuses before any app code runs (a 9,000-byte header, a 5,000-character URL, a request
    line of an HTTP version that does not exist) answer JSON, not gunicorn's HTML page."""
    import json
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
                               "shop:create_app()"], env=_entry_point_env(DATABASE_URL=f"sqlite:///{tmp_path}/x.db"),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answer(request: bytes) -> tuple[int, str, dict]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(request)
            raw = b""
            while chunk := connection.recv(65536):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        content_type = re.search(rb"Content-Type: ([^\r]+)", head).group(1).decode()
        return int(head.split()[1]), content_type, json.loads(body)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        answers = [answer(b"GET /api/v1/regions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"),
                   answer(b"GET /api/v1/regions?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                   answer(b"GET /api/v1/regions HTTP/3.7\r\nHost: x\r\n\r\n")]
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert [(status, content_type) for status, content_type, _ in answers] == [
        (431, "application/json"), (414, "application/json"), (400, "application/json")]
    assert [body["error"]["code"] for _, _, body in answers] == ["http_error", "http_error", "bad_request"]
    assert all(body["error"]["message"] and body["error"]["details"] == {} for _, _, body in answers)


def test_gunicorn_as_the_readme_runs_it_logs_each_record_as_one_json_line(tmp_path):
    """Under gunicorn the app's and the server's records were plain text, an error's traceback some 70 lines that a
    log collector took as 70 records; each is now one JSON line on stderr, a traceback a field of it."""
    import json
    import logging
    import socket
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-w", "1", "-b",
                               f"127.0.0.1:{port}", "shop:create_app()"],
                              env=_entry_point_env(DATABASE_URL=f"sqlite:///{tmp_path}/unmigrated.db"), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except urllib.error.HTTPError as error:  # no schema: 503, and an error logged
                assert error.code == 503
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)

    records = [json.loads(line) for line in stderr.splitlines()]  # every line is a record
    assert {"time", "level", "logger", "process", "message"} <= set(records[0])
    assert any(record["logger"] == "gunicorn.error" for record in records)
    assert any(record["level"] == "ERROR" and record["logger"] == "shop.health" for record in records)

    from shop.gunicorn import JsonLogFormatter

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("shop.errors").makeRecord("shop.errors", logging.ERROR, __file__, 1,
                                                             "unhandled error path=%s", ("/x",), sys.exc_info())
    line = JsonLogFormatter().format(record)
    assert "\n" not in line
    told = json.loads(line)
    assert told["message"] == "unhandled error path=/x" and "Traceback" in told["exception"]
    assert "RuntimeError: boom" in told["exception"]
