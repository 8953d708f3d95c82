"""The error answers every operation gives for its kind, sent for real and looked up in the OpenAPI document.

A client generated from the document must know each answer it can get: without a token (401), in a role the
operation does not take (403), for an id out of range or naming nothing (404), and with a body it cannot read
(400, 413, 415). Each is sent to every operation of the document, and its status and code must be documented
there (the BOLA matrix does the same for other users' objects).
"""
from __future__ import annotations

import re

from tests.contract.conftest import ROLES, documented_codes
from tests.suppliers.factories import make_id_number, make_uscc

_PARAMETER = re.compile(r"{(\w+)}")
NO_SUCH_ID = 2**31 - 1  # in an id's range, naming nothing
OUT_OF_RANGE = 2**31


def _operations(world) -> list[tuple[str, str, dict]]:
    """(method, path, operation) of every operation of the OpenAPI document."""
    document = world.app.test_client().get("/api/v1/openapi.json").get_json()
    return [(method, path, operation) for path, operations in document["paths"].items()
            for method, operation in operations.items() if method != "parameters"]


def _undocumented(response, operation: dict) -> str | None:
    """What the document does not say about `response` (an error), or None."""
    code = (response.get_json(silent=True) or {}).get("error", {}).get("code")
    named = documented_codes(operation).get(response.status_code)
    if named is None:
        return f"{response.status_code} {code}: status not documented"
    return None if code in named else f"{response.status_code} {code}: code not named (it names {sorted(named)})"


def _with(path: str, value: object) -> str:
    """`path` with every parameter set to `value`."""
    return _PARAMETER.sub(str(value), path)


