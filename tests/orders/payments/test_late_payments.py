"""A payment for an order whose reservation expired: allocated afresh when the stock allows, else returned
in full (automatically, through the provider) with the `payment_unallocated` and `payment_returned` events."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from orders.checkout.service import expire_reservations
from orders.models import Allocation, OrderLine, OutboxEvent, Payment, PaymentEvent, Refund
from orders.payments import tasks
from orders.payments.provider import RefundRefused
from orders.payments.sandbox import SandboxProvider
from orders.refunds.service import settle_refund
from shop.db import db, utcnow
from shop.tasks import sweep
from tests.orders.payments.conftest import (
    ADDRESS,
    deliver,
    intent_event,
    intent_of,
    order_status,
    place_order,
    refund_event,
    stock,
    user_with_token,
)


def _expired_order(client, *, quantity: int = 10) -> tuple:
    """An order of 4 × A in a warehouse of `quantity`, expired; the world and its payment."""
    world = stock(quantity=quantity, prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 4)])
    assert expire_reservations(now=utcnow() + timedelta(hours=1)) == 1
    db.session.commit()
    return world, intent_of(order["id"])


def _outbox(order_id: int) -> list[tuple]:
    """(kind, amount) of an order's outbox rows."""
    db.session.expire_all()
    return [(e.kind, e.amount_fen) for e in db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.order_id == order_id).order_by(OutboxEvent.id))]


def test_a_late_payment_is_allocated_afresh_when_the_stock_allows(client):
    _, payment = _expired_order(client)

    deliver(client, intent_event("payment_intent.succeeded", payment))

    assert order_status(payment.order_id) == "paid"
    assert _outbox(payment.order_id) == [("line_paid", 4 * 1250)]
    allocated = db.session.scalars(select(Allocation).join(OrderLine).where(
        OrderLine.order_id == payment.order_id, Allocation.state == "allocated")).all()
    assert sum(a.quantity for a in allocated) == 4
    assert db.session.scalar(select(Refund)) is None


@pytest.fixture
def spy_refunds(monkeypatch):
    """Record the sandbox provider's refund calls."""
    from orders.payments.sandbox import SandboxProvider

    calls = []
    original = SandboxProvider.refund

    def refund(self, **kwargs):
        calls.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(SandboxProvider, "refund", refund)
    return calls


def test_a_late_payment_whose_stock_is_gone_is_returned_in_full(client, spy_refunds):
    world, payment = _expired_order(client, quantity=5)
    _, other = user_with_token()
    db.session.commit()
    place_order(client, other, [(world["products"][0].sku, 3)])  # only 2 left: the late order cannot be filled

    response = deliver(client, intent_event("payment_intent.succeeded", payment))

    assert response.status_code == 200
    assert order_status(payment.order_id) == "expired"
    assert spy_refunds == [{"intent_id": payment.intent_id, "amount_fen": 5000,
                            "idempotency_key": f"{payment.intent_id}-returned"}]
    refund = db.session.scalar(select(Refund).where(Refund.order_id == payment.order_id))
    assert (refund.source, refund.amount_fen, refund.method) == ("unallocated", 5000, "stripe")
    assert refund.provider_refund_id.startswith("re_")
    assert _outbox(payment.order_id) == [("payment_unallocated", 5000), ("payment_returned", 5000)]
    db.session.refresh(payment)
    assert payment.status == "returned"
    assert not db.session.scalars(select(Allocation).join(OrderLine).where(
        OrderLine.order_id == payment.order_id, Allocation.state == "allocated")).all()


def test_a_returned_payment_asks_customer_service_to_tell_the_buyer(client, caplog):
    world, payment = _expired_order(client, quantity=5)
    _, other = user_with_token()
    db.session.commit()
    place_order(client, other, [(world["products"][0].sku, 3)])
    caplog.set_level(logging.INFO, logger="orders.notify")

    deliver(client, intent_event("payment_intent.succeeded", payment))

    assert db.session.scalar(select(Refund.status).where(Refund.order_id == payment.order_id)) == "succeeded"
    assert [r.getMessage() for r in caplog.records] == [f"notification refund_made for order {payment.order_id}"]


