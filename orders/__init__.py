"""The orders domain (see DESIGN.md): stores, checkout, payments, counter sales, refunds, the outbox."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the domain's blueprints, CLI commands, demo seeder, tasks, sweepers, beat entries, the units of
    lots it holds outside the stock rows, the locations that sell nothing (closed stores), what its duplicates
    answer and which stores a list's filter may name."""
    from catalog.inventory import register_location_scope, register_units_outside_stock
    from catalog.queries import register_closed_locations
    from orders import notify, outbox, tasks  # noqa: F401 - importing registers the tables and tasks
    from orders.checkout import tasks as checkout_tasks  # noqa: F401
    from orders.checkout.api import blp as checkout_blp
    from orders.checkout.service import last_sale_date, paired_sale_dates
    from orders.counter.api import blp as counter_blp
    from orders.demo import seed_demo
    from orders.errors import OrderCode
    from orders.ledger import init_app as init_ledger
    from orders.ledger import models as ledger_models  # noqa: F401
    from orders.payments import service as payments
    from orders.payments import tasks as payment_tasks  # noqa: F401
    from orders.payments.api import blp as payments_blp
    from orders.payments.api import sandbox_blp
    from orders.payments.cli import payments_cli
    from orders.refunds import service as refunds
    from orders.refunds.api import blp as refunds_blp
    from orders.stores.api import BLUEPRINTS as stores_blueprints
    from orders.stores.service import (
        closed_store_locations,
        duplicate_store_location,
        duplicate_store_name,
        get_store_for,
        location_scope,
        lot_units_outside_stock,
        store_takes_staff,
    )
    from shop.cli import register_demo_seeder
    from shop.errors import register_error_codes, register_unique_conflicts
    from shop.extensions import api
    from shop.scope import register_filter_scope
    from shop.sweeper import register_sweeper

    register_error_codes(app, OrderCode)
    register_unique_conflicts(app, {
        "uq_stores_location_id": duplicate_store_location, "uq_stores_name_key": duplicate_store_name,
        # written by the service alone: a counter sale's key (a resend answers the sale), a refused sale's conflict
        # (likewise), a transfer's lots (one line each), a provider's intent, event and refund ids (de-duplicated),
        # a waiting pickup code (another is drawn), a store's one open closure (closed under the store's row lock)
        "uq_orders_store_key": None, "uq_sale_conflicts_store_key": None, "uq_transfer_lines_lot": None,
        "uq_payments_intent_id": None, "uq_payment_events_event_id": None, "uq_refunds_provider_refund_id": None,
        "uq_orders_waiting_pickup_code": None, "uq_store_closures_open": None})
    for blueprint in (*stores_blueprints, checkout_blp, payments_blp, counter_blp, refunds_blp):
        api.register_blueprint(blueprint)
    if payments.sandbox_enabled(app.config):
        api.register_blueprint(sandbox_blp)
    app.extensions.setdefault("scope_checks", {})["store_id"] = store_takes_staff
    register_filter_scope(app, "store_id", lambda actor, store_id: get_store_for(actor=actor, store_id=store_id),
                          OrderCode.STORE_NOT_FOUND)
    app.extensions["supplier_last_sale_date"] = last_sale_date  # a dividend link never changes attributed days
    app.extensions["pairing_sale_dates"] = paired_sale_dates  # nor a pairing's period a paid sale's report row
    register_units_outside_stock(app, "orders", lot_units_outside_stock)
    register_units_outside_stock(app, "refunds", refunds.units_held_by_pending_refunds)
    register_location_scope(app, location_scope)
    register_closed_locations(app, closed_store_locations())
    register_demo_seeder(app, "orders", seed_demo)
    app.cli.add_command(payments_cli)
    register_sweeper(app, "orders.outbox", outbox.requeue_undelivered)
    register_sweeper(app, "orders.payment_events", payments.requeue_pending_events)
    register_sweeper(app, "orders.pending_refunds", refunds.requeue_pending_refunds)
    register_sweeper(app, "orders.notifications", notify.requeue_unsent)
    register_sweeper(app, "orders.old_notifications", notify.forget_old)
    app.config["CELERY_BEAT_SCHEDULE"]["orders.expire_reservations"] = {
        "task": "orders.expire_reservations", "schedule": 60.0}
    init_ledger(app)