def test_every_operation_documents_its_answer_without_a_token_and_in_a_role_it_does_not_take(world):
    client, wrong = world.app.test_client(), []
    for method, path, operation in _operations(world):
        url = _with(path, 1)
        anonymous = client.open(url, method=method)
        if anonymous.status_code == 401 and (problem := _undocumented(anonymous, operation)):
            wrong.append(f"{method.upper()} {path} anonymous: {problem}")
        for role in ROLES[1:]:
            response = client.open(url, method=method, headers=world.of(role))
            if response.status_code == 403 and (problem := _undocumented(response, operation)):
                wrong.append(f"{method.upper()} {path} as {role}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_every_operation_naming_an_object_documents_the_404_of_one_that_is_not_there(world):
    client, wrong = world.app.test_client(), []
    for method, path, operation in _operations(world):
        if "{" not in path or method != "get":
            continue
        for value in (NO_SUCH_ID, OUT_OF_RANGE, "NO-SUCH-CODE"):
            response = client.open(_with(path, value), method=method, headers=world.of("admin"))
            if response.status_code >= 400 and (problem := _undocumented(response, operation)):
                wrong.append(f"GET {path} for {value}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_every_operation_reading_a_body_documents_the_answers_to_one_it_cannot_read(world):
    client, wrong = world.app.test_client(), []
    bodies = {"malformed JSON": {"data": "{", "content_type": "application/json"},
              "plain text": {"data": "x", "content_type": "text/plain"},
              "too large": {"data": b"x" * (10 * 1024 * 1024 + 1), "content_type": "application/json"}}
    for method, path, operation in _operations(world):
        if "requestBody" not in operation:
            continue
        for name, body in bodies.items():
            response = client.open(_with(path, 1), method=method, headers=world.of("admin"), **body)
            if response.status_code >= 400 and (problem := _undocumented(response, operation)):
                wrong.append(f"{method.upper()} {path} with {name}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_every_operation_documents_the_answer_to_a_query_parameter_it_does_not_read(world):
    client, wrong = world.app.test_client(), []
    for method, path, operation in _operations(world):
        for role in ("admin", "consumer"):
            response = client.open(_with(path, 1) + "?dry_run=true", method=method, headers=world.of(role))
            if response.status_code >= 400 and (problem := _undocumented(response, operation)):
                wrong.append(f"{method.upper()} {path}?dry_run=true as {role}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_every_write_taking_no_body_documents_the_answers_to_one_it_is_sent(world):
    client, wrong = world.app.test_client(), []
    bodies = {"a field": {"json": {"force": True}},
              "malformed JSON": {"data": "{", "content_type": "application/json"},
              "plain text": {"data": "x", "content_type": "text/plain"},
              "too large": {"data": b"x" * (10 * 1024 * 1024 + 1), "content_type": "application/json"}}
    for method, path, operation in _operations(world):
        if method not in ("post", "put", "patch") or "requestBody" in operation or path.endswith("/webhook"):
            continue
        for role in ("admin", "consumer"):
            for name, body in bodies.items():
                response = client.open(_with(path, 1), method=method, headers=world.of(role), **body)
                if response.status_code >= 400 and (problem := _undocumented(response, operation)):
                    wrong.append(f"{method.upper()} {path} with {name} as {role}: {problem}")
    assert not wrong, "\n".join(wrong)


def _url_of_own(world, path: str) -> str:
    """`path` with every parameter set to the caller's own object of its kind (1 where the world names none)."""
    return _PARAMETER.sub(lambda name: str(world.ids.get(name[1], {}).get("own", 1)), path)


def test_every_write_taking_an_idempotency_key_documents_the_answers_to_a_bad_key_and_to_a_key_reused(world):
    client, wrong, taking = world.app.test_client(), [], []
    for method, path, operation in _operations(world):
        if any(parameter["name"] == "Idempotency-Key" for parameter in operation.get("parameters", [])):
            taking.append((method, path, operation))
            for role in ROLES[1:]:
                response = client.open(_url_of_own(world, path), method=method, json={},
                                       headers={**world.of(role), "Idempotency-Key": "k" * 256})
                if response.status_code < 300:
                    world.reset()
                if response.status_code >= 400 and (problem := _undocumented(response, operation)):
                    wrong.append(f"{method.upper()} {path} with a 256-character key as {role}: {problem}")
    order = {"channel": "pickup", "store_id": world.ids["store_id"]["own"],
             "lines": [{"sku": world.ids["sku"]["own"], "quantity": 1}]}
    headers = {**world.of("consumer"), "Idempotency-Key": "reused-key"}
    assert client.post("/api/v1/orders", json=order, headers=headers).status_code == 201
    reused = client.post("/api/v1/orders", json={**order, "lines": [{**order["lines"][0], "quantity": 2}]},
                         headers=headers)
    assert reused.status_code == 409 and reused.json["error"]["code"] == "idempotency_key_reused"
    wrong += [f"{method.upper()} {path} with a key used for another body: {problem}" for method, path, operation
              in taking if (problem := _undocumented(reused, operation))]
    assert taking and not wrong, "\n".join(wrong)


def test_a_reveal_or_an_account_change_without_its_reason_is_a_documented_answer(world):
    client, household = world.app.test_client(), world.ids["household_id"]["own"]
    path = "/api/v1/households/{household_id}"
    operations = world.app.test_client().get("/api/v1/openapi.json").get_json()["paths"][path]
    reveal = client.get(f"/api/v1/households/{household}?reveal=true", headers=world.of("admin"))
    change = client.patch(f"/api/v1/households/{household}", json={"bank_account": "6222 0202 0011 2233 445"},
                          headers=world.of("coop"))

    assert (reveal.status_code, reveal.json["error"]["code"]) == (422, "reveal_reason_required")
    assert (change.status_code, change.json["error"]["code"]) == (422, "account_change_reason_required")
    assert _undocumented(reveal, operations["get"]) is None
    assert _undocumented(change, operations["patch"]) is None


def test_a_region_or_pairing_already_there_and_a_line_not_in_the_batch_are_documented_answers(world):
    client, admin = world.app.test_client(), world.of("admin")
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    region = client.get("/api/v1/regions/513431").json
    pairing = client.get(f"/api/v1/pairings/{world.ids['pairing_id']['own']}").json
    answers = {
        ("/api/v1/regions", "region_exists"): client.post("/api/v1/regions", headers=admin, json={
            "code": region["code"], "name": region["name"], "level": region["level"]}),
        ("/api/v1/pairings", "pairing_overlaps"): client.post("/api/v1/pairings", headers=admin, json={
            "donor_code": pairing["donor"]["code"], "recipient_code": pairing["recipient"]["code"],
            "valid_from": pairing["valid_from"]}),
        ("/api/v1/payout-batches/{batch_id}/settle", "payout_line_not_found"): client.post(
            f"/api/v1/payout-batches/{world.ids['batch_id']['own']}/settle", headers=admin,
            json={"lines": [{"line_id": NO_SUCH_ID, "status": "paid"}]}),
    }
    for (path, code), answer in answers.items():
        assert answer.status_code in (409, 422) and answer.json["error"]["code"] == code, answer.json
        assert _undocumented(answer, paths[path]["post"]) is None, (path, _undocumented(answer, paths[path]["post"]))


def test_an_order_the_shop_cannot_take_and_a_pickup_code_a_delivery_lacks_are_documented_answers(world):
    client, consumer = world.app.test_client(), world.of("consumer")
    operations = client.get("/api/v1/openapi.json").get_json()["paths"]
    line = {"sku": world.ids["sku"]["own"], "quantity": 1}
    delivery = {"channel": "delivery", "lines": [line], "address": {
        "district_code": "440606", "detail": "大良街道测试路 1 号", "recipient": "测试顾客", "phone": "13800000000"}}
    orders = {"store_unavailable": {"channel": "pickup", "store_id": NO_SUCH_ID, "lines": [line]},
              "product_unavailable": {**delivery, "lines": [{"sku": "NO-SUCH-SKU", "quantity": 1}]},
              "warehouse_unavailable": {**delivery, "warehouse_id": NO_SUCH_ID},
              "not_a_donor_district": {**delivery, "address": {**delivery["address"], "district_code": "513431"}}}
    for code, body in orders.items():
        answer = client.post("/api/v1/orders", json=body, headers=consumer)
        assert (answer.status_code, answer.json["error"]["code"]) == (422, code), answer.json
        assert _undocumented(answer, operations["/api/v1/orders"]["post"]) is None, code
    qr = client.get(f"/api/v1/orders/{world.ids['delivery_order_id']['own']}/pickup-qr.svg", headers=consumer)
    assert (qr.status_code, qr.json["error"]["code"]) == (404, "pickup_code_not_found")
    assert _undocumented(qr, operations["/api/v1/orders/{order_id}/pickup-qr.svg"]["get"]) is None


def test_a_lot_of_no_product_at_a_store_or_under_a_code_taken_gets_documented_answers(world):
    client, admin = world.app.test_client(), world.of("admin")
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/lots"]["post"]
    locations = client.get("/api/v1/locations?limit=100", headers=admin).json["items"]
    warehouse = next(location["code"] for location in locations if location["kind"] == "warehouse")
    store = next(location["code"] for location in locations if location["kind"] == "store")
    lot = {"product_sku": world.ids["sku"]["own"], "lot_code": "DOC-LOT-1", "harvested_on": "2026-10-01",
           "village": "火普村", "location_code": warehouse, "quantity": 5}
    assert client.post("/api/v1/lots", json=lot, headers=admin).status_code == 201
    answers = {(409, "lot_code_taken"): client.post("/api/v1/lots", json=lot, headers=admin),
               (404, "product_not_found"): client.post("/api/v1/lots", headers=admin,
                                                       json={**lot, "product_sku": "NO-SUCH-SKU"}),
               (422, "location_not_warehouse"): client.post("/api/v1/lots", headers=admin,
                                                            json={**lot, "lot_code": "DOC-LOT-2",
                                                                  "location_code": store})}
    for expected, answer in answers.items():
        assert (answer.status_code, answer.json["error"]["code"]) == expected, answer.json
        assert _undocumented(answer, operation) is None, _undocumented(answer, operation)


def test_a_location_code_taken_in_another_spelling_gets_a_documented_answer(world):
    client, admin = world.app.test_client(), world.of("admin")
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/locations"]["post"]
    taken = client.get("/api/v1/locations?limit=1", headers=admin).json["items"][0]
    location = client.post("/api/v1/locations", headers=admin, json={
        "code": taken["code"].replace("-", "."), "name": "另一个仓库", "kind": "warehouse", "region_code": "513431"})

    assert (location.status_code, location.json["error"]["code"]) == (409, "location_code_taken"), location.json
    assert _undocumented(location, operation) is None


def test_every_documented_error_answer_names_its_codes(world):
    unnamed = [f"{method.upper()} {path} {status}: {answer.get('description')!r}"
               for method, path, operation in _operations(world)
               for status, answer in operation["responses"].items()
               if status != "default" and int(status) >= 400 and int(status) not in documented_codes(operation)]
    assert not unnamed, "\n".join(unnamed)


def test_agreement_rates_above_the_whole_get_a_documented_answer(world):
    client, admin = world.app.test_client(), world.of("admin")
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/products/{sku}"]["patch"]
    answer = client.patch(f"/api/v1/products/{world.ids['sku']['own']}", headers=admin,
                          json={"platform_fee_bp": 5000, "store_commission_bp": 5000, "household_premium_bp": 5000})

    assert (answer.status_code, answer.json["error"]["code"]) == (422, "invalid_rates"), answer.json
    assert _undocumented(answer, operation) is None


def test_a_supplier_or_household_outside_the_recipient_counties_gets_a_documented_answer(world):
    client, admin = world.app.test_client(), world.of("admin")
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    supplier = client.post("/api/v1/suppliers", headers=admin, json={
        "name": "顺德区某合作社", "kind": "cooperative", "uscc": make_uscc(7, "440606"), "county_code": "440606"})
    household = client.post(f"/api/v1/suppliers/{world.ids['supplier_id']['own']}/households", headers=admin, json={
        "code": "DOC-H-1", "county_code": "440606", "head_name": "测试户主", "id_number": make_id_number("440606"),
        "village": "大良村", "members": 2, "consent_on": "2026-01-01", "consent_basis": "书面知情同意书"})

    for answer, path in ((supplier, "/api/v1/suppliers"), (household, "/api/v1/suppliers/{supplier_id}/households")):
        assert (answer.status_code, answer.json["error"]["code"]) == (422, "county_not_recipient"), answer.json
        assert _undocumented(answer, paths[path]["post"]) is None, path


def test_every_list_documents_the_answer_to_a_cursor_it_did_not_issue(world):
    """A forged or stale cursor is a 400 `invalid_cursor` on every list (shop/pagination.py), not only the public
    ones: a client paging a store's shifts, transfers, conflicts or adjustments must find that answer documented."""
    client, wrong, refused = world.app.test_client(), [], []
    for method, path, operation in _operations(world):
        if method != "get" or not any(parameter["name"] == "cursor" for parameter in operation.get("parameters", [])):
            continue
        for role in ROLES[1:]:
            response = client.get(f"{_url_of_own(world, path)}?cursor=forged", headers=world.of(role))
            if response.status_code == 400:
                refused.append(path)
                if problem := _undocumented(response, operation):
                    wrong.append(f"GET {path}?cursor=forged as {role}: {problem}")
    assert "/api/v1/stores/{store_id}/shifts" in refused and "/api/v1/stock-adjustments" in refused
    assert not wrong, "\n".join(wrong)



def test_an_identifier_that_is_not_one_gets_a_documented_answer_on_every_route_taking_it(world):
    """A USCC or ID number whose check digit fails is a 422 `invalid_uscc` / `invalid_id_number`, and a payout account
    of the wrong length a 422 `invalid_bank_account` (as a store's is): each route taking one must name its code."""
    client, admin, supplier = world.app.test_client(), world.of("admin"), world.ids["supplier_id"]["own"]
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    uscc, id_number = make_uscc(8), make_id_number()
    bad_uscc = uscc[:-1] + ("0" if uscc[-1] != "0" else "1")
    bad_id_number = id_number[:-1] + ("0" if id_number[-1] != "0" else "1")
    new_supplier = {"name": "账户错误合作社", "kind": "cooperative", "uscc": uscc, "county_code": "513431"}
    new_household = {"code": "DOC-H-2", "head_name": "测试户主", "id_number": id_number, "village": "火普村",
                     "members": 2, "consent_on": "2026-01-01", "consent_basis": "书面知情同意书"}
    sent = [
        ("post", "/api/v1/suppliers", "/api/v1/suppliers", {**new_supplier, "uscc": bad_uscc}, "invalid_uscc"),
        ("post", "/api/v1/suppliers", "/api/v1/suppliers", {**new_supplier, "bank_account": "1234"},
         "invalid_bank_account"),
        ("patch", "/api/v1/suppliers/{supplier_id}", f"/api/v1/suppliers/{supplier}",
         {"bank_account": "1234", "reason": "核对"}, "invalid_bank_account"),
        ("post", "/api/v1/suppliers/{supplier_id}/households", f"/api/v1/suppliers/{supplier}/households",
         {**new_household, "id_number": bad_id_number}, "invalid_id_number"),
        ("post", "/api/v1/suppliers/{supplier_id}/households", f"/api/v1/suppliers/{supplier}/households",
         {**new_household, "bank_account": "1234"}, "invalid_bank_account"),
        ("patch", "/api/v1/households/{household_id}", f"/api/v1/households/{world.ids['household_id']['own']}",
         {"bank_account": "1234", "reason": "核对"}, "invalid_bank_account"),
        ("post", "/api/v1/suppliers/{supplier_id}/benefit-links", f"/api/v1/suppliers/{supplier}/benefit-links",
         {"household_code": world.ids["household_code"]["other"], "id_number": bad_id_number, "kind": "purchase",
          "valid_from": "2026-01-01"}, "invalid_id_number"),
    ]
    wrong = []
    for method, path, url, body, code in sent:
        answer = client.open(url, method=method, headers=admin, json=body)
        assert (answer.status_code, answer.json["error"]["code"]) == (422, code), (path, answer.json)
        if problem := _undocumented(answer, paths[path][method]):
            wrong.append(f"{method.upper()} {path}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_a_region_code_naming_no_region_gets_a_documented_answer_on_every_route_taking_one(world):
    """A body naming a region code no region has is a 422 `region_not_found` on that field (`region_named`); each
    route whose body names a region must name that code, not only the stores'."""
    client, admin, supplier = world.app.test_client(), world.of("admin"), world.ids["supplier_id"]["own"]
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    nowhere = "519999"
    sent = [
        ("/api/v1/regions", "/api/v1/regions",
         {"code": "513499", "name": "测试县", "level": "county", "parent_code": nowhere}),
        ("/api/v1/pairings", "/api/v1/pairings",
         {"donor_code": nowhere, "recipient_code": "513431", "valid_from": "2030-01-01"}),
        ("/api/v1/suppliers", "/api/v1/suppliers",
         {"name": "无此县合作社", "kind": "cooperative", "uscc": make_uscc(9), "county_code": nowhere}),
        ("/api/v1/suppliers/{supplier_id}/households", f"/api/v1/suppliers/{supplier}/households",
         {"code": "DOC-H-3", "county_code": nowhere, "head_name": "测试户主", "id_number": make_id_number(),
          "village": "火普村", "members": 2, "consent_on": "2026-01-01", "consent_basis": "书面知情同意书"}),
        ("/api/v1/locations", "/api/v1/locations",
         {"code": "DOC-WH-9", "name": "无此县仓库", "kind": "warehouse", "region_code": nowhere}),
        ("/api/v1/stores", "/api/v1/stores", {"name": "无此区门店", "district_code": nowhere, "location_code": "X"}),
    ]
    wrong = []
    for path, url, body in sent:
        answer = client.post(url, headers=admin, json=body)
        assert (answer.status_code, answer.json["error"]["code"]) == (422, "region_not_found"), (path, answer.json)
        if problem := _undocumented(answer, paths[path]["post"]):
            wrong.append(f"POST {path}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_a_benefit_link_naming_no_household_gets_a_documented_answer(world):
    """Linking a household code the supplier cannot link (none registered under it, or another supplier's without
    its ID number) is a 404 `household_not_found`: the operation must name it beside the supplier's own 404."""
    client, supplier = world.app.test_client(), world.ids["supplier_id"]["own"]
    operation = client.get("/api/v1/openapi.json").get_json()["paths"][
        "/api/v1/suppliers/{supplier_id}/benefit-links"]["post"]
    for code in ("NO-SUCH-HOUSEHOLD", world.ids["household_code"]["other"]):
        answer = client.post(f"/api/v1/suppliers/{supplier}/benefit-links", headers=world.of("admin"), json={
            "household_code": code, "kind": "purchase", "valid_from": "2026-01-01"})
        assert (answer.status_code, answer.json["error"]["code"]) == (404, "household_not_found"), answer.json
        assert _undocumented(answer, operation) is None, _undocumented(answer, operation)


def test_a_clerk_listing_another_stores_orders_gets_a_documented_answer(world):
    """A clerk's `GET /orders?store_id=` naming a store not theirs is a 404 `store_not_found` (out of scope reads as
    missing): the list's document must name that 404."""
    client, clerk = world.app.test_client(), world.of("store_staff")
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/orders"]["get"]
    for store_id in (world.ids["store_id"]["other"], NO_SUCH_ID):
        answer = client.get(f"/api/v1/orders?store_id={store_id}", headers=clerk)
        assert (answer.status_code, answer.json["error"]["code"]) == (404, "store_not_found"), answer.json
        assert _undocumented(answer, operation) is None, _undocumented(answer, operation)
