"""The OpenAPI document describes what clients get and may send: every property of every schema has a type (or a
reference to one), and every write that honours an `Idempotency-Key` header lists it as a parameter."""
from __future__ import annotations

import re

from tests.contract.conftest import ROLES

TYPED = {"type", "$ref", "allOf", "oneOf", "anyOf"}
WRITES = {"post", "put", "patch", "delete"}


def _untyped(schema: dict, where: str) -> list[str]:
    """The places in `schema` (properties, items, additional properties, alternatives) that have no type; a free-form
    map (`additionalProperties: {}`, e.g. an error's `details`) may hold anything."""
    found = []
    children = [(f"{where}.{name}", value) for name, value in schema.get("properties", {}).items()]
    children += [(f"{where}[]", schema["items"])] if "items" in schema else []
    if isinstance(schema.get("additionalProperties"), dict) and schema["additionalProperties"]:
        children.append((f"{where}{{}}", schema["additionalProperties"]))
    children += [(f"{where}.{key}[{i}]", value) for key in ("allOf", "oneOf", "anyOf")
                 for i, value in enumerate(schema.get(key, []))]
    for place, child in children:
        if not TYPED & set(child):
            found.append(f"{place}: {child}")
        found += _untyped(child, place)
    return found


def test_every_property_of_every_schema_has_a_type(client):
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    untyped = [place for name, schema in schemas.items() for place in _untyped(schema, name)]
    assert not untyped, "\n".join(untyped)


def _honours_idempotency_keys(client, world, path: str, method: str) -> bool:
    """Whether some role gets the key checked on this write: a 256-character key is refused before the body is read."""
    url = re.sub(r"{(\w+)}", lambda name: str(world.ids.get(name[1], {}).get("own", 1)), path)
    for role in ROLES:
        response = client.open(url, method=method, json={}, headers={**world.of(role), "Idempotency-Key": "k" * 256})
        if response.status_code == 400 and response.json["error"]["code"] == "invalid_idempotency_key":
            return True
    return False


def test_every_write_that_honours_an_idempotency_key_documents_the_header_and_only_those(world):
    client = world.app.test_client()
    paths = client.get("/api/v1/openapi.json").json["paths"]
    documented, honoured = set(), set()
    for path, operations in paths.items():
        for method in WRITES & set(operations):
            parameters = operations[method].get("parameters", [])
            header = [p for p in parameters if p["in"] == "header" and p["name"] == "Idempotency-Key"]
            if header:
                assert header[0]["required"] is False and header[0]["schema"]["type"] == "string"
                documented.add((method, path))
            if _honours_idempotency_keys(client, world, path, method):
                honoured.add((method, path))

    assert ("post", "/api/v1/orders") in honoured and ("post", "/api/v1/stores/{store_id}/counter-sales") in honoured
    assert documented == honoured
