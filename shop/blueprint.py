"""The API's blueprint: flask-smorest's, with a query string read as strictly as a JSON body (on every operation:
one that declares no query parameters takes none), every bounded list judged by its length before its items, and
every error response it documents in the API's one error shape."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import flask
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import RAISE, Schema, ValidationError, fields, validate
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict

from shop.bodies import JSON_BODY_METHODS, matched_view, refused_before_its_input, unless_the_role_is_refused
from shop.errors import GIVEN_TWICE, ErrorOut, ShopCode, error_response, is_api_path
from shop.fields import is_blank
from shop.http import LOCATION_HEADER, ReadAt, declare_location, error_headers
from shop.idempotency import HEADER as IDEMPOTENCY_HEADER
from shop.scope import filter_codes, filters_in_scope

NO_QUERY = {422: [ShopCode.VALIDATION_ERROR]}  # an operation refuses a query parameter it does not read (`check_query`)
PAGED = {400: [ShopCode.INVALID_CURSOR], 422: [ShopCode.VALIDATION_ERROR]}  # a list's cursor and its filters


def query_args(args: MultiDict) -> MultiDict:
    """The query parameters the API reads: all but those that ad links and browsers add to any URL (`utm_*`, the
    cache-buster `_`), which no route reads and none refuses, and those left blank (`?q=&county=+`, as a search form
    sends the fields not filled in, or filled with spaces: `is_blank`), which are not given."""
    return MultiDict([(key, value) for key, value in args.items(multi=True)
                      if not is_blank(value) and key != "_" and not key.startswith("utm_")])


def given_once(args: MultiDict, schema: Schema) -> None:
    """A parameter that takes one value given twice (`?limit=1&limit=2`) is a 422 naming it, not its first value."""
    by_parameter = {field.data_key or name: field for name, field in schema.fields.items()}
    repeated = {key: [GIVEN_TWICE] for key in args
                if len(args.getlist(key)) > 1 and key in by_parameter
                and not isinstance(by_parameter[key], (fields.List, fields.Tuple))}
    if repeated:
        raise ValidationError(repeated)


def _declares_a_query(view) -> bool:
    """Whether the operation reads a query string (`@blp.arguments(..., location="query")`, in its `_apidoc`)."""
    parameters = view._apidoc.get("arguments", {}).get("parameters", [])
    return any(parameter["in"] == "query" for parameter in parameters)


def check_query(app: flask.Flask) -> flask.Response | None:
    """The 422 naming every query parameter of an API operation that declares none (`?dry_run=true` on a write must
    not be taken as if it were read), or None; None too when the view answers first (404, 405, 401, 403). The
    parameters of an operation that declares some are judged by `StrictParser`, by the same rules."""
    if (not flask.request.query_string or not is_api_path(flask.request.path)
            or flask.request.method == "OPTIONS"):
        return None
    view = matched_view(app)
    args = query_args(flask.request.args)
    if not args or not hasattr(view, "_apidoc") or _declares_a_query(view) or refused_before_its_input(view):
        return None  # no operation (the document itself, its docs page), or one whose parser judges its query
    return unless_the_role_is_refused(view, error_response(
        422, ShopCode.VALIDATION_ERROR, "This request takes no query parameters.",
        {name: ["Unknown field."] for name in args}))


def _length_errors(field: fields.Field, value: object) -> list | dict | None:
    """The messages of `value` (as `field` reads it) if it is, or holds, a list out of its bounds (`validate.Length`
    among the list field's validators), or None; a list within its bounds is looked into item by item."""
    if isinstance(field, fields.Nested):  # an object (input schemas nest no `many=True`: a list is a List)
        return length_errors(field.schema, value) or None
    if not isinstance(field, fields.List) or not isinstance(value, list):
        return None
    for validator in field.validators:
        if isinstance(validator, validate.Length):
            try:
                validator(value)
            except ValidationError as error:
                return error.messages
    items = {index: errors for index, item in enumerate(value) if (errors := _length_errors(field.inner, item))}
    return items or None


def length_errors(schema: Schema, data: object) -> dict:
    """The messages of every list in `data` (as `schema` loads it) out of its bounds, found before any item is read:
    a body of 100,000 lines is refused by its length alone, not after 100,000 items' errors."""
    if not isinstance(data, Mapping):
        return {}
    loaded = {field.data_key or name: field for name, field in schema.load_fields.items()}
    return {key: errors for key, field in loaded.items()
            if key in data and (errors := _length_errors(field, data[key])) is not None}


def error_description(codes: Iterable[str]) -> str:
    """An error response's description naming the codes it answers with: "Error codes: `a`, `b`."."""
    return "Error codes: " + ", ".join(f"`{code}`" for code in codes) + "."


class StrictParser(FlaskParser):
    """An unknown query parameter is a 422 naming it, as an unknown body field is: a misspelt filter (`?form=`) must
    not answer as if there were none. A list longer (or shorter) than its field allows is a 422 before its items are
    read."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}

    def load_querystring(self, req: flask.Request, schema: Schema):
        """The query parameters the API reads (`query_args`), each given once unless it takes a list."""
        args = query_args(req.args)
        given_once(args, schema)
        return self._makeproxy(args, schema)

    def parse(self, argmap, req=None, *, location=None, **kwargs):
        """The arguments, a list's filters naming only objects the caller may see (`filters_in_scope`: 404 else)."""
        arguments = super().parse(argmap, req, location=location, **kwargs)
        if location in ("query", "querystring"):
            filters_in_scope(arguments)
        return arguments

    def pre_load(self, location_data, *, schema: Schema, req: flask.Request, location: str):
        """Refuse the arguments if a list among them is out of its bounds (`length_errors`), before the schema
        loads any of its items."""
        if errors := length_errors(schema, location_data):
            raise ValidationError(errors)
        return location_data


_TOKEN_ERRORS = {401: [ShopCode.MISSING_TOKEN, ShopCode.INVALID_TOKEN, ShopCode.TOKEN_EXPIRED],
                 403: [ShopCode.FORBIDDEN]}
_BODY_ERRORS = {400: [ShopCode.BAD_REQUEST], 413: [ShopCode.PAYLOAD_TOO_LARGE],
                415: [ShopCode.UNSUPPORTED_MEDIA_TYPE]}
_IDEMPOTENCY_ERRORS = {400: [ShopCode.INVALID_IDEMPOTENCY_KEY],
                       409: [ShopCode.IDEMPOTENCY_KEY_REUSED, ShopCode.IDEMPOTENCY_KEY_IN_PROGRESS]}
_BODY_LOCATIONS = {"json", "form", "files"}
_PATH_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def common_errors(rule: str, method: str, view, doc: dict, not_found: Mapping[str, str]) -> dict[int, list[str]]:
    """The error answers every operation of its kind gives, whatever its own: 422 for a query parameter it does not
    read (`check_query`); 401 and 403 where a role is required; 404 where the path names an object (`not_found` per
    path parameter, and `not_found` itself for a value out of the parameter's range); 400 `invalid_cursor` where a
    list is paged by a `cursor` (`shop.pagination`); 400, 413 and 415 where a body is read, or refused (a POST, PUT
    or PATCH that takes none: `check_body`; not the webhook, which reads its own); 400 and 409 for an
    `Idempotency-Key` malformed or used for another request, where one is taken (`idempotent`)."""
    errors: dict[int, list[str]] = dict(NO_QUERY)
    if getattr(view, "required_roles", None):
        errors.update(_TOKEN_ERRORS)
    if names := _PATH_PARAMETER.findall(rule):
        errors[404] = [*(not_found[name] for name in names if name in not_found), ShopCode.NOT_FOUND]
    arguments = doc.get("arguments", {}).get("parameters", [])
    if any(argument["in"] in _BODY_LOCATIONS for argument in arguments) or (
            method.upper() in JSON_BODY_METHODS and not rule.endswith("/webhook")):
        errors.update(_BODY_ERRORS)
    if any(argument["in"] == "header" and argument["name"] == IDEMPOTENCY_HEADER for argument in arguments):
        errors[400] = [*errors.get(400, []), *_IDEMPOTENCY_ERRORS[400]]
        errors[409] = _IDEMPOTENCY_ERRORS[409]
    if any(argument["in"] == "query" and "cursor" in getattr(argument.get("schema"), "fields", {})
           for argument in arguments):
        errors[400] = [*errors.get(400, []), *PAGED[400]]
    return errors


def _documented_codes(description: str) -> list[str]:
    """The codes an error response's description names (`error_description`'s), in order."""
    return re.findall(r"`(\w+)`", description) if description.startswith("Error codes: ") else []


def document_filter_scopes(app: flask.Flask, document: dict) -> None:
    """Name in the OpenAPI `document` the 404 of every list's filter naming an object (`shop.scope`), beside the
    operation's own 404 codes."""
    codes = filter_codes(app)
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            parameters = operation.get("parameters", []) if method != "parameters" else []
            named = [codes[parameter["name"]] for parameter in parameters
                     if parameter.get("in") == "query" and parameter.get("name") in codes]
            if named:
                responses = operation["responses"]
                response = responses.setdefault("404", {"description": "", "content": responses["422"]["content"]})
                response["description"] = error_description(
                    dict.fromkeys([*_documented_codes(response["description"]), *named]))


class Blueprint(SmorestBlueprint):
    """A flask-smorest blueprint whose arguments are parsed by `StrictParser`, and whose every operation documents
    the error answers of its kind (`common_errors`) beside its own (`errors`)."""

    ARGUMENTS_PARSER = StrictParser()

    def __init__(self, *args, not_found: Mapping[str, str] | None = None, **kwargs):
        """`not_found`: per path parameter (`order_id`), the code of the 404 a path naming no such object gets."""
        super().__init__(*args, **kwargs)
        self.not_found = dict(not_found or {})

    def add_url_rule(self, rule, endpoint=None, view_func=None, provide_automatic_options=None, **options):
        """Register the rule and its operations' documentation, each with its `common_errors` added to its own."""
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options, **options)
        for method, doc in self._docs[self._endpoints[-1]].items():
            if method != "parameters":
                view = getattr(view_func, method) if isinstance(view_func, type) else view_func
                for status, codes in common_errors(rule, method, view, doc, self.not_found).items():
                    self._document_error(doc, status, codes)

    def _document_error(self, doc: dict, status: int, codes: list[str]) -> None:
        """Add `codes` to the operation's documented error response for `status`, or document one naming them."""
        responses = doc.setdefault("response", {}).setdefault("responses", {})
        documented = next((answers for key, answers in responses.items() if int(key) == status), None)
        if documented is None:
            responses[status] = [{"schema": ErrorOut(), "description": error_description(codes), "content_type": None,
                                  **({"headers": headers} if (headers := error_headers(status)) else {})}]
            return
        for answer in documented:
            if isinstance(answer, Mapping) and (named := _documented_codes(answer.get("description", ""))):
                answer["description"] = error_description(dict.fromkeys([*named, *codes]))
                return

    def arguments(self, schema, **kwargs):
        """Parse a request's arguments with `schema`: a schema class is made an instance once, here, instead of on
        every request (an instance copies its class's fields)."""
        return super().arguments(schema() if isinstance(schema, type) else schema, **kwargs)

    def response(self, status_code, schema=None, *, location: ReadAt | None = None, **kwargs):
        """Serialize the view's answer with `schema`; an answer that created something says where it is read
        (`location`: its `Location` header, documented)."""
        return self._located(super().response, status_code, location, schema, **kwargs)

    def alt_response(self, status_code, response=None, *, schema=None, location: ReadAt | None = None, **kwargs):
        """Document another response; an error (4xx, 5xx) given no schema has the API's error shape (`ErrorOut`);
        `location` as for `response`."""
        if response is None and schema is None and int(status_code) >= 400:
            schema = ErrorOut
        return self._located(super().alt_response, status_code, location, response, schema=schema, **kwargs)

    def errors(self, codes: Mapping[int, Iterable[str]]):
        """Document the error answers of an operation: per HTTP status the `code`s it answers with, in the API's
        error shape (`ErrorOut`); the description lists them (`error_description`), so the document tells a client
        which code comes with which status; a 429 says its `Retry-After` header, a 401 its `WWW-Authenticate`."""
        def decorator(view):
            for status, named in codes.items():
                view = self.alt_response(status, description=error_description(named),
                                         headers=error_headers(int(status)))(view)
            return view
        return decorator

    @staticmethod
    def _located(document, status_code, location: ReadAt | None, *args, **kwargs):
        """`document(status_code, ...)`'s decorator, which also declares `location` for that status."""
        if location is None:
            return document(status_code, *args, **kwargs)
        decorator = document(status_code, *args, headers={**(kwargs.pop("headers", None) or {}),
                                                          "Location": LOCATION_HEADER}, **kwargs)
        return lambda view: declare_location(decorator(view), status_code, location)
