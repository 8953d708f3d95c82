"""The one JSON error shape of the API, the domain error base class and their handlers."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from flask_smorest import Api
from marshmallow import Schema, fields
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from shop.crypto import DecryptionError
from shop.db import db, failed_row, violated_constraint
from shop.outages import REDIS_UNAVAILABLE

log = logging.getLogger(__name__)


class ShopCode(StrEnum):
    """The snake_case codes of the shell: per HTTP status, and of auth, idempotency, regions and pagination."""

    BAD_REQUEST = "bad_request"
    CANNOT_DISABLE_SELF = "cannot_disable_self"
    CONFLICT = "conflict"
    FORBIDDEN = "forbidden"
    HTTP_ERROR = "http_error"
    IDEMPOTENCY_KEY_IN_PROGRESS = "idempotency_key_in_progress"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INTERNAL_ERROR = "internal_error"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    INVALID_TOKEN = "invalid_token"
    LAST_ACTIVE_ADMIN = "last_active_admin"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MISSING_TOKEN = "missing_token"
    NOT_FOUND = "not_found"
    PAIRING_BACKDATED = "pairing_backdated"
    PAIRING_NOT_FOUND = "pairing_not_found"
    PAIRING_OVERLAPS = "pairing_overlaps"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    REGION_EXISTS = "region_exists"
    REGION_NOT_FOUND = "region_not_found"
    SERVICE_UNAVAILABLE = "service_unavailable"
    TOKEN_EXPIRED = "token_expired"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    UNAUTHORIZED = "unauthorized"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    USER_NOT_FOUND = "user_not_found"
    USERNAME_TAKEN = "username_taken"
    VALIDATION_ERROR = "validation_error"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    WRONG_PASSWORD = "wrong_password"


GIVEN_TWICE = "Given more than once; it takes one value."  # a parameter or part that takes one value, given twice

HTTP_CODES = {
    400: ShopCode.BAD_REQUEST,
    401: ShopCode.UNAUTHORIZED,
    403: ShopCode.FORBIDDEN,
    404: ShopCode.NOT_FOUND,
    405: ShopCode.METHOD_NOT_ALLOWED,
    409: ShopCode.CONFLICT,
    413: ShopCode.PAYLOAD_TOO_LARGE,
    415: ShopCode.UNSUPPORTED_MEDIA_TYPE,
    422: ShopCode.VALIDATION_ERROR,
    429: ShopCode.RATE_LIMITED,
    500: ShopCode.INTERNAL_ERROR,
    503: ShopCode.SERVICE_UNAVAILABLE,
}


class AppError(Exception):
    """A domain error: a snake_case code, an HTTP status and a human message; `retry_after` (seconds) when waiting
    helps (sent as Retry-After)."""

    status = 400
    code = ShopCode.BAD_REQUEST
    retry_after: int | None = None

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}
        self.retry_after = retry_after or self.retry_after


class NotFound(AppError):
    """The object does not exist or lies outside the caller's scope."""

    status, code = 404, ShopCode.NOT_FOUND


class Conflict(AppError):
    """The request conflicts with the current state (stock, state, idempotency reuse)."""

    status, code = 409, ShopCode.CONFLICT


class Unauthorized(AppError):
    """No valid credentials were presented."""

    status, code = 401, ShopCode.UNAUTHORIZED


# the challenge every 401 carries (HTTP requires one); RFC 6750's `invalid_token` when the bearer token sent was refused
BEARER_CHALLENGE = 'Bearer realm="shop"'
_TOKEN_REFUSED = (ShopCode.INVALID_TOKEN, ShopCode.TOKEN_EXPIRED)


def bearer_challenge(code: str) -> str:
    """The `WWW-Authenticate` challenge of a 401 with `code`: `error="invalid_token"` if the token sent was bad,
    expired or revoked (the client signs in again), else the bare scheme (no token sent, a wrong password)."""
    return BEARER_CHALLENGE + (', error="invalid_token"' if code in _TOKEN_REFUSED else "")


class Forbidden(AppError):
    """The caller's role may not do this."""

    status, code = 403, ShopCode.FORBIDDEN


class ValidationError(AppError):
    """A business-rule validation failure; `details` maps field → messages."""

    status, code = 422, ShopCode.VALIDATION_ERROR


def register_error_codes(app: Flask, codes: type[StrEnum]) -> None:
    """Add a domain's error codes to those the OpenAPI document lists (each domain's `init_app` calls this)."""
    app.extensions.setdefault("error_codes", []).append(codes)


UniqueConflict = Callable[[Mapping[str, Any]], AppError]
"""The error of a duplicate, from the duplicate row's column values (a KeyError if they are not known)."""


