"""Users, roles and bearer tokens."""
from __future__ import annotations

from flask import Flask, g


def init_app(app: Flask) -> None:
    """Register the auth routes, what a duplicate username answers and the sign-in backoff's 429 (with
    Retry-After)."""
    from shop.auth.api import blp
    from shop.auth.service import duplicate_username
    from shop.auth.throttle import TooManyAttempts
    from shop.db import db
    from shop.errors import error_response, register_unique_conflicts
    from shop.extensions import api

    api.register_blueprint(blp)
    register_unique_conflicts(app, {"uq_users_username": duplicate_username})

    @app.errorhandler(TooManyAttempts)
    def _too_many_attempts(exc: TooManyAttempts):
        db.session.rollback()
        g.retry_after = exc.retry_after
        return error_response(exc.status, exc.code, exc.message, exc.details)

    def _backoff_retry_after(response):
        """Flask-Limiter rewrites Retry-After on limited routes (rounding down); set the backoff's own."""
        if "retry_after" in g:
            response.headers["Retry-After"] = str(g.pop("retry_after"))
        return response

    app.after_request_funcs.setdefault(None, []).insert(0, _backoff_retry_after)  # runs after all others
