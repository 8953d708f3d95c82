"""Command line: reference data, the demo world, users and passwords, fresh keys, a worker check; every command
the app has says in one line, exit 1, that the database cannot be reached or has no schema (never a traceback)."""
from __future__ import annotations

import copy
import functools
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import click
from celery.exceptions import TimeoutError as CeleryTimeoutError
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_migrate.cli import db as migrate_commands
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError

from shop.auth.models import ROLES
from shop.auth.schemas import Password, RegisterRequest, UserCreate
from shop.auth.service import create_user, find_user, reset_password
from shop.config import fresh_secrets
from shop.crypto import DecryptionError
from shop.db import TurnTaken, db, one_at_a_time
from shop.errors import AppError
from shop.fields import MAX_ID, normalise_username
from shop.health import database_problem, database_unreachable
from shop.outages import REDIS_UNAVAILABLE
from shop.regions.service import load_reference_data

DEMO_USERS = (("admin", "admin"), ("auditor", "auditor"), ("13800000000", "consumer"))
SEEDING_TURN = "seed-demo"  # the `one_at_a_time` lock of the one running seed-demo
ID = click.IntRange(1, MAX_ID)  # every id a command takes, bounded as the API's
MAX_WORKER_WAIT_SECONDS = 3600  # the longest `check-worker` waits for an answer


class ShopCommands(AppGroup):
    """The app's commands, each run so that a database out of reach or without its schema, or text that is not
    UTF-8, is one line, exit 1 (Flask-Migrate's own, which make the schema, only when the database is out of reach:
    their other failures are shown whole)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command `cmd_name`, guarded."""
        command = super().get_command(ctx, cmd_name)
        if command is None:
            return command
        guarded = copy.copy(command)
        guard = _invoke_migrations if command is migrate_commands else _invoke_guarded
        guarded.invoke = functools.partial(guard, command)
        return guarded


def _invoke_migrations(command: click.Command, ctx: click.Context):
    """Run a migration command; a database out of reach is one line, exit 1."""
    try:
        return command.invoke(ctx)
    except DBAPIError:
        problem = database_unreachable()
        if problem is None:
            raise
        raise click.ClickException(problem) from None


def _invoke_guarded(command: click.Command, ctx: click.Context):
    """Run `command`; a database error whose cause is the database's state (out of reach, no schema, not upgraded)
    becomes that cause in one line, and so do stored data the configured keys cannot decrypt and an argument or
    standard input that is not UTF-8 text."""
    try:
        return command.invoke(ctx)
    except DBAPIError:
        db.session.rollback()
        problem = database_problem()
        if problem is None:
            raise
        raise click.ClickException(problem) from None
    except DecryptionError as exc:  # the configured keys cannot read what is stored: its message names the key id
        db.session.rollback()
        raise click.ClickException(f"the configured keys cannot decrypt the stored data: {exc}") from None
    except UnicodeError as exc:  # bytes that are not UTF-8, read from stdin or kept as surrogates from argv or stdin
        if not isinstance(exc, UnicodeDecodeError) and "surrogates" not in str(exc):
            raise
        raise click.ClickException("an argument or standard input is not UTF-8 text") from None


def register_demo_seeder(app: Flask, name: str, seeder: Callable[[], list[str]]) -> None:
    """Let a domain add its part of the demo world; the seeder returns lines to print."""
    app.extensions.setdefault("demo_seeders", []).append((name, seeder))


def register_demo_check(app: Flask, check: Callable[[], str | None]) -> None:
    """Let a domain stop the demo seeding before it writes anything: `check` returns why, in one line, or None."""
    app.extensions.setdefault("demo_checks", []).append(check)


def seed_demo_users() -> list[str]:
    """Create the demo admin, auditor and consumer if missing; their new passwords, once."""
    lines = []
    for username, role in DEMO_USERS:
        if find_user(username=username) is not None:
            lines.append(f"user {username} ({role}) exists; password unchanged")
            continue
        password = secrets.token_urlsafe(9)
        create_user(username=username, password=password, role=role)
        lines.append(f"user {username} ({role}) password: {password}")
    return lines


def _load_reference() -> None:
    """Load the shipped reference data and print what changed; an overlapping shipped pairing is one line on
    stderr (exit 1), nothing written."""
    try:
        report = load_reference_data()
    except AppError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from exc
    click.echo(f"reference data: {report.summary()}")
    for change in report.changes:
        click.echo(f"  {change}")
    for skipped in report.skipped:
        click.echo(f"  {skipped}")


@click.command("load-reference")
def load_reference_command():
    """Load the shipped regions and pairings, applying their names and end dates to existing rows (idempotent)."""
    _load_reference()
    db.session.commit()


