"""The orders domain (see DESIGN.md)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the domain's blueprints, CLI commands, demo seeder, tasks and sweepers."""
    from orders import models, outbox, tasks  # noqa: F401 - registers the tables and tasks
    from shop.sweeper import register_sweeper

    register_sweeper(app, "orders.outbox", outbox.requeue_undelivered)

    from orders.demo import seed_demo
    from orders.stores.api import blp as stores_blp
    from orders.stores.service import store_exists
    from shop.cli import register_demo_seeder
    from shop.extensions import api as stores_api

    stores_api.register_blueprint(stores_blp)
    app.extensions.setdefault("scope_checks", {})["store_id"] = store_exists
    register_demo_seeder(app, "orders", seed_demo)

    from orders.checkout import tasks as checkout_tasks  # noqa: F401 - registers orders.expire_reservations
    from orders.checkout.api import blp as checkout_blp
    from shop.extensions import api as checkout_api

    checkout_api.register_blueprint(checkout_blp)
    app.config["CELERY_BEAT_SCHEDULE"]["orders.expire_reservations"] = {
        "task": "orders.expire_reservations", "schedule": 60.0}

    from orders.counter.api import blp as counter_blp
    from shop.extensions import api as counter_api

    counter_api.register_blueprint(counter_blp)

    from orders.payments import service as payments_service
    from orders.payments import tasks as payments_tasks  # noqa: F401 - registers orders.process_payment_event
    from orders.payments.api import blp as payments_blp
    from shop.extensions import api as payments_api

    payments_api.register_blueprint(payments_blp)
    register_sweeper(app, "orders.payment_events", payments_service.requeue_pending_events)
