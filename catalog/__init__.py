"""The catalog domain (see DESIGN.md)."""
from __future__ import annotations

from celery.schedules import crontab
from flask import Flask


def init_app(app: Flask) -> None:
    """Register the domain's blueprints, CLI commands, demo seeder, tasks, what its duplicates answer and which lots
    and locations a list's filter may name."""
    from catalog import tasks, uploads  # noqa: F401 - registers the Celery tasks
    from catalog.api import blp
    from catalog.cli import import_inventory_command
    from catalog.demo import seed_demo
    from catalog.errors import CatalogCode
    from catalog.inventory import (
        duplicate_location_code,
        duplicate_lot_code,
        get_location,
        get_lot,
        last_delivery_date,
        location_in_scope,
    )
    from catalog.service import duplicate_product_name, duplicate_sku
    from catalog.trace import pages
    from shop.cli import register_demo_seeder
    from shop.errors import register_error_codes, register_unique_conflicts
    from shop.extensions import api
    from shop.scope import register_filter_scope
    from shop.sweeper import register_sweeper

    register_error_codes(app, CatalogCode)
    register_unique_conflicts(app, {
        "uq_products_sku": duplicate_sku, "uq_locations_code": duplicate_location_code,
        "uq_locations_skeleton": duplicate_location_code,
        "uq_lots_supplier_lot_code": duplicate_lot_code, "uq_lots_supplier_skeleton": duplicate_lot_code,
        "uq_products_supplier_name_key": duplicate_product_name,
        # written by the service alone: a trace code is drawn at random and checked free, a lot's contributions are one
        # per household (checked), stock rows are upserted, an upload of the same bytes answers the earlier one
        "uq_lots_trace_code": None, "uq_lot_contributions_household": None, "uq_stock_location_lot": None,
        "uq_inventory_uploads_dedupe": None})
    api.register_blueprint(blp)
    app.register_blueprint(pages)
    register_filter_scope(app, "lot_id", lambda actor, lot_id: get_lot(lot_id=lot_id, actor=actor),
                          CatalogCode.LOT_NOT_FOUND)
    register_filter_scope(app, "location_id",
                          lambda actor, location_id: location_in_scope(actor=actor, location_id=location_id),
                          CatalogCode.LOCATION_NOT_FOUND)
    register_filter_scope(app, "in_stock_at", lambda actor, location_id: get_location(location_id),
                          CatalogCode.LOCATION_NOT_FOUND)  # products in stock at any location, a warehouse too
    app.extensions["household_last_delivery_date"] = last_delivery_date  # a purchase link covers its lots' harvests
    app.cli.add_command(import_inventory_command)
    register_demo_seeder(app, "catalog", seed_demo)
    register_sweeper(app, "catalog.inventory_uploads", uploads.requeue_stuck_uploads)
    app.config["CELERY_BEAT_SCHEDULE"]["catalog.flag_lapsed_certificates"] = {
        "task": "catalog.flag_lapsed_certificates",
        "schedule": crontab(hour=0, minute=5),
    }
