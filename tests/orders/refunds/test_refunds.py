"""Refunds: units off allocations in reverse order, stock for resellable units, outbox events, the order's
status, who may refund, the provider call, and amount refunds from the provider mapped to whole units."""
from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from catalog.models import Stock
from orders.models import Allocation, Order, OrderLine, OrderTransition, OutboxEvent, Refund, RefundLine
from orders.refunds import service
from shop.db import db, utcnow
from shop.tasks import sweep
from suppliers.models import Supplier
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.contract.conftest import documented_codes
from tests.factories import UserFactory
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.orders.payments.conftest import created_key
from tests.orders.refunds.conftest import paid_order, user_with_token
from tests.statements import statements


@pytest.fixture
def world(app):
    """A store with an open shift, a product in two lots there (3 older units, 10 newer) and a warehouse."""
    store = StoreFactory()
    shift = ShiftFactory(store=store)
    product = ProductFactory(price_fen=2000)
    older = make_lot(product, _location(store.location_id), quantity=3, harvested_on=date(2026, 8, 1))
    newer = make_lot(product, _location(store.location_id), quantity=10, harvested_on=date(2026, 9, 1))
    db.session.commit()
    return {"store": store, "shift": shift, "product": product, "older": older, "newer": newer}


def _location(location_id):
    """The location row."""
    from catalog.models import Location

    return db.session.get(Location, location_id)


def _on_hand(lot) -> int:
    """Units of a lot on hand, summed over locations."""
    return db.session.scalar(select(func.sum(Stock.on_hand)).where(Stock.lot_id == lot.id))


def _counter_sale(world, quantity=5, **kwargs):
    """A cash counter sale of `quantity` units in the world's open shift."""
    order = paid_order(location_id=world["store"].location_id, store=world["store"], shift=world["shift"],
                       lines=[(world["product"], quantity)], **kwargs)
    db.session.commit()
    return order


def _refund(client, headers, order, quantity, *, resellable=False, line=None, reason="顾客退货"):
    """POST a refund of `quantity` units of the order's first line."""
    line_id = line or db.session.scalars(select(OrderLine.id).where(OrderLine.order_id == order.id)).first()
    return client.post(f"/api/v1/orders/{order.id}/refunds", headers=headers,
                       json={"lines": [{"line_id": line_id, "quantity": quantity, "resellable": resellable}],
                             "reason": reason})


def test_a_sale_of_a_supplier_deactivated_since_is_still_refunded(client, world):
    order = _counter_sale(world, quantity=2)
    _, admin = user_with_token("admin")
    db.session.get(Supplier, world["product"].supplier_id).active = False
    db.session.commit()

    refund = _refund(client, admin, order, 2, resellable=True)

    assert refund.status_code == 201, refund.json
    assert refund.json["amount_fen"] == 4000
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "refunded"


def test_a_refund_reason_holding_a_bank_card_number_is_refused_and_nothing_refunded(client, world):
    order = _counter_sale(world, quantity=2)
    _, admin = user_with_token("admin")

    refused = _refund(client, admin, order, 1, reason="退到顾客卡 6222 0200 0000 0000 002")

    assert refused.status_code == 422 and refused.json["error"]["details"]["reason"] == [
        "Do not write ID or bank card numbers here: this text is shown to others unmasked."]
    assert db.session.scalar(select(func.count(Refund.id))) == 0


def test_only_a_refund_of_a_consumers_order_asks_customer_service_to_tell_them(client, world, provider, caplog):
    caplog.set_level(logging.INFO, logger="orders.notify")
    sale = _counter_sale(world, quantity=2)  # an anonymous customer, refunded at the till: no one to tell
    online, _ = _online_order(world)
    online.consumer_id = UserFactory(role="consumer").id
    _, admin = user_with_token("admin")
    db.session.commit()

    assert _refund(client, admin, sale, 1).status_code == 201
    assert _refund(client, admin, online, 1).status_code == 201

    assert [r.getMessage() for r in caplog.records] == [f"notification refund_made for order {online.id}"]


def test_a_refund_is_read_at_its_location_by_who_may_see_its_order_only(client, world):
    order = _counter_sale(world, quantity=2)
    _, admin = user_with_token("admin")
    refund = _refund(client, admin, order, 1)
    _, stranger = user_with_token("store_staff", store_id=StoreFactory().id)

    read = client.get(refund.headers["Location"], headers=admin)
    hidden = client.get(refund.headers["Location"], headers=stranger)

    assert (read.status_code, read.json["id"], read.json["amount_fen"]) == (200, refund.json["id"], 2000)
    assert (hidden.status_code, hidden.json["error"]["code"]) == (404, "refund_not_found")


def test_the_buyer_sees_their_refunds_and_order_history_without_staff_ids_or_outbox_event_ids(client, world):
    buyer, buyer_headers = user_with_token("consumer")
    clerk, clerk_headers = user_with_token("store_staff", store_id=world["store"].id)
    order = _counter_sale(world, quantity=2, consumer=buyer)
    refund = _refund(client, clerk_headers, order, 1).json
    staff_only = {"created_by", "shift_id", "outbox_event_ids"}
    assert (refund["created_by"], refund["shift_id"]) == (clerk.id, world["shift"].id) and refund["outbox_event_ids"]

    listed = client.get(f"/api/v1/orders/{order.id}/refunds", headers=buyer_headers).json["items"]
    read = client.get(f"/api/v1/refunds/{refund['id']}", headers=buyer_headers).json
    seen = client.get(f"/api/v1/orders/{order.id}", headers=buyer_headers).json
    mine = client.get("/api/v1/orders", headers=buyer_headers).json["items"]

    assert [item["id"] for item in listed] == [read["id"]] == [refund["id"]]
    assert not staff_only & (set(listed[0]) | set(read))
    assert read["amount_fen"] == 2000 and read["lines"] == refund["lines"]
    assert [t["to_status"] for t in seen["transitions"]] == ["paid", "fulfilled"]
    assert all("actor_id" not in t for order_seen in (seen, *mine) for t in order_seen["transitions"])
    for headers in (clerk_headers, user_with_token("admin")[1], user_with_token("auditor")[1]):
        assert staff_only <= set(client.get(f"/api/v1/refunds/{refund['id']}", headers=headers).json)
    assert all("actor_id" in t for t in client.get(f"/api/v1/orders/{order.id}", headers=clerk_headers)
               .json["transitions"])


