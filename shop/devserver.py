"""The development server's URLs read as every WSGI server reads them, and its own error answers in the API's shape.

Werkzeug's development server (`flask run`, so `make run`) takes the request line as Latin-1 text and then
encodes it to UTF-8 once more before handing it over: a URL sent with raw UTF-8 bytes (`curl
'…/disclosure/counties/５１３４３１'`, `?parent=５１３４００`) reaches the app as mojibake, while gunicorn and
percent-encoded URLs arrive intact. `RawUrlFix` rebuilds `PATH_INFO` and `QUERY_STRING` from the raw request
target in that case, as gunicorn builds them, so one normalisation rule sees the same characters under both; a raw
byte that is not UTF-8 (`?q=\xff`) reads as its percent-encoding (`%FF`) does.

A request the server cannot read (a URL or a header line over 64 KiB, more than 100 headers, a malformed request line)
is answered by Python's `BaseHTTPRequestHandler.send_error`, before any app code runs, with an HTML page; the API
promises JSON, and gunicorn's answers are JSON (`shop.gunicorn`). `answer_errors_in_json` makes Werkzeug's handler
answer so too.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlsplit

from werkzeug.serving import WSGIRequestHandler

from shop.errors import server_error_body

_RAW_BYTE = re.compile(rb"[\x80-\xff]")  # a byte sent raw, outside ASCII: percent-encoded as a client should have


class RawUrlFix:
    """WSGI middleware: undo the development server's second encoding of a request target holding raw bytes."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        raw = environ.get("RAW_URI", "")
        if not raw.isascii() and environ.get("SERVER_SOFTWARE", "").startswith("Werkzeug/"):
            as_sent = raw.encode("latin-1").decode("utf-8").encode("latin-1")  # the target's bytes as they came
            target = urlsplit(_RAW_BYTE.sub(lambda byte: f"%{byte.group()[0]:02X}".encode(), as_sent).decode("ascii"))
            path = f"/{target.netloc}{target.path}" if not target.scheme and target.netloc else target.path
            environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
            environ["QUERY_STRING"] = target.query
        return self.wsgi_app(environ, start_response)


def _send_json_error(handler: WSGIRequestHandler, code: int, message: str | None = None,
                     explain: str | None = None) -> None:
    """`BaseHTTPRequestHandler.send_error`, its answer the API's JSON error shape instead of an HTML page."""
    reason, explanation = handler.responses.get(code, ("Error", ""))
    message = message or reason
    handler.log_error("code %d, message %s", code, message)
    body = server_error_body(code, message, explain or explanation)
    handler.send_response(code, message)
    handler.send_header("Connection", "close")
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def answer_errors_in_json() -> None:
    """Make the development server (Werkzeug's request handler) write its own error answers with `_send_json_error`."""
    WSGIRequestHandler.send_error = _send_json_error
