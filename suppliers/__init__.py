"""The suppliers domain (see DESIGN.md)."""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import click
from flask import Flask, request
from flask.cli import AppGroup

from suppliers.errors import SupplierCode

MAX_REENCRYPT_BATCH = 100_000  # the most rows `suppliers reencrypt` goes through in one transaction
cli = AppGroup("suppliers", help="Suppliers and households.")
log = logging.getLogger(__name__)


@cli.command("reencrypt")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, MAX_REENCRYPT_BATCH),
              help="Rows per transaction.")
def reencrypt_command(batch: int):
    """Re-encrypt personal data under the first FIELD_ENCRYPTION_KEY entry; re-hash ID numbers with FIELD_HASH_KEY.
    A transaction per batch of rows, with progress; run it again to resume after a stop."""
    from shop.db import db
    from suppliers.service import reencrypt_fields

    done = {"re-encrypted": 0, "re-hashed": 0}
    for step in reencrypt_fields(batch=batch):
        db.session.commit()
        done[step.action] += step.changed
        click.echo(f"{step.table}: {step.done}/{step.total} rows gone through, {step.changed} {step.action}", err=True)
    db.session.commit()
    click.echo(f"re-encrypted {done['re-encrypted']} rows with the current key; re-hashed {done['re-hashed']} ID "
               "numbers with FIELD_HASH_KEY and recorded its fingerprint")


def _hash_key_matches(app: Flask) -> bool:
    """Whether FIELD_HASH_KEY matches the database (checked until it once does with the schema in place: before
    `flask db upgrade` there is nothing to compare with; a mismatch is logged)."""
    from shop.config import ConfigError
    from shop.health import database_problem
    from suppliers.service import check_hash_key

    if app.extensions.get("suppliers.hash_key_checked"):
        return True
    try:
        check_hash_key()
    except ConfigError as error:
        log.error("%s", error)  # the operator's detail; a client learns only that the service is not ready
        return False
    if database_problem() is None:
        app.extensions["suppliers.hash_key_checked"] = True
    return True


def _hash_key_problem(app: Flask) -> str | None:
    """Why the demo must not be seeded: FIELD_HASH_KEY does not match the database, as requests check (seeding
    would stop half-way on data it cannot find); with this installation's development keys, what to do about it."""
    from shop.config import DEV_SECRETS_FILE, ConfigError
    from shop.db import db
    from suppliers.service import check_hash_key

    try:
        check_hash_key()
    except ConfigError as error:
        secrets = Path(app.instance_path) / DEV_SECRETS_FILE
        if _stored_hash_key(secrets) != app.config["FIELD_HASH_KEY"]:
            return str(error)
        url = db.engine.url
        start_again = f"delete {url.database}" if url.get_backend_name() == "sqlite" else "empty the database"
        return f"FIELD_HASH_KEY does not match this database: restore {secrets} (the keys it was made with) or " \
               f"{start_again}"
    return None


def _stored_hash_key(secrets: Path) -> str | None:
    """The FIELD_HASH_KEY of a development secrets file, None when there is none."""
    try:
        return json.loads(secrets.read_text(encoding="utf-8")).get("FIELD_HASH_KEY")
    except (OSError, ValueError, AttributeError):
        return None


def _check_hash_key_before_request(app: Flask) -> None:
    """Before a request (except the load balancer's probes, whose readiness runs the check as one of its own):
    refuse to serve (503, the error page outside /api/) while FIELD_HASH_KEY does not match the database."""
    from shop.errors import PROBE_PATHS, AppError

    if request.path not in PROBE_PATHS and not _hash_key_matches(app):
        raise AppError("The service is misconfigured and not serving requests; its operator has been told.",
                       code=SupplierCode.HASH_KEY_MISMATCH, status=503)


def init_app(app: Flask) -> None:
    """Register the domain's blueprints, CLI commands, demo seeder, tasks, what its duplicates answer and which
    suppliers and households a list's filter may name."""
    from shop.cli import register_demo_check, register_demo_seeder
    from shop.crypto import parse_hash_key, parse_keys
    from shop.errors import register_error_codes, register_unique_conflicts
    from shop.extensions import api
    from shop.health import register_readiness_check
    from shop.scope import register_filter_scope
    from suppliers.api import blp
    from suppliers.demo import seed_demo
    from suppliers.errors import SupplierCode
    from suppliers.service import (
        duplicate_household_code,
        duplicate_person,
        duplicate_supplier_name,
        duplicate_uscc,
        household_seen_by,
        supplier_seen_by,
        supplier_takes_users,
    )

    parse_keys(app.config["FIELD_ENCRYPTION_KEY"])  # malformed keys stop the start (ConfigError), not a request
    parse_hash_key(app.config["FIELD_HASH_KEY"])
    register_error_codes(app, SupplierCode)
    register_unique_conflicts(app, {"uq_suppliers_uscc": duplicate_uscc,
                                    "uq_suppliers_name_key": duplicate_supplier_name,
                                    "uq_households_county_code": duplicate_household_code,
                                    "uq_households_id_number_hash": duplicate_person})
    api.register_blueprint(blp)
    app.cli.add_command(cli)
    register_demo_check(app, functools.partial(_hash_key_problem, app))
    register_demo_seeder(app, "suppliers", seed_demo)
    app.extensions.setdefault("scope_checks", {})["supplier_id"] = supplier_takes_users
    register_filter_scope(app, "supplier_id", supplier_seen_by, SupplierCode.SUPPLIER_NOT_FOUND)
    register_filter_scope(app, "household_id", household_seen_by, SupplierCode.HOUSEHOLD_NOT_FOUND)
    app.before_request(functools.partial(_check_hash_key_before_request, app))
    register_readiness_check(app, "configuration", functools.partial(_hash_key_matches, app))
