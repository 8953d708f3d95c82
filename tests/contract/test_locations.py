"""Every write that creates something readable says where: a 201 (or a 202 whose work is polled) carries `Location`,
the GET route of what it created, which its caller reads back as the same object; a replay under the same
Idempotency-Key carries the same `Location`. A new 201 or 202 in the OpenAPI document without a `Location` fails."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest

from catalog.models import Location
from orders.ledger import accounts, chain
from orders.models import Store
from shop.clock import today
from shop.db import db
from suppliers.models import Supplier
from tests.contract.test_bola import _close_shift, _dividend_link_body, _household_body, _sale_body
from tests.factories import DEFAULT_PASSWORD
from tests.suppliers.factories import make_bank_account, make_uscc

NEW_PHONE = "13912340001"


def _code(location_id: int) -> str:
    """The code of a world location."""
    return db.session.get(Location, location_id).code


def _store_location(world, kind: str) -> int:
    """The stock location of the world's `kind` store."""
    return db.session.get(Store, world.ids["store_id"][kind]).location_id


def _new_store_location(client, world) -> str:
    """A store location added by an admin, for a new store to open on."""
    body = {"code": "CT-ST-NEW", "name": "新门店库房", "kind": "store", "region_code": "440606"}
    assert client.post("/api/v1/locations", json=body, headers=world.of("admin")).status_code == 201
    return body["code"]


def _upload_file(client, world):
    """A one-row CSV of the own co-op's product, sent as an upload."""
    import io

    row = f"{world.ids['sku']['own']},LOC-UP-1,2026-09-01,{_code(world.ids['location_id']['own'])}," \
          f"{world.ids['household_code']['own']},5"
    csv = f"sku,lot_code,harvested_on,location,household_code,quantity\n{row}\n".encode()
    return {"data": {"file": (io.BytesIO(csv), "lots.csv")}, "content_type": "multipart/form-data"}


def _supplier_owed(client, world) -> None:
    """The own supplier has a bank account and is owed a payment, so a supplier batch has something to pay."""
    supplier = db.session.get(Supplier, world.ids["supplier_id"]["own"])
    supplier.bank_account = make_bank_account()
    chain.post(kind="line_paid", postings=[(accounts.payments("sandbox"), -700, "payment"),
                                           (accounts.supplier(supplier.id), 700, "supplier")])
    db.session.commit()


@dataclass(frozen=True)
class Case:
    """How a role creates one object through a route, and which field names it in both answers."""

    role: str
    path: object  # world -> the URL
    body: object = None  # (client, world) -> the JSON body
    send: object = None  # (client, world) -> keyword arguments of the request other than json (an upload)
    field: str = "id"
    read_as: str | None = None  # where the GET answer names it, when not under `field` (a shift's report: shift.id)
    prepare: object = None  # (client, world) -> None, before the write


def _sign_in(client, username: str) -> dict:
    """The Authorization headers of a user who just registered."""
    token = client.post("/api/v1/auth/token", json={"username": username, "password": "a good password 1"})
    return {"Authorization": f"Bearer {token.json['access_token']}"}


