"""One scope idiom for the lists' filters (API.md: an object outside the caller's scope is 404, as a missing one is):
a list's query parameter naming an object by id (`*_id`) answers 404 `<object>_not_found` when it names no object or
one the caller may not see (another co-op's supplier, household or batch, another store), as the object's own route
would, and a page when it names one the caller sees (its own, a household it only linked, or any for a role that
sees every one); never an empty page that cannot be told from "nothing yet". A role that never reads such an object
by its own route (a consumer a supplier, staff a lot) filters by any existing one. A free-text filter (`code`, `q`)
stays a filter. The lists are read from the OpenAPI document, so a new list with an `*_id` filter is walked here
without being listed."""
from __future__ import annotations

import pytest

from shop.fields import MAX_ID
from tests.contract.conftest import ROLES
from tests.contract.test_bola import PUBLIC, TABLE, _documented, expected
from tests.contract.test_query import _url

# per filter: the world's objects it names, and the route reading one of them (whose BOLA row says who sees which)
OBJECTS = {
    "store_id": ("store_id", "/api/v1/stores/<store_id>"),
    "supplier_id": ("supplier_id", "/api/v1/suppliers/<supplier_id>"),
    "household_id": ("household_id", "/api/v1/households/<household_id>"),
    "batch_id": ("batch_id", "/api/v1/payout-batches/<batch_id>"),
    "user_id": ("user_id", "/api/v1/users/<user_id>"),
    "lot_id": ("lot_id", "/api/v1/lots/<lot_id>"),
    "location_id": ("store_location_id", "/api/v1/locations/<location_id>/stock"),
}


def _filtered_lists(client) -> list[tuple[str, str]]:
    """(path, parameter) of every list in the served OpenAPI document with a query parameter naming an object."""
    paths = client.get("/api/v1/openapi.json").json["paths"]
    return sorted((path, parameter["name"]) for path, operations in paths.items() if "get" in operations
                  for parameter in operations["get"].get("parameters", [])
                  if parameter["in"] == "query" and parameter["name"].endswith("_id"))


def _roles(world, path: str) -> tuple[str, ...]:
    """The roles that may read the list at `path` (every one, anonymous too, for a public list)."""
    endpoint, _ = world.app.url_map.bind("localhost").match(path, method="GET")
    view = world.app.view_functions[endpoint]
    return getattr(getattr(getattr(view, "view_class", None), "get", view), "required_roles", None) or ROLES


def _allowed(parameter: str, role: str, kind: str) -> int:
    """The status the contract gives `role` filtering by the world object of `kind`: 200 or 404."""
    route = TABLE[("GET", OBJECTS[parameter][1])]
    statuses = expected(route, role, kind)
    return 404 if statuses == {404} else 200  # 401/403: a role that never reads the object alone filters by any


def test_every_filter_naming_an_object_is_walked(client):
    """A new `*_id` filter must name the world's objects here (and so be walked) before it can be added."""
    assert {parameter for _, parameter in _filtered_lists(client)} <= set(OBJECTS)
    assert PUBLIC not in TABLE[("GET", OBJECTS["supplier_id"][1])].roles


def test_a_filter_naming_an_object_out_of_scope_is_404_as_a_missing_one(world):
    client = world.app.test_client()
    lists = _filtered_lists(client)
    assert len(lists) > 10
    wrong = []
    for path, parameter in lists:
        url, objects = _url(path, world.ids), OBJECTS[parameter][0]
        documented = _documented(world, "GET", path.replace("{", "<").replace("}", ">")).get(404, set())
        for role in _roles(world, url):
            headers = world.of(role) if role != "anonymous" else {}
            tries = [(kind, _allowed(parameter, role, kind), world.ids[objects][kind]) for kind in world.ids[objects]]
            for kind, status, object_id in [*tries, ("missing", 404, MAX_ID)]:
                response = client.get(f"{url}?{parameter}={object_id}", headers=headers)
                code = (response.get_json(silent=True) or {}).get("error", {}).get("code") or ""
                if response.status_code != status:
                    wrong.append(f"{path}?{parameter}= {role} on {kind}: {response.status_code} {code} "
                                 f"(contract: {status})")
                elif status == 404 and not (code.endswith("_not_found") and code in documented):
                    wrong.append(f"{path}?{parameter}= {role} on {kind}: 404 {code} (contract: an "
                                 f"<object>_not_found the document names; it names {sorted(documented)})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", ["/api/v1/suppliers/{supplier_id}/households?code={code}"])
def test_a_free_text_filter_naming_another_coops_household_is_an_empty_page(world, path):
    client = world.app.test_client()
    other = client.get(f"/api/v1/households/{world.ids['household_id']['other']}", headers=world.of("admin")).json
    url = path.format(supplier_id=world.ids["supplier_id"]["own"], code=other["code"])
    response = client.get(url, headers=world.of("coop"))
    assert (response.status_code, response.json) == (200, {"items": [], "next_cursor": None})
