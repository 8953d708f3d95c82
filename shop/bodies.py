"""The JSON body guard: every API body is parsed once, strictly, before any view or schema sees it.

Python's parser accepts what no client of ours sends and what later code cannot handle: lone UTF-16 surrogates
(`"\\ud800"`, which cannot be stored, hashed or encoded), UTF-16, UTF-32 or a byte order mark (the schemas read
UTF-8 only), nesting deep enough to exhaust the recursion limit, integers of thousands of digits, `NaN`/`Infinity`
and a key given twice. Such a body is malformed: 400, before
anything is parsed into a schema or written. A body is a body however it is sent (with a Content-Length or in
chunks), and one the server cannot read (a chunk size that is not hexadecimal, a chunk without its end) is a 400,
not a server error; a compressed body is a 415; a route takes the media type its arguments declare (JSON, or
multipart for a file upload: 415 otherwise), a route that declares no body takes none (422), a multipart body
holds only the parts (form fields and files) its route reads, each once (422 naming the others), and a PATCH
changes something (no body, or `{}`, is a 422). A request that matches no route or method (404, 405), comes without
credentials to a route that needs them (401), or from a user whose role the route refuses (403), gets that answer,
not a verdict on its body."""
from __future__ import annotations

import json
from collections import Counter

from flask import Flask, Response, current_app, request
from marshmallow import Schema, fields
from marshmallow.exceptions import MarshmallowError
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from shop.auth.security import carries_a_valid_token, may_use
from shop.errors import GIVEN_TWICE, ShopCode, error_response, is_api_path

JSON_BODY_KEY = "shop.json_body"
MAX_DEPTH = 64
MAX_INT_DIGITS = 30