CASES: dict[tuple[str, str], Case] = {
    ("post", "/api/v1/auth/register"): Case(
        "anonymous", lambda w: "/api/v1/auth/register",
        lambda c, w: {"phone": NEW_PHONE, "password": "a good password 1"}),
    ("post", "/api/v1/users"): Case("admin", lambda w: "/api/v1/users", lambda c, w: {
        "username": "auditor-two", "password": DEFAULT_PASSWORD, "role": "auditor"}),
    ("post", "/api/v1/regions"): Case("admin", lambda w: "/api/v1/regions", lambda c, w: {
        "code": "520581", "name": "黔西市", "level": "county", "parent_code": "520500", "side": "recipient"},
        field="code"),
    ("post", "/api/v1/pairings"): Case("admin", lambda w: "/api/v1/pairings", lambda c, w: {
        "donor_code": "440604", "recipient_code": "513437", "valid_from": "2021-03-01"}),
    ("post", "/api/v1/suppliers"): Case("admin", lambda w: "/api/v1/suppliers", lambda c, w: {
        "name": "昭觉县新建合作社", "kind": "cooperative", "uscc": make_uscc(901), "county_code": "513431"}),
    ("post", "/api/v1/suppliers/{supplier_id}/households"): Case(
        "coop", lambda w: f"/api/v1/suppliers/{w.ids['supplier_id']['own']}/households",
        lambda c, w: _household_body(w, "own")),
    ("post", "/api/v1/suppliers/{supplier_id}/benefit-links"): Case(
        "coop", lambda w: f"/api/v1/suppliers/{w.ids['supplier_id']['own']}/benefit-links",
        lambda c, w: _dividend_link_body(w, "own")),
    ("post", "/api/v1/products"): Case("coop", lambda w: "/api/v1/products", lambda c, w: {
        "sku": "ZJ-KQ-NEW", "name": "昭觉苦荞茶", "category": "茶叶", "unit": "bag", "net_weight_g": 250,
        "price_fen": 2980, "county_code": "513431"}, field="sku"),
    ("post", "/api/v1/locations"): Case("admin", lambda w: "/api/v1/locations", lambda c, w: {
        "code": "WH-NEW", "name": "新仓库", "kind": "warehouse", "region_code": "513431"}),
    ("post", "/api/v1/lots"): Case("coop", lambda w: "/api/v1/lots", lambda c, w: {
        "product_sku": w.ids["sku"]["own"], "lot_code": "2026-NEW-01", "harvested_on": "2026-09-03",
        "village": "测试村", "location_code": _code(w.ids["location_id"]["own"]),
        "contributions": [{"household_code": w.ids["household_code"]["own"], "quantity": 10}]}),
    ("post", "/api/v1/stores"): Case("admin", lambda w: "/api/v1/stores", lambda c, w: {
        "name": "大凉山体验店（新）", "district_code": "440606", "location_code": _new_store_location(c, w)}),
    ("post", "/api/v1/stores/{store_id}/shifts"): Case(
        "store_staff", lambda w: f"/api/v1/stores/{w.ids['store_id']['own']}/shifts",
        lambda c, w: {"float_fen": 10000}, read_as="shift.id", prepare=lambda c, w: _close_shift(c, w, "own")),
    ("post", "/api/v1/stock-transfers"): Case("admin", lambda w: "/api/v1/stock-transfers", lambda c, w: {
        "from_location": _code(w.ids["location_id"]["own"]), "to_location": _code(_store_location(w, "own")),
        "lines": [{"sku": w.ids["sku"]["own"], "quantity": 1}]}),
    ("post", "/api/v1/stock-adjustments"): Case("store_staff", lambda w: "/api/v1/stock-adjustments", lambda c, w: {
        "location_id": _store_location(w, "own"), "lot_id": w.facts["transfer_lines"]["own"][0]["lot_id"],
        "delta": -1, "reason": "damaged"}),
    ("post", "/api/v1/orders"): Case("consumer", lambda w: "/api/v1/orders", lambda c, w: {
        "channel": "pickup", "store_id": w.ids["store_id"]["own"],
        "lines": [{"sku": w.ids["sku"]["own"], "quantity": 1}]}),
    ("post", "/api/v1/stores/{store_id}/counter-sales"): Case(
        "store_staff", lambda w: f"/api/v1/stores/{w.ids['store_id']['own']}/counter-sales",
        lambda c, w: _sale_body(w, "own")),
    ("post", "/api/v1/orders/{order_id}/refunds"): Case(
        "store_staff", lambda w: f"/api/v1/orders/{w.ids['sale_order_id']['own']}/refunds", lambda c, w: {
            "lines": [{"line_id": w.facts["sale_line_id"]["own"], "quantity": 1, "resellable": True}],
            "reason": "顾客退货"}),
    ("post", "/api/v1/orders/{order_id}/after-sales"): Case(
        "consumer", lambda w: f"/api/v1/orders/{w.ids['collected_order_id']['own']}/after-sales", lambda c, w: {
            "lines": [{"line_id": w.facts["collected_line_id"]["own"], "quantity": 1}], "reason": "收到时已压坏"}),
    ("post", "/api/v1/suppliers/{supplier_id}/inventory-uploads"): Case(
        "coop", lambda w: f"/api/v1/suppliers/{w.ids['supplier_id']['own']}/inventory-uploads",
        send=_upload_file),
    ("post", "/api/v1/payout-batches"): Case("admin", lambda w: "/api/v1/payout-batches", lambda c, w: {
        "party": "supplier", "until": (today() + timedelta(days=1)).isoformat()}, prepare=_supplier_owed),
    ("post", "/api/v1/stores/{store_id}/remittances"): Case(
        "admin", lambda w: f"/api/v1/stores/{w.ids['store_id']['own']}/remittances", lambda c, w: {
            "amount_fen": 1, "received_on": today().isoformat(), "reference": "DEP-LOC"}),
    ("post", "/api/v1/ledger/verifications"): Case("auditor", lambda w: "/api/v1/ledger/verifications"),
}


