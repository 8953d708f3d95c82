"""Gunicorn's own error answers in the API's error shape.

Gunicorn answers a request it cannot parse (a header of 9,000 bytes, a URL past 4,094 characters, a bad request line
or chunk) itself, before any app code runs, with an HTML page; the API promises JSON. `gunicorn.conf.py` (read from
the working directory, or given with `-c`) installs `write_json_error` when the server starts, before it forks its
workers. It also writes every log record, the app's and gunicorn's, as one JSON line on stderr (`JsonLogFormatter`,
`LOG_CONFIG`): an error's traceback is a field of its line, never 70 lines a log collector takes one by one.
"""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

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


class JsonLogFormatter(logging.Formatter):
    """A log record as one JSON line: time (UTC), level, logger, process, message, and a traceback as one field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record's line."""
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "process": record.process,
                "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


# gunicorn's `logconfig_dict` (gunicorn.conf.py): every logger through the root's JSON handler on stderr; no access
# log, as without the setting
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonLogFormatter}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
                "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False}},
}