def register_unique_conflicts(app: Flask, conflicts: Mapping[str, UniqueConflict | None]) -> None:
    """Say, per unique constraint of a domain, what error a duplicate of it is: the one the domain's own duplicate
    check raises, so that a duplicate racing past that check (both checked before either committed) gets the same;
    None for a constraint no client's request can break (a duplicate there is the generic `conflict`)."""
    app.extensions.setdefault("unique_conflicts", {}).update(conflicts)


def _unique_conflict(exc: IntegrityError) -> AppError | None:
    """The registered error of the unique constraint `exc` violates, if it has one and the row is known."""
    conflict = current_app.extensions.get("unique_conflicts", {}).get(violated_constraint(exc))
    try:
        return None if conflict is None else conflict(failed_row(exc))
    except KeyError:
        return None


def document_error_codes(app: Flask, spec_schemas: dict) -> None:
    """List the shell's and every registered domain's codes as the enum of `ErrorBody.code` in the OpenAPI document."""
    enums = [ShopCode, *app.extensions.get("error_codes", [])]
    spec_schemas["ErrorBody"]["properties"]["code"]["enum"] = sorted(code for enum in enums for code in enum)


MAX_DETAILS = 30          # entries (fields, list items, messages) one validation error's details show
MAX_ECHOED_KEY = 40       # characters of a field name echoed back
MAX_ECHOED_MESSAGE = 200  # characters of a message
MAX_SHOWN_PATH = 200      # characters of a path a 404 or 405 message quotes
OUTAGE_RETRY_SECONDS = 5  # Retry-After of a 503 for a database or Redis outage
BUSY_RETRY_SECONDS = 1    # Retry-After of a 503 for SQLite's write lock held past the busy timeout