def _created_responses(client) -> dict[tuple[str, str], dict]:
    """The OpenAPI document's answers that create something (201) or start work polled later (202), by operation."""
    paths = client.get("/api/v1/openapi.json").json["paths"]
    return {(method, path): {status: operation["responses"][status] for status in ("201", "202")
                             if status in operation["responses"]}
            for path, operations in paths.items() for method, operation in operations.items()
            if isinstance(operation, dict) and {"201", "202"} & set(operation.get("responses", {}))}


def test_every_answer_that_creates_documents_its_location_and_is_tried_here(client):
    created = _created_responses(client)

    undocumented = [f"{method.upper()} {path} {status}" for (method, path), answers in created.items()
                    for status, answer in answers.items() if "Location" not in answer.get("headers", {})]
    assert undocumented == [], "a 201/202 without a Location rule (`location=ReadAt(...)`): " + ", ".join(undocumented)
    assert set(created) == set(CASES), f"add a case here: {sorted(set(created) - set(CASES))}"


@pytest.mark.parametrize("operation", sorted(CASES), ids=[f"{m.upper()} {p}" for m, p in sorted(CASES)])
def test_the_location_of_what_a_write_created_reads_it_back(world, operation):
    case, client = CASES[operation], world.app.test_client()
    if case.prepare is not None:
        case.prepare(client, world)
    headers = {**world.of(case.role), "Idempotency-Key": f"location-{operation[1]}"}
    request = case.send(client, world) if case.send else {"json": case.body(client, world) if case.body else None}

    created = client.post(case.path(world), headers=headers, **request)

    assert created.status_code in (201, 202), created.json
    location = created.headers.get("Location")
    assert location and re.fullmatch(r"/api/v1/\S+", location), location
    reader = _sign_in(client, NEW_PHONE) if case.role == "anonymous" else world.of(case.role)
    read = client.get(location, headers=reader)
    assert read.status_code == 200, read.json
    named = read.json
    for key in (case.read_as or case.field).split("."):
        named = named[key]
    assert named == created.json[case.field]
    if any(p["name"] == "Idempotency-Key" for p in _parameters(client, operation)):
        again_request = case.send(client, world) if case.send else request
        again = client.post(case.path(world), headers=headers, **again_request)
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.headers["Location"] == location


def _parameters(client, operation: tuple[str, str]) -> list[dict]:
    """The parameters the OpenAPI document lists for `operation`."""
    method, path = operation
    return client.get("/api/v1/openapi.json").json["paths"][path][method].get("parameters", [])
