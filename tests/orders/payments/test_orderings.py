"""Events may arrive late, twice or out of order: 100 random orderings (seeded) of one payment's failed,
succeeded and refunded events (with replays) all end in the same state."""
from __future__ import annotations

import random
import time

from sqlalchemy import select

from orders.models import Allocation, Order, OrderLine, OutboxEvent, Payment, PaymentEvent, Refund
from shop.db import db
from tests.orders.payments.conftest import (
    deliver,
    intent_event,
    intent_of,
    place_order,
    refund_event,
    stock,
    user_with_token,
)

ORDERINGS = 100


def events_of(payment: Payment, t0: int) -> list[dict]:
    """A failed attempt, the success, a dashboard refund of 10.00, then the charge with a second one of 12.50."""
    first = (f"re_{payment.order_id}_a", 1000, t0 + 1)
    second = (f"re_{payment.order_id}_b", 1250, t0 + 10)
    return [intent_event("payment_intent.payment_failed", payment, created=t0 - 100),
            intent_event("payment_intent.succeeded", payment, created=t0 - 50),
            refund_event(payment, [first], created=t0 + 2),
            refund_event(payment, [first, second], created=t0 + 11)]


def final_state(order_id: int) -> dict:
    """What an auditor compares: statuses, refunded units per line and allocation, refunds and outbox rows."""
    db.session.expire_all()
    order = db.session.get(Order, order_id)
    lines = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.id)).all()
    index = {line.id: i for i, line in enumerate(lines)}
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order_id))
    return {
        "status": order.status,
        "refunded": [line.refunded_quantity for line in lines],
        "allocations": [[(a.quantity, a.refunded, a.state) for a in db.session.scalars(
            select(Allocation).where(Allocation.order_line_id == line.id).order_by(Allocation.id))] for line in lines],
        "payment": (payment.status, payment.last_error),
        "refunds": sorted((r.provider_refund_id.rsplit("_", 1)[1], r.amount_fen, r.source) for r in db.session.scalars(
            select(Refund).where(Refund.order_id == order_id))),
        "outbox": sorted((e.kind, index.get(e.order_line_id), e.amount_fen) for e in db.session.scalars(
            select(OutboxEvent).where(OutboxEvent.order_id == order_id))),
        "events": sorted(db.session.scalars(select(PaymentEvent.status).where(
            PaymentEvent.intent_id == payment.intent_id))),
    }


def test_any_arrival_order_ends_in_the_same_state(app, client):
    world = stock(quantity=3 * ORDERINGS + 10)
    a, b = world["products"]
    _, headers = user_with_token()
    db.session.commit()
    rng = random.Random(20260901)
    t0 = int(time.time()) - 3600
    states = []

    for _ in range(ORDERINGS):
        payment = intent_of(place_order(client, headers, [(a.sku, 2), (b.sku, 3)])["id"])
        deliveries = events_of(payment, t0)
        deliveries += rng.sample(deliveries, 2)  # two of them delivered twice
        rng.shuffle(deliveries)
        for body in deliveries:
            assert deliver(client, body).status_code == 200
        states.append(final_state(payment.order_id))

    assert all(state == states[0] for state in states)
    state = states[0]
    # 10.00 takes one 8.00 unit of the last line (2.00 left over); 12.50 one more 8.00 unit (4.50 left over)
    assert state["status"] == "paid"
    assert state["refunded"] == [0, 2]
    assert state["payment"] == ("succeeded", None)
    assert state["refunds"] == [("a", 1000, "provider"), ("b", 1250, "provider")]
    assert state["outbox"] == sorted([("line_paid", 0, 2500), ("line_paid", 1, 2400), ("line_refunded", 1, 800),
                                      ("line_refunded", 1, 800), ("refund_remainder", None, 200),
                                      ("refund_remainder", None, 450)])
    assert state["events"] == ["processed"] * 4
