"""Users, roles and bearer tokens."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the auth routes."""
    from shop.auth.api import blp
    from shop.extensions import api

    api.register_blueprint(blp)
