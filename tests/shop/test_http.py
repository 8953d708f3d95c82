"""HTTP answers every API route gives alike: OPTIONS, and the development server's own answers to requests it cannot
read (in the JSON error shape, as gunicorn's)."""
from __future__ import annotations

import json
import socket
import threading

import pytest
from werkzeug.serving import make_server


@pytest.mark.parametrize(("path", "methods"), [
    ("/api/v1/orders", {"GET", "HEAD", "POST", "OPTIONS"}),
    ("/api/v1/orders/42", {"GET", "HEAD", "OPTIONS"}),
    ("/api/v1/products/NOSUCHSKU", {"GET", "HEAD", "PATCH", "OPTIONS"}),
    ("/api/v1/auth/token", {"POST", "OPTIONS"}),
])
def test_options_on_an_api_route_is_204_with_its_methods_and_no_body(client, path, methods):
    response = client.options(path)

    assert response.status_code == 204
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == methods
    assert response.data == b"" and "Content-Type" not in response.headers


def test_options_on_an_unknown_api_path_is_the_json_404(client):
    response = client.options("/api/v1/nowhere")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api//v1/regions", "/api/v1//regions/513431"])
def test_a_doubled_slash_in_an_api_path_is_the_json_404_not_an_html_redirect(client, path):
    response = client.get(path)

    assert response.status_code == 404 and "Location" not in response.headers
    assert response.json["error"]["code"] == "not_found"


def test_a_doubled_slash_in_an_api_write_path_is_the_json_404_too(client):
    response = client.post("/api/v1//auth/token", json={"username": "nobody", "password": "nothing-at-all"})

    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def _raw_answer(port: int, request: bytes) -> tuple[int, str, dict]:
    """Send `request` as raw bytes to the server on `port`: the answer's status, Content-Type and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers.get("content-type", ""), json.loads(body)


OVERSIZED = {
    "a header over 64 KiB": (431, b"GET /api/v1/regions HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 66_000
                             + b"\r\n\r\n"),
    "a URL over 64 KiB": (414, b"GET /api/v1/regions?q=" + b"a" * 66_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    "150 headers": (431, b"GET /api/v1/regions HTTP/1.1\r\nHost: localhost\r\n"
                    + b"".join(b"X-H%d: 1\r\n" % number for number in range(150)) + b"\r\n"),
    "a request line of four words": (400, b"GET /api/v1/regions \"<junk>\" HTTP/1.1\r\n\r\n"),
}


@pytest.mark.parametrize(("status", "request_bytes"), OVERSIZED.values(), ids=OVERSIZED.keys())
def test_the_development_servers_own_error_answers_are_the_json_error_shape(app, status, request_bytes):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answered, content_type, body = _raw_answer(server.server_port, request_bytes)
    finally:
        server.shutdown()
        server.server_close()

    assert (answered, content_type) == (status, "application/json")
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == ("bad_request" if status == 400 else "http_error") and body["error"]["message"]

