"""Shell-level tasks: a health check that proves a worker reaches the database, and the sweep."""
from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app
from sqlalchemy import func, select

from shop.db import db
from shop.regions.models import Region
from shop.sweeper import registered_sweepers

log = logging.getLogger(__name__)


@shared_task(name="shop.check_health", acks_late=True)
def check_health() -> dict:
    """Report that this worker can read the database (the number of regions it sees)."""
    return {"ok": True, "regions": db.session.scalar(select(func.count()).select_from(Region))}


@shared_task(name="shop.sweep", acks_late=True)
def sweep() -> dict[str, int | None]:
    """Run every registered sweeper, each in its own transaction; per name, how many it re-queued
    (None for a sweeper that failed: it is logged and rolled back, and the others still run)."""
    done: dict[str, int | None] = {}
    for name, sweeper in registered_sweepers(current_app).items():
        try:
            done[name] = sweeper()
            db.session.commit()
        except Exception:  # noqa: BLE001 - one sweeper's failure must not stop the others
            db.session.rollback()
            log.exception("sweeper %s failed", name)
            done[name] = None
    return done