def test_a_returned_payment_is_returned_once_whatever_arrives_after(client, spy_refunds):
    world, payment = _expired_order(client, quantity=4)
    _, other = user_with_token()
    db.session.commit()
    place_order(client, other, [(world["products"][0].sku, 4)])
    deliver(client, intent_event("payment_intent.succeeded", payment))
    refund_id = db.session.scalar(select(Refund.provider_refund_id))

    deliver(client, intent_event("payment_intent.succeeded", payment))  # another event id, same payment
    deliver(client, refund_event(payment, [(refund_id, 5000, 1_800_000_000)]))  # Stripe reports our own refund

    assert len(spy_refunds) == 1
    assert db.session.scalars(select(Refund.provider_refund_id)).all() == [refund_id]
    assert _outbox(payment.order_id) == [("payment_unallocated", 5000), ("payment_returned", 5000)]


def test_a_payment_of_the_wrong_amount_is_returned(client, spy_refunds):
    world = stock(prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    payment = intent_of(place_order(client, headers, [(world["products"][0].sku, 1)])["id"])
    body = intent_event("payment_intent.succeeded", payment)
    body["data"]["object"]["amount_received"] = 1

    deliver(client, body)

    assert order_status(payment.order_id) == "pending_payment"
    assert _outbox(payment.order_id) == [("payment_unallocated", 1), ("payment_returned", 1)]


def _stock_gone(client, world) -> None:
    """Another buyer takes the 4 units an expired order's late payment would need."""
    _, other = user_with_token()
    db.session.commit()
    place_order(client, other, [(world["products"][0].sku, 4)])


def test_a_return_is_asked_of_the_provider_after_its_event_has_committed(client, monkeypatch):
    world, payment = _expired_order(client, quantity=4)
    _stock_gone(client, world)
    seen = []
    original = SandboxProvider.refund

    def refund(self, **kwargs):
        with db.engine.connect() as other:  # what any other transaction sees while the provider is asked
            seen.append(other.execute(select(Refund.status, Refund.payment_id, Payment.status)
                                      .join(Payment, Payment.id == Refund.payment_id)).all())
        return original(self, **kwargs)

    monkeypatch.setattr(SandboxProvider, "refund", refund)

    deliver(client, intent_event("payment_intent.succeeded", payment))

    assert seen == [[("pending", payment.id, "returned")]]
    assert _outbox(payment.order_id) == [("payment_unallocated", 5000), ("payment_returned", 5000)]
    assert db.session.scalar(select(Refund.status)) == "succeeded"


def test_a_return_the_provider_refuses_is_failed_and_left_unallocated_for_an_admin(client, monkeypatch, caplog):
    world, payment = _expired_order(client, quantity=4)
    _stock_gone(client, world)

    def refuse(self, **kwargs):
        raise RefundRefused("charge_already_refunded")

    monkeypatch.setattr(SandboxProvider, "refund", refuse)

    with caplog.at_level(logging.ERROR, logger="orders.refunds.service"):
        deliver(client, intent_event("payment_intent.succeeded", payment))

    refund = db.session.scalar(select(Refund))
    assert (refund.status, refund.provider_status, refund.provider_refund_id) == (
        "failed", "charge_already_refunded", None)
    assert _outbox(payment.order_id) == [("payment_unallocated", 5000)]  # the money stays owed, not returned
    assert any("settle it at Stripe" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def test_a_return_refused_as_more_than_is_left_is_asked_again_a_bounded_number_of_times_then_failed(
        client, monkeypatch):
    world, payment = _expired_order(client, quantity=4)
    _stock_gone(client, world)
    keys = []

    def too_large(self, **kwargs):
        keys.append(kwargs["idempotency_key"])
        raise RefundRefused("amount_too_large")

    monkeypatch.setattr(SandboxProvider, "refund", too_large)
    deliver(client, intent_event("payment_intent.succeeded", payment))
    for _ in range(10):
        db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2), asked_at=None,
                                                 retry_at=None))
        db.session.commit()
        sweep()

    db.session.expire_all()
    assert db.session.scalar(select(Refund.status)) == "failed"
    assert len(keys) == len(set(keys)) == 5 and keys[0] == f"{payment.intent_id}-returned"
    assert _outbox(payment.order_id) == [("payment_unallocated", 5000)]


