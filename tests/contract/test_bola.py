"""The BOLA matrix: every route with a path parameter × every role × own / linked / another's object.

The table below is the contract (API.md, the `require_role(...)` of each view, issues 8 and 9): a role that
may not use a route gets 403 (anonymous 401); another co-op's, store's or consumer's object is 404, never 403
or 200; a household another co-op registered and this co-op only linked is readable (200) but not writable
(403 `household_read_only`); admins get 2xx everywhere they may call (and so do the roles a row names as
seeing every object, e.g. auditors and consumers reading stores); public reads are 200 for everyone. The
table's keys must equal the app's routes with a path parameter, so a new route cannot be added without
deciding its row here.
"""
from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest

from shop.clock import today
from tests.contract.conftest import ROLES, documented_codes
from tests.suppliers.factories import household_payload, make_id_number

PUBLIC = "public"
_serial = itertools.count(1)


@dataclass(frozen=True)
class Route:
    """Who may use a route and which world object its path parameter names."""

    roles: tuple[str, ...]
    obj: str
    write: bool = False
    body: object = None
    upload: bool = False
    sees_all: tuple[str, ...] = ("admin",)
    prepare: object = None


def _household_body(world, kind):
    """A fresh registration body whose ID number is born in the supplier's county."""
    county = "513431" if kind == "own" else "513437"
    return household_payload(id_number=make_id_number(county))


def _dividend_link_body(world, kind):
    """A dividend grant (may overlap) for a household the supplier already works with, from tomorrow (the world has
    sales today, and a dividend link never changes the shares of a day already sold)."""
    return {"household_code": world.ids["household_code"][kind], "kind": "dividend", "shares": 1,
            "valid_from": (today() + timedelta(days=1)).isoformat()}


def _sale_body(world, kind):
    """A cash sale of one unit in the store's open shift."""
    return {"lines": [{"sku": world.ids["sku"]["own"], "quantity": 1}], "shift_id": world.ids["shift_id"][kind],
            "payment": {"method": "cash", "tendered_fen": 10_000}}


def _close_shift(client, world, kind):
    """Close the store's open shift (as an admin), so a new one may open."""
    client.post(f"/api/v1/shifts/{world.ids['shift_id'][kind]}/close", json={"counted_cash_fen": 20000},
                headers=world.of("admin"))


def _ship(client, world, kind):
    """Ship the paid delivery order (as an admin), so it may be delivered."""
    client.post(f"/api/v1/orders/{world.ids['delivery_order_id'][kind]}/ship", headers=world.of("admin"),
                json={"carrier": "顺丰", "tracking_number": "SF1234567890"})


