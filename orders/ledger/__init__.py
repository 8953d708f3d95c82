"""The ledger (DESIGN.md): attribution of the orders' outbox into a hash-chained double-entry ledger."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the ledger's parts: attribution consumes the orders' outbox."""
    from orders.ledger.attribution import apply_event
    from orders.outbox import register_consumer

    register_consumer(app, "ledger", apply_event)
