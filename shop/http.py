"""HTTP answers every API route gives alike, whatever its view: OPTIONS."""
from __future__ import annotations

from flask import Flask, Response, current_app, request


def answer_options() -> Response | None:
    """An `OPTIONS` request to an API route: 204 with the route's methods in `Allow` and no body (Flask's own
    answer is a 200 with an empty HTML page); None otherwise (an unknown path stays the JSON 404)."""
    rule = request.url_rule
    if (request.method != "OPTIONS" or not request.path.startswith("/api/") or rule is None
            or not getattr(rule, "provide_automatic_options", False)):
        return None
    response = current_app.response_class(status=204)
    response.allow.update(current_app.create_url_adapter(request).allowed_methods())
    del response.headers["Content-Type"]
    return response


def init_app(app: Flask) -> None:
    """Answer `OPTIONS` on API routes before any view."""
    app.before_request(answer_options)