COOP = ("admin", "coop")
SEE_ALL = ("admin", "auditor")
STORE = ("admin", "store_staff")
ORDER_READERS = ("admin", "auditor", "store_staff", "consumer")
# reads of the money, stock and attribution chain: auditors see every object, read only
READ_COOP = (*COOP, "auditor")
READ_STORE = (*STORE, "auditor")
TABLE: dict[tuple[str, str], Route] = {
    ("GET", "/api/v1/suppliers/<supplier_id>"): Route(READ_COOP, "supplier_id", sees_all=SEE_ALL),
    ("PATCH", "/api/v1/suppliers/<supplier_id>"): Route(("admin",), "supplier_id", write=True,
                                                        body=lambda w, k: {"contact": "测试联系人"}),
    ("GET", "/api/v1/suppliers/<supplier_id>/history"): Route(READ_COOP, "supplier_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/suppliers/<supplier_id>/households"): Route(READ_COOP, "supplier_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/suppliers/<supplier_id>/households"): Route(COOP, "supplier_id", write=True,
                                                                  body=_household_body),
    ("GET", "/api/v1/suppliers/<supplier_id>/benefit-links"): Route(READ_COOP, "supplier_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/suppliers/<supplier_id>/benefit-links"): Route(COOP, "supplier_id", write=True,
                                                                     body=_dividend_link_body),
    ("GET", "/api/v1/suppliers/<supplier_id>/lots"): Route(READ_COOP, "supplier_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/suppliers/<supplier_id>/inventory-uploads"): Route(READ_COOP, "supplier_id",
                                                                        sees_all=SEE_ALL),
    ("POST", "/api/v1/suppliers/<supplier_id>/inventory-uploads"): Route(COOP, "supplier_id", write=True,
                                                                         upload=True),
    ("GET", "/api/v1/households/<household_id>"): Route(READ_COOP, "household_id", sees_all=SEE_ALL),
    ("PATCH", "/api/v1/households/<household_id>"): Route(COOP, "household_id", write=True,
                                                          body=lambda w, k: {"members": 5}),
    ("GET", "/api/v1/households/<household_id>/history"): Route(READ_COOP, "household_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/benefit-links/<link_id>"): Route(READ_COOP, "link_id", sees_all=SEE_ALL),
    ("PATCH", "/api/v1/benefit-links/<link_id>"): Route(COOP, "link_id", write=True,
                                                        body=lambda w, k: {"valid_until": "2026-12-31"}),
    ("GET", "/api/v1/lots/<lot_id>"): Route(READ_COOP, "lot_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/inventory-uploads/<upload_id>"): Route(READ_COOP, "upload_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/products/<sku>"): Route((PUBLIC,), "sku"),
    ("PATCH", "/api/v1/products/<sku>"): Route(COOP, "sku", write=True,
                                               body=lambda w, k: {"description": "新的描述"}),
    ("GET", "/api/v1/products/<sku>/history"): Route(READ_COOP, "sku", sees_all=SEE_ALL),
    ("GET", "/api/v1/trace/<trace_code>"): Route((PUBLIC,), "trace_code"),
    ("GET", "/t/<code>"): Route((PUBLIC,), "trace_code"),
    ("GET", "/t/<code>/qr.svg"): Route((PUBLIC,), "trace_code"),
    ("GET", "/api/v1/locations/<location_id>"): Route(("admin", "coop", "store_staff", "auditor"), "location_id"),
    # a location's stock per lot: staff their own store's location only (what they count)
    ("GET", "/api/v1/locations/<location_id>/stock"): Route(READ_STORE, "store_location_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/users/<user_id>"): Route(SEE_ALL, "user_id"),
    ("PATCH", "/api/v1/users/<user_id>"): Route(("admin",), "user_id", write=True,
                                                body=lambda w, k: {"active": True}),
    ("GET", "/api/v1/pairings/<pairing_id>"): Route((PUBLIC,), "pairing_id"),
    ("PATCH", "/api/v1/pairings/<pairing_id>"): Route(("admin",), "pairing_id", write=True,
                                                      body=lambda w, k: {"valid_until": "2035-12-31"}),
    ("GET", "/api/v1/regions/<code>"): Route((PUBLIC,), "region_code"),
    # stores: staff see their own store only; auditors every store; consumers the active ones (to pick one up at)
    ("GET", "/api/v1/stores/<store_id>"): Route(("admin", "auditor", "store_staff", "consumer"), "store_id",
                                                sees_all=("admin", "auditor", "consumer")),
    ("PATCH", "/api/v1/stores/<store_id>"): Route(("admin",), "store_id", write=True,
                                                  body=lambda w, k: {"name": f"大凉山体验店（改名 {k}）"}),
    ("GET", "/api/v1/stores/<store_id>/account-changes"): Route(SEE_ALL, "store_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/stores/<store_id>/shifts"): Route(STORE, "store_id", write=True, prepare=_close_shift,
                                                        body=lambda w, k: {"float_fen": 10000}),
    ("GET", "/api/v1/stores/<store_id>/shifts"): Route(READ_STORE, "store_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/shifts/<shift_id>"): Route(("admin", "auditor", "store_staff"), "shift_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/shifts/<shift_id>/close"): Route(STORE, "shift_id", write=True,
                                                       body=lambda w, k: {"counted_cash_fen": 20000}),
    ("GET", "/api/v1/stock-transfers/<transfer_id>"): Route(READ_STORE, "transfer_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/stock-transfers/<transfer_id>/receive"): Route(
        ("store_staff",), "transfer_id", write=True, body=lambda w, k: {"lines": w.facts["transfer_lines"][k]}),
    ("POST", "/api/v1/stock-transfers/<transfer_id>/cancel"): Route(("admin",), "transfer_id", write=True,
                                                                    body=lambda w, k: {"reason": "发错门店"}),
    ("GET", "/api/v1/stores/<store_id>/incoming-transfers"): Route(READ_STORE, "store_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/stores/<store_id>/returned-transfers"): Route(READ_STORE, "store_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/stock-adjustments/<adjustment_id>"): Route(READ_STORE, "adjustment_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/stores/<store_id>/counter-sales"): Route(STORE, "store_id", write=True, body=_sale_body),
    ("GET", "/api/v1/stores/<store_id>/sale-conflicts"): Route(READ_STORE, "store_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/stores/<store_id>/sale-conflicts/<conflict_id>/resolve"): Route(
        STORE, "sale_conflict", write=True, body=lambda w, k: {"note": "已按当前价格重新收银"}),
    ("GET", "/api/v1/stores/<store_id>/pickups"): Route(READ_STORE, "store_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/stores/<store_id>/pickups"): Route(("store_staff",), "store_id", write=True,
                                                         body=lambda w, k: {"pickup_code": w.facts["pickup_code"][k]}),
    # orders: consumers their own, staff their store's, admins and auditors any
    ("GET", "/api/v1/orders/<order_id>"): Route(ORDER_READERS, "order_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/orders/<order_id>/receipt"): Route(ORDER_READERS, "order_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/orders/<order_id>/receipt/prints"): Route(STORE, "sale_order_id", write=True),
    ("GET", "/api/v1/orders/<order_id>/pickup-qr.svg"): Route(("consumer",), "order_id", sees_all=()),  # the buyer
    ("GET", "/api/v1/orders/<order_id>/refunds"): Route(ORDER_READERS, "order_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/orders/<order_id>/after-sales"): Route(ORDER_READERS, "order_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/refunds/<refund_id>"): Route(ORDER_READERS, "refund_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/after-sales/<request_id>"): Route(ORDER_READERS, "request_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/orders/<order_id>/cancel"): Route(("admin", "consumer"), "pending_order_id", write=True),
    ("POST", "/api/v1/payments/sandbox/<payment_intent_id>/confirm"): Route(
        ("admin", "consumer"), "payment_intent_id", write=True, body=lambda w, k: {"outcome": "succeeded"}),
    ("POST", "/api/v1/orders/<order_id>/ship"): Route(
        ("admin",), "delivery_order_id", write=True,
        body=lambda w, k: {"carrier": "顺丰", "tracking_number": "SF1234567890"}),
    ("POST", "/api/v1/orders/<order_id>/deliver"): Route(("admin",), "delivery_order_id", write=True, prepare=_ship),
    ("POST", "/api/v1/orders/<order_id>/refunds"): Route(
        STORE, "sale_order_id", write=True, body=lambda w, k: {
            "lines": [{"line_id": w.facts["sale_line_id"][k], "quantity": 1, "resellable": True}],
            "reason": "顾客退货"}),
    ("POST", "/api/v1/orders/<order_id>/after-sales"): Route(
        ("consumer",), "collected_order_id", write=True, body=lambda w, k: {
            "lines": [{"line_id": w.facts["collected_line_id"][k], "quantity": 1}], "reason": "收到时已压坏"}),
    ("POST", "/api/v1/after-sales/<request_id>/approve"): Route(STORE, "request_id", write=True,
                                                                body=lambda w, k: {"resellable": False}),
    ("POST", "/api/v1/after-sales/<request_id>/withdraw"): Route(("consumer",), "request_id", write=True),
    ("POST", "/api/v1/after-sales/<request_id>/reject"): Route(STORE, "request_id", write=True,
                                                               body=lambda w, k: {"reason": "照片看不出破损"}),
    ("GET", "/api/v1/ledger/transactions/<transaction_id>"): Route(("admin", "auditor"), "ledger_transaction_id",
                                                                   sees_all=("admin", "auditor")),
    ("GET", "/api/v1/ledger/verifications/<verification_id>"): Route(("admin", "auditor"), "verification_id",
                                                                     sees_all=("admin", "auditor")),
    # statements: a co-op its households' accounts at itself (also a linked household) and its own supplier;
    # staff their own store
    ("GET", "/api/v1/households/<household_id>/statement"): Route(READ_COOP, "household_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/suppliers/<supplier_id>/statement"): Route(READ_COOP, "supplier_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/stores/<store_id>/statement"): Route(READ_STORE, "store_id", sees_all=SEE_ALL),
    # store remittances: admins record them; staff read their own store's, auditors every store's
    ("GET", "/api/v1/stores/<store_id>/remittances"): Route(READ_STORE, "store_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/stores/<store_id>/remittances"): Route(
        ("admin",), "store_id", write=True,
        body=lambda w, k: {"amount_fen": 1, "received_on": today().isoformat(), "reference": "DEP-1"}),
    ("GET", "/api/v1/stores/<store_id>/remittances/<remittance_id>"): Route(READ_STORE, "remittance",
                                                                            sees_all=SEE_ALL),
    ("GET", "/api/v1/disclosure/counties/<code>"): Route((PUBLIC,), "region_code"),
    ("GET", "/disclosure/<code>"): Route((PUBLIC,), "region_code"),
    # payout batches: a co-op its own households' batches (and their bank file), auditors every batch (masked);
    # only admins settle
    ("GET", "/api/v1/payout-batches/<batch_id>"): Route(READ_COOP, "batch_id", sees_all=SEE_ALL),
    ("GET", "/api/v1/payout-batches/<batch_id>/lines"): Route(READ_COOP, "batch_id", sees_all=SEE_ALL),
    ("POST", "/api/v1/payout-batches/<batch_id>/settle"): Route(
        ("admin",), "batch_id", write=True,
        body=lambda w, k: {"lines": [{"line_id": w.facts["payout_line_id"][k], "status": "paid"}]}),
}
# Routes with a path parameter that name no object of anyone's: Flask's static files, the API docs' assets.
NOT_OBJECTS = {("GET", "/static/<filename>"), ("GET", "/api/v1/docs/assets/<filename>")}
# The cookie-session pages (tests/web) keep their own scope tables: each page test asserts that every route of its
# blueprint naming an object was tried by a user of another scope (404), as this matrix does for bearer tokens.
PAGE_BLUEPRINTS = ("account", "storefront", "till", "coop", "web_static")
_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def world_path(rule: str, obj) -> str:
    """`rule` naming the world object `obj`: its id, or for a route naming two objects, each parameter's id."""
    return _PARAM.sub(lambda m: str(obj[m.group(1)] if isinstance(obj, dict) else obj), rule)


