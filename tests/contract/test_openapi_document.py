"""The OpenAPI document describes what clients get and may send: every property of every schema has a type (or a
reference to one), every write that honours an `Idempotency-Key` header lists it as a parameter, a nested
object that may be null is that object or null, as a validator reads the document, every error response has the
API's error shape, and every date a client sends says the window the server holds it to."""
from __future__ import annotations

import re

import jsonschema_rs  # Schemathesis's validator (a dev dependency through it)

from tests.contract.conftest import ROLES, documented_codes

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
    """Whether some role gets the key checked on this write: a 256-character key is refused before the body is read
    (a write that went through, such as signing out, is undone: the world's tokens must hold for the next)."""
    url = re.sub(r"{(\w+)}", lambda name: str(world.ids.get(name[1], {}).get("own", 1)), path)
    for role in ROLES:
        response = client.open(url, method=method, json={}, headers={**world.of(role), "Idempotency-Key": "k" * 256})
        if response.status_code < 300:
            world.reset()
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


def _json_schema(document: dict, name: str) -> dict:
    """The document's schema `name` as JSON Schema, OpenAPI 3.0's `nullable: true` read as "or null" (as
    Schemathesis reads it)."""
    def convert(node):
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: convert(value) for key, value in node.items()}
        if node.get("nullable") is True:
            del node["nullable"]
            return {"anyOf": [node, {"type": "null"}]}
        return node
    return {"$ref": f"#/components/schemas/{name}", "components": convert(document["components"])}


def _any_object_alternatives(node, where: str = "") -> list[str]:
    """The places in `node` where an alternative (anyOf, oneOf) is any object at all, or null."""
    found = []
    if isinstance(node, dict):
        for key in ("anyOf", "oneOf"):
            if {"type": "object", "nullable": True} in node.get(key, []):
                found.append(f"{where}: {node}")
        for key, value in node.items():
            found += _any_object_alternatives(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _any_object_alternatives(value, f"{where}[{index}]")
    return found


def test_no_nullable_nested_object_is_documented_as_any_object(client):
    document = client.get("/api/v1/openapi.json").json
    assert not _any_object_alternatives(document), "\n".join(_any_object_alternatives(document))
    payment = document["components"]["schemas"]["OrderOut"]["properties"]["payment"]
    assert payment["nullable"] is True and payment["allOf"] == [{"$ref": "#/components/schemas/PaymentOut"}]


def test_real_orders_validate_and_a_corrupted_payment_does_not(world):
    client = world.app.test_client()
    validator = jsonschema_rs.Draft4Validator(_json_schema(client.get("/api/v1/openapi.json").json, "OrderOut"))
    orders = [client.get(f"/api/v1/orders/{world.ids[key]['own']}", headers=world.of("consumer")).json
              for key in ("pending_order_id", "delivery_order_id", "collected_order_id")]
    assert orders[0]["payment"] and orders[1]["address"] and orders[2]["impact"]
    for order in orders:
        assert validator.is_valid(order), [error.message for error in validator.iter_errors(order)]

    for junk in ({"provider": 7, "client_secret": ["x"]}, {"sandbox": "yes"}, "pi_1", []):
        assert not validator.is_valid({**orders[0], "payment": junk}), junk
    assert validator.is_valid({**orders[0], "payment": None})


def test_every_documented_error_response_has_the_error_shape(client):
    document = client.get("/api/v1/openapi.json").json
    shared = document["components"]["responses"]
    bare = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in (operation.get("responses", {}) if method != "parameters" else {}).items():
                if status != "default" and int(status) < 400:
                    continue
                response = shared[response["$ref"].rsplit("/", 1)[1]] if "$ref" in response else response
                schemas = [content.get("schema") for content in response.get("content", {}).values()]
                if schemas != [{"$ref": "#/components/schemas/ErrorOut"}]:
                    bare.append(f"{method.upper()} {path} {status}: {response}")
    assert not bare, "\n".join(bare)


def _referenced(node, schemas: dict, seen: set[str]) -> set[str]:
    """The names of the component schemas `node` refers to, directly or through other schemas."""
    if isinstance(node, dict):
        if "$ref" in node and (name := node["$ref"].rsplit("/", 1)[1]) not in seen:
            seen.add(name)
            _referenced(schemas[name], schemas, seen)
        for value in node.values():
            _referenced(value, schemas, seen)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, schemas, seen)
    return seen


