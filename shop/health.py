"""Probes for the load balancer: `GET /healthz`, the process answers (liveness, asks nothing of the database), and
`GET /readyz`, it can serve (readiness: the database answers with its schema at the migrations' head, when REDIS_URL
is set Redis a ping, and every check a domain registered passes). Neither is rate limited; a 503 names what is down
and nothing more (but for a schema to upgrade)."""
from __future__ import annotations

import logging
from collections.abc import Callable

from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, current_app
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from shop.db import db
from shop.errors import ShopCode, error_response
from shop.extensions import limiter

NO_SCHEMA = "the database has no schema: run `flask --app shop db upgrade`"
SCHEMA_BEHIND = "the database's schema is not at the migrations' head: run `flask --app shop db upgrade`"
log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)  # at shop.errors.PROBE_PATHS, whose errors are JSON as the API's


def database_problem() -> str | None:
    """What keeps the database from serving, in one line without secrets: out of reach, or its schema not at the
    migrations' head (no schema at all, or not upgraded); None when it can serve."""
    try:
        with db.engine.connect() as connection:
            current = (set(connection.scalars(text("SELECT version_num FROM alembic_version")))
                       if inspect(connection).has_table("alembic_version") else set())
    except DBAPIError as exc:
        return out_of_reach(exc)
    if not current:
        return NO_SCHEMA
    return SCHEMA_BEHIND if current != _migration_heads() else None


def out_of_reach(exc: DBAPIError) -> str:
    """A failure to connect in one line: the driver's first line, which names the server, never a password or a
    statement's values."""
    reason = (str(exc.orig).splitlines() or [exc.orig.__class__.__name__])[0]
    return f"cannot reach the database: {' '.join(reason.split())}"


def database_unreachable() -> str | None:
    """Why the database cannot be connected to, in one line without secrets; None when a connection opens."""
    try:
        db.engine.connect().close()
    except DBAPIError as exc:
        return out_of_reach(exc)
    return None


def _migration_heads() -> set[str]:
    """The head revisions of the shipped migrations (read once per app)."""
    heads = current_app.extensions.get("migration_heads")
    if heads is None:
        script = ScriptDirectory(current_app.extensions["migrate"].directory)
        heads = current_app.extensions["migration_heads"] = set(script.get_heads())
    return heads


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
    """The database (its schema at the migrations' head) and Redis answer: the process can serve requests."""
    problem = database_problem()
    if problem is not None:
        log.error("readiness: %s", problem)
    down = [name for name, answers in (("database", problem is None), ("redis", _redis_answers())) if not answers]
    if problem is None:
        down += [name for name, passes in current_app.extensions.get("readiness_checks", {}).items() if not passes()]
    if down:
        schema = f" ({problem})" if problem in (NO_SCHEMA, SCHEMA_BEHIND) else ""
        return error_response(503, ShopCode.SERVICE_UNAVAILABLE,
                              f"Not ready: {' and '.join(down)} unavailable{schema}.", {"unavailable": down})
    return {"ok": True}


def init_app(app: Flask) -> None:
    """Serve the two probes."""
    app.register_blueprint(bp)
