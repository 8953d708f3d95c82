"""The one JSON error shape of the API, the domain error base class and their handlers."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, request
from flask_smorest import Api
from marshmallow import Schema, fields
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from shop.db import db

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class AppError(Exception):
    """A domain error: a snake_case code, an HTTP status and a human message."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}


class NotFound(AppError):
    """The object does not exist or lies outside the caller's scope."""

    status, code = 404, "not_found"


class Conflict(AppError):
    """The request conflicts with the current state (stock, state, idempotency reuse)."""

    status, code = 409, "conflict"


class Unauthorized(AppError):
    """No valid credentials were presented."""

    status, code = 401, "unauthorized"


class Forbidden(AppError):
    """The caller's role may not do this."""

    status, code = 403, "forbidden"


class ValidationError(AppError):
    """A business-rule validation failure; `details` maps field → messages."""

    status, code = 422, "validation_error"


def error_response(status: int, code: str, message: str, details: dict | None = None):
    """Render the API error shape with its status."""
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    response = jsonify(body)
    response.status_code = status
    return response


def _flatten_webargs(messages: dict) -> dict:
    """Map webargs' {location: {field: [msgs]}} to {field: [msgs]}."""
    flat: dict = {}
    for value in messages.values():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat.setdefault("_schema", []).extend(value if isinstance(value, list) else [value])
    return flat


def _http_error(exc: HTTPException):
    """Render a werkzeug/webargs HTTP exception in the API shape."""
    status = exc.code or 500
    code = HTTP_CODES.get(status, "http_error")
    data = getattr(exc, "data", None) or {}
    details: dict = {}
    message = exc.description or exc.name
    if status == 422 and "messages" in data:
        details = _flatten_webargs(data["messages"])
        message = "The request did not pass validation."
    elif status == 400 and "messages" in data:
        details = _flatten_webargs(data["messages"])
        message = "The request is malformed."
    elif status == 413:
        limit = getattr(request, "max_content_length", None)
        if limit:
            message = f"The request body is larger than the limit of {limit} bytes."
            details = {"limit_bytes": limit}
    elif status == 429:
        message = f"Too many requests: limit {exc.description}. Try again later."
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.path}."
    elif status == 404:
        message = f"No resource at {request.path}."
    response = error_response(status, code, message, details)
    for header in ("Allow", "Retry-After"):
        if exc.get_response().headers.get(header):
            response.headers[header] = exc.get_response().headers[header]
    return response


class ErrorBody(Schema):
    """What went wrong: a snake_case code, a human message and details (field → messages for 422)."""

    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorOut(Schema):
    """The one error shape of the API."""

    error = fields.Nested(ErrorBody, required=True)


class ApiWithErrors(Api):
    """flask-smorest's Api, rendering every HTTP error in the API shape (and documenting that shape)."""

    ERROR_SCHEMA = ErrorOut

    def handle_http_exception(self, error: HTTPException):
        """Render an HTTP error raised inside an API view (and drop anything the request wrote)."""
        db.session.rollback()
        return _http_error(error)


def _wants_json() -> bool:
    """Whether the current request is an API request (errors as JSON, never HTML)."""
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    """Install handlers so every error under /api/ has the API shape and leaves nothing written."""

    @app.errorhandler(AppError)
    def _app_error(exc: AppError):
        db.session.rollback()
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        db.session.rollback()
        if not _wants_json():
            return exc
        return _http_error(exc)

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError):
        db.session.rollback()
        log.info("integrity conflict request_id=%s: %s", g.get("request_id"), exc.orig.__class__.__name__)
        return error_response(409, "conflict", "The request conflicts with existing data.")

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def _out_of_range(exc: Exception):
        db.session.rollback()
        log.info("value out of range request_id=%s: %s", g.get("request_id"),
                 getattr(exc, "orig", exc).__class__.__name__)
        return error_response(422, "value_out_of_range",
                              "A value is outside the range the service can store.")

    @app.errorhandler(OperationalError)
    def _unavailable(exc: OperationalError):
        db.session.rollback()
        log.exception("database unavailable request_id=%s", g.get("request_id"))
        return error_response(503, "service_unavailable", "The database is unavailable; try again.",
                              {"request_id": g.get("request_id")})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        db.session.rollback()
        log.exception("unhandled error request_id=%s path=%s", g.get("request_id"), request.path)
        return error_response(500, "internal_error",
                              "An unexpected error occurred; it has been logged.",
                              {"request_id": g.get("request_id")})
