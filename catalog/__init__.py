"""The catalog domain (see DESIGN.md)."""
from __future__ import annotations

from celery.schedules import crontab
from flask import Flask


def init_app(app: Flask) -> None:
    """Register the domain's blueprints, CLI commands, demo seeder and tasks."""
    from catalog import tasks, uploads  # noqa: F401 - registers the Celery tasks
    from catalog.api import blp
    from catalog.cli import import_inventory_command
    from catalog.demo import seed_demo
    from catalog.errors import CatalogCode
    from catalog.trace import pages
    from shop.cli import register_demo_seeder
    from shop.errors import register_error_codes
    from shop.extensions import api
    from shop.sweeper import register_sweeper

    register_error_codes(app, CatalogCode)
    api.register_blueprint(blp)
    app.register_blueprint(pages)
    app.cli.add_command(import_inventory_command)
    register_demo_seeder(app, "catalog", seed_demo)
    register_sweeper(app, "catalog.inventory_uploads", uploads.requeue_stuck_uploads)
    app.config["CELERY_BEAT_SCHEDULE"]["catalog.flag_lapsed_certificates"] = {
        "task": "catalog.flag_lapsed_certificates",
        "schedule": crontab(hour=0, minute=5),
    }
