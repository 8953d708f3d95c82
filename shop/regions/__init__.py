"""Reference data: regions and donor↔recipient pairings."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the reference-data routes."""
    from shop.extensions import api
    from shop.regions.api import blp

    api.register_blueprint(blp)
