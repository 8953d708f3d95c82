"""The same webhook delivered 5 times at once on PostgreSQL (and on SQLite): one event, one payment,
one set of outbox rows; every delivery answered 200."""
from __future__ import annotations

import json
import threading

from sqlalchemy import func, select

from orders.models import OrderTransition, OutboxEvent, PaymentEvent, Refund
from shop.db import db
from tests.orders.payments.conftest import (
    WEBHOOK,
    intent_event,
    intent_of,
    order_status,
    place_order,
    refund_event,
    stock,
    stripe_signature,
    user_with_token,
)


def deliver_at_once(app, bodies: list[dict]) -> list[int]:
    """POST each body to the webhook from its own thread, released together; the status codes."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []
    lock = threading.Lock()

    def run(body: dict) -> None:
        payload = json.dumps(body)
        client = app.test_client()
        barrier.wait()
        response = client.post(WEBHOOK, data=payload, headers={"Stripe-Signature": stripe_signature(payload)})
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=run, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def _pending_payment(app):
    """A consumer's pending order (2 × A, 3 × B) and its payment row."""
    world = stock()
    _, headers = user_with_token()
    db.session.commit()
    a, b = world["products"]
    return intent_of(place_order(app.test_client(), headers, [(a.sku, 2), (b.sku, 3)])["id"])


def test_one_webhook_delivered_five_times_at_once_is_one_payment(racing_app):
    payment = _pending_payment(racing_app)
    body = intent_event("payment_intent.succeeded", payment)

    statuses = deliver_at_once(racing_app, [body] * 5)

    assert statuses == [200] * 5
    assert order_status(payment.order_id) == "paid"
    assert db.session.scalar(select(func.count()).select_from(PaymentEvent)) == 1
    assert db.session.scalar(select(PaymentEvent.status)) == "processed"
    assert sorted(db.session.scalars(select(OutboxEvent.kind))) == ["line_paid", "line_paid"]
    assert db.session.scalar(select(func.count()).select_from(OrderTransition).where(
        OrderTransition.to_status == "paid")) == 1


def test_different_events_of_one_payment_at_once_apply_once_each(racing_app):
    payment = _pending_payment(racing_app)
    succeeded = intent_event("payment_intent.succeeded", payment)
    refund = refund_event(payment, [("re_race_1", 800, succeeded["created"] + 5)])
    other_success = intent_event("payment_intent.succeeded", payment)

    statuses = deliver_at_once(racing_app, [succeeded, refund, other_success, refund, succeeded])

    assert statuses == [200] * 5
    assert order_status(payment.order_id) == "paid"
    assert db.session.scalars(select(Refund.provider_refund_id)).all() == ["re_race_1"]
    assert sorted(db.session.scalars(select(OutboxEvent.kind))) == ["line_paid", "line_paid", "line_refunded"]
    assert set(db.session.scalars(select(PaymentEvent.status))) == {"processed"}