def test_partial_then_full_refund_takes_units_off_allocations_in_reverse_order(client, world):
    order = _counter_sale(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    first, second = db.session.scalars(select(Allocation).order_by(Allocation.id)).all()
    assert (first.lot_id, first.quantity, second.lot_id, second.quantity) == (world["older"].id, 3,
                                                                              world["newer"].id, 2)

    partial = _refund(client, admin, order, 3)

    assert partial.status_code == 201, partial.json
    assert partial.json["amount_fen"] == 6000
    assert partial.json["method"] == "cash" and partial.json["shift_id"] == world["shift"].id
    event = db.session.get(OutboxEvent, partial.json["outbox_event_ids"][0])
    assert (event.kind, event.amount_fen, event.refund_id) == ("line_refunded", 6000, partial.json["id"])
    assert [(a["lot_id"], a["quantity"]) for a in event.payload["allocations"]] == [
        (world["newer"].id, 2), (world["older"].id, 1)]
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "fulfilled"
    assert db.session.scalar(select(OrderLine.refunded_quantity)) == 3
    assert [a.refunded for a in db.session.scalars(select(Allocation).order_by(Allocation.id))] == [1, 2]

    full = _refund(client, admin, order, 2)

    assert full.status_code == 201, full.json
    event = db.session.get(OutboxEvent, full.json["outbox_event_ids"][0])
    assert [(a["lot_id"], a["quantity"]) for a in event.payload["allocations"]] == [(world["older"].id, 2)]
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "refunded"
    assert [a.refunded for a in db.session.scalars(select(Allocation).order_by(Allocation.id))] == [3, 2]
    last = db.session.scalars(select(OrderTransition).where(OrderTransition.order_id == order.id)
                              .order_by(OrderTransition.id.desc())).first()
    assert (last.from_status, last.to_status) == ("fulfilled", "refunded")
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)
                             .where(OutboxEvent.kind == "line_refunded")) == 2


