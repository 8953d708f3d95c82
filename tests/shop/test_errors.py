"""Every error under /api/ has the API's JSON shape."""
from __future__ import annotations

import io
import logging
import re

import pytest
import werkzeug.exceptions
from sqlalchemy import func, select

from shop.auth.models import User
from shop.blueprint import Blueprint
from shop.db import db
from shop.extensions import api
from shop.idempotency import IdempotencyKey


def assert_error(response, status: int, code: str) -> dict:
    """The response is the API error shape with `status` and `code`."""
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code and error["message"]
    return error


def test_unknown_route_is_a_json_404(client):
    assert_error(client.get("/api/v1/no-such-thing"), 404, "not_found")


@pytest.mark.parametrize("method, path", [("GET", "/api"), ("GET", "/api?cursor=x"), ("POST", "/api"),
                                          ("GET", "/api/"), ("DELETE", "/api/v2")])
def test_every_path_of_the_api_answers_errors_in_the_api_shape(client, method, path):
    """`/api` itself is the API's as much as `/api/...`: its errors are JSON, never the site's HTML page; a path
    that merely begins with the letters (`/apiary`) is the site's."""
    assert_error(client.open(path, method=method), 404, "not_found")
    other = client.get("/apiary")
    assert other.status_code == 404 and other.mimetype == "text/html"


@pytest.mark.parametrize("path", ["/api/v1/trace/" + "A" * 5000, "/api/v1/no-such-thing/a%00b%1bc",
                                  "/api/v1/no-such-thing/%E2%80%AEtxt.exe"], ids=["long", "control", "override"])
def test_an_unknown_path_too_long_or_holding_control_characters_is_not_quoted_back(client, path):
    error = assert_error(client.get(path), 404, "not_found")
    assert error["message"] == "No resource at this path."
    assert client.get("/api/v1/no-such-thing").json["error"]["message"] == "No resource at /api/v1/no-such-thing."


def test_wrong_method_is_a_json_405_with_allow_header(client):
    response = client.delete("/api/v1/regions")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_validation_errors_map_fields_to_messages(client):
    error = assert_error(client.get("/api/v1/regions?level=village&limit=500"), 422, "validation_error")
    assert set(error["details"]) == {"level", "limit"}


def test_malformed_json_is_a_400(client):
    response = client.post("/api/v1/auth/token", data="{not json", content_type="application/json")
    assert_error(response, 400, "bad_request")


BODIES_NO_PARSER_SHOULD_SEE = {
    "unpaired surrogate in a value": '{"username": "admin", "password": "a\\ud800"}',
    "unpaired surrogate in a key": '{"\\udfff": 1, "username": "admin", "password": "x"}',
    "nested 1000 deep": "[" * 1000 + "]" * 1000,
    "nested just past the bound": "[" * 66 + "]" * 66,
    "an integer of 5000 digits": '{"username": "admin", "password": ' + "9" * 5000 + "}",
    "NaN": '{"username": "admin", "password": NaN}',
    "bytes that are not UTF-8": b'{"username": "\xff"}',
    "UTF-16 with its byte order mark": '{"username": "admin", "password": "x"}'.encode("utf-16"),
    "UTF-16 without one": '{"username": "admin", "password": "x"}'.encode("utf-16-le"),
    "UTF-32": '{"username": "admin", "password": "x"}'.encode("utf-32"),
    "UTF-8 after a byte order mark": '{"username": "admin", "password": "x"}'.encode("utf-8-sig"),
    "a key given twice": '{"username": "admin", "password": "x", "username": "other"}',
}


def send(client, path: str, body: bytes | str, content_type: str = "application/json", *, chunked: bool = False,
         headers: dict | None = None):
    """POST `body` with a Content-Length, or in chunks (no length: how a streaming client sends it)."""
    body = body.encode() if isinstance(body, str) else body
    headers = {**(headers or {}), "Content-Type": content_type}
    if not chunked:
        return client.post(path, data=body, headers=headers)
    return client.post(path, input_stream=io.BytesIO(body), environ_overrides={"wsgi.input_terminated": True},
                       headers={**headers, "Transfer-Encoding": "chunked"})


