"""The query string is read as strictly as a body on every operation: a parameter the operation does not declare is a
422 naming it (writes too: `?dry_run=true` must not create what it names), one it declares single-valued given twice
is a 422, and what ad links and browsers add to any URL (`utm_*`, the cache-buster `_`) is ignored everywhere."""
from __future__ import annotations

import re

from catalog.models import Location
from orders.models import Store
from shop.db import db
from tests.shop.test_errors import assert_error

UNKNOWN = {"zz_unknown": ["Unknown field."]}


def _operations(client) -> list[tuple[str, str]]:
    """Every (method, path) of the served OpenAPI document."""
    paths = client.get("/api/v1/openapi.json").json["paths"]
    return [(method, path) for path, operations in paths.items() for method in operations
            if method in ("get", "post", "put", "patch", "delete")]


def _caller(world, url: str, method: str) -> dict:
    """The headers of a role the operation takes: an admin where it may, else its first role, else nobody."""
    endpoint, _ = world.app.url_map.bind("localhost").match(url, method=method.upper())
    view = world.app.view_functions[endpoint]
    view = getattr(getattr(view, "view_class", None), method, view)
    roles = getattr(view, "required_roles", ())
    return world.of("admin" if "admin" in roles else roles[0]) if roles else {}


def _url(path: str, ids: dict) -> str:
    """`path` with its parameters filled from the world's "own" objects (a `code` is a region's)."""
    return re.sub(r"{(\w+)}", lambda name: str(ids.get(name[1], ids["region_code"])["own"]), path)


def test_an_unknown_query_parameter_is_a_422_naming_it_on_every_operation(world):
    client = world.app.test_client()
    operations = _operations(client)
    assert len(operations) > 100
    for method, path in operations:
        url = _url(path, world.ids)
        response = client.open(f"{url}?zz_unknown=1", method=method, headers=_caller(world, url, method))
        assert response.status_code == 422, (method, path, response.json)
        assert response.json["error"]["details"].get("zz_unknown") == UNKNOWN["zz_unknown"], (method, path)


def test_an_unknown_query_parameter_on_a_write_writes_nothing(world):
    client = world.app.test_client()
    admin = world.of("admin")
    incoming = f"/api/v1/stores/{world.ids['store_id']['own']}/incoming-transfers"
    before = client.get(incoming, headers=admin).json
    store = db.session.get(Store, world.ids["store_id"]["own"])
    body = {"from_location": db.session.get(Location, world.ids["location_id"]["own"]).code,
            "to_location": db.session.get(Location, store.location_id).code,
            "lines": [{"sku": world.ids["sku"]["own"], "quantity": 1}]}

    response = client.post("/api/v1/stock-transfers?dry_run=true&limit=5", json=body, headers=admin)

    error = assert_error(response, 422, "validation_error")
    assert error["details"] == {"dry_run": ["Unknown field."], "limit": ["Unknown field."]}
    assert client.get(incoming, headers=admin).json == before
    assert client.post("/api/v1/stock-transfers", json=body, headers=admin).status_code == 201  # the body is valid
    assert len(client.get(incoming, headers=admin).json["items"]) == len(before["items"]) + 1


def test_a_parameter_given_twice_is_refused_and_what_any_url_carries_is_ignored(world):
    client = world.app.test_client()
    consumer = world.of("consumer")
    assert_error(client.get("/api/v1/users/me?limit=1&limit=2", headers=consumer), 422, "validation_error")
    twice = client.get("/api/v1/orders?limit=1&limit=2", headers=consumer)
    assert twice.json["error"]["details"] == {"limit": ["Given more than once; it takes one value."]}
    for url in ("/api/v1/users/me", f"/api/v1/orders/{world.ids['order_id']['own']}", "/api/v1/orders"):
        plain = client.get(url, headers=consumer)
        carried = client.get(f"{url}?_=1712345678&utm_source=wechat&utm_campaign=spring", headers=consumer)
        assert (carried.status_code, carried.json) == (200, plain.json)
    assert client.get("/api/v1/orders?zzz_unknown=", headers=consumer).status_code == 200  # left empty: not given
