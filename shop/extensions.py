"""Flask extensions, created unbound and initialised by `create_app`."""
from __future__ import annotations

from flask import request
from flask_caching import Cache
from flask_limiter import Limiter
from flask_migrate import Migrate

from shop.db import db
from shop.errors import ApiWithErrors

migrate = Migrate(compare_type=True, render_as_batch=True)
cache = Cache()
api = ApiWithErrors()


def _client_address() -> str:
    """The rate-limit key: the client's address as seen through the proxy chain."""
    return request.access_route[0] if request.access_route else (request.remote_addr or "-")


limiter = Limiter(key_func=_client_address)

__all__ = ["api", "cache", "db", "limiter", "migrate"]
