"""HTTP answers every API route gives alike, whatever its view: OPTIONS, and the `Location` of what a write created.

A view that creates something readable declares where it is read: `@blp.response(201, OrderOut,
location=ReadAt("checkout.get_order", order_id="id"))`. The answer's `Location` is then that GET route's URL with its
arguments taken from the answer's own fields; it is added after the view, so a replay of the answer under its
Idempotency-Key carries the same one.
"""
from __future__ import annotations

from flask import Flask, Response, current_app, request, url_for

from shop.bodies import matched_view
from shop.errors import is_api_path

LOCATION_HEADER = {"description": "The URL (a path) at which the created resource is read with GET.",
                   "schema": {"type": "string", "format": "uri-reference"}}


RETRY_AFTER_HEADER = {"description": "The seconds to wait before asking again.",
                      "schema": {"type": "integer", "minimum": 0}}
WWW_AUTHENTICATE_HEADER = {"description": 'The bearer challenge: `Bearer realm="shop"`, with `error="invalid_token"` '
                                          "when the token sent was bad, expired or revoked (sign in again).",
                           "schema": {"type": "string"}}


def error_headers(status: int) -> dict | None:
    """The headers an error answer of `status` documents: a 429's `Retry-After`, a 401's `WWW-Authenticate`."""
    return {429: {"Retry-After": RETRY_AFTER_HEADER}, 401: {"WWW-Authenticate": WWW_AUTHENTICATE_HEADER}}.get(status)


class ReadAt:
    """Where a created resource is read: the GET route `endpoint`, each URL argument filled from the answer's field
    it names (`order_id="id"`), or from the field of its own name (`"sku"`)."""

    def __init__(self, endpoint: str, *same_names: str, **arguments: str) -> None:
        self.endpoint, self.arguments = endpoint, {**{name: name for name in same_names}, **arguments}

    def url(self, answer: dict) -> str:
        """The path of the resource `answer` describes."""
        return url_for(self.endpoint, **{name: answer[field] for name, field in self.arguments.items()})


def declare_location(view, status_code: int, location: ReadAt):
    """Mark `view`'s answers of `status_code` as created resources read at `location` (the mark is copied to the
    decorators wrapped around it, as `required_roles` is)."""
    view.locations = {**getattr(view, "locations", {}), int(status_code): location}
    return view


def add_location(response: Response) -> Response:
    """Add `Location` to an answer whose view declared where what it created is read."""
    location = getattr(matched_view(current_app), "locations", {}).get(response.status_code)
    if location is not None and response.is_json:
        response.headers["Location"] = location.url(response.get_json())
    return response


def answer_options() -> Response | None:
    """An `OPTIONS` request to an API route: 204 with the route's methods in `Allow` and no body (Flask's own
    answer is a 200 with an empty HTML page); None otherwise (an unknown path stays the JSON 404)."""
    rule = request.url_rule
    if (request.method != "OPTIONS" or not is_api_path(request.path) or rule is None
            or not getattr(rule, "provide_automatic_options", False)):
        return None
    response = current_app.response_class(status=204)
    response.allow.update(current_app.create_url_adapter(request).allowed_methods())
    del response.headers["Content-Type"]
    return response


def init_app(app: Flask) -> None:
    """Answer `OPTIONS` on API routes before any view; locate what a write created after it."""
    app.before_request(answer_options)
    app.after_request(add_location)