@pytest.mark.parametrize("chunked", [False, True], ids=["with a length", "in chunks"])
@pytest.mark.parametrize("body", BODIES_NO_PARSER_SHOULD_SEE.values(), ids=BODIES_NO_PARSER_SHOULD_SEE.keys())
@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/users", "/api/v1/products"])
def test_bodies_that_would_crash_a_parser_are_a_400_on_every_route(client, login, path, body, chunked):
    response = send(client, path, body, chunked=chunked, headers=login("admin"))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request"
    assert response.json["error"]["message"].startswith("The JSON body is malformed")


def test_paired_surrogates_and_ordinary_depth_are_fine(client):
    body = '{"username": "admin", "password": "\\ud83d\\ude00 正确", "extra": [[[[1]]]]}'
    response = client.post("/api/v1/auth/token", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422  # reaches the schema, which rejects the unknown field


@pytest.mark.parametrize("chunked", [False, True], ids=["with a length", "in chunks"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_json_is_a_415(client, content_type, chunked):
    """Multipart only where a route takes a file (the inventory upload); JSON everywhere else."""
    response = send(client, "/api/v1/auth/token", "username=a", content_type, chunked=chunked)
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("chunked", [False, True], ids=["with a length", "in chunks"])
def test_oversized_body_is_a_413_naming_the_limit(app, client, chunked):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = send(client, "/api/v1/auth/token", b"{" + b" " * 4096 + b"}", chunked=chunked)
    error = assert_error(response, 413, "payload_too_large")
    assert "1024" in error["message"]


@pytest.mark.parametrize("chunked", [False, True], ids=["with a length", "in chunks"])
def test_a_json_body_over_a_mebibyte_is_a_413_before_it_is_parsed_while_uploads_keep_the_larger_limit(
        app, client, chunked):
    """No JSON body of the API comes near 1 MiB (1,000 lots of a transfer, every character escaped, are a fraction of
    it); parsing one costs about a quarter of a second of CPU per MB, so a public route (sign-in, registration) must
    not parse 10 MB before its rate limit counts the request. The limit is MAX_JSON_LENGTH."""
    assert app.config["MAX_JSON_LENGTH"] == 1024 * 1024 < app.config["MAX_CONTENT_LENGTH"]
    password = "x" * (1024 * 1024)
    body = f'{{"username": "admin", "password": "{password}"}}'.encode()
    response = send(client, "/api/v1/auth/token", body, chunked=chunked)
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"limit_bytes": 1024 * 1024} and "1048576" in error["message"]
    small = send(client, "/api/v1/auth/token", b'{"username": "admin", "password": "wrong password"}',
                 chunked=chunked)
    assert small.status_code == 401


class _BadlyFramed:
    """A body stream as gunicorn hands over one sent with a chunk size that is not hexadecimal (`ZZ\\r\\n{}`)."""

    def read(self, *_args):
        from gunicorn.http.errors import InvalidChunkSize

        raise InvalidChunkSize("ZZ")

    readline = read


@pytest.mark.parametrize("path, content_type", [("/api/v1/auth/token", "application/json"),
                                                ("/login", "application/x-www-form-urlencoded")])
def test_a_body_the_server_cannot_read_is_a_400_not_a_500(client, path, content_type):
    """The API answers in its JSON shape, a page with its HTML error page; nothing is logged as a server error."""
    response = client.post(path, headers={"Content-Type": content_type, "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input": _BadlyFramed(), "wsgi.input_terminated": True})
    assert response.status_code == 400
    if path.startswith("/api/"):
        assert "could not be read" in assert_error(response, 400, "bad_request")["message"]
    else:
        assert response.mimetype == "text/html"


def test_a_compressed_body_is_a_415_naming_its_encoding(client):
    response = client.post("/api/v1/auth/token", data=b"\x1f\x8b\x08\x00", headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert assert_error(response, 415, "unsupported_media_type")["details"] == {"content_encoding": "gzip"}


def test_a_route_that_takes_no_body_refuses_one(client, login):
    """`POST /orders/<id>/cancel` takes no fields: one sent is unknown, as on any other route."""
    cancel, headers = "/api/v1/orders/1/cancel", login("consumer")  # no order 1: a body that passes is a 404
    response = send(client, cancel, '{"evil": [1]}', headers=headers)
    assert assert_error(response, 422, "validation_error")["details"] == {"evil": ["Unknown field."]}
    assert send(client, cancel, "{}", headers=headers).status_code == 404  # an empty object is no body
    for content_type in ("application/json", ""):  # nothing sent in chunks is no body either
        assert send(client, cancel, "", content_type, chunked=True, headers=headers).status_code == 404


def multipart_routes(client) -> list[tuple[str, str, dict]]:
    """(method, path with every argument 1, the schema of its parts) of each operation whose body is multipart,
    from the OpenAPI document."""
    document = client.get("/api/v1/openapi.json").json
    routes = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}) if isinstance(operation, dict) else {}
            schema = body.get("content", {}).get("multipart/form-data", {}).get("schema")
            if schema is not None:
                schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                routes.append((method, re.sub(r"{\w+}", "1", path), schema))
    return routes


def _part(schema: dict):
    """A value of a multipart part: a small file for a binary one, otherwise text."""
    return (io.BytesIO(b"x"), "x.csv") if schema.get("format") == "binary" else "1"


def test_every_multipart_route_refuses_a_part_it_does_not_read_and_a_part_given_twice(client, login):
    headers, routes = login("admin"), multipart_routes(client)
    assert routes
    for method, path, schema in routes:
        unknown = client.open(path, method=method, headers=headers, content_type="multipart/form-data",
                              data={"extra": "1", "stray": (io.BytesIO(b"x"), "x.csv")})
        assert assert_error(unknown, 422, "validation_error")["details"] == {
            "extra": ["Unknown field."], "stray": ["Unknown field."]}, path
        for name, part in schema["properties"].items():
            twice = client.open(path, method=method, headers=headers, content_type="multipart/form-data",
                                data={name: [_part(part), _part(part)]})
            assert list(assert_error(twice, 422, "validation_error")["details"]) == [name], path


@pytest.fixture
def failing_app(sqlite_template, tmp_path):
    """An app with one route that raises an unexpected exception."""
    import shutil

    from tests.conftest import make_app

    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path)
    blp = Blueprint("boom", __name__, url_prefix="/api/v1")

    @blp.route("/boom")
    def boom():
        raise RuntimeError("secret internals 42")

    @blp.route("/twice", methods=["POST"])
    def twice():
        db.session.add_all([User(username="twice", password_hash="x", role="consumer") for _ in range(2)])
        db.session.flush()

    @blp.route("/key-twice", methods=["POST"])
    def key_twice():
        user = User(username="key-twice", password_hash="x", role="consumer")
        db.session.add(user)
        db.session.flush()
        db.session.add_all([IdempotencyKey(user_id=user.id, scope="twice", key="twice", request_hash="x")
                            for _ in range(2)])
        db.session.flush()

    @blp.route("/private")
    def private():
        raise werkzeug.exceptions.Unauthorized()

    @blp.route("/teapot")
    def teapot():
        raise werkzeug.exceptions.ImATeapot()

    api.register_blueprint(blp)
    return app


