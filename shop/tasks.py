"""Shell-level tasks: a health check that proves a worker reaches the database, the sweep, and the two-phase
unit of work that long jobs (inventory imports, payout builds) run as."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from celery import shared_task
from flask import current_app
from sqlalchemy import func, select

from shop.db import db
from shop.regions.models import Region
from shop.sweeper import registered_sweepers

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_claimed(job: str, *, claim: Callable[[], bool], work: Callable[[], T], fail: Callable[[], None],
                reload: Callable[[], T]) -> T | None:
    """Run a long job as its own units of work: the claim committed first (its status and progress show at
    once), then the whole work in a second transaction; an unexpected failure is logged and recorded by `fail`
    in a third, and the job is reloaded for the caller. None if the job is done or being done elsewhere."""
    claimed = claim()
    db.session.commit()
    if not claimed:
        return None
    try:
        result = work()
        db.session.commit()
    except Exception:  # noqa: BLE001 - record the failure, then let the caller see the job
        db.session.rollback()
        log.exception("%s failed unexpectedly", job)
        fail()
        db.session.commit()
        result = reload()
    return result


@shared_task(name="shop.check_health", acks_late=True, ignore_result=False)  # check-worker reads it
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
