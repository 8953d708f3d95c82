"""Command line: reference data, the demo world, the first admin, a worker check."""
from __future__ import annotations

import secrets
import sys
from collections.abc import Callable

import click
from flask import Flask, current_app
from sqlalchemy import select

from shop.auth.models import ROLES, User
from shop.auth.service import create_user
from shop.db import db
from shop.errors import AppError
from shop.regions.service import load_reference_data

DEMO_USERS = (("admin", "admin"), ("auditor", "auditor"), ("13800000000", "consumer"))


def register_demo_seeder(app: Flask, name: str, seeder: Callable[[], list[str]]) -> None:
    """Let a domain add its part of the demo world; the seeder returns lines to print."""
    app.extensions.setdefault("demo_seeders", []).append((name, seeder))


def seed_demo_users() -> list[str]:
    """Create the demo admin, auditor and consumer if missing; their new passwords, once."""
    lines = []
    for username, role in DEMO_USERS:
        if db.session.scalar(select(User.id).where(User.username == username)) is not None:
            lines.append(f"user {username} ({role}) exists; password unchanged")
            continue
        password = secrets.token_urlsafe(9)
        create_user(username=username, password=password, role=role)
        lines.append(f"user {username} ({role}) password: {password}")
    return lines


@click.command("load-reference")
def load_reference_command():
    """Load the shipped regions and pairings (idempotent)."""
    regions, pairings = load_reference_data()
    db.session.commit()
    click.echo(f"reference data: {regions} regions and {pairings} pairings added")


@click.command("seed-demo")
def seed_demo_command():
    """Load reference data and every domain's demo world (idempotent)."""
    regions, pairings = load_reference_data()
    click.echo(f"reference data: {regions} regions and {pairings} pairings added")
    for line in seed_demo_users():
        click.echo(line)
    for name, seeder in current_app.extensions.get("demo_seeders", []):
        for line in seeder():
            click.echo(f"{name}: {line}")
    db.session.commit()


@click.command("create-user")
@click.option("--username", default="admin", show_default=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--store-id", type=int)
@click.option("--supplier-id", type=int)
def create_user_command(username, role, store_id, supplier_id):
    """Create a user; the password is prompted for, or read from standard input."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise click.ClickException("The password needs at least 8 characters.")
    try:
        user = create_user(username=username, password=password, role=role,
                           store_id=store_id, supplier_id=supplier_id)
    except AppError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.message} {exc.details or ''}".strip()) from exc
    db.session.commit()
    click.echo(f"created user {user.username} (id {user.id}, role {user.role})")


@click.command("check-worker")
@click.option("--timeout", default=30, show_default=True)
def check_worker_command(timeout):
    """Send a health-check task to the Celery workers and wait for the answer."""
    from shop.tasks import check_health

    result = check_health.delay().get(timeout=timeout)
    click.echo(f"worker answered: {result}")


def init_app(app: Flask) -> None:
    """Register the shell's CLI commands."""
    for command in (load_reference_command, seed_demo_command, create_user_command, check_worker_command):
        app.cli.add_command(command)