def test_every_date_a_client_sends_says_its_window(client):
    document = client.get("/api/v1/openapi.json").json
    schemas, operations = document["components"]["schemas"], [
        operation for item in document["paths"].values() for method, operation in item.items() if method in
        {"get", "post", "put", "patch", "delete"}]
    sent = _referenced([operation.get("requestBody", {}) for operation in operations], schemas, set())
    dates = [(f"{name}.{prop}", value.get("description", "")) for name in sent
             for prop, value in schemas[name].get("properties", {}).items()
             if value.get("format") in {"date", "date-time"}]
    dates += [(f"{parameter['in']} {parameter['name']}", parameter.get("description", ""))
              for operation in operations for parameter in operation.get("parameters", [])
              if parameter.get("schema", {}).get("format") in {"date", "date-time"}]
    assert len(dates) > 20
    unsaid = [where for where, description in dates if "from 2000-01-01 to 2099-12-31" not in description]
    assert not unsaid, unsaid


DESCRIPTIONS = 500  # the after-sales request and its answer: paragraphs a consumer reads, not a one-line remark


def test_every_reason_and_note_a_client_sends_has_one_bound(client):
    document = client.get("/api/v1/openapi.json").json
    schemas, operations = document["components"]["schemas"], [
        (f"{method} {path}", operation) for path, item in document["paths"].items()
        for method, operation in item.items() if method in {"get", "post", "put", "patch", "delete"}]
    sent = _referenced([operation.get("requestBody", {}) for _, operation in operations], schemas, set())
    remarks = {(f"{name}.{prop}", value.get("minLength"), value.get("maxLength")) for name in sent
               for prop, value in schemas[name].get("properties", {}).items()
               if prop in {"reason", "note"} and value.get("type") == "string" and "enum" not in value}
    remarks |= {(f"{where} {parameter['name']}", parameter["schema"].get("minLength"),
                 parameter["schema"].get("maxLength"))
                for where, operation in operations for parameter in operation.get("parameters", [])
                if parameter["in"] == "query" and parameter["name"] in {"reason", "note"}}
    assert len(remarks) >= 10
    bounds = {high for where, low, high in remarks if high != DESCRIPTIONS}
    assert bounds == {200}, sorted(remarks)
    assert {where for where, _, high in remarks if high == DESCRIPTIONS} == {"AfterSalesCreate.reason",
                                                                            "AfterSalesReject.reason"}