def test_only_resellable_units_go_back_on_the_shelf(client, world):
    order = _counter_sale(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    assert (_on_hand(world["older"]), _on_hand(world["newer"])) == (0, 8)

    assert _refund(client, admin, order, 1).status_code == 201
    db.session.expire_all()
    assert (_on_hand(world["older"]), _on_hand(world["newer"])) == (0, 8)

    assert _refund(client, admin, order, 3, resellable=True).status_code == 201
    db.session.expire_all()
    assert (_on_hand(world["older"]), _on_hand(world["newer"])) == (2, 9)
    assert [line.resellable for line in db.session.scalars(select(RefundLine).order_by(RefundLine.id))] == [
        False, True]


def test_sold_units_are_not_there_to_be_found_and_refunds_keep_the_lot_whole(client, world):
    """Units sold still belong to their lot; refunded ones not resold are missing from it and may be found again."""
    order = _counter_sale(world)
    _, admin = user_with_token("admin")
    db.session.commit()

    def found(quantity):
        return client.post("/api/v1/stock-adjustments", headers=admin, json={
            "location_id": world["store"].location_id, "lot_id": world["older"].id, "delta": quantity,
            "reason": "found"})

    sold_out = found(1)
    assert _refund(client, admin, order, 3).status_code == 201
    assert _refund(client, admin, order, 2, resellable=True).status_code == 201
    too_many = found(2)
    restored = found(1)

    assert (sold_out.status_code, sold_out.json["error"]["code"]) == (409, "lot_quantity_exceeded")
    assert sold_out.json["error"]["details"]["restorable"] == 0
    assert (too_many.status_code, too_many.json["error"]["details"]["restorable"]) == (409, 1)
    assert restored.status_code == 201, restored.json
    db.session.expire_all()
    assert (_on_hand(world["older"]), _on_hand(world["newer"])) == (3, 8)


def test_refund_beyond_units_still_sold_is_409_and_writes_nothing(client, world):
    order = _counter_sale(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    assert _refund(client, admin, order, 4).status_code == 201

    response = _refund(client, admin, order, 2)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "refund_exceeds_sold"
    assert response.json["error"]["details"]["refundable"] == 1
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1


def test_unknown_line_is_404_and_duplicate_lines_are_422(client, world):
    order = _counter_sale(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    line_id = db.session.scalar(select(OrderLine.id))

    assert _refund(client, admin, order, 1, line=line_id + 100).json["error"]["code"] == "order_line_not_found"
    twice = client.post(f"/api/v1/orders/{order.id}/refunds", headers=admin, json={
        "lines": [{"line_id": line_id, "quantity": 1}, {"line_id": line_id, "quantity": 1}], "reason": "x"})
    assert twice.status_code == 422
    assert "lines" in twice.json["error"]["details"]


def test_an_unpaid_order_is_not_refundable(client, world):
    order = _counter_sale(world)
    cancelled = db.session.get(Order, order.id)
    cancelled.status = "cancelled"
    for line in cancelled.lines:  # as a cancelled order's are
        for allocation in line.allocations:
            allocation.state = "released"
    _, admin = user_with_token("admin")
    db.session.commit()

    response = _refund(client, admin, order, 1)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "order_not_refundable"


def test_store_staff_refund_their_stores_sales_only_while_the_shift_is_open(client, world):
    order = _counter_sale(world)
    _, clerk = user_with_token("store_staff", store_id=world["store"].id)
    _, other_clerk = user_with_token("store_staff", store_id=StoreFactory().id)
    _, consumer = user_with_token("consumer")
    db.session.commit()

    assert _refund(client, other_clerk, order, 1).status_code == 404
    assert _refund(client, other_clerk, order, 1).json["error"]["code"] == "order_not_found"
    assert _refund(client, consumer, order, 1).status_code == 403
    allowed = _refund(client, clerk, order, 1)
    assert allowed.status_code == 201 and allowed.json["shift_id"] == world["shift"].id

    db.session.get(type(world["shift"]), world["shift"].id).closed_at = utcnow()
    db.session.commit()
    refused = _refund(client, clerk, order, 1)

    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "refund_outside_shift"
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1


def test_online_refund_calls_the_provider_with_the_refund_id_as_idempotency_key(client, world, provider):
    warehouse = LocationFactory()
    lot = make_lot(world["product"], warehouse, quantity=10)
    _, admin = user_with_token("admin")
    order = paid_order(location_id=warehouse.id, channel="delivery", lines=[(world["product"], 4)],
                       payment_method="stripe", status="delivered")
    db.session.commit()

    response = _refund(client, admin, order, 2)

    assert response.status_code == 201, response.json
    assert provider.calls == [{"intent_id": f"pi_test_{order.id}", "amount_fen": 4000,
                               "idempotency_key": _key_of(response.json["id"])}]
    assert response.json["provider_refund_id"] == "re_stub_1"
    assert response.json["shift_id"] is None
    # the provider's charge.refunded event for our own refund is known: never reversed twice
    assert service.record_provider_refund(order_id=order.id, provider_refund_id="re_stub_1", amount_fen=4000,
                                          occurred_at=utcnow()) is None
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 1
    assert _on_hand(lot) == 6


def _key_of(refund_id: int) -> str:
    """The key a refund is asked of the provider with: `refund-<id>@<its creation time, µs since 1970 UTC>`."""
    return created_key(f"refund-{refund_id}", db.session.get(Refund, refund_id).created_at)


def _online_order(world, quantity=4):
    """A delivered stripe order of `quantity` units from a new warehouse (10 units there), and its lot."""
    warehouse = LocationFactory()
    lot = make_lot(world["product"], warehouse, quantity=10)
    order = paid_order(location_id=warehouse.id, channel="delivery", lines=[(world["product"], quantity)],
                       payment_method="stripe", status="delivered")
    db.session.commit()
    return order, lot


def test_a_refund_whose_provider_answer_is_lost_is_pending_and_its_retry_refunds_once(client, world, provider):
    order, lot = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.lose_answer = True  # Stripe refunded, but its answer never came back

    first = _refund(client, admin, order, 2, resellable=True)

    assert first.status_code == 202, first.json
    assert (first.json["status"], first.json["provider_refund_id"], first.json["outbox_event_ids"]) == (
        "pending", None, [])
    db.session.expire_all()
    assert db.session.scalar(select(OrderLine.refunded_quantity)) == 2  # held: nobody refunds them twice
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    assert _on_hand(lot) == 6
    assert _refund(client, admin, order, 1).json["error"]["code"] == "refund_pending"

    provider.lose_answer = False
    again = _refund(client, admin, order, 2, resellable=True)  # the same request again

    assert again.status_code == 201, again.json
    assert (again.json["id"], again.json["status"], again.json["provider_refund_id"]) == (
        first.json["id"], "succeeded", "re_stub_1")
    assert {call["idempotency_key"] for call in provider.calls} == {_key_of(first.json["id"])}
    assert len(provider.made) == 1  # one refund at the provider
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    events = db.session.scalars(select(OutboxEvent)).all()
    assert [(e.kind, e.amount_fen, e.refund_id) for e in events] == [("line_refunded", 4000, first.json["id"])]
    assert _on_hand(lot) == 8


def _refund_left_pending(client, world, provider, key: str):
    """An online order, an admin's keyed headers, and the 202 of a 2-unit refund under `key` whose provider answer
    was lost (so it is pending)."""
    order, _ = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    keyed = {**admin, "Idempotency-Key": key}
    provider.lose_answer = True
    first = _refund(client, keyed, order, 2)
    provider.lose_answer = False
    return order, keyed, first


def test_a_pending_refund_retried_with_its_idempotency_key_asks_again_and_answers_the_outcome(client, world,
                                                                                               provider):
    """A 202 is not a final answer: it is not replayed to the key's retry, which settles the refund once."""
    order, keyed, first = _refund_left_pending(client, world, provider, "refund-retry-1")

    again = _refund(client, keyed, order, 2)
    once_more = _refund(client, keyed, order, 2)

    assert first.status_code == 202 and first.json["status"] == "pending"
    assert again.status_code == 201, again.json
    assert "Idempotent-Replayed" not in again.headers
    assert (again.json["id"], again.json["status"], again.json["provider_refund_id"]) == (
        first.json["id"], "succeeded", "re_stub_1")
    assert once_more.status_code == 201 and once_more.headers["Idempotent-Replayed"] == "true"
    assert once_more.json == again.json
    assert len(provider.made) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1


def test_a_retry_with_its_key_of_a_pending_refund_settled_meanwhile_gets_that_refund_not_a_second(client, world,
                                                                                                  provider):
    """The sweeper (or Stripe's event) settled the 202's refund before the till retried: the retry is answered with
    it, and nothing is refunded twice."""
    order, keyed, first = _refund_left_pending(client, world, provider, "refund-retry-2")
    # the sweeper's turn, its pause over
    db.session.execute(update(Refund).values(asked_at=utcnow() - timedelta(minutes=2), retry_at=None))
    db.session.commit()
    assert sweep()["orders.pending_refunds"] == 1

    retry = _refund(client, keyed, order, 2)

    assert first.status_code == 202, first.json
    assert retry.status_code == 201, retry.json
    assert (retry.json["id"], retry.json["status"]) == (first.json["id"], "succeeded")
    assert len(provider.made) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    assert db.session.scalar(select(OrderLine.refunded_quantity)) == 2


def test_a_pending_refund_is_not_the_answer_to_another_key_asking_the_same(client, world, provider):
    """Two requests with their own keys are two requests: the second is told a refund is pending, not handed
    the first one's refund as if it had made it (a till adding up its 201s would count money twice)."""
    order, _ = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.lose_answer = True
    first = _refund(client, {**admin, "Idempotency-Key": "till-a"}, order, 2)
    provider.lose_answer = False

    other = _refund(client, {**admin, "Idempotency-Key": "till-b"}, order, 2)
    retry = _refund(client, {**admin, "Idempotency-Key": "till-a"}, order, 2)

    assert first.status_code == 202, first.json
    assert other.status_code == 409, other.json
    assert other.json["error"]["code"] == "refund_pending"
    assert retry.status_code == 201 and retry.json["id"] == first.json["id"]
    assert len(provider.made) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1


def test_the_sweeper_settles_a_pending_refund_with_its_key(client, world, provider):
    order, _ = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.fail = True
    pending = _refund(client, admin, order, 2)
    assert pending.status_code == 202
    provider.fail = False
    assert sweep()["orders.pending_refunds"] == 0  # not yet: its own request may still be asking
    db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2), retry_at=None))
    db.session.commit()

    assert sweep()["orders.pending_refunds"] == 1

    db.session.expire_all()
    refund = db.session.get(Refund, pending.json["id"])
    assert (refund.status, refund.provider_refund_id) == ("succeeded", "re_stub_1")
    assert provider.calls[0]["idempotency_key"] == _key_of(pending.json["id"])
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 1
    assert service.settle_refund(refund_id=pending.json["id"]).status == "succeeded"  # settled once
    assert len(provider.calls) == 1


