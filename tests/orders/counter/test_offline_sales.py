"""Offline counter sales sent later: accepted by DESIGN.md's rules on dates and prices, else kept as conflicts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from catalog import inventory
from catalog.models import ProductChange
from orders.models import Order, OutboxEvent, SaleConflict
from orders.outbox import sale_date_of
from shop.db import db, utcnow
from shop.idempotency import KEEP_FOR, IdempotencyKey, forget_old_keys
from tests.catalog.factories import LocationFactory, make_lot
from tests.orders.counter.conftest import clerk, sale_body
from tests.orders.factories import StoreFactory


def _offline(counter, at, **overrides) -> dict:
    """An offline cash sale of 3 bags of rice at ¥20, made at `at`."""
    body = sale_body(counter, lines=[{"sku": counter.rice.sku, "quantity": 3, "unit_price_fen": 2000}],
                     client_created_at=at.isoformat())
    return {**body, **overrides}


def _conflicts() -> list[SaleConflict]:
    db.session.expire_all()
    return db.session.scalars(select(SaleConflict).order_by(SaleConflict.id)).all()


def _orders() -> int:
    return db.session.scalar(select(func.count(Order.id)))


def _url(counter) -> str:
    return f"/api/v1/stores/{counter.store.id}/counter-sales"


def test_an_offline_sale_is_charged_the_price_at_its_timestamp(client, counter, staff):
    at = utcnow() - timedelta(hours=3)
    db.session.add(ProductChange(product_id=counter.rice.id, field="price_fen", old_value=1800, new_value=2000,
                                 changed_at=utcnow() - timedelta(hours=1)))
    db.session.add(ProductChange(product_id=counter.rice.id, field="platform_fee_bp", old_value=400, new_value=500,
                                 changed_at=utcnow() - timedelta(hours=2)))
    db.session.commit()
    body = _offline(counter, at, lines=[{"sku": counter.rice.sku, "quantity": 3, "unit_price_fen": 1800}])

    response = client.post(_url(counter), json=body, headers=staff)

    assert response.status_code == 201, response.json
    assert (response.json["total_fen"], response.json["change_fen"]) == (5400, 4600)
    assert response.json["late_entry"] is False
    db.session.expire_all()
    order = db.session.get(Order, response.json["id"])
    assert order.paid_at == at and order.client_created_at == at and order.sale_date == sale_date_of(at)
    assert (order.lines[0].unit_price_fen, order.lines[0].platform_fee_bp) == (1800, 400)  # the terms back then
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.order_id == order.id))
    assert (event.kind, event.amount_fen, event.occurred_at, event.sale_date) == ("line_paid", 5400, at,
                                                                                 sale_date_of(at))


def test_todays_price_is_refused_for_a_sale_made_before_a_price_change(client, counter, staff):
    db.session.add(ProductChange(product_id=counter.rice.id, field="price_fen", old_value=1800, new_value=2000,
                                 changed_at=utcnow() - timedelta(hours=1)))
    db.session.commit()

    response = client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(hours=3)), headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, "price_mismatch")
    assert response.json["error"]["details"]["lines"] == [{"line": 0, "sku": counter.rice.sku,
                                                           "unit_price_fen": 2000, "price_fen": 1800}]
    [conflict] = _conflicts()
    assert response.json["error"]["details"]["conflict_id"] == conflict.id
    assert (conflict.code, conflict.store_id, conflict.shift_id) == ("price_mismatch", counter.store.id,
                                                                     counter.shift.id)
    assert conflict.sale["lines"][0]["unit_price_fen"] == 2000
    assert _orders() == 0


def test_a_closed_shift_takes_an_accepted_offline_sale_as_a_late_entry(client, counter, staff):
    counter.shift.closed_at, counter.shift.closed_by = utcnow() - timedelta(hours=1), counter.shift.opened_by
    counter.shift.counted_cash_fen = 20000
    db.session.commit()

    response = client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(hours=2)), headers=staff)

    assert response.status_code == 201, response.json
    assert response.json["late_entry"] is True and response.json["receipt"]["late_entry"] is True
    assert db.session.get(Order, response.json["id"]).shift_id == counter.shift.id


def test_a_late_cash_sale_explains_the_surplus_its_shift_closed_with(client, counter, staff):
    sold = client.post(_url(counter), json=sale_body(counter), headers=staff)  # ¥60 rung up online
    assert sold.status_code == 201, sold.json
    float_fen = counter.shift.float_fen
    # the drawer also holds the ¥60 of a sale the till made offline and has not sent yet
    closed = client.post(f"/api/v1/shifts/{counter.shift.id}/close",
                         json={"counted_cash_fen": float_fen + 6000 + 6000}, headers=staff)
    assert closed.json["methods"][0]["difference_fen"] == 6000

    late = client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(minutes=1)), headers=staff)
    report = client.get(f"/api/v1/shifts/{counter.shift.id}", headers=staff).json

    assert late.status_code == 201 and late.json["late_entry"] is True, late.json
    cash, card = report["methods"]
    assert (cash["expected_fen"], cash["counted_fen"], cash["difference_fen"]) == (
        float_fen + 6000, float_fen + 12000, 6000)  # the cash-up as it was closed
    assert (cash["late_entries_fen"], cash["unexplained_fen"]) == (6000, 0)  # the late sale explains the surplus
    assert (card["late_entries_fen"], card["unexplained_fen"]) == (0, None)
    assert [entry["order_id"] for entry in report["late_entries"]] == [late.json["id"]]


@pytest.mark.parametrize(("moment", "code"), [
    (lambda shift: utcnow() - timedelta(hours=73), "sale_too_old"),
    (lambda shift: utcnow() + timedelta(minutes=10), "sale_in_future"),
    (lambda shift: shift.opened_at - timedelta(minutes=1), "sale_before_shift"),
])
def test_till_timestamps_outside_the_rules_become_conflicts(client, counter, staff, moment, code):
    if code == "sale_too_old":
        counter.shift.opened_at = utcnow() - timedelta(hours=80)
        db.session.commit()

    response = client.post(_url(counter), json=_offline(counter, moment(counter.shift)), headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, code)
    [conflict] = _conflicts()
    assert conflict.code == code and response.json["error"]["details"]["conflict_id"] == conflict.id
    assert _orders() == 0
    assert inventory.available(location_id=counter.store.location_id, product_id=counter.rice.id) == 13


def test_a_sale_stamped_after_its_shift_closed_is_a_conflict(client, counter, staff):
    counter.shift.closed_at, counter.shift.closed_by = utcnow() - timedelta(hours=2), counter.shift.opened_by
    db.session.commit()

    response = client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(hours=1)), headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, "sale_after_shift")
    assert [c.code for c in _conflicts()] == ["sale_after_shift"]


def test_a_small_clock_skew_ahead_is_accepted_as_now(client, counter, staff):
    response = client.post(_url(counter), json=_offline(counter, utcnow() + timedelta(minutes=1)), headers=staff)

    assert response.status_code == 201, response.json
    assert db.session.get(Order, response.json["id"]).paid_at <= utcnow()


def test_stock_gone_is_a_conflict_and_nothing_is_taken(client, counter, staff):
    body = _offline(counter, utcnow() - timedelta(hours=1),
                    lines=[{"sku": counter.rice.sku, "quantity": 1, "unit_price_fen": 2000},
                           {"sku": counter.tea.sku, "quantity": 9, "unit_price_fen": 3500}],
                    payment={"method": "card"})

    response = client.post(_url(counter), json=body, headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, "insufficient_stock")
    [conflict] = _conflicts()
    assert conflict.details["lines"] == [{"sku": counter.tea.sku, "product_id": counter.tea.id, "requested": 9,
                                          "available": 4}]
    assert inventory.available(location_id=counter.store.location_id, product_id=counter.rice.id) == 13
    assert _orders() == 0


def test_a_resent_conflict_is_the_same_conflict(client, counter, staff):
    body = _offline(counter, utcnow() - timedelta(hours=80))
    first = client.post(_url(counter), json=body, headers={**staff, "Idempotency-Key": "till-2-0001"})

    again = client.post(_url(counter), json=body, headers={**clerk(counter.store), "Idempotency-Key": "till-2-0001"})

    assert first.status_code == again.status_code == 409
    assert first.json["error"]["details"]["conflict_id"] == again.json["error"]["details"]["conflict_id"]
    assert len(_conflicts()) == 1 and _conflicts()[0].idempotency_key == "till-2-0001"


def test_another_sale_under_the_key_of_a_recorded_conflict_is_refused_not_told_it_was_recorded(client, counter, staff):
    refused = client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(hours=80)),
                          headers={**staff, "Idempotency-Key": "till-2-0004"})
    assert refused.status_code == 409 and len(_conflicts()) == 1
    other = _offline(counter, utcnow() - timedelta(minutes=5), lines=[{"sku": counter.rice.sku, "quantity": 1,
                                                                       "unit_price_fen": 2000}])

    again = client.post(_url(counter), json=other, headers={**staff, "Idempotency-Key": "till-2-0004"})

    assert (again.status_code, again.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert "conflict_id" not in again.json["error"]["details"]  # the till is not told this sale was kept
    assert len(_conflicts()) == 1 and _orders() == 0


def test_a_live_sale_under_the_key_of_a_recorded_conflict_is_refused_not_made(client, counter, staff):
    refused = client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(hours=80)),
                          headers={**staff, "Idempotency-Key": "till-2-0005"})
    assert refused.status_code == 409 and len(_conflicts()) == 1

    again = client.post(_url(counter), json=sale_body(counter), headers={**staff, "Idempotency-Key": "till-2-0005"})

    assert (again.status_code, again.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert len(_conflicts()) == 1 and _orders() == 0
    assert inventory.available(location_id=counter.store.location_id, product_id=counter.rice.id) == 13


@pytest.mark.parametrize("offline", [True, False])
def test_a_sale_resent_after_its_idempotency_key_was_swept_is_still_one_sale(client, counter, staff, offline):
    body = _offline(counter, utcnow() - timedelta(minutes=5)) if offline else sale_body(counter)
    first = client.post(_url(counter), json=body, headers={**staff, "Idempotency-Key": "till-2-0002"})
    assert first.status_code == 201, first.json
    on_hand = inventory.available(location_id=counter.store.location_id, product_id=counter.rice.id)
    db.session.execute(update(IdempotencyKey).values(created_at=utcnow() - KEEP_FOR - timedelta(minutes=1)))
    assert forget_old_keys() == 1
    db.session.commit()

    again = client.post(_url(counter), json=body, headers={**clerk(counter.store), "Idempotency-Key": "till-2-0002"})

    assert again.status_code == 201, again.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (again.json["id"], again.json["change_fen"]) == (first.json["id"], first.json["change_fen"])
    impact = again.json["receipt"]["impact"]  # the ledger has attributed the sale since
    assert again.json["receipt"] == {**first.json["receipt"], "impact": impact}
    assert _orders() == 1
    assert inventory.available(location_id=counter.store.location_id, product_id=counter.rice.id) == on_hand
    assert db.session.scalar(select(func.count(OutboxEvent.id))) == 1


def test_another_sale_under_a_key_whose_first_sale_was_made_long_ago_is_refused(client, counter, staff):
    first = client.post(_url(counter), json=sale_body(counter), headers={**staff, "Idempotency-Key": "till-2-0003"})
    assert first.status_code == 201, first.json
    db.session.execute(update(IdempotencyKey).values(created_at=utcnow() - KEEP_FOR - timedelta(minutes=1)))
    forget_old_keys()
    db.session.commit()
    other = sale_body(counter, lines=[{"sku": counter.rice.sku, "quantity": 1}],
                      payment={"method": "card"})

    again = client.post(_url(counter), json=other, headers={**staff, "Idempotency-Key": "till-2-0003"})

    assert (again.status_code, again.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert _orders() == 1


def test_an_offline_sale_names_every_price(client, counter, staff):
    body = _offline(counter, utcnow(), lines=[{"sku": counter.rice.sku, "quantity": 1}])

    response = client.post(_url(counter), json=body, headers=staff)

    assert response.status_code == 422
    assert response.json["error"]["details"]["lines"] == {"0": {"unit_price_fen": ["Required for an offline sale."]}}
    assert _conflicts() == []


def test_a_till_timestamp_needs_an_offset(client, counter, staff):
    body = _offline(counter, utcnow(), client_created_at="2026-11-26T10:00:00")

    assert client.post(_url(counter), json=body, headers=staff).status_code == 422


def test_sale_conflicts_are_listed_for_the_store_only(client, counter, staff):
    client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(hours=80)), headers=staff)
    client.post(_url(counter), json=_offline(counter, utcnow() + timedelta(hours=1)), headers=staff)
    url = f"/api/v1/stores/{counter.store.id}/sale-conflicts"

    page = client.get(f"{url}?limit=1", headers=staff)
    rest = client.get(f"{url}?limit=1&cursor={page.json['next_cursor']}", headers=staff)
    stranger = client.get(url, headers=clerk(StoreFactory()))

    assert page.status_code == 200
    assert [c["code"] for c in page.json["items"] + rest.json["items"]] == ["sale_too_old", "sale_in_future"]
    assert page.json["items"][0]["sale"]["shift_id"] == counter.shift.id
    assert (stranger.status_code, stranger.json["error"]["code"]) == (404, "store_not_found")


def test_the_store_resolves_a_sale_conflict_once_with_a_note_and_lists_the_open_ones(client, counter, staff, login):
    refused = client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(hours=80)), headers=staff)
    client.post(_url(counter), json=_offline(counter, utcnow() + timedelta(hours=1)), headers=staff)
    old, future = (conflict.id for conflict in _conflicts())
    assert refused.json["error"]["details"]["conflict_id"] == old
    url = f"/api/v1/stores/{counter.store.id}/sale-conflicts"
    note = "已按当前价格重新收银，顾客无异议"

    resolved = client.post(f"{url}/{old}/resolve", headers=staff, json={"note": note})
    again = client.post(f"{url}/{old}/resolve", headers=login("admin"), json={"note": "再处理一次"})
    stranger = client.post(f"/api/v1/stores/{counter.store.id}/sale-conflicts/{future}/resolve",
                           headers=clerk(StoreFactory()), json={"note": note})
    elsewhere = client.post(f"/api/v1/stores/{StoreFactory().id}/sale-conflicts/{future}/resolve",
                            headers=login("admin"), json={"note": note})
    no_note = client.post(f"{url}/{future}/resolve", headers=staff, json={})
    auditor = client.post(f"{url}/{future}/resolve", headers=login("auditor"), json={"note": note})
    by_admin = client.post(f"{url}/{future}/resolve", headers=login("admin"), json={"note": "顾客未付款，作废"})

    assert resolved.status_code == 200, resolved.json
    assert resolved.json["resolved_at"] is not None and resolved.json["resolution_note"] == note
    clerk_id = client.get("/api/v1/users/me", headers=staff).json["id"]
    assert resolved.json["resolved_by"] == clerk_id
    assert (again.status_code, again.json["error"]["code"]) == (409, "sale_conflict_resolved")
    assert again.json["error"]["details"]["resolved_by"] == clerk_id
    assert (stranger.status_code, stranger.json["error"]["code"]) == (404, "store_not_found")
    assert (elsewhere.status_code, elsewhere.json["error"]["code"]) == (404, "sale_conflict_not_found")
    assert no_note.status_code == 422 and "note" in no_note.json["error"]["details"]
    assert auditor.status_code == 403
    assert by_admin.status_code == 200
    assert db.session.get(SaleConflict, old).resolution_note == note   # the second resolve changed nothing
    listed = {flag: [c["id"] for c in client.get(f"{url}?resolved={flag}", headers=staff).json["items"]]
              for flag in ("true", "false")}
    assert listed == {"true": [old, future], "false": []}


def test_the_open_sale_conflicts_are_the_unresolved_ones(client, counter, staff):
    client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(hours=80)), headers=staff)
    client.post(_url(counter), json=_offline(counter, utcnow() + timedelta(hours=1)), headers=staff)
    old, future = (conflict.id for conflict in _conflicts())
    url = f"/api/v1/stores/{counter.store.id}/sale-conflicts"
    client.post(f"{url}/{old}/resolve", headers=staff, json={"note": "已补录"})

    listed = {flag: [c["id"] for c in client.get(f"{url}?resolved={flag}", headers=staff).json["items"]]
              for flag in ("true", "false")}

    assert listed == {"true": [old], "false": [future]}
    assert [c["id"] for c in client.get(url, headers=staff).json["items"]] == [old, future]


@pytest.mark.parametrize(("payment", "code"), [({"method": "card", "tendered_fen": 5000}, "validation_error"),
                                               ({"method": "cash", "tendered_fen": 100}, "tendered_below_total"),
                                               ({"method": "cash", "tendered_fen": 16000}, "tendered_too_much")])
def test_a_malformed_offline_payment_is_a_422_for_the_till_to_fix_not_a_conflict(client, counter, staff, payment,
                                                                                   code):
    response = client.post(_url(counter), json=_offline(counter, utcnow(), payment=payment), headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (422, code)
    assert _conflicts() == [] and _orders() == 0


def test_an_offline_sale_of_an_item_no_longer_on_sale_is_a_conflict_for_the_manager(client, counter, staff):
    counter.rice.status = "archived"
    db.session.commit()

    response = client.post(_url(counter), json=_offline(counter, utcnow() - timedelta(minutes=5)), headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, "unknown_item")
    assert [conflict.code for conflict in _conflicts()] == ["unknown_item"] and _orders() == 0


def test_an_offline_sale_of_a_lot_not_held_at_the_store_is_a_conflict_for_the_manager(client, counter, staff):
    elsewhere = make_lot(counter.rice, LocationFactory(), quantity=4)
    db.session.commit()
    body = _offline(counter, utcnow() - timedelta(minutes=5))
    body["lines"] = [{"trace_code": elsewhere.trace_code, "quantity": 1, "unit_price_fen": 2000}]

    response = client.post(_url(counter), json=body, headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, "lot_not_held_here")
    assert [conflict.code for conflict in _conflicts()] == ["lot_not_held_here"] and _orders() == 0


def test_a_closed_stores_queued_sales_made_before_it_closed_are_taken_and_later_ones_are_conflicts(client, counter,
                                                                                                      staff, login):
    before = utcnow() - timedelta(hours=2)
    closed = client.patch(f"/api/v1/stores/{counter.store.id}", json={"active": False}, headers=login("admin"))
    assert closed.status_code == 200, closed.json
    after = utcnow()

    made = client.post(_url(counter), json=_offline(counter, before), headers={**staff, "Idempotency-Key": "q-1"})
    late = client.post(_url(counter), json=_offline(counter, after), headers={**staff, "Idempotency-Key": "q-2"})

    assert made.status_code == 201, made.json
    assert (late.status_code, late.json["error"]["code"]) == (409, "store_inactive")
    [conflict] = _conflicts()
    assert late.json["error"]["details"]["conflict_id"] == conflict.id
    assert (conflict.code, conflict.store_id, conflict.idempotency_key) == ("store_inactive", counter.store.id, "q-2")
    assert _orders() == 1


def test_a_reopened_stores_queued_sales_stamped_while_it_was_closed_are_conflicts(client, counter, staff, login):
    """A store closed for a while and reopened keeps the closed period: a sale its till stamped inside it is refused
    (recorded, naming the period), and sales stamped before the close or after the reopening are taken."""
    admin = login("admin")
    before = utcnow() - timedelta(hours=2)
    assert client.patch(f"/api/v1/stores/{counter.store.id}", json={"active": False}, headers=admin).status_code == 200
    during = utcnow()
    reopened = client.patch(f"/api/v1/stores/{counter.store.id}", json={"active": True}, headers=admin)
    assert reopened.status_code == 200, reopened.json
    after = utcnow() + timedelta(seconds=1)

    made_before = client.post(_url(counter), json=_offline(counter, before), headers={**staff, "Idempotency-Key": "a"})
    closed_then = client.post(_url(counter), json=_offline(counter, during), headers={**staff, "Idempotency-Key": "b"})
    made_after = client.post(_url(counter), json=_offline(counter, after), headers={**staff, "Idempotency-Key": "c"})

    assert made_before.status_code == 201, made_before.json
    assert (closed_then.status_code, closed_then.json["error"]["code"]) == (409, "store_inactive")
    details = closed_then.json["error"]["details"]
    assert details["closed_at"] < during.isoformat() < details["reopened_at"]
    assert made_after.status_code == 201, made_after.json
    [conflict] = _conflicts()
    assert (conflict.code, conflict.idempotency_key, details["conflict_id"]) == ("store_inactive", "b", conflict.id)
    assert _orders() == 2
