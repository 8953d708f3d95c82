"""The OpenAPI document describes what clients get: every property of every schema has a type (or a reference to
one)."""
from __future__ import annotations

TYPED = {"type", "$ref", "allOf", "oneOf", "anyOf"}


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