def test_the_providers_event_for_a_pending_refund_completes_it_once(client, world, provider):
    order, _ = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.lose_answer = True
    pending = _refund(client, admin, order, 2).json

    # the charge.refunded / refund.created event names the refund Stripe made, its metadata our key
    assert service.record_provider_refund(order_id=order.id, provider_refund_id="re_stub_1", amount_fen=4000,
                                          occurred_at=utcnow(), key=_key_of(pending["id"])) is None
    db.session.commit()
    provider.lose_answer = False
    assert service.settle_refund(refund_id=pending["id"]).status == "succeeded"
    db.session.commit()

    refund = db.session.scalar(select(Refund))
    assert (refund.id, refund.status, refund.provider_refund_id) == (pending["id"], "succeeded", "re_stub_1")
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 1
    assert db.session.scalar(select(OrderLine.refunded_quantity)) == 2


def _age_refunds() -> None:
    """Make every refund old enough for the sweeper, and the last time it asked about each as long ago."""
    long_ago = utcnow() - timedelta(minutes=2)
    db.session.execute(update(Refund).values(created_at=long_ago, asked_at=long_ago, retry_at=None))
    db.session.commit()


def test_a_refund_the_provider_has_not_finished_books_no_money_until_it_succeeds(client, world, provider):
    order, lot = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.status = "pending"  # Stripe accepted it; the money has not gone back yet

    first = _refund(client, admin, order, 2, resellable=True)

    assert first.status_code == 202, first.json
    assert (first.json["status"], first.json["provider_refund_id"], first.json["provider_status"],
            first.json["outbox_event_ids"]) == ("pending", "re_stub_1", "pending", [])
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    assert db.session.scalar(select(OrderLine.refunded_quantity)) == 2  # held: nobody refunds them twice
    assert _on_hand(lot) == 6
    assert _refund(client, admin, order, 1).json["error"]["code"] == "refund_pending"

    _age_refunds()
    assert sweep()["orders.pending_refunds"] == 1  # still pending at the provider: asked how it stands
    db.session.expire_all()
    assert (provider.retrieved, db.session.scalar(select(Refund.status))) == (["re_stub_1"], "pending")
    provider.statuses["re_stub_1"] = "succeeded"
    assert sweep()["orders.pending_refunds"] == 0  # asked a moment ago: its turn comes a minute later
    _age_refunds()
    assert sweep()["orders.pending_refunds"] == 1

    db.session.expire_all()
    assert (db.session.scalar(select(Refund.status)), db.session.scalar(select(Refund.provider_status))) == (
        "succeeded", "succeeded")
    events = db.session.scalars(select(OutboxEvent)).all()
    assert [(e.kind, e.amount_fen, e.refund_id) for e in events] == [("line_refunded", 4000, first.json["id"])]
    assert _on_hand(lot) == 8
    assert len(provider.calls) == 1  # made once, then only asked about
    assert sweep()["orders.pending_refunds"] == 0


