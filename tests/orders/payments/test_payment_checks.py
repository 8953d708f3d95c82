"""Only money the shop asked for is taken: an intent it created, in CNY, in its own mode; a second payment of a
paid order goes back; a payment that received nothing pays nothing; a sale is never dated before its order."""
from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from orders.models import Order, OutboxEvent, Payment, PaymentEvent
from shop.db import db
from tests.orders.payments.conftest import (
    deliver,
    event,
    intent_event,
    intent_of,
    order_status,
    place_order,
    stock,
    user_with_token,
)


@pytest.fixture
def pending(app, client):
    """A pending delivery order of 2 units at 12.50, and its payment row."""
    world = stock(prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 2)])
    return intent_of(order["id"])


def _event_status() -> str:
    """The status of the latest stored payment event."""
    db.session.expire_all()
    return db.session.scalar(select(PaymentEvent.status).order_by(PaymentEvent.id.desc()).limit(1))


def test_an_intent_the_shop_never_created_pays_no_order_even_if_its_metadata_names_one(client, pending, caplog):
    foreign = {"id": "pi_not_ours", "object": "payment_intent", "amount": pending.amount_fen,
               "amount_received": pending.amount_fen, "currency": "cny", "status": "succeeded",
               "metadata": {"order_id": str(pending.order_id)}}

    with caplog.at_level(logging.WARNING, logger="orders.payments.service"):
        assert deliver(client, event("payment_intent.succeeded", foreign)).status_code == 200

    assert order_status(pending.order_id) == "pending_payment"
    assert _event_status() == "ignored"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    assert any(r.levelname == "WARNING" and "never created" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("field", "value"), [("currency", "usd"), ("livemode", True)])
def test_a_payment_in_another_currency_or_mode_pays_nothing(client, pending, caplog, field, value):
    body = intent_event("payment_intent.succeeded", pending)
    (body["data"]["object"] if field == "currency" else body)[field] = value

    with caplog.at_level(logging.WARNING, logger="orders.payments.service"):
        assert deliver(client, body).status_code == 200

    assert order_status(pending.order_id) == "pending_payment"
    assert _event_status() == "ignored"
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    assert [r.levelname for r in caplog.records if "ignored" in r.getMessage()] == ["WARNING"]


def test_a_second_payment_of_a_paid_order_is_returned(client, pending):
    second = Payment(order_id=pending.order_id, provider="sandbox", intent_id="pi_second_of_ours",
                     amount_fen=pending.amount_fen, status="created")
    db.session.add(second)
    db.session.commit()
    assert deliver(client, intent_event("payment_intent.succeeded", pending)).status_code == 200

    assert deliver(client, intent_event("payment_intent.succeeded", second)).status_code == 200

    assert order_status(pending.order_id) == "paid"
    statuses = dict(db.session.execute(select(Payment.intent_id, Payment.status)).all())
    assert statuses == {pending.intent_id: "succeeded", "pi_second_of_ours": "returned"}
    kinds = db.session.execute(select(OutboxEvent.kind, OutboxEvent.amount_fen).order_by(OutboxEvent.id)).all()
    assert [k for k in kinds if k[0] != "line_paid"] == [("payment_unallocated", 2500), ("payment_returned", 2500)]


def test_a_returned_second_payment_leaves_the_paid_order_refundable_in_full(client, pending):
    second = Payment(order_id=pending.order_id, provider="sandbox", intent_id="pi_second_of_ours",
                     amount_fen=pending.amount_fen, status="created")
    db.session.add(second)
    _, admin = user_with_token("admin")
    db.session.commit()
    deliver(client, intent_event("payment_intent.succeeded", pending))
    deliver(client, intent_event("payment_intent.succeeded", second))
    line_id = client.get(f"/api/v1/orders/{pending.order_id}", headers=admin).json["lines"][0]["id"]

    response = client.post(f"/api/v1/orders/{pending.order_id}/refunds", headers=admin,
                           json={"lines": [{"line_id": line_id, "quantity": 2}], "reason": "整单退款"})

    assert response.status_code == 201, response.json
    assert response.json["amount_fen"] == 2500
    assert order_status(pending.order_id) == "refunded"


def test_a_payment_that_received_nothing_pays_nothing(client, pending):
    body = intent_event("payment_intent.succeeded", pending)
    body["data"]["object"]["amount_received"] = 0

    assert deliver(client, body).status_code == 200

    assert order_status(pending.order_id) == "pending_payment"
    assert db.session.scalar(select(Payment.last_error)) == "nothing_received"


def test_a_payment_event_dated_before_its_order_is_dated_when_the_order_was_placed(client, pending):
    placed = datetime(2026, 10, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 November in Shanghai
    db.session.execute(update(Order).where(Order.id == pending.order_id).values(created_at=placed))
    db.session.commit()
    early = int((placed - timedelta(hours=2)).timestamp())  # 31 October in Shanghai: a month perhaps disclosed

    assert deliver(client, intent_event("payment_intent.succeeded", pending, created=early)).status_code == 200

    order = db.session.get(Order, pending.order_id)
    assert (order.status, order.sale_date, order.paid_at) == ("paid", date(2026, 11, 1), placed)