def _cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and an ellipsis."""
    return text if len(text) <= limit else f"{text[:limit]}…"


def bounded_details(details: dict) -> dict:
    """A validation error's details cut to size, whatever the request sent (100,000 unknown fields, a field name of a
    megabyte): at most MAX_DETAILS entries in all, in order, each level that lost some saying how many (`"_more"`
    in a mapping, a last message in a list), field names and messages cut short."""
    budget = MAX_DETAILS

    def cut(value):
        nonlocal budget
        if not isinstance(value, (dict, list)):
            return _cut(value, MAX_ECHOED_MESSAGE) if isinstance(value, str) else value
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        kept, more = [], len(items)
        for key, item in items:
            if budget <= 0:
                break
            budget -= 1
            more -= 1
            kept.append((_cut(key, MAX_ECHOED_KEY) if isinstance(key, str) else key, cut(item)))
        note = [f"{more:,} more not shown."] if more else []
        if isinstance(value, list):
            return [item for _, item in kept] + note
        return {**dict(kept), **({"_more": note} if note else {})}

    return cut(details)


def error_response(status: int, code: str, message: str, details: dict | None = None):
    """Render the API error shape with its status (a validation error's details cut to size: `bounded_details`)."""
    if code == ShopCode.VALIDATION_ERROR and details:
        details = bounded_details(details)
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    response = jsonify(body)
    response.status_code = status
    return response


def server_error_body(status: int, reason: str, explanation: str) -> bytes:
    """The API error shape of an answer a server gives itself, before any app code runs (a request it cannot read):
    the status's code, `reason: explanation` as the message, no details."""
    code = HTTP_CODES.get(status, ShopCode.HTTP_ERROR)
    message = f"{reason}: {explanation}" if explanation else reason
    return json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()


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
    code = HTTP_CODES.get(status, ShopCode.HTTP_ERROR)
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
        message = f"Method {request.method} is not allowed on {_shown_path()}."
    elif status == 404:
        message = f"No resource at {_shown_path()}."
    response = error_response(status, code, message, details)
    for header in ("Allow", "Retry-After"):
        if exc.get_response().headers.get(header):
            response.headers[header] = exc.get_response().headers[header]
    return response


def _shown_path() -> str:
    """The request's path as an error message may quote it: printable and at most MAX_SHOWN_PATH characters."""
    path = request.path
    return path if len(path) <= MAX_SHOWN_PATH and path.isprintable() else "this path"


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


def is_api_path(path: str) -> bool:
    """Whether `path` is the API's: `/api` itself or anything under `/api/` (its errors are JSON, never HTML)."""
    return path == "/api" or path.startswith("/api/")


PROBE_PATHS = ("/healthz", "/readyz")  # the load balancer's probes (shop.health); domains' request checks skip them


def is_probe_path(path: str) -> bool:
    """Whether `path` is a probe's: `/healthz` or `/readyz`, or anything under either (a trailing slash too)."""
    return any(path == probe or path.startswith(probe + "/") for probe in PROBE_PATHS)


def _wants_json() -> bool:
    """Whether the current request is a machine's, the API's or a probe's (errors as JSON, never HTML)."""
    return is_api_path(request.path) or is_probe_path(request.path)


def register_error_page(app: Flask, render: Callable[[Exception, int], Any]) -> None:
    """Render every error outside /api/ and the probes with `render(exc, status)` (the pages register their error
    page here, so that the shell never imports them)."""
    app.extensions["error_page"] = render


def _busy(exc: Exception) -> bool:
    """Whether a database error is SQLite's busy timeout (another writer held the lock), not an outage."""
    return isinstance(exc, OperationalError) and "database is locked" in str(getattr(exc, "orig", ""))


def _answer(exc: Exception, api_response: Response) -> Response:
    """The JSON error for the API and the probes; anywhere else the registered error page, same status and headers."""
    render = current_app.extensions.get("error_page")
    if _wants_json() or render is None:
        return api_response
    page = current_app.make_response(render(exc, api_response.status_code))
    for header in ("Allow", "Retry-After"):
        if header in api_response.headers:
            page.headers[header] = api_response.headers[header]
    return page


def register_error_handlers(app: Flask) -> None:
    """Install handlers so every error leaves nothing written: in the API's shape under /api/, else as a page."""

    @app.errorhandler(AppError)
    def _app_error(exc: AppError):
        db.session.rollback()
        if exc.retry_after:
            g.retry_after = exc.retry_after  # set last (`headers.retry_after_only_when_waiting`)
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = bearer_challenge(exc.code)
        return _answer(exc, response)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        db.session.rollback()
        return _answer(exc, _http_error(exc))

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError):
        db.session.rollback()
        log.info("integrity conflict request_id=%s: %s %s", g.get("request_id"), exc.orig.__class__.__name__,
                 violated_constraint(exc))
        error = _unique_conflict(exc)
        if error is not None:
            return _answer(exc, error_response(error.status, error.code, error.message, error.details))
        return _answer(exc, error_response(409, ShopCode.CONFLICT, "The request conflicts with existing data."))

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def _out_of_range(exc: Exception):
        db.session.rollback()
        log.info("value out of range request_id=%s: %s", g.get("request_id"),
                 getattr(exc, "orig", exc).__class__.__name__)
        return _answer(exc, error_response(422, ShopCode.VALUE_OUT_OF_RANGE,
                                           "A value is outside the range the service can store."))

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _unavailable(exc: Exception):
        db.session.rollback()
        if _busy(exc):  # SQLite's write lock held past the busy timeout by another writer: no outage
            log.warning("database busy request_id=%s path=%s", g.get("request_id"), request.path)
            message, retry_after = "The database is busy with another write; try again.", BUSY_RETRY_SECONDS
        elif isinstance(exc, OperationalError | PoolTimeout):  # its text may quote the statement's parameters
            log.error("database unavailable request_id=%s path=%s: %s", g.get("request_id"), request.path,
                      getattr(exc, "orig", exc).__class__.__name__)
            message, retry_after = "The database is unavailable; try again.", OUTAGE_RETRY_SECONDS
        else:
            log.error("redis unavailable request_id=%s path=%s: %s: %s", g.get("request_id"), request.path,
                      exc.__class__.__name__, str(exc).splitlines()[0] if str(exc) else "")
            message, retry_after = "A service the shop depends on is unavailable; try again.", OUTAGE_RETRY_SECONDS
        response = error_response(503, ShopCode.SERVICE_UNAVAILABLE, message, {"request_id": g.get("request_id")})
        response.headers["Retry-After"] = str(retry_after)
        return _answer(exc, response)

    for outage in REDIS_UNAVAILABLE:  # the cache, the rate limits' store or the broker: as the database's outage
        app.register_error_handler(outage, _unavailable)

    @app.errorhandler(DecryptionError)
    def _undecryptable(exc: DecryptionError):
        db.session.rollback()  # a key was dropped before `reencrypt` (or the wrong one is set): the operator's to fix
        log.error("stored data cannot be decrypted request_id=%s path=%s: %s", g.get("request_id"), request.path, exc)
        return _answer(exc, error_response(503, ShopCode.SERVICE_UNAVAILABLE, "The service cannot read the data "
                                           "this request needs; its operator has been told.",
                                           {"request_id": g.get("request_id")}))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        db.session.rollback()
        log.exception("unhandled error request_id=%s path=%s", g.get("request_id"), request.path)
        return _answer(exc, error_response(500, ShopCode.INTERNAL_ERROR,
                                           "An unexpected error occurred; it has been logged.",
                                           {"request_id": g.get("request_id")}))
