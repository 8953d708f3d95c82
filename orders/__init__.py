"""The orders domain (see DESIGN.md)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the domain's blueprints, CLI commands, demo seeder and tasks."""
    from orders import models  # noqa: F401 - registers the tables
