"""The development server's URLs read as every WSGI server reads them.

Werkzeug's development server (`flask run`, so `make run`) takes the request line as Latin-1 text and then
encodes it to UTF-8 once more before handing it over: a URL sent with raw UTF-8 bytes (`curl
'…/disclosure/counties/５１３４３１'`, `?parent=５１３４００`) reaches the app as mojibake, while gunicorn and
percent-encoded URLs arrive intact. `RawUrlFix` rebuilds `PATH_INFO` and `QUERY_STRING` from the raw request
target in that case, as gunicorn builds them, so one normalisation rule sees the same characters under both; a raw
byte that is not UTF-8 (`?q=\xff`) reads as its percent-encoding (`%FF`) does.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlsplit

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
