"""Flask extensions, created unbound and initialised by `create_app`."""
from __future__ import annotations

import ipaddress

from flask import Flask, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
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


IPV6_CLIENT_PREFIX = 64  # one subscriber's network: a host picks any address in its /64 at will


def client_address() -> str:
    """The rate-limit key: the peer address, which `trust_proxies` rewrites only for trusted hops; an IPv6 peer is
    keyed by its /64 (its IPv4 address if it is IPv4-mapped), so rotating addresses within it resets no limit."""
    address = request.remote_addr or "-"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network((parsed, IPV6_CLIENT_PREFIX), strict=False))


def trust_proxies(app: Flask) -> None:
    """Believe X-Forwarded-For/-Proto only for the `TRUSTED_PROXY_HOPS` proxies in front (none by default)."""
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


limiter = Limiter(key_func=client_address)


def check_limits_only_where_set(app: Flask) -> None:
    """Run Flask-Limiter's check before each view (application, default, blueprint and meta limits, and a view's
    limits hinted for its endpoint) only for a request one of them could apply to: the shop sets its limits on the
    views that have them (their decorators check them), so on any other route the check found nothing, at some 280
    Python calls a request. Limits are set at startup; a blueprint's are looked up once."""
    hook = limiter._check_request_limit
    hooks = app.before_request_funcs.get(None, [])
    if hook not in hooks:  # the limiter is disabled: it checks nothing
        return
    manager, limited_blueprints = limiter.limit_manager, {}
    configured = bool(app.config.get("RATELIMIT_META") or app.config.get("RATELIMIT_IN_MEMORY_FALLBACK"))

    def check_request_limit() -> None:
        """The limiter's check, where a limit could apply."""
        blueprint = request.blueprint
        if blueprint not in limited_blueprints:
            limited_blueprints[blueprint] = bool(blueprint and manager.blueprint_limits(app, blueprint))
        if (configured or manager.application_limits or manager.default_limits  # the limiter is process-wide
                or limited_blueprints[blueprint] or manager.has_hints(request.endpoint or "")):
            hook()

    hooks[hooks.index(hook)] = check_request_limit


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, its signer built only for a request that carries one: an API request (bearer
    token, no cookie) gets its empty session without the signer's construction, some 90 Python calls a request."""

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        """The request's session: empty when it carries no session cookie (and the app can sign one)."""
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


__all__ = ["SessionCookies", "api", "cache", "check_limits_only_where_set", "client_address", "db", "limiter",
           "migrate", "trust_proxies"]
