"""How the OpenAPI document spells what apispec would otherwise spell loosely."""
from __future__ import annotations

from marshmallow import fields

_ANY_OBJECT_OR_NULL = {"type": "object", "nullable": True}


def nullable_nested2properties(self, field: fields.Field, ret: dict) -> dict:
    """An apispec attribute function: a nested object that may be null is that object's schema or null
    (`{"nullable": true, "allOf": [{"$ref": …}]}`), not apispec's OpenAPI 3.0 `anyOf` with any object, which lets a
    validator accept any object in its place."""
    alternatives = ret.get("anyOf", [])
    if not isinstance(field, fields.Nested) or _ANY_OBJECT_OR_NULL not in alternatives:
        return {}
    del ret["anyOf"]
    return {"nullable": True, "allOf": [alternative for alternative in alternatives
                                        if alternative != _ANY_OBJECT_OR_NULL]}
