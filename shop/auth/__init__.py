"""Users, roles and bearer tokens."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the auth routes, what a duplicate username answers and which users a list's filter may name."""
    from shop.auth.api import blp
    from shop.auth.service import duplicate_username, get_user
    from shop.errors import ShopCode, register_unique_conflicts
    from shop.extensions import api
    from shop.scope import register_filter_scope

    api.register_blueprint(blp)
    register_filter_scope(app, "user_id", lambda actor, user_id: get_user(user_id), ShopCode.USER_NOT_FOUND)
    register_unique_conflicts(app, {"uq_users_username": duplicate_username})

