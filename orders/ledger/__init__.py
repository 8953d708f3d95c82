"""The ledger (DESIGN.md): attribution of the orders' outbox into a hash-chained double-entry ledger."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the ledger's parts: attribution of the orders' outbox, the auditor routes (requested verifications
    run by a task, a second full verification refused with Retry-After), statements, reports, payouts (routes, task,
    sweeper), store remittances, verify-ledger, the pairing rollups' refresh (task on the beat schedule, command),
    what reached households through a lot (for its trace) and which payout batches a list's filter may name."""
    from catalog.queries import register_lot_reach
    from orders.ledger import verifications
    from orders.ledger.api import blp
    from orders.ledger.attribution import apply_events
    from orders.ledger.cli import verify_ledger_command
    from orders.ledger.errors import LedgerCode
    from orders.ledger.impact import LOT_HOUSEHOLDS_REACHED
    from orders.ledger.payouts import models as payout_models  # noqa: F401 - registers the tables
    from orders.ledger.payouts import service as payouts
    from orders.ledger.payouts import tasks as payout_tasks  # noqa: F401 - registers the Celery task
    from orders.ledger.payouts.api import blp as payouts_blp
    from orders.ledger.remittances import duplicate_remittance
    from orders.ledger.remittances_api import blp as remittances_blp
    from orders.ledger.reports_api import blp as reports_blp
    from orders.ledger.rollups import REFRESH_EVERY_SECONDS, refresh_rollups_command
    from orders.ledger.statements_api import blp as statements_blp
    from orders.outbox import register_consumer
    from shop.errors import register_error_codes, register_unique_conflicts
    from shop.extensions import api
    from shop.scope import register_filter_scope
    from shop.sweeper import register_sweeper

    register_consumer(app, "ledger", apply_events)
    register_lot_reach(app, LOT_HOUSEHOLDS_REACHED)
    register_error_codes(app, LedgerCode)
    register_unique_conflicts(app, {
        "uq_store_remittances_store_reference_key": duplicate_remittance,
        # written by the ledger alone, from the outbox, the payout tasks and a remittance's own posting
        "uq_ledger_accounts_code": None, "uq_ledger_transactions_seq": None,
        "uq_ledger_transactions_outbox_event_id": None, "uq_payout_lines_batch_account": None,
        "uq_disclosure_notices_county_month": None, "uq_store_remittances_transaction_id": None})
    api.register_blueprint(blp)
    api.register_blueprint(reports_blp)
    api.register_blueprint(statements_blp)
    api.register_blueprint(payouts_blp)
    api.register_blueprint(remittances_blp)
    register_filter_scope(app, "batch_id", lambda actor, batch_id: payouts.batch_in_scope(batch_id, actor),
                          LedgerCode.PAYOUT_BATCH_NOT_FOUND)
    register_sweeper(app, "ledger.payout_batches", payouts.requeue_stuck_batches)
    register_sweeper(app, "ledger.verifications", verifications.sweep_verifications)
    app.cli.add_command(verify_ledger_command)
    app.cli.add_command(refresh_rollups_command)
    app.config["CELERY_BEAT_SCHEDULE"]["ledger.refresh_pairing_rollups"] = {
        "task": "ledger.refresh_pairing_rollups", "schedule": REFRESH_EVERY_SECONDS}