def test_a_pending_resellable_refund_whose_units_a_stocktake_found_meanwhile_still_completes(client, world, provider):
    """The goods came back and a stocktake counted them as found while Stripe was still refunding (as the shop let it
    before it counted a pending refund's units as the lot's, so a database may hold such finds): once Stripe has
    given the money back the refund completes and the ledger reverses it, putting back on the shelf only what the
    stocktake did not (it was left pending for ever, its restock refused as more than the lot holds)."""
    order, lot = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.status = "pending"
    first = _refund(client, admin, order, 2, resellable=True)
    assert first.status_code == 202, first.json
    db.session.execute(update(Stock).where(Stock.location_id == order.location_id, Stock.lot_id == lot.id)
                       .values(on_hand=Stock.on_hand + 2))  # found then
    db.session.commit()
    provider.statuses["re_stub_1"] = "succeeded"
    _age_refunds()

    assert sweep()["orders.pending_refunds"] == 1

    db.session.expire_all()
    assert db.session.scalar(select(Refund.status)) == "succeeded"
    events = db.session.scalars(select(OutboxEvent)).all()
    assert [(e.kind, e.amount_fen, e.refund_id) for e in events] == [("line_refunded", 4000, first.json["id"])]
    assert _on_hand(lot) == 8  # 6 left after the sale of 4, and the 2 returned, counted once
    assert db.session.scalar(select(func.sum(Allocation.quantity - Allocation.refunded))
                             .where(Allocation.lot_id == lot.id)) == 2  # the lot's 10 units: 8 on hand, 2 sold


def test_more_pending_refunds_than_a_sweep_takes_are_each_asked_about_in_turn(client, world, provider,
                                                                               monkeypatch):
    orders = [_online_order(world)[0] for _ in range(3)]
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.status = "pending"
    made = [_refund(client, admin, order, 1).json["provider_refund_id"] for order in orders]
    monkeypatch.setattr(service, "SWEEP_BATCH", 2)
    _age_refunds()

    assert sweep()["orders.pending_refunds"] == 2
    assert sweep()["orders.pending_refunds"] == 1  # the third, not the first two again
    assert sweep()["orders.pending_refunds"] == 0
    assert provider.retrieved == [made[0], made[1], made[2]]
    _age_refunds()
    provider.statuses[made[0]] = "succeeded"
    assert sweep()["orders.pending_refunds"] == 2
    assert provider.retrieved[3:] == [made[0], made[1]]
    db.session.expire_all()
    assert db.session.scalars(select(Refund.status).order_by(Refund.id)).all() == ["succeeded", "pending", "pending"]


def test_a_refund_the_provider_fails_after_accepting_it_gives_its_units_back_and_books_nothing(client, world,
                                                                                               provider):
    order, lot = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.status = "pending"
    first = _refund(client, admin, order, 2, resellable=True).json
    provider.statuses["re_stub_1"] = "failed"  # e.g. the card was closed: the refund.failed event never came
    _age_refunds()

    assert sweep()["orders.pending_refunds"] == 1

    db.session.expire_all()
    refund = db.session.get(Refund, first["id"])
    assert (refund.status, refund.provider_status, refund.provider_refund_id) == ("failed", "failed", "re_stub_1")
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    assert db.session.scalar(select(OrderLine.refunded_quantity)) == 0
    assert [a.refunded for a in db.session.scalars(select(Allocation))] == [0]
    assert _on_hand(lot) == 6
    provider.status = "succeeded"
    again = _refund(client, admin, order, 4)  # every unit is refundable again, through a new provider refund
    assert again.status_code == 201, again.json
    assert again.json["provider_refund_id"] == "re_stub_2"


def test_units_a_refund_holds_while_pending_at_stripe_are_not_there_to_be_found_so_its_failure_keeps_the_lot_whole(
        racing_app, provider):
    """A refund pending at Stripe has taken its units off the line but may yet fail and sell them again: a stocktake
    cannot count them as found meanwhile (409, none restorable; found, they were both on hand and sold once it failed:
    12 units of a lot of 10), on either database (the units are read from the refund's held events)."""
    client, warehouse, product = racing_app.test_client(), LocationFactory(), ProductFactory(price_fen=2000)
    lot = make_lot(product, warehouse, quantity=10)
    order = paid_order(location_id=warehouse.id, channel="delivery", lines=[(product, 4)], payment_method="stripe",
                       status="delivered")
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.status = "pending"
    assert _refund(client, admin, order, 2, resellable=True).status_code == 202

    def found(delta, reason="found"):
        return client.post("/api/v1/stock-adjustments", headers=admin, json={
            "location_id": warehouse.id, "lot_id": lot.id, "delta": delta, "reason": reason})

    refused, damaged, one_more = found(2), found(-1, "damaged"), found(2)

    assert (refused.status_code, refused.json["error"]["code"]) == (409, "lot_quantity_exceeded")
    assert refused.json["error"]["details"]["restorable"] == 0
    assert damaged.status_code == 201, damaged.json
    assert (one_more.status_code, one_more.json["error"]["details"]["restorable"]) == (409, 1)
    provider.statuses["re_stub_1"] = "failed"
    _age_refunds()
    assert sweep()["orders.pending_refunds"] == 1
    db.session.expire_all()
    sold = db.session.scalar(select(func.sum(Allocation.quantity - Allocation.refunded))
                             .where(Allocation.lot_id == lot.id))
    assert (_on_hand(lot), sold) == (5, 4)


def test_a_refund_the_provider_refuses_is_409_and_its_units_are_sold_again(client, world, provider):
    order, lot = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.refuse = True

    response = _refund(client, admin, order, 2, resellable=True)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "refund_refused"
    db.session.expire_all()
    assert db.session.scalar(select(Refund.status)) == "failed"
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    assert db.session.scalar(select(OrderLine.refunded_quantity)) == 0
    assert [a.refunded for a in db.session.scalars(select(Allocation))] == [0]
    assert _on_hand(lot) == 6
    provider.refuse = False
    assert _refund(client, admin, order, 4).status_code == 201  # all 4 units are refundable again


