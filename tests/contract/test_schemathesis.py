"""Schemathesis over every operation of our own OpenAPI document, in-process, on SQLite and PostgreSQL.

Each operation gets a freshly seeded world (tests/contract/conftest.py; on SQLite a copy of one seeded
file) and a bounded, derandomized number of examples. Every example is sent as an admin, a co-op, a store
clerk or a consumer (rotated by Hypothesis), and its path parameters are either generated or replaced by a
real object of the world (own / linked / another co-op's, store's or consumer's), so the examples reach
real rows, not only 404s; an order route that needs an order in a given state (cancel, ship, refund,
after-sales) gets one in that state. Assertions: never a 5xx, and every response (error bodies included)
conforms to the documented schema; errors also have the `{"error": {"code", "message", "details"}}` shape
of API.md.

Nothing is excluded: the multipart upload is included, since Schemathesis generates its `file` part.
"""
from __future__ import annotations

import re
import tempfile
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import make_app

MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
CALLERS = ("admin", "coop", "store_staff", "consumer")
OBJECTS = ("generated", "own", "linked", "other")
ALIASES = {"code": "region_code"}  # path parameter → world key, where the names differ
# operations whose object must be in a given state to get past the state checks: path parameter → world key
OPERATION_ALIASES = {
    ("POST", "/api/v1/orders/{order_id}/cancel"): {"order_id": "pending_order_id"},
    ("POST", "/api/v1/orders/{order_id}/ship"): {"order_id": "delivery_order_id"},
    ("POST", "/api/v1/orders/{order_id}/refunds"): {"order_id": "sale_order_id"},
    ("POST", "/api/v1/orders/{order_id}/receipt/prints"): {"order_id": "sale_order_id"},
    ("POST", "/api/v1/orders/{order_id}/after-sales"): {"order_id": "collected_order_id"},
}


def _openapi_document() -> dict:
    """The OpenAPI document the running service serves (it does not depend on the database)."""
    with tempfile.TemporaryDirectory() as folder:
        response = make_app(folder).test_client().get("/api/v1/openapi.json")
        assert response.status_code == 200
        return response.get_json()


DOCUMENT = _openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# API routes that are the documentation itself, not operations of the API
NOT_OPERATIONS = {"/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/assets/{filename}",
                  "/api/v1/docs/assets/swagger-init.js"}


def _error_shape(response) -> None:
    """An error answer is JSON `{"error": {"code": snake_case, "message": str, "details": object}}`."""
    if response.status_code < 400:
        return
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"].replace("_", "").isalnum(), body
    assert isinstance(error.get("message"), str) and isinstance(error.get("details"), dict), body


def _pick(options: tuple[str, ...], *parts) -> str:
    """One of `options`, chosen by a stable hash of `parts` (the same case always gets the same one)."""
    return options[zlib.crc32(repr(parts).encode()) % len(options)]


def _exercise(case, world) -> None:
    """Point the case at a world object, send it as one of the callers in-process, and check the answer."""
    path = sorted((case.path_parameters or {}).items())
    target = _pick(OBJECTS, path)
    caller = _pick(CALLERS, path, sorted((case.query or {}).items()), repr(case.body))
    aliases = {**ALIASES, **OPERATION_ALIASES.get((case.method.upper(), case.path), {})}
    for name in list(case.path_parameters or {}):
        known = world.ids.get(aliases.get(name, name), {})
        if target in known:
            case.path_parameters[name] = known[target]
    headers = {**(case.headers or {}), **world.of(caller)}
    case.headers = None if not headers else headers
    response = case.call(app=world.app)
    case.validate_response(response, checks=CHECKS)
    _error_shape(response)


def test_every_api_route_is_documented_so_it_is_fuzzed(app):
    """Schemathesis fuzzes what the document lists: every /api/ route and method must be in it."""
    routes = {(method.lower(), re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule))
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(method, path) for path, item in DOCUMENT["paths"].items() for method in item
                  if method != "parameters"}
    missing = {(method, path) for method, path in routes - documented if path not in NOT_OPERATIONS}
    assert not missing, f"routes missing from the OpenAPI document (so never fuzzed): {sorted(missing)}"


_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))


@schema.parametrize()
@_SETTINGS
def test_every_operation_on_sqlite(case, world):
    """Embedded SQLite: no 5xx, documented responses, the error shape."""
    _exercise(case, world)


@pytest.mark.postgres
@schema.parametrize()
@_SETTINGS
def test_every_operation_on_postgres(case, pg_world):
    """PostgreSQL: no 5xx, documented responses, the error shape."""
    _exercise(case, pg_world)