def test_unexpected_exception_is_a_500_without_stack_trace_and_is_logged(failing_app, caplog):
    with caplog.at_level(logging.ERROR, logger="shop.errors"):
        response = failing_app.test_client().get("/api/v1/boom", headers={"X-Request-ID": "req-500"})
    error = assert_error(response, 500, "internal_error")
    assert b"secret internals" not in response.data and b"Traceback" not in response.data
    assert error["details"] == {"request_id": "req-500"}
    assert any("req-500" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_write_breaking_a_unique_rule_no_client_can_break_is_a_409_that_writes_nothing(failing_app):
    error = assert_error(failing_app.test_client().post("/api/v1/key-twice"), 409, "conflict")
    assert "twice" not in error["message"]  # the rule, not the values
    with failing_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User).where(User.username == "key-twice")) == 0


def test_a_write_breaking_a_client_facing_unique_rule_is_the_duplicate_its_domain_names(failing_app):
    """A duplicate the service did not check (a race) answers as the service's own check would."""
    error = assert_error(failing_app.test_client().post("/api/v1/twice"), 409, "username_taken")
    assert error["message"] == "The username 'twice' is taken."
    with failing_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User).where(User.username == "twice")) == 0


def test_an_http_401_from_below_the_services_is_the_json_shape(failing_app):
    assert_error(failing_app.test_client().get("/api/v1/private"), 401, "unauthorized")


def test_an_http_status_without_a_code_of_its_own_is_a_generic_http_error(failing_app):
    assert_error(failing_app.test_client().get("/api/v1/teapot"), 418, "http_error")


def test_pages_outside_the_api_keep_html_errors(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"
