"""Gunicorn's own error answers in the API's error shape.

Gunicorn answers a request it cannot parse (a header of 9,000 bytes, a URL past 4,094 characters, a bad request line
or chunk) itself, before any app code runs, with an HTML page; the API promises JSON. `gunicorn.conf.py` (read from
the working directory, or given with `-c`) installs `write_json_error` when the server starts, before it forks its
workers.
"""
from __future__ import annotations

from gunicorn import util

from shop.errors import server_error_body


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Write gunicorn's error answer as `{"error": {code, message, details}}` and close, as gunicorn does."""
    body = server_error_body(status_int, reason, mesg)
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def answer_errors_in_json() -> None:
    """Make gunicorn write its own error answers with `write_json_error`."""
    util.write_error = write_json_error