OPERATION_ERRORS = {  # what each operation answers besides 401/403, the request-shape 400/413/415 and `not_found`
    ("post", "/api/v1/stores"): {409: {"location_taken"}, 422: {
        "validation_error", "region_not_found", "district_not_donor", "location_not_store", "location_outside_district",
        "invalid_bank_account"}},
    ("get", "/api/v1/stores/{store_id}"): {404: {"store_not_found"}},
    ("patch", "/api/v1/stores/{store_id}"): {404: {"store_not_found"}, 409: {"transfers_in_transit",
                                                                            "pickups_waiting"}, 422: {
        "validation_error", "account_change_reason_required", "invalid_bank_account"}},
    ("get", "/api/v1/stores/{store_id}/account-changes"): {404: {"store_not_found"}},
    ("get", "/api/v1/stores/{store_id}/shifts"): {404: {"store_not_found"}},
    ("post", "/api/v1/stores/{store_id}/shifts"): {404: {"store_not_found"}, 409: {"shift_already_open",
                                                                                  "store_inactive"}},
    ("get", "/api/v1/shifts/{shift_id}"): {404: {"shift_not_found"}},
    ("post", "/api/v1/shifts/{shift_id}/close"): {404: {"shift_not_found"}, 409: {"shift_closed"}},
    ("post", "/api/v1/stock-transfers"): {409: {"insufficient_stock", "store_inactive"}, 422: {
        "validation_error", "location_not_warehouse", "location_not_store", "product_not_found",
        "transfer_too_many_lots"}},
    ("get", "/api/v1/stock-transfers/{transfer_id}"): {404: {"transfer_not_found"}},
    ("post", "/api/v1/stock-transfers/{transfer_id}/receive"): {
        404: {"transfer_not_found"}, 409: {"transfer_already_received", "transfer_cancelled"},
        422: {"validation_error", "transfer_lines_mismatch"}},
    ("post", "/api/v1/stock-transfers/{transfer_id}/cancel"): {
        404: {"transfer_not_found"}, 409: {"transfer_already_received", "transfer_cancelled"},
        422: {"validation_error"}},
    ("get", "/api/v1/stores/{store_id}/incoming-transfers"): {404: {"store_not_found"}},
    ("get", "/api/v1/stores/{store_id}/returned-transfers"): {404: {"store_not_found"}},
    ("get", "/api/v1/stock-adjustments"): {404: {"location_not_found"}},
    ("post", "/api/v1/stock-adjustments"): {
        404: {"location_not_found", "lot_not_found"},
        409: {"below_reserved", "lot_not_held_here", "lot_quantity_exceeded"},
        422: {"validation_error", "adjustment_sign"}},
    ("get", "/api/v1/stock-adjustments/{adjustment_id}"): {404: {"adjustment_not_found"}},
    ("get", "/api/v1/stores/{store_id}/remittances"): {404: {"store_not_found"}},
    ("post", "/api/v1/stores/{store_id}/remittances"): {
        404: {"store_not_found"}, 409: {"remittance_exceeds_cash_held", "remittance_reference_used"},
        422: {"validation_error", "remittance_date_out_of_range"}},
    ("get", "/api/v1/stores/{store_id}/remittances/{remittance_id}"): {
        404: {"store_not_found", "remittance_not_found"}},
    ("get", "/api/v1/locations/{location_id}/stock"): {404: {"location_not_found"}},
    ("post", "/api/v1/payout-batches"): {409: {"nothing_to_pay", "payout_batch_in_progress"}},
    ("get", "/api/v1/payout-batches/{batch_id}"): {
        403: {"bank_file_forbidden"}, 404: {"payout_batch_not_found"},
        409: {"payout_batch_not_ready", "payee_account_changed"}},
    ("post", "/api/v1/payout-batches/{batch_id}/settle"): {
        404: {"payout_batch_not_found"}, 409: {"payout_batch_not_ready", "illegal_payout_transition"}},
    ("get", "/api/v1/ledger/verify"): {409: {"verification_running"}},
    ("post", "/api/v1/ledger/verifications"): {409: {"verification_running"}},
    ("post", "/api/v1/suppliers"): {409: {"uscc_taken"}},
    ("get", "/api/v1/households/{household_id}"): {403: {"reveal_forbidden"}, 404: {"household_not_found"}},
    ("patch", "/api/v1/households/{household_id}"): {403: {"household_read_only"}, 404: {"household_not_found"}},
    ("post", "/api/v1/suppliers/{supplier_id}/households"): {
        404: {"supplier_not_found"}, 409: {"supplier_inactive", "household_exists", "household_code_taken"},
        429: {"id_number_lookups_exhausted"}},
    ("post", "/api/v1/suppliers/{supplier_id}/inventory-uploads"): {
        404: {"supplier_not_found"}, 409: {"supplier_inactive"}, 413: {"payload_too_large"}},
    ("patch", "/api/v1/products/{sku}"): {404: {"product_not_found"}, 409: {"measure_fixed", "origin_fixed"}},
    ("post", "/api/v1/auth/token"): {401: {"invalid_credentials"}, 429: {"too_many_attempts", "rate_limited"}},
    ("post", "/api/v1/auth/register"): {409: {"username_taken"}, 429: {"rate_limited"}},
    ("post", "/api/v1/users"): {409: {"username_taken", "store_inactive", "supplier_inactive"}},
    ("patch", "/api/v1/users/{user_id}"): {
        404: {"user_not_found"},
        409: {"cannot_disable_self", "last_active_admin", "store_inactive", "supplier_inactive"}},
    ("post", "/api/v1/orders/{order_id}/ship"): {
        409: {"invalid_transition", "not_a_delivery_order", "nothing_to_ship"}},
    ("post", "/api/v1/orders/{order_id}/refunds"): {
        403: {"refund_outside_shift"}, 404: {"order_not_found", "order_line_not_found"},
        409: {"order_not_refundable", "refund_pending", "refund_exceeds_sold", "refund_exceeds_paid",
              "refund_refused"}},
    ("post", "/api/v1/orders/{order_id}/after-sales"): {
        409: {"after_sales_not_allowed", "after_sales_window_closed", "after_sales_open"}},
    ("post", "/api/v1/after-sales/{request_id}/approve"): {
        404: {"after_sales_not_found"}, 409: {"after_sales_decided", "refund_exceeds_paid", "refund_refused"}},
    ("post", "/api/v1/after-sales/{request_id}/reject"): {404: {"after_sales_not_found"}, 409: {"after_sales_decided"}},
    ("post", "/api/v1/after-sales/{request_id}/withdraw"): {
        404: {"after_sales_not_found"}, 409: {"after_sales_decided"}},
}


