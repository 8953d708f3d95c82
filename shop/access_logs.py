"""The web servers' access logs name no person's number: a request line, a query or a referer may carry a consumer's
phone (`GET /api/v1/users?username=139…`), in any spelling (percent-encoded, spaced, full-width); each line of the
development server's log (`make run`) and of gunicorn's (when `--access-logfile` turns it on) has them masked, as the
audits show them."""
from __future__ import annotations

import logging
from urllib.parse import unquote

from shop.fields import mask_personal_numbers

ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")


class MaskPersonalNumbers(logging.Filter):
    """Rewrite a record whose message holds a person's number, read percent-decoded, with each such number masked
    (the line then reads decoded); any other record is left as it was."""

    def filter(self, record: logging.LogRecord) -> bool:
        decoded = unquote(record.getMessage())
        masked = mask_personal_numbers(decoded)
        if masked != decoded:
            record.msg, record.args = masked, ()
        return True


def mask_access_logs() -> None:
    """Install `MaskPersonalNumbers` on the access loggers, once per process."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(found, MaskPersonalNumbers) for found in logger.filters):
            logger.addFilter(MaskPersonalNumbers())
