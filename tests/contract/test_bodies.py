"""The body guard answers what the route would answer first: no route (404), no such method (405), no credentials
(401), a role the route refuses (403); and a PATCH that changes nothing is a 422 on every route that takes one."""
from __future__ import annotations

import re
import time

import pytest
from itsdangerous import TimestampSigner

from tests.shop.test_errors import assert_error, send

WRITES = ("post", "put", "patch")
NOTHING_TO_CHANGE = "Nothing to change: give at least one field."


def _document(client) -> dict:
    """The served OpenAPI document."""
    return client.get("/api/v1/openapi.json").json


def _url(path: str, ids: dict) -> str:
    """`path` with its parameters filled from the world's "own" objects."""
    return re.sub(r"{(\w+)}", lambda name: str(ids[name[1]]["own"]), path)


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("POST", "/api/v1/no/such/route", 404, "not_found"),
    ("PUT", "/api/v1/orders", 405, "method_not_allowed"),
    ("PATCH", "/api/v1/orders/1", 405, "method_not_allowed"),
])
@pytest.mark.parametrize("body", [("hello", "text/plain"), ("{not json", "application/json")], ids=["text", "bad json"])
def test_no_route_or_method_wins_over_the_body(client, login, method, path, status, code, body):
    for headers in ({}, login("admin")):
        response = client.open(path, method=method, data=body[0], content_type=body[1], headers=headers)
        assert_error(response, status, code)


def test_a_method_no_route_takes_is_a_405_whatever_the_body(client):
    for path, operations in _document(client)["paths"].items():
        url = re.sub(r"{\w+}", "1", path)
        for method in set(WRITES) - set(operations):
            response = client.open(url, method=method, data="hello", content_type="text/plain")
            assert response.status_code == 405, (method, path, response.json)


def test_a_write_that_needs_credentials_is_a_401_without_them_whatever_the_body(client):
    document = _document(client)
    checked = 0
    for path, operations in document["paths"].items():
        for method in set(WRITES) & set(operations):
            if operations[method].get("security", document["security"]) == []:
                continue
            url = re.sub(r"{\w+}", "1", path)
            for data, content_type in (("hello", "text/plain"), ("{not json", "application/json")):
                for credentials in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic YTpi"}):
                    response = client.open(url, method=method, data=data, content_type=content_type,
                                           headers=credentials)
                    assert response.status_code == 401, (method, path, content_type, credentials, response.json)
            checked += 1
    assert checked > 30


def test_an_expired_token_is_a_401_whatever_the_body(app, client, login, monkeypatch):
    headers = login("consumer")
    app.config["TOKEN_TTL_SECONDS"] = 1
    later = int(time.time()) + 5  # the signer's clock five seconds on: the token is past its lifetime
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)

    response = client.post("/api/v1/users", data="hello", content_type="text/plain", headers=headers)

    assert response.status_code == 401 and response.json["error"]["code"] in ("token_expired", "invalid_token")


def test_with_credentials_of_a_role_the_route_takes_the_body_is_still_judged_first(client, login):
    headers = login("admin")
    response = client.post("/api/v1/users", data="hello", content_type="text/plain", headers=headers)
    assert_error(response, 415, "unsupported_media_type")
    assert_error(send(client, "/api/v1/users", "{not json"), 401, "missing_token")


def test_a_patch_that_changes_nothing_is_a_422_on_every_route(world):
    client = world.app.test_client()
    patches = [path for path, operations in _document(client)["paths"].items() if "patch" in operations]
    assert len(patches) >= 7
    for path in patches:
        url = _url(path, world.ids)
        for body in ({"data": ""}, {"json": {}}, {"data": "null", "content_type": "application/json"},
                     {"json": {"reason": "核对"}}):  # why, but not what
            response = client.patch(url, headers=world.of("admin"), **body)
            error = assert_error(response, 422, "validation_error")
            assert error["message"] == NOTHING_TO_CHANGE and error["details"] == {"_schema": [NOTHING_TO_CHANGE]}


def _patch_routes_and_refused_roles(app) -> list[tuple[str, list[str]]]:
    """Every PATCH route (its path with flask's parameters) and the roles of the world its view refuses."""
    from tests.contract.conftest import ROLES

    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view = getattr(getattr(view, "view_class", None), "patch", view)
        if "PATCH" in rule.methods and rule.rule.startswith("/api/"):
            allowed = view.required_roles
            routes.append((rule.rule, [role for role in ROLES if role not in allowed and role != "anonymous"]))
    return routes


