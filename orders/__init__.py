"""The orders domain (see DESIGN.md)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the domain's blueprints, CLI commands, demo seeder, tasks and sweepers."""
    from orders import models, outbox, tasks  # noqa: F401 - registers the tables and tasks
    from shop.sweeper import register_sweeper

    register_sweeper(app, "orders.outbox", outbox.requeue_undelivered)
