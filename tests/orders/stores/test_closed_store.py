"""A closed (deactivated) store's staff change nothing of it: every route store staff write through answers
`store_inactive` 409 for a closed store's clerk, found from the app's URL map so that a new store-staff write route is
covered (or this test fails until it is), except the deliberate exceptions named in `STILL_ALLOWED`; an admin still
settles what was left there."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from catalog import inventory
from catalog.inventory import StockRequest
from catalog.models import Location
from orders.models import AfterSalesRequest, Order, Refund, SaleConflict, StockTransfer, TransferLine
from shop.db import db
from tests.catalog.factories import LocationFactory, make_lot
from tests.contract.conftest import documented_codes
from tests.factories import UserFactory
from tests.orders.counter.conftest import make_counter, paid_pickup_order
from tests.orders.refunds.conftest import paid_order
from tests.shop.test_errors import assert_error
from tests.suppliers.test_inactive_supplier import _required_roles

# routes store staff call that change no store's data: their own sign-out and password
NOT_STORE_DATA = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/users/me/password")}

# deliberate exceptions, each with its reason (tested below)
STILL_ALLOWED = {
    # the till left open when the store closed is counted and its cash-up written: the money in it is accounted for
    ("POST", "/api/v1/shifts/<int:shift_id>/close"),
    # a paid order is the customer's: they collect what they paid for (a store closes only with none waiting, so
    # this is an order paid late, after the closure); refusing would leave them neither goods nor a refund
    ("POST", "/api/v1/stores/<int:store_id>/pickups"),
    # a copy of a sale's receipt (for its customer's claim, settled by an admin) changes no stock nor money: counted
    ("POST", "/api/v1/orders/<int:order_id>/receipt/prints"),
}

# (method, rule) -> the request a clerk of the closed store would send: (url, json body)
STAFF_WRITES = {
    ("POST", "/api/v1/stores/<int:store_id>/counter-sales"):  # a live sale (offline ones stamped before the
        lambda w: (f"/api/v1/stores/{w['store'].id}/counter-sales",  # closure are still taken: test_offline_sales)
                   {"lines": [{"sku": w["rice"].sku, "quantity": 1}],
                    "payment": {"method": "cash", "tendered_fen": 2000}, "shift_id": w["shift"].id}),
    ("POST", "/api/v1/stores/<int:store_id>/shifts"):
        lambda w: (f"/api/v1/stores/{w['store'].id}/shifts", {"float_fen": 10000}),
    ("POST", "/api/v1/stores/<int:store_id>/sale-conflicts/<int:conflict_id>/resolve"):
        lambda w: (f"/api/v1/stores/{w['store'].id}/sale-conflicts/{w['conflict'].id}/resolve",
                   {"note": "已重新收银"}),
    ("POST", "/api/v1/stock-adjustments"):
        lambda w: ("/api/v1/stock-adjustments", {"location_id": w["store"].location_id, "lot_id": w["lot"].id,
                                                 "delta": -1, "reason": "spoiled"}),
    ("POST", "/api/v1/stock-transfers/<int:transfer_id>/receive"):
        lambda w: (f"/api/v1/stock-transfers/{w['transfer'].id}/receive",
                   {"lines": [{"lot_id": w["transfer_lot"].id, "received": 2}]}),
    ("POST", "/api/v1/orders/<int:order_id>/refunds"):
        lambda w: (f"/api/v1/orders/{w['sale'].id}/refunds",
                   {"lines": [{"line_id": w["sale"].lines[0].id, "quantity": 1}], "reason": "顾客退货"}),
    ("POST", "/api/v1/after-sales/<int:request_id>/approve"):
        lambda w: (f"/api/v1/after-sales/{w['request'].id}/approve", {"resellable": False}),
    ("POST", "/api/v1/after-sales/<int:request_id>/reject"):
        lambda w: (f"/api/v1/after-sales/{w['request'].id}/reject", {"reason": "商品完好"}),
}


def _staff_writes(app) -> set[tuple[str, str]]:
    """Every (method, rule) of the API a store-staff user may send a change to."""
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"GET", "HEAD", "OPTIONS"}
            if "store_staff" in _required_roles(app.view_functions[rule.endpoint], method)}


@pytest.fixture
def closed(client, login):
    """A store with its shift left open, a cash sale of it, a collected pickup order with an open after-sales
    request, an unresolved sale conflict and a dispatched transfer; then the store closed by an admin."""
    counter = make_counter()
    store, shift = counter.store, counter.shift
    location = db.session.get(Location, store.location_id)
    sale = paid_order(location_id=store.location_id, lines=[(counter.rice, 1)], store=store, shift=shift)
    consumer = UserFactory(role="consumer")
    collected = paid_order(location_id=store.location_id, lines=[(counter.tea, 1)], channel="pickup", store=store,
                           consumer=consumer, payment_method="stripe", status="fulfilled")
    request = AfterSalesRequest(order_id=collected.id, reason="茶叶受潮",
                                lines=[{"line_id": collected.lines[0].id, "quantity": 1}])
    conflict = SaleConflict(store_id=store.id, shift_id=shift.id, code="sale_too_old", message="too old",
                            sale={"lines": []}, created_by=consumer.id)
    db.session.add_all([request, conflict])
    db.session.commit()
    assert client.patch(f"/api/v1/stores/{store.id}", json={"active": False, "reason": "关店"},
                        headers=login("admin")).status_code == 200
    warehouse = LocationFactory()  # dispatched before the closure, as a race past its check would leave it
    transfer_lot = make_lot(counter.rice, warehouse, quantity=5)
    inventory.take_lines(location_id=warehouse.id, lines=[StockRequest(counter.rice.id, 2)])
    transfer = StockTransfer(from_location_id=warehouse.id, to_location_id=location.id,
                             created_by=consumer.id, status="dispatched")
    transfer.lines.append(TransferLine(lot_id=transfer_lot.id, product_id=counter.rice.id, sent=2))
    db.session.add(transfer)
    db.session.commit()
    return {"store": store, "shift": shift, "rice": counter.rice, "lot": counter.old_lot, "sale": sale,
            "request": request, "conflict": conflict, "transfer": transfer, "transfer_lot": transfer_lot}


def test_every_store_staff_write_route_is_covered(app):
    assert _staff_writes(app) - NOT_STORE_DATA - STILL_ALLOWED == set(STAFF_WRITES)


@pytest.mark.parametrize("route", sorted(STAFF_WRITES), ids=" ".join)
def test_a_closed_stores_clerk_changes_nothing(client, login, closed, route):
    url, body = STAFF_WRITES[route](closed)
    clerk = login("store_staff", store_id=closed["store"].id)
    counts = [db.session.scalar(select(db.func.count()).select_from(model))
              for model in (Order, Refund)]
    response = client.open(url, method=route[0], headers=clerk, json=body)
    assert (response.status_code, (response.json.get("error") or {}).get("code")) == (409, "store_inactive"), \
        response.json
    db.session.expire_all()
    assert [db.session.scalar(select(db.func.count()).select_from(model)) for model in (Order, Refund)] == counts
    assert db.session.get(AfterSalesRequest, closed["request"].id).status == "open"
    assert db.session.get(SaleConflict, closed["conflict"].id).resolved_at is None
    assert db.session.get(StockTransfer, closed["transfer"].id).status == "dispatched"
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route[1])
    operation = client.get("/api/v1/openapi.json").json["paths"][path][route[0].lower()]
    assert "store_inactive" in documented_codes(operation).get(409, set())


def test_its_clerk_still_closes_the_shift_left_open_hands_over_an_order_paid_for_and_prints_receipts(client, login,
                                                                                                     closed):
    store = closed["store"]
    clerk = login("store_staff", store_id=store.id)
    late = paid_pickup_order(store, closed["rice"], pickup_code="482913")  # its payment arrived after the closure
    handed = client.post(f"/api/v1/stores/{store.id}/pickups", json={"pickup_code": "482913"}, headers=clerk)
    assert (handed.status_code, handed.json.get("status")) == (200, "fulfilled"), handed.json
    printed = client.post(f"/api/v1/orders/{closed['sale'].id}/receipt/prints", headers=clerk)
    assert (printed.status_code, printed.json.get("prints")) == (200, 1), printed.json
    assert db.session.get(Order, late.id).status == "fulfilled"
    closed_shift = client.post(f"/api/v1/shifts/{closed['shift'].id}/close", json={"counted_cash_fen": 12000},
                               headers=clerk)
    assert closed_shift.status_code == 200, closed_shift.json


def test_an_admin_still_settles_what_a_closed_store_left(client, login, closed):
    admin = login("admin")
    store = closed["store"]
    resolved = client.post(f"/api/v1/stores/{store.id}/sale-conflicts/{closed['conflict'].id}/resolve",
                           json={"note": "已与顾客核对"}, headers=admin)
    rejected = client.post(f"/api/v1/after-sales/{closed['request'].id}/reject", json={"reason": "商品完好"},
                           headers=admin)
    refunded = client.post(f"/api/v1/orders/{closed['sale'].id}/refunds", headers=admin,
                           json={"lines": [{"line_id": closed["sale"].lines[0].id, "quantity": 1}],
                                 "reason": "顾客退货"})
    assert [resolved.status_code, rejected.status_code, refunded.status_code] == [200, 200, 201], (
        resolved.json, rejected.json, refunded.json)
    assert_error(client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 100}, headers=admin),
                 409, "store_inactive")