def test_a_role_the_route_refuses_gets_its_403_whatever_the_body(world):
    client = world.app.test_client()
    routes = _patch_routes_and_refused_roles(world.app)
    assert len(routes) >= 7 and sum(len(roles) for _, roles in routes) >= 20
    for rule, roles in routes:
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda name: str(world.ids[name[1]]["own"]), rule)
        for role in roles:
            for body in ({"data": ""}, {"json": {}}, {"json": {"reason": "核对"}},
                         {"data": "{not json", "content_type": "application/json"},
                         {"data": "hello", "content_type": "text/plain"}):
                response = client.patch(url, headers=world.of(role), **body)
                assert_error(response, 403, "forbidden")


def test_a_patch_that_changes_something_still_does(world):
    client = world.app.test_client()
    url = f"/api/v1/stores/{world.ids['store_id']['own']}"
    response = client.patch(url, json={"name": "新名字门店"}, headers=world.of("admin"))
    assert response.status_code == 200, response.json
    assert client.get(url, headers=world.of("admin")).json["name"] == "新名字门店"


MANY = 10_000  # far past every list's bound, and the body below MAX_JSON_LENGTH


def _lines_body(line: dict) -> dict:
    """A stock transfer of `MANY` copies of `line` (between locations that do not exist: never read)."""
    return {"from_location": "NOWHERE-1", "to_location": "NOWHERE-2", "lines": [line] * MANY}


@pytest.mark.parametrize("line", [{"sku": None, "quantity": "x", "zz": 1}, {"sku": "ZJ-KQM-1KG", "quantity": 1}],
                         ids=["invalid items", "valid items"])
def test_a_list_past_its_bound_is_refused_by_its_length_before_any_item_is_read(world, line):
    client = world.app.test_client()

    response = client.post("/api/v1/stock-transfers", json=_lines_body(line), headers=world.of("admin"))

    error = assert_error(response, 422, "validation_error")
    assert error["details"] == {"lines": ["Length must be between 1 and 100."]}  # no error of any item
    assert len(response.data) < 2_000


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/orders", {"channel": "pickup", "store_id": 1, "lines": [{"sku": None}] * MANY}),
    ("/api/v1/lots", {"product_sku": "X", "lot_code": "L", "harvested_on": "2026-01-01", "village": "村",
                      "location_code": "X", "contributions": [{"household_code": None}] * MANY}),
    ("/api/v1/products", {"images": ["not a link"] * MANY}),
], ids=["order lines", "lot contributions", "product images"])
def test_every_bounded_list_is_refused_by_its_length_alone(world, path, body):
    client = world.app.test_client()
    role = "consumer" if path == "/api/v1/orders" else "admin"

    response = client.post(path, json=body, headers=world.of(role))

    field = next(name for name, value in body.items() if isinstance(value, list))
    messages = assert_error(response, 422, "validation_error")["details"][field]
    assert isinstance(messages, list) and len(messages) == 1 and "length" in messages[0].lower(), messages


def test_a_validation_error_names_at_most_a_few_fields_each_cut_short(world):
    client = world.app.test_client()
    url = f"/api/v1/stores/{world.ids['store_id']['own']}"

    many = client.patch(url, json={f"unknown_field_{number}": 1 for number in range(MANY)}, headers=world.of("admin"))
    long_key = client.patch(url, json={"k" * 100_000: 1}, headers=world.of("admin"))
    no_body_taken = client.post(f"/api/v1/orders/{world.ids['order_id']['own']}/cancel",
                                json={f"unknown_field_{number}": 1 for number in range(MANY)},
                                headers=world.of("admin"))

    for response in (many, long_key, no_body_taken):
        details = assert_error(response, 422, "validation_error")["details"]
        assert len(response.data) < 4_000 and all(len(key) <= 80 for key in details), response.data[:300]
    for response in (many, no_body_taken):
        details = response.json["error"]["details"]
        named = {key: value for key, value in details.items() if key.startswith("unknown_field_")}
        assert 0 < len(named) < 100 and all(value == ["Unknown field."] for value in named.values())
        assert [key for key in details if key not in named] == ["_more"], details.keys()
        assert details["_more"] == [f"{MANY - len(named):,} more not shown."]
    assert [key[:10] for key in long_key.json["error"]["details"]] == ["k" * 10]
