"""Every route of the app's URL map, API and pages alike, either names the roles that may use it or is one of the
public ones listed here: a new route without a role check fails here until its row is decided."""
from __future__ import annotations

import re

from shop.auth.models import ROLES

# (method, rule): who may use it without signing in, and why
PUBLIC = {
    ("POST", "/api/v1/auth/token"), ("POST", "/api/v1/auth/register"),  # signing in and up
    ("POST", "/api/v1/payments/stripe/webhook"),  # Stripe's signature is its credential
    ("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs"), ("GET", "/api/v1/docs/assets/swagger-init.js"),
    ("GET", "/api/v1/docs/assets/<filename>"), ("GET", "/api/v1/inventory-uploads/template.xlsx"),
    ("GET", "/api/v1/regions"), ("GET", "/api/v1/regions/<code>"), ("GET", "/api/v1/pairings"),
    ("GET", "/api/v1/pairings/<pairing_id>"), ("GET", "/api/v1/products"), ("GET", "/api/v1/products/<sku>"),
    ("GET", "/api/v1/trace/<trace_code>"), ("GET", "/api/v1/disclosure/counties/<code>"),  # public reads (公示)
    ("GET", "/t/<code>"), ("GET", "/t/<code>/qr.svg"), ("GET", "/disclosure"), ("GET", "/disclosure/<code>"),
    ("GET", "/"), ("GET", "/p/<sku>"), ("GET", "/cart"), ("POST", "/cart"), ("POST", "/cart/<sku>"),  # browsing
    ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/register"), ("POST", "/register"),
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/favicon.ico"),
    ("GET", "/static/<filename>"), ("GET", "/static/web/<filename>"), ("GET", "/static/storefront/<filename>"),
    ("GET", "/coop/static/<filename>"), ("GET", "/till/static/<filename>"),
}
_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _roles(view, method: str, mark: str) -> tuple[str, ...] | None:
    """The roles a view's `method` admits by `mark` (`required_roles` of the API, `signed_in_roles` of the pages: an
    empty tuple, any signed-in user), or None when it checks none."""
    handler = getattr(getattr(view, "view_class", None), method.lower(), view)
    while handler is not None and not hasattr(handler, mark):
        handler = getattr(handler, "__wrapped__", None)
    return getattr(handler, mark, None)


def _routes(app) -> dict[tuple[str, str], tuple[str, ...] | None]:
    """(method, rule without converters) of every route: the roles it admits, None when it checks none."""
    found = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            roles = _roles(view, method, "required_roles")
            found[(method, _PARAM.sub(r"<\1>", rule.rule))] = roles if roles is not None else _roles(
                view, method, "signed_in_roles")
    return found


def test_every_route_checks_a_role_or_is_listed_as_public(app):
    routes = _routes(app)
    unchecked = {route for route, roles in routes.items() if roles is None}
    assert unchecked - PUBLIC == set(), "routes without a role check: add require_role/signed_in, or list them"
    assert PUBLIC - unchecked == set(), "listed as public but checking a role (or gone): update the list"
    unknown = {route: roles for route, roles in routes.items() if roles and set(roles) - set(ROLES)}
    assert not unknown, f"routes admitting a role that does not exist: {unknown}"


def test_without_a_sign_in_every_route_that_checks_a_role_refuses_or_asks_to_sign_in(app, client):
    let_in = []
    for (method, rule), roles in _routes(app).items():
        if roles is None:
            continue
        response = client.open(_PARAM.sub("1", rule), method=method)
        api = rule.startswith("/api/")
        refused = response.status_code == 401 if api else (
            response.status_code in (302, 303) and "/login" in response.headers["Location"]
            or response.status_code == 400)  # a page form without its CSRF token
        if not refused:
            let_in.append(f"{method} {rule}: {response.status_code}")
    assert not let_in, "\n".join(let_in)
