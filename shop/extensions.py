"""Flask extensions, created unbound and initialised by `create_app`."""
from __future__ import annotations

from flask import Flask, request
from flask_caching import Cache
from flask_limiter import Limiter
from flask_migrate import Migrate
from werkzeug.middleware.proxy_fix import ProxyFix

from shop.converters import MAX_CODE_LENGTH, CodeConverter
from shop.db import db
from shop.errors import ApiWithErrors

migrate = Migrate(compare_type=True, render_as_batch=True)
cache = Cache()
api = ApiWithErrors()
api.register_converter(CodeConverter, lambda _: {"type": "string", "minLength": 1, "maxLength": MAX_CODE_LENGTH})


def client_address() -> str:
    """The rate-limit key: the peer address, which `trust_proxies` rewrites only for trusted hops."""
    return request.remote_addr or "-"


def trust_proxies(app: Flask) -> None:
    """Believe X-Forwarded-For/-Proto only for the `TRUSTED_PROXY_HOPS` proxies in front (none by default)."""
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


limiter = Limiter(key_func=client_address)

__all__ = ["api", "cache", "client_address", "db", "limiter", "migrate", "trust_proxies"]
