"""The same webhook delivered 5 times at once on PostgreSQL (and on SQLite): one event, one payment,
one set of outbox rows; every delivery answered 200."""
from __future__ import annotations

import json
import threading

from sqlalchemy import func, select, update

from orders.models import OrderTransition, OutboxEvent, PaymentEvent, Refund
from orders.payments import service
from orders.payments.tasks import drain_payment_events
from shop.db import db, utcnow
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


def test_failed_events_requeued_twice_at_once_while_a_drain_runs_are_each_processed_once(racing_app):
    """Two operators run `payments requeue-failed` at once while a worker drains: each failed event is requeued by
    one of them only, and processed once, its order paid once."""
    payments = [_pending_payment(racing_app) for _ in range(3)]
    for payment in payments:
        payload = json.dumps(intent_event("payment_intent.succeeded", payment))
        service.receive_event(payload=payload.encode(), signature=stripe_signature(payload))
    db.session.execute(update(PaymentEvent).values(status="failed", attempts=10, processed_at=utcnow()))
    db.session.commit()  # as the sweeper leaves them after MAX_ATTEMPTS failures
    barrier = threading.Barrier(3)
    requeued: list[int] = []

    def requeue() -> None:
        with racing_app.app_context():
            barrier.wait()
            requeued.extend(service.requeue_failed_events())  # what the command runs, and commits
            db.session.commit()

    def drain() -> None:
        with racing_app.app_context():
            barrier.wait()
        drain_payment_events()

    threads = [threading.Thread(target=run) for run in (requeue, requeue, drain)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    drain_payment_events()  # a wake-up that found the drain busy is run by the next one

    db.session.expire_all()
    assert sorted(requeued) == sorted(db.session.scalars(select(PaymentEvent.id)))
    assert list(db.session.scalars(select(PaymentEvent.status).distinct())) == ["processed"]
    assert [order_status(payment.order_id) for payment in payments] == ["paid"] * 3
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.kind == "line_paid")) == 6