def test_two_settlers_refused_under_one_key_move_the_return_on_by_one_attempt(client, monkeypatch):
    world, payment = _expired_order(client, quantity=4)
    _stock_gone(client, world)
    keys = []

    def too_large(self, **kwargs):
        keys.append(kwargs["idempotency_key"])
        if len(keys) == 1:  # the sweeper's settling asks with the same key while this one waits for its answer
            settle_refund(refund_id=db.session.scalar(select(Refund.id)))
        raise RefundRefused("amount_too_large")

    monkeypatch.setattr(SandboxProvider, "refund", too_large)
    deliver(client, intent_event("payment_intent.succeeded", payment))
    db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2), asked_at=None, retry_at=None))
    db.session.commit()
    sweep()

    assert keys == [f"{payment.intent_id}-returned"] * 2 + [f"{payment.intent_id}-returned-1"]


def test_a_return_whose_answer_is_lost_stays_pending_and_the_sweeper_returns_it_once(client, spy_refunds,
                                                                                     monkeypatch):
    world, payment = _expired_order(client, quantity=4)
    _stock_gone(client, world)
    answering = SandboxProvider.refund

    def unreachable(self, **kwargs):
        spy_refunds.append(kwargs)
        raise ConnectionError("no answer")

    monkeypatch.setattr(SandboxProvider, "refund", unreachable)
    deliver(client, intent_event("payment_intent.succeeded", payment))
    assert db.session.scalar(select(Refund.status)) == "pending"
    assert _outbox(payment.order_id) == [("payment_unallocated", 5000)]

    monkeypatch.setattr(SandboxProvider, "refund", answering)
    db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2), retry_at=None))
    db.session.commit()
    assert sweep()["orders.pending_refunds"] == 1
    assert sweep()["orders.pending_refunds"] == 0

    db.session.expire_all()
    refund = db.session.scalar(select(Refund))
    assert (refund.status, refund.provider_refund_id.startswith("re_")) == ("succeeded", True)
    assert [call["idempotency_key"] for call in spy_refunds] == [f"{payment.intent_id}-returned"] * 2
    assert _outbox(payment.order_id) == [("payment_unallocated", 5000), ("payment_returned", 5000)]


def test_a_payment_received_before_its_order_expired_keeps_the_reserved_units_until_it_is_processed(client,
                                                                                                     monkeypatch):
    world = stock(quantity=4, prices=(1250,))
    _, headers = user_with_token()
    _, other = user_with_token()
    db.session.commit()
    payment = intent_of(place_order(client, headers, [(world["products"][0].sku, 4)])["id"])

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.drain_payment_events, "delay", broker_down)
    assert deliver(client, intent_event("payment_intent.succeeded", payment)).status_code == 200
    monkeypatch.undo()

    assert expire_reservations(now=utcnow() + timedelta(hours=1)) == 0  # the buyer has paid: not expired
    db.session.commit()
    assert order_status(payment.order_id) == "pending_payment"
    taken = client.post("/api/v1/orders", headers={**other, "Idempotency-Key": "other-buyer"},
                        json={"channel": "delivery", "address": dict(ADDRESS),
                              "lines": [{"sku": world["products"][0].sku, "quantity": 1}]})
    assert taken.status_code == 409 and taken.json["error"]["code"] == "insufficient_stock"

    db.session.execute(update(PaymentEvent).values(queued_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    sweep()

    assert order_status(payment.order_id) == "paid"
    assert _outbox(payment.order_id) == [("line_paid", 4 * 1250)]
    assert db.session.scalar(select(Refund)) is None