def test_a_receipt_counts_only_the_money_that_went_back(client, world, provider):
    order, _ = _online_order(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    provider.refuse = True
    assert _refund(client, admin, order, 1).status_code == 409  # refused: nothing went back
    provider.refuse, provider.lose_answer = False, True
    assert _refund(client, admin, order, 2).status_code == 202  # pending: nothing went back yet

    receipt = client.get(f"/api/v1/orders/{order.id}/receipt", headers=admin)

    assert receipt.status_code == 200
    assert receipt.json["refunded_fen"] == 0
    provider.lose_answer = False
    assert _refund(client, admin, order, 2).status_code == 201
    assert client.get(f"/api/v1/orders/{order.id}/receipt", headers=admin).json["refunded_fen"] == 4000


def _two_line_order(world):
    """A delivered stripe order: 2 units at ¥10, then 1 unit at ¥30."""
    warehouse = LocationFactory()
    cheap, dear = ProductFactory(price_fen=1000), ProductFactory(price_fen=3000)
    make_lot(cheap, warehouse, quantity=5)
    make_lot(dear, warehouse, quantity=5)
    order = paid_order(location_id=warehouse.id, channel="delivery", lines=[(cheap, 2), (dear, 1)],
                       payment_method="stripe", status="delivered")
    db.session.commit()
    return order


def test_an_amount_refund_walks_lines_from_last_to_first_and_leaves_a_remainder(world):
    order = _two_line_order(world)
    cheap_line, dear_line = db.session.scalars(select(OrderLine).order_by(OrderLine.id)).all()

    refund = service.record_provider_refund(order_id=order.id, provider_refund_id="re_dashboard_1",
                                            amount_fen=4500, occurred_at=utcnow())
    db.session.commit()

    assert (refund.source, refund.amount_fen, refund.method) == ("provider", 4500, "stripe")
    assert [(line.order_line_id, line.quantity, line.amount_fen, line.resellable) for line in refund.lines] == [
        (dear_line.id, 1, 3000, False), (cheap_line.id, 1, 1000, False)]
    events = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    assert [(e.kind, e.order_line_id, e.amount_fen) for e in events] == [
        ("line_refunded", dear_line.id, 3000), ("line_refunded", cheap_line.id, 1000),
        ("refund_remainder", None, 500)]
    assert db.session.get(Order, order.id).status == "delivered"


def test_a_cheaper_earlier_line_still_takes_units_and_a_full_amount_refunds_the_order(world):
    order = _two_line_order(world)

    first = service.record_provider_refund(order_id=order.id, provider_refund_id="re_a", amount_fen=2000,
                                           occurred_at=utcnow())
    db.session.commit()
    assert [(line.quantity, line.amount_fen) for line in first.lines] == [(2, 2000)]  # ¥20 buys no ¥30 unit
    assert db.session.scalar(select(OutboxEvent.id).where(OutboxEvent.kind == "refund_remainder")) is None

    second = service.record_provider_refund(order_id=order.id, provider_refund_id="re_b", amount_fen=3000,
                                            occurred_at=utcnow())
    db.session.commit()
    assert [(line.quantity, line.amount_fen) for line in second.lines] == [(1, 3000)]
    assert db.session.get(Order, order.id).status == "refunded"


def test_a_known_provider_refund_id_is_never_reversed_twice(world):
    order = _two_line_order(world)
    assert service.record_provider_refund(order_id=order.id, provider_refund_id="re_x", amount_fen=3000,
                                          occurred_at=utcnow()) is not None
    db.session.commit()

    again = service.record_provider_refund(order_id=order.id, provider_refund_id="re_x", amount_fen=3000,
                                           occurred_at=utcnow())
    db.session.commit()

    assert again is None
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 1


def test_refunds_are_listed_for_whoever_may_see_the_order(client, world):
    order = _counter_sale(world)
    _, admin = user_with_token("admin")
    _, other_clerk = user_with_token("store_staff", store_id=StoreFactory().id)
    db.session.commit()
    created = _refund(client, admin, order, 1).json

    listed = client.get(f"/api/v1/orders/{order.id}/refunds", headers=admin)

    assert listed.status_code == 200
    assert [(r["id"], r["outbox_event_ids"]) for r in listed.json["items"]] == [
        (created["id"], created["outbox_event_ids"])]
    assert client.get(f"/api/v1/orders/{order.id}/refunds", headers=other_clerk).status_code == 404


def test_a_card_refund_at_the_counter_is_booked_in_the_open_shift(client, world):
    order = _counter_sale(world, payment_method="card")
    _, clerk = user_with_token("store_staff", store_id=world["store"].id)
    db.session.commit()
    refund = _refund(client, clerk, order, 1)
    assert refund.status_code == 201, refund.json
    assert (refund.json["method"], refund.json["shift_id"]) == ("card", world["shift"].id)
    methods = {m["method"]: m for m in client.get(f"/api/v1/shifts/{world['shift'].id}", headers=clerk).json["methods"]}
    refunded = refund.json["amount_fen"]
    assert (methods["card"]["sales_fen"], methods["card"]["refunds_fen"]) == (order.total_fen, refunded)
    assert methods["card"]["expected_fen"] == order.total_fen - refunded
    assert methods["cash"]["refunds_fen"] == 0


def test_a_counter_refund_with_no_shift_open_at_the_store_is_refused_until_one_opens(client, world):
    order = _counter_sale(world)  # cash, 5 units at ¥20
    _, admin = user_with_token("admin")
    _, clerk = user_with_token("store_staff", store_id=world["store"].id)
    db.session.get(type(world["shift"]), world["shift"].id).closed_at = utcnow()
    db.session.commit()

    refused = _refund(client, admin, order, 1)

    assert (refused.status_code, refused.json["error"]["code"]) == (409, "no_open_shift")
    assert refused.json["error"]["details"] == {"store_id": world["store"].id}
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0

    opened = client.post(f"/api/v1/stores/{world['store'].id}/shifts", json={"float_fen": 20000}, headers=clerk)
    refund = _refund(client, admin, order, 1)

    assert refund.status_code == 201, refund.json
    assert refund.json["shift_id"] == opened.json["id"]
    cash = client.get(f"/api/v1/shifts/{opened.json['id']}", headers=clerk).json["methods"][0]
    assert (cash["method"], cash["refunds_fen"], cash["expected_fen"]) == ("cash", 2000, 18000)


def test_a_cash_refund_beyond_the_cash_in_the_till_is_refused_until_the_till_holds_it(client, world):
    order = _counter_sale(world)  # cash, 5 units at ¥20, in a shift closed since
    _, admin = user_with_token("admin")
    _, clerk = user_with_token("store_staff", store_id=world["store"].id)
    db.session.get(type(world["shift"]), world["shift"].id).closed_at = utcnow()
    db.session.commit()
    shift = client.post(f"/api/v1/stores/{world['store'].id}/shifts", json={"float_fen": 1000}, headers=clerk).json

    refused = _refund(client, admin, order, 1)  # ¥20 out of a drawer holding ¥10

    assert (refused.status_code, refused.json["error"]["code"]) == (409, "till_cash_short")
    assert refused.json["error"]["details"] == {"shift_id": shift["id"], "cash_in_till_fen": 1000, "amount_fen": 2000}
    document = client.get("/api/v1/openapi.json").json  # a client generated from it knows the answer
    assert "till_cash_short" in documented_codes(document["paths"]["/api/v1/orders/{order_id}/refunds"]["post"])[409]
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0

    sold = client.post(f"/api/v1/stores/{world['store'].id}/counter-sales", headers={**clerk, "Idempotency-Key": "s1"},
                       json={"lines": [{"sku": world["product"].sku, "quantity": 1}], "shift_id": shift["id"],
                             "payment": {"method": "cash", "tendered_fen": 2000}})
    assert sold.status_code == 201, sold.json
    refund = _refund(client, admin, order, 1)

    assert refund.status_code == 201, refund.json
    cash = client.get(f"/api/v1/shifts/{shift['id']}", headers=clerk).json["methods"][0]
    assert (cash["method"], cash["sales_fen"], cash["refunds_fen"], cash["expected_fen"]) == ("cash", 2000, 2000, 1000)


def test_a_card_refund_at_the_counter_takes_no_cash_from_the_till(client, world):
    order = _counter_sale(world, payment_method="card")
    _, admin = user_with_token("admin")
    _, clerk = user_with_token("store_staff", store_id=world["store"].id)
    db.session.get(type(world["shift"]), world["shift"].id).closed_at = utcnow()
    db.session.commit()
    client.post(f"/api/v1/stores/{world['store'].id}/shifts", json={"float_fen": 0}, headers=clerk)

    refund = _refund(client, admin, order, 5)

    assert refund.status_code == 201, refund.json
    assert (refund.json["method"], refund.json["amount_fen"]) == ("card", 10000)


def test_a_provider_refund_beyond_what_was_paid_is_capped_at_the_refundable_amount(world):
    order = _two_line_order(world)  # 5000 fen paid
    first = service.record_provider_refund(order_id=order.id, provider_refund_id="re_big", amount_fen=1_000_000,
                                           occurred_at=utcnow())
    second = service.record_provider_refund(order_id=order.id, provider_refund_id="re_more", amount_fen=500,
                                            occurred_at=utcnow())
    db.session.commit()
    assert first.amount_fen == 5000 and second is None  # nothing left: no refund of 0 fen
    assert db.session.scalar(select(func.sum(Refund.amount_fen))) == 5000
    assert db.session.get(Order, order.id).status == "refunded"


def test_a_line_refund_after_amount_refunds_never_refunds_more_than_was_paid(client, world, provider):
    warehouse = LocationFactory()
    make_lot(world["product"], warehouse, quantity=10)
    _, admin = user_with_token("admin")
    order = paid_order(location_id=warehouse.id, channel="delivery", lines=[(world["product"], 1)],
                       payment_method="stripe", status="delivered")  # one unit of 2000 fen
    db.session.commit()
    assert service.record_provider_refund(order_id=order.id, provider_refund_id="re_dash_1", amount_fen=1000,
                                          occurred_at=utcnow()).lines == []  # below a unit: a remainder only
    db.session.commit()

    response = _refund(client, admin, order, 1)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "refund_exceeds_paid"
    assert response.json["error"]["details"] == {"amount_fen": 2000, "refundable_fen": 1000}
    assert provider.calls == []
    assert db.session.scalar(select(func.sum(Refund.amount_fen))) == 1000


def test_amount_refunds_that_give_back_the_whole_payment_close_the_order(client, world):
    order = _two_line_order(world)  # 2 × 1000 + 1 × 3000 fen
    for number, amount in enumerate((2500, 2500)):  # each takes 2 cheap units or none, and leaves a remainder
        service.record_provider_refund(order_id=order.id, provider_refund_id=f"re_half_{number}", amount_fen=amount,
                                       occurred_at=utcnow())
        db.session.commit()

    assert db.session.get(Order, order.id).status == "refunded"
    assert db.session.scalar(select(func.sum(Refund.amount_fen))) == 5000
    _, admin = user_with_token("admin")
    db.session.commit()
    dear_line = db.session.scalars(select(OrderLine.id).order_by(OrderLine.id.desc())).first()
    refused = _refund(client, admin, order, 1, line=dear_line)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "order_not_refundable"


def test_listing_an_orders_refunds_reads_their_events_in_one_query_however_many(client, world):
    order = _counter_sale(world)
    _, admin = user_with_token("admin")
    db.session.commit()
    _refund(client, admin, order, 1)

    def outbox_reads() -> tuple[list[str], list]:
        """The outbox statements a listing runs, and its items."""
        with statements() as seen:
            listed = client.get(f"/api/v1/orders/{order.id}/refunds", headers=admin)
        return [s for s in seen if "outbox_events" in s], listed.json["items"]

    once, _ = outbox_reads()
    _refund(client, admin, order, 1)
    _refund(client, admin, order, 2)
    thrice, items = outbox_reads()

    assert len(once) == len(thrice) == 1
    events = db.session.execute(select(OutboxEvent.refund_id, OutboxEvent.id).order_by(OutboxEvent.id)).all()
    assert [(r["id"], r["outbox_event_ids"]) for r in items] == [(refund, [event]) for refund, event in events]


@pytest.mark.parametrize("settled_meanwhile", [False, True])
def test_a_key_of_a_202_refund_sent_again_with_another_body_is_409_key_reused_and_refunds_nothing_more(
        client, world, provider, settled_meanwhile):
    """A 202 frees its key for the retry; the key still names that refund: another body under it (more units, another
    reason) is the key reused, not a second refund, whether or not the first was settled meanwhile."""
    order, keyed, first = _refund_left_pending(client, world, provider, "refund-reused")
    if settled_meanwhile:
        db.session.execute(update(Refund).values(asked_at=utcnow() - timedelta(minutes=2), retry_at=None))
        db.session.commit()
        assert sweep()["orders.pending_refunds"] == 1

    other_units = _refund(client, keyed, order, 1)
    other_reason = _refund(client, keyed, order, 2, reason="另一个原因")

    assert first.status_code == 202, first.json
    for response in (other_units, other_reason):
        assert response.status_code == 409, response.json
        assert response.json["error"]["code"] == "idempotency_key_reused"
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    assert len(provider.made) == 1  # the first, made at the provider once


def test_a_cash_refund_resent_with_its_key_by_another_clerk_of_the_store_pays_out_once(client, world):
    """A till's queued refund is resent after a hand-over: its key is the store's, so the second clerk gets the first
    answer, and the drawer pays the cash out once."""
    order = _counter_sale(world, quantity=3)
    _, first_clerk = user_with_token("store_staff", store_id=world["store"].id)
    _, second_clerk = user_with_token("store_staff", store_id=world["store"].id)

    made = _refund(client, {**first_clerk, "Idempotency-Key": "till-refund-1"}, order, 1)
    resent = _refund(client, {**second_clerk, "Idempotency-Key": "till-refund-1"}, order, 1)

    assert made.status_code == resent.status_code == 201, resent.json
    assert resent.headers.get("Idempotent-Replayed") == "true" and resent.json["id"] == made.json["id"]
    db.session.expire_all()
    assert db.session.scalars(select(Refund.amount_fen)).all() == [2000]


def test_an_online_refund_resent_with_its_key_by_another_admin_refunds_once(client, world, provider):
    """An admin's refund of an online order resent with its key by another admin (the first's browser retried after a
    hand-over) gets the first answer: online refunds' keys are the admins', as a store's are its clerks', so the buyer
    is not refunded a second time; another body under the key is `idempotency_key_reused`."""
    order, _ = _online_order(world)
    _, first_admin = user_with_token("admin")
    _, second_admin = user_with_token("admin")
    db.session.commit()

    made = _refund(client, {**first_admin, "Idempotency-Key": "desk-refund-1"}, order, 1)
    resent = _refund(client, {**second_admin, "Idempotency-Key": "desk-refund-1"}, order, 1)
    other = _refund(client, {**second_admin, "Idempotency-Key": "desk-refund-1"}, order, 2)

    assert made.status_code == resent.status_code == 201, resent.json
    assert resent.headers.get("Idempotent-Replayed") == "true" and resent.json["id"] == made.json["id"]
    assert (other.status_code, other.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert len(provider.made) == 1
    db.session.expire_all()
    assert db.session.scalars(select(Refund.amount_fen)).all() == [made.json["amount_fen"]]


def test_a_key_of_a_202_refund_sent_for_another_order_is_409_key_reused_and_refunds_nothing_there(
        client, world, provider):
    """A 202 frees its key for the retry only: the same key naming another order is the key reused."""
    _, keyed, first = _refund_left_pending(client, world, provider, "refund-other-order")
    other, _ = _online_order(world)

    reused = _refund(client, keyed, other, 2)

    assert first.status_code == 202, first.json
    assert (reused.status_code, reused.json["error"]["code"]) == (409, "idempotency_key_reused"), reused.json
    db.session.expire_all()
    assert db.session.scalars(select(Refund.order_id)).all() == [first.json["order_id"]]
    assert len(provider.made) == 1


def test_a_clerks_pending_card_refund_resent_with_its_key_after_the_store_closed_gets_its_outcome(client, world,
                                                                                                 provider):
    """A card refund the till queued (202: the provider's answer was lost) is the same request when resent with its
    key, even after the store closed meanwhile: it is asked again and answered, not refused as `store_inactive`."""
    order = _counter_sale(world, quantity=2, payment_method="stripe")
    _, clerk = user_with_token("store_staff", store_id=world["store"].id)
    db.session.commit()
    keyed = {**clerk, "Idempotency-Key": "till-refund-1"}
    provider.lose_answer = True
    first = _refund(client, keyed, order, 2)
    provider.lose_answer = False
    world["store"].active = False
    db.session.commit()

    again = _refund(client, keyed, order, 2)
    another = _refund(client, {**clerk, "Idempotency-Key": "till-refund-2"}, order, 1)

    assert first.status_code == 202, first.json
    assert again.status_code == 201, again.json
    assert (again.json["id"], again.json["status"]) == (first.json["id"], "succeeded")
    assert len(provider.made) == 1
    assert another.status_code == 409 and another.json["error"]["code"] == "store_inactive"
