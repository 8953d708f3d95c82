"""Probes for the load balancer: `GET /healthz`, the process answers (liveness, asks nothing of the database), and
`GET /readyz`, it can serve (readiness: the database answers a trivial query, when REDIS_URL is set Redis a ping,
and every check a domain registered passes). Neither is rate limited; a 503 names what is down and nothing more."""
from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Flask, current_app
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shop.db import db
from shop.errors import ShopCode, error_response
from shop.extensions import limiter

PROBE_PATHS = ("/healthz", "/readyz")  # a domain's own before-request checks leave them to these views
log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def _database_answers() -> bool:
    """Whether the database answers `SELECT 1`."""
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except DBAPIError as exc:
        log.error("readiness: database unavailable: %s", exc.orig.__class__.__name__)
        return False
    finally:
        db.session.rollback()


def _redis_answers() -> bool:
    """Whether Redis answers a ping (through the rate limits' store, which uses it); True when none is configured."""
    if not current_app.config.get("REDIS_URL"):
        return True
    if limiter.storage.check():
        return True
    log.error("readiness: redis unavailable")
    return False


def register_readiness_check(app: Flask, name: str, check: Callable[[], bool]) -> None:
    """Add a domain's check to readiness, run once the database answers (`name` is all a failure tells clients)."""
    app.extensions.setdefault("readiness_checks", {})[name] = check


@bp.get("/healthz")
@limiter.exempt
def liveness():
    """The process is up and answering."""
    return {"ok": True}


@bp.get("/readyz")
@limiter.exempt
def readiness():
    """The database and Redis answer: the process can serve requests."""
    down = [name for name, answers in (("database", _database_answers), ("redis", _redis_answers)) if not answers()]
    if "database" not in down:
        down += [name for name, passes in current_app.extensions.get("readiness_checks", {}).items() if not passes()]
    if down:
        return error_response(503, ShopCode.SERVICE_UNAVAILABLE, f"Not ready: {' and '.join(down)} unavailable.",
                              {"unavailable": down})
    return {"ok": True}


def init_app(app: Flask) -> None:
    """Serve the two probes."""
    app.register_blueprint(bp)
