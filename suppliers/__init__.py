"""The suppliers domain (see DESIGN.md)."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

cli = AppGroup("suppliers", help="Suppliers and households.")


@cli.command("reencrypt")
def reencrypt_command():
    """Re-encrypt personal data still under an older FIELD_ENCRYPTION_KEY entry."""
    from shop.db import db
    from suppliers.service import reencrypt_fields

    changed = reencrypt_fields()
    db.session.commit()
    click.echo(f"re-encrypted {changed} rows with the current key")


def init_app(app: Flask) -> None:
    """Register the domain's blueprints, CLI commands, demo seeder and tasks."""
    from shop.cli import register_demo_seeder
    from shop.extensions import api
    from suppliers.api import blp
    from suppliers.demo import seed_demo
    from suppliers.service import supplier_exists

    api.register_blueprint(blp)
    app.cli.add_command(cli)
    register_demo_seeder(app, "suppliers", seed_demo)
    app.extensions.setdefault("scope_checks", {})["supplier_id"] = supplier_exists