@click.command("seed-demo")
def seed_demo_command():
    """Load reference data and every domain's demo world (idempotent), once every domain's check passes; never under
    SHOP_ENV=production (synthetic households, products and users with printed passwords)."""
    if current_app.config["SHOP_ENV"] == "production":
        raise click.ClickException("seed-demo writes a demo world with printed passwords: never under "
                                   "SHOP_ENV=production")
    try:
        with one_at_a_time(SEEDING_TURN, wait=False):
            _seed_demo()
    except TurnTaken:
        click.echo("waiting for the seed-demo running now to finish")
        with one_at_a_time(SEEDING_TURN):
            _seed_demo()


def _seed_demo() -> None:
    """Seed the demo world (one seeding at a time: a second one would insert what the first is inserting)."""
    for check in current_app.extensions.get("demo_checks", []):
        problem = check()
        if problem is not None:
            raise click.ClickException(problem)
    _load_reference()
    for line in seed_demo_users():
        click.echo(line)
    for name, seeder in current_app.extensions.get("demo_seeders", []):
        for line in seeder():
            click.echo(f"{name}: {line}")
    db.session.commit()


@click.command("create-user")
@click.option("--username", default="admin", show_default=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--store-id", type=ID)
@click.option("--supplier-id", type=ID)
def create_user_command(username, role, store_id, supplier_id):
    """Create a user, checked as the API checks an admin's (a consumer's username also as at sign-up: a mainland
    mobile number); the password is prompted for, or read from standard input."""
    password = _read_password()
    try:
        if role == "consumer":
            username = RegisterRequest().load({"phone": username, "password": password})["phone"]
        user = create_user(**UserCreate().load({"username": username, "password": password, "role": role,
                                                "store_id": store_id, "supplier_id": supplier_id}))
    except ValidationError as exc:
        raise click.ClickException(" ".join(f"{field}: {' '.join(messages)}"
                                            for field, messages in exc.messages.items())) from None
    except AppError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.message} {exc.details or ''}".strip()) from exc
    db.session.commit()
    click.echo(f"created user {user.username} (id {user.id}, role {user.role})")


@click.command("reset-password")
@click.option("--username", required=True)
def reset_password_command(username):
    """Set a user's password (prompted for, or read from standard input); its old tokens stop working."""
    password = _read_password()
    try:
        user = reset_password(username=_username(username), password=password)
    except AppError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from exc
    db.session.commit()
    click.echo(f"password of user {user.username} (id {user.id}) reset; its old tokens are revoked")


@click.command("generate-keys")
def generate_keys_command():
    """Print fresh SECRET_KEY, FIELD_ENCRYPTION_KEY and FIELD_HASH_KEY lines for an env file, and a
    STRIPE_WEBHOOK_SECRET for a sandbox deployment (with Stripe, use the secret its dashboard shows)."""
    kid = f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"  # dated, and another key made the same day differs
    for name, value in fresh_secrets(kid).items():
        click.echo(f"{name}={value}")


def _read_password() -> str:
    """A new password from a prompt (typed twice) or the first line of standard input, checked as the API checks one
    (`Password`: 8 to 128 characters, no control characters, not only whitespace)."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        return Password().deserialize(password)
    except ValidationError as exc:
        raise click.ClickException(f"password: {' '.join(exc.messages)}") from None


def _username(value: str) -> str:
    """A username given on the command line in its one spelling, bounded like the API's."""
    username = normalise_username(value)
    if not 1 <= len(username) <= 64 or any(not char.isprintable() for char in username):
        raise click.ClickException("A username has 1 to 64 printable characters.")
    return username


@click.command("check-worker")
@click.option("--timeout", default=30, show_default=True, type=click.IntRange(1, MAX_WORKER_WAIT_SECONDS),
              help="Seconds to wait for a worker's answer.")
def check_worker_command(timeout):
    """Send a health-check task through Redis to the Celery workers and wait for the answer; a failure (no broker
    configured among them) is one line, exit 1."""
    from shop.tasks import check_health

    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("no broker to reach a worker through: REDIS_URL is not set, so tasks run in the "
                                   "process that queues them")
    try:
        with current_app.extensions["celery"].connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
        result = check_health.delay()
        answer = result.get(timeout=timeout, propagate=False)
    except REDIS_UNAVAILABLE as exc:
        raise click.ClickException(f"cannot reach Redis ({exc.__class__.__name__})") from None
    except CeleryTimeoutError:
        raise click.ClickException(f"no worker answered within {timeout} s") from None
    if result.failed():
        raise click.ClickException(f"the worker failed the check: {answer.__class__.__name__}")
    click.echo(f"worker answered: {answer}")


def init_app(app: Flask) -> None:
    """Guard the app's commands (`ShopCommands`) and register the shell's own."""
    commands = ShopCommands(app.cli.name)
    commands.commands.update(app.cli.commands)
    app.cli = commands
    for command in (load_reference_command, seed_demo_command, create_user_command, reset_password_command,
                    generate_keys_command, check_worker_command):
        app.cli.add_command(command)