def route_keys(app) -> set[tuple[str, str]]:
    """(method, rule without converters) of every route of `app` with a path parameter."""
    return {(method, _PARAM.sub(r"<\1>", rule.rule)) for rule in app.url_map.iter_rules()
            if rule.arguments and rule.endpoint.partition(".")[0] not in PAGE_BLUEPRINTS
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def expected(route: Route, role: str, kind: str) -> set[int]:
    """The statuses the contract allows for `role` using `route` on an object of `kind`."""
    if PUBLIC in route.roles:
        return {200}
    if role == "anonymous":
        return {401}
    if role not in route.roles:
        return {403}
    if role in route.sees_all or kind.startswith("own"):
        return {200, 201, 202}
    if kind == "linked":
        return {403} if route.write else {200}
    return {404}


def _documented(world, method: str, rule: str) -> dict[int, set[str]]:
    """The error codes the OpenAPI document names for `method rule`, per status (none for a page)."""
    if not rule.startswith("/api/"):
        return {}
    if not hasattr(world, "document"):
        world.document = world.app.test_client().get("/api/v1/openapi.json").get_json()
    return documented_codes(world.document["paths"][_PARAM.sub(r"{\1}", rule)][method.lower()])


def _call(client, world, method: str, rule: str, route: Route, role: str, kind: str):
    """Send `method rule` for the world object of `kind` as `role`."""
    if route.prepare is not None:
        route.prepare(client, world, kind)
    path = world_path(rule, world.ids[route.obj][kind])
    options = {"headers": world.of(role)}
    if route.upload:
        csv = f"sku,lot_code,harvested_on,location,household_code,quantity\nX,{role}-{kind}-{next(_serial)},,,,\n"
        options.update(data={"file": (io.BytesIO(csv.encode()), "upload.csv")}, content_type="multipart/form-data")
    elif route.body is not None:
        options["json"] = route.body(world, kind)
    return client.open(path, method=method, **options)


def test_the_matrix_knows_every_route_with_a_path_parameter(app):
    """A route with a path parameter that is not in the table fails here: decide its row first."""
    actual = route_keys(app) - NOT_OBJECTS
    assert actual == set(TABLE), (f"routes missing from the BOLA table: {sorted(actual - set(TABLE))}; "
                                  f"table rows with no route: {sorted(set(TABLE) - actual)}")


@pytest.mark.parametrize(("method", "rule"), sorted(TABLE), ids=[f"{m} {r}" for m, r in sorted(TABLE)])
def test_bola_matrix(world, method, rule):
    """Every role on every kind of object of one route gets the contract's answer."""
    route, client = TABLE[(method, rule)], world.app.test_client()
    wrong, used = [], False
    for role in ROLES:
        if route.write and used and role in route.roles:
            world.reset()  # writes change their object: each role that may write gets untouched ones
        used = used or role in route.roles
        for kind in world.ids[route.obj]:
            response = _call(client, world, method, rule, route, role, kind)
            allowed = expected(route, role, kind)
            code = (response.get_json(silent=True) or {}).get("error", {}).get("code")
            if response.status_code not in allowed:
                wrong.append(f"{role:>11} on {kind:>6}: {response.status_code} {code or ''} "
                             f"(contract: {sorted(allowed)})")
            elif response.status_code == 403 and kind == "linked" and role == "coop":
                if code != "household_read_only":
                    wrong.append(f"{role:>11} on {kind:>6}: 403 {code} (contract: household_read_only)")
            elif response.status_code == 404 and not (code or "").endswith("_not_found"):
                wrong.append(f"{role:>11} on {kind:>6}: 404 {code} (contract: <object>_not_found)")
            if response.status_code >= 400 and rule.startswith("/api/"):
                named = _documented(world, method, rule).get(response.status_code, set())
                if code not in named:
                    wrong.append(f"{role:>11} on {kind:>6}: {response.status_code} {code}, which the OpenAPI "
                                 f"document does not name under its status (it names {sorted(named)})")
    assert not wrong, f"{method} {rule}:\n" + "\n".join(wrong)
