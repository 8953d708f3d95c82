"""One scope idiom for the lists' filters: a query parameter naming an object by id (`?household_id=`) that the caller
may not see answers as one naming no object, 404 `<object>_not_found` (API.md: an object outside the caller's scope
cannot be told from a missing one), never an empty page. Each domain registers, per parameter, the check its own
routes apply to a path naming such an object (`register_filter_scope`); the API's query parser applies them to every
list's arguments (`filters_in_scope`) and the OpenAPI document names their 404s
(`shop.blueprint.document_filter_scopes`), so no list has to remember either. A free-text filter (`?code=`, `?q=`)
names no object and stays a filter."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, current_app, g

from shop.auth.models import User

FilterScope = Callable[[User | None, int], object]  # raises `NotFound` for an id the user (None: anonymous) may not see


def register_filter_scope(app: Flask, parameter: str, check: FilterScope, code: str) -> None:
    """Let a domain decide which ids of `parameter` a user may filter a list by: `check` raises a 404 `code` for the
    others."""
    app.extensions.setdefault("filter_scopes", {})[parameter] = (check, code)


def filters_in_scope(arguments: Mapping[str, Any]) -> None:
    """Refuse (404) a list's arguments naming an object the signed-in user (if any) may not see."""
    checks = current_app.extensions.get("filter_scopes", {})
    for parameter, value in arguments.items():
        if value is not None and parameter in checks:
            checks[parameter][0](g.get("user"), value)


def filter_codes(app: Flask) -> dict[str, str]:
    """Per filter parameter naming an object, the code of its 404."""
    return {parameter: code for parameter, (_, code) in app.extensions.get("filter_scopes", {}).items()}