def _parse_int(text: str) -> int:
    """An integer literal, refused beyond any realistic size (before Python converts it)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _reject_constant(name: str):
    """NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def _check(value, depth: int) -> None:
    """Walk a parsed value: bounded depth, every string (keys too) encodable as UTF-8."""
    if depth > MAX_DEPTH:
        raise ValueError(f"the body is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _check(item, depth + 1)


def _object(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are all different (a repeated key is ambiguous: which one counts?)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("an object gives a key twice")
    return value


def parse_json(data: bytes) -> object:
    """A body parsed by the rules above; `ValueError` saying why it is not acceptable JSON."""
    try:
        value = json.loads(data.decode("utf-8"), parse_int=_parse_int, parse_constant=_reject_constant,
                           object_pairs_hook=_object)
        _check(value, 0)
    except RecursionError:
        raise ValueError(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeEncodeError:
        raise ValueError("a string holds an unpaired UTF-16 surrogate") from None
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(str(exc).split(":")[0]) from None
    return value


def json_body() -> object:
    """The request's JSON body parsed by the rules above, once per request (the guard and the idempotency
    fingerprint both read it); `ValueError` saying why it is not acceptable."""
    if JSON_BODY_KEY not in request.environ:  # the request's own, unlike `g`, which a test's app context outlives
        request.environ[JSON_BODY_KEY] = parse_json(request.get_data(cache=True))
    return request.environ[JSON_BODY_KEY]


def body_field(schema: type[Schema], name: str) -> object:
    """The body's field `name` as `schema` reads it, or None: a body that is no JSON or whose field is not valid is
    refused by the view (what an Idempotency-Key's scope is read from before the view runs)."""
    try:
        body = json_body()
        return schema().fields[name].deserialize(body.get(name) if isinstance(body, dict) else None)
    except (ValueError, MarshmallowError):
        return None


JSON_BODY_METHODS = {"POST", "PUT", "PATCH"}
_PART_LOCATIONS = {"files", "form"}
_BODY_LOCATIONS = {"json"} | _PART_LOCATIONS


def _has_body() -> bool:
    """Whether the request carries a body: a Content-Length above 0, or chunks (which have no length)."""
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def matched_view(app: Flask):
    """The function that answers the matched route and method (a MethodView's method), or None."""
    view = app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    return getattr(view_class, request.method.lower(), None) if view_class is not None else view


def _arguments(view) -> list[dict]:
    """The view's declared arguments, each with where it comes from (`in`) and its `schema` (flask-smorest's
    `_apidoc`)."""
    return (getattr(view, "_apidoc", None) or {}).get("arguments", {}).get("parameters", [])


def _declared_bodies(view) -> set[str]:
    """Where the view's arguments come from, of json, files and form."""
    if view is None:
        return {"json"}
    return {parameter["in"] for parameter in _arguments(view)} & _BODY_LOCATIONS


def _parts_error(view) -> Response | None:
    """The 422 of a multipart body with a part (form field or file) the view does not read, or a part that takes
    one value given more than once (two `file`s: which one counts?), naming each; None if every part is fine."""
    declared = {field.data_key or name: field for parameter in _arguments(view) if parameter["in"] in _PART_LOCATIONS
                for name, field in parameter["schema"].fields.items()}
    sent = Counter([key for key, _ in request.form.items(multi=True)] +
                   [key for key, _ in request.files.items(multi=True)])
    details = {name: ["Unknown field."] if name not in declared else [GIVEN_TWICE] for name, count in sent.items()
               if name not in declared or (count > 1 and not isinstance(declared[name], fields.List))}
    return error_response(422, ShopCode.VALIDATION_ERROR, "The request did not pass validation.", details) \
        if details else None


def refused_before_its_input(view) -> bool:
    """Whether the request is answered whatever its query string and body: no route or method matches (404, 405), or
    the view needs a role (`require_role`) and the request carries no valid, unexpired token (401)."""
    return request.routing_exception is not None or (
        bool(getattr(view, "required_roles", None)) and not carries_a_valid_token())


def unless_the_role_is_refused(view, error: Response | None) -> Response | None:
    """`error`, the verdict on a request's input, or None when the view will refuse the token's user (403) whatever
    the input (its user is read only then: on the error path)."""
    roles = getattr(view, "required_roles", None)
    return None if error is not None and roles and not may_use(roles) else error


NOTHING_TO_CHANGE = "Nothing to change: give at least one field."
ABOUT_A_CHANGE = {"reason"}  # fields that say why a change is made, not what it changes


def _nothing_to_change() -> Response:
    """The 422 of a PATCH that changes nothing."""
    return error_response(422, ShopCode.VALIDATION_ERROR, NOTHING_TO_CHANGE, {"_schema": [NOTHING_TO_CHANGE]})


def _unsupported(expected: str) -> Response:
    """The 415 of a body in another media type than the route takes."""
    return error_response(415, ShopCode.UNSUPPORTED_MEDIA_TYPE, f"Send the body as {expected}.",
                          {"content_type": request.mimetype})


class _GuardedInput:
    """A request's body stream as the WSGI server hands it over, whose read errors (gunicorn's `InvalidChunkSize`,
    `NoMoreData`: a body not framed as it says) are the client's: `BadRequest`."""

    def __init__(self, stream):
        self._stream = stream

    def _guarded(self, read, *args):
        """Call one of the stream's reads; a failure that is not already an HTTP answer is a 400."""
        try:
            return read(*args)
        except HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the server raises, the body could not be read
            raise BadRequest("The request body could not be read: it is not framed as its headers say.") from exc

    def read(self, *args):
        """Read bytes of the body."""
        return self._guarded(self._stream.read, *args)

    def readline(self, *args):
        """Read a line of the body."""
        return self._guarded(self._stream.readline, *args)

    def readlines(self, *args):
        """Read the body's lines."""
        return self._guarded(self._stream.readlines, *args)

    def __iter__(self):
        return iter(self.readline, b"")


class GuardBodyReads:
    """WSGI middleware: every request's body is read through `_GuardedInput`."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _GuardedInput(environ["wsgi.input"])
        return self.wsgi_app(environ, start_response)


def check_body(app: Flask) -> Response | None:
    """The error answer of an API request whose body breaks the rules above, or None; None too when the view will
    refuse the token's user (401, 403) whatever the body (its user is read only then: on the error path)."""
    if (not is_api_path(request.path) or request.method not in JSON_BODY_METHODS
            or request.path.endswith("/webhook")):
        return None
    view = matched_view(app)
    if refused_before_its_input(view):
        return None
    return unless_the_role_is_refused(view, _body_error(view))


def _limit_json_length() -> None:
    """A JSON body is read up to MAX_JSON_LENGTH (413 beyond it, before it is parsed), the file uploads' larger
    MAX_CONTENT_LENGTH being no JSON body's."""
    limit = current_app.config["MAX_JSON_LENGTH"]
    if request.max_content_length is None or limit < request.max_content_length:
        request.max_content_length = limit


def _body_error(view) -> Response | None:
    """The error answer of a request to `view` whose body breaks the rules above, or None."""
    declared = _declared_bodies(view)
    changes = request.method == "PATCH" and "json" in declared
    if not _has_body():
        return _nothing_to_change() if changes else None
    if (request.content_encoding or "identity").lower() != "identity":
        return error_response(415, ShopCode.UNSUPPORTED_MEDIA_TYPE,
                              f"Send the body uncompressed: Content-Encoding {request.content_encoding} is not taken.",
                              {"content_encoding": request.content_encoding})
    expected = "multipart/form-data" if "files" in declared else "application/json"
    if expected != "application/json":
        return _parts_error(view) if request.mimetype == expected else _unsupported(expected)
    _limit_json_length()
    data = request.get_data(cache=True)
    if not data:  # chunks of nothing: no body, as with Content-Length: 0
        return _nothing_to_change() if changes else None
    if request.mimetype != expected:
        return _unsupported(expected)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()  # chunks are cut at the limit, not refused: what was cut is too large
    try:
        body = json_body()
    except ValueError as exc:
        return error_response(400, ShopCode.BAD_REQUEST, f"The JSON body is malformed: {exc}.")
    if not declared and body not in ({}, None):
        fields = body if isinstance(body, dict) else {"_schema": None}
        return error_response(422, ShopCode.VALIDATION_ERROR, "This request takes no body.",
                              {name: ["Unknown field."] for name in fields})
    if changes and (body is None or (isinstance(body, dict) and body.keys() <= ABOUT_A_CHANGE)):
        return _nothing_to_change()
    return None
