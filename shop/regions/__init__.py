"""Reference data: regions and donor↔recipient pairings."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the reference-data routes and what a duplicate region or pairing answers."""
    from shop.errors import register_unique_conflicts
    from shop.extensions import api
    from shop.regions.api import blp
    from shop.regions.service import duplicate_pairing_start, duplicate_region

    api.register_blueprint(blp)
    register_unique_conflicts(app, {"pk_regions": duplicate_region, "uq_pairings_period": duplicate_pairing_start})