def test_the_operations_document_each_error_code_they_answer_under_its_status(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    missing = {f"{method.upper()} {path}": (expected, documented_codes(paths[path][method]))
               for (method, path), expected in OPERATION_ERRORS.items()
               if any(not codes <= documented_codes(paths[path][method]).get(status, set())
                      for status, codes in expected.items())}
    assert not missing, "\n".join(f"{op}: expected {exp}, documented {doc}" for op, (exp, doc) in missing.items())


PUBLIC_READ_ERRORS = {  # what each public read answers: (status, code) -> a request that gets it
    ("get", "/api/v1/trace/{trace_code}"): {
        (404, "trace_code_not_found"): "/api/v1/trace/NOPE0000", (422, "validation_error"): "/api/v1/trace/X?x=1"},
    ("get", "/api/v1/disclosure/counties/{code}"): {
        (404, "region_not_found"): "/api/v1/disclosure/counties/440604",  # a donor district discloses nothing
        (404, "disclosure_before_first_month"): "/api/v1/disclosure/counties/513431?month=2001-01",
        (409, "disclosure_not_published"): "/api/v1/disclosure/counties/513431?month=2099-01",
        (422, "validation_error"): "/api/v1/disclosure/counties/513431?month=2026-13",
        (429, "rate_limited"): "/api/v1/disclosure/counties/513431"},
    ("get", "/api/v1/products"): {
        (400, "invalid_cursor"): "/api/v1/products?cursor=forged", (401, "invalid_token"): "/api/v1/products",
        (422, "validation_error"): "/api/v1/products?limit=0"},
    ("get", "/api/v1/products/{sku}"): {
        (401, "invalid_token"): "/api/v1/products/ZJ-KQ-1", (404, "product_not_found"): "/api/v1/products/ZJ-KQ-1",
        (422, "validation_error"): "/api/v1/products/ZJ-KQ-1?x=1"},
    ("get", "/api/v1/regions"): {
        (400, "invalid_cursor"): "/api/v1/regions?cursor=forged", (422, "validation_error"): "/api/v1/regions?level=x"},
    ("get", "/api/v1/regions/{code}"): {
        (404, "region_not_found"): "/api/v1/regions/999999", (422, "validation_error"): "/api/v1/regions/513431?x=1"},
    ("get", "/api/v1/pairings"): {
        (400, "invalid_cursor"): "/api/v1/pairings?cursor=forged", (422, "validation_error"): "/api/v1/pairings?on=x"},
    ("get", "/api/v1/pairings/{pairing_id}"): {
        (404, "pairing_not_found"): "/api/v1/pairings/999999", (422, "validation_error"): "/api/v1/pairings/1?x=1"},
    ("get", "/api/v1/inventory-uploads/template.xlsx"): {
        (422, "validation_error"): "/api/v1/inventory-uploads/template.xlsx?x=1"},
}


def test_the_public_reads_document_each_error_code_they_answer_under_its_status(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    public = {(method, path) for path, operations in paths.items() for method, operation in operations.items()
              if method == "get" and operation.get("security") == []}
    assert public == set(PUBLIC_READ_ERRORS)
    missing = [f"{method.upper()} {path}: {status} {code} (documented: {documented_codes(paths[path][method])})"
               for (method, path), answers in PUBLIC_READ_ERRORS.items() for status, code in answers
               if code not in documented_codes(paths[path][method]).get(status, set())]
    assert not missing, "\n".join(missing)
    limited = paths["/api/v1/disclosure/counties/{code}"]["get"]["responses"]["429"]
    assert "Retry-After" in limited.get("headers", {}), limited


def test_the_public_reads_answer_the_errors_they_document(app, client):
    app.config["DISCLOSURE_RATE_LIMIT"] = "4 per minute"  # the four disclosure reads before the limited one
    wrong = []
    for answers in PUBLIC_READ_ERRORS.values():
        for (status, code), url in sorted(answers.items(), key=lambda item: item[0][0]):
            headers = {"Authorization": "Bearer forged"} if code == "invalid_token" else {}
            response = client.get(url, headers=headers)
            got = (response.status_code, (response.get_json(silent=True) or {}).get("error", {}).get("code"))
            if got != (status, code):
                wrong.append(f"{url}: {got}, not {(status, code)}")
            elif status == 429 and not response.headers.get("Retry-After", "").isdigit():
                wrong.append(f"{url}: 429 without the Retry-After it documents")
    assert not wrong, "\n".join(wrong)


def test_every_error_code_a_response_names_is_one_the_api_answers_with(client):
    document = client.get("/api/v1/openapi.json").json
    known = set(document["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"])
    unknown = [f"{method.upper()} {path} {status}: {code}" for path, operations in document["paths"].items()
               for method, operation in operations.items() if method != "parameters"
               for status, codes in documented_codes(operation).items() for code in sorted(codes - known)]
    assert not unknown, "\n".join(unknown)


def test_the_store_bodies_say_what_their_optional_fields_mean(client):
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    for schema, field in (("StoreCreate", "bank_account"), ("TransferReceive", "note"), ("AdjustmentCreate", "note")):
        assert schemas[schema]["properties"][field].get("description"), (schema, field)
    assert "required when" in schemas["TransferReceive"]["properties"]["note"]["description"]
