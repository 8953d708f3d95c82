"""The ledger (DESIGN.md): attribution of the orders' outbox into a hash-chained double-entry ledger."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the ledger's parts: attribution consumes the orders' outbox; the auditor routes; verify-ledger."""
    from orders.ledger.api import blp
    from orders.ledger.attribution import apply_events
    from orders.ledger.cli import verify_ledger_command
    from orders.ledger.reports_api import blp as reports_blp
    from orders.ledger.statements_api import blp as statements_blp
    from orders.outbox import register_consumer
    from shop.extensions import api

    register_consumer(app, "ledger", apply_events)
    api.register_blueprint(blp)
    api.register_blueprint(reports_blp)
    api.register_blueprint(statements_blp)
    app.cli.add_command(verify_ledger_command)
