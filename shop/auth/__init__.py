"""Users, roles and bearer tokens."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the auth routes and what a duplicate username answers."""
    from shop.auth.api import blp
    from shop.auth.service import duplicate_username
    from shop.errors import register_unique_conflicts
    from shop.extensions import api

    api.register_blueprint(blp)
    register_unique_conflicts(app, {"uq_users_username": duplicate_username})

