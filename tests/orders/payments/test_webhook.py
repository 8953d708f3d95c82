"""The Stripe webhook: verified (tolerance 300 s), stored once by event id, acknowledged, processed after commit."""
from __future__ import annotations

import json
import sys
import time
import traceback
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update

from orders.models import Order, OrderTransition, OutboxEvent, Payment, PaymentEvent, Refund
from orders.payments import service, tasks
from shop.db import db
from shop.tasks import sweep
from tests.orders.payments.conftest import (
    WEBHOOK,
    counts,
    deliver,
    event,
    intent_event,
    intent_of,
    order_status,
    place_order,
    refund_event,
    stock,
    stripe_signature,
    user_with_token,
)


@pytest.fixture
def pending(app, client):
    """A pending delivery order of 2 × A (12.50) and 3 × B (8.00), and its payment row."""
    world = stock()
    _, headers = user_with_token()
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 2), (world["products"][1].sku, 3)])
    return intent_of(order["id"])


def outbox_rows(order_id: int) -> list[tuple]:
    """(kind, line, amount) of an order's outbox rows."""
    db.session.expire_all()
    return [(e.kind, e.order_line_id, e.amount_fen) for e in db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.order_id == order_id).order_by(OutboxEvent.id))]


def _placed_at(order_id: int, moment: datetime) -> None:
    """Date an order's creation back to `moment` (committed)."""
    db.session.execute(update(Order).where(Order.id == order_id).values(created_at=moment))
    db.session.commit()


def test_a_signed_succeeded_event_pays_the_order_on_the_events_date(client, pending):
    created = int(datetime(2026, 10, 1, 17, 30, tzinfo=UTC).timestamp())  # 01:30 on 2 October in Shanghai
    _placed_at(pending.order_id, datetime(2026, 10, 1, 17, 20, tzinfo=UTC))

    response = deliver(client, intent_event("payment_intent.succeeded", pending, created=created))

    assert response.status_code == 200
    assert response.json == {"received": True}
    order = db.session.get(Order, pending.order_id)
    db.session.refresh(order)
    assert order.status == "paid"
    assert order.sale_date == date(2026, 10, 2)
    assert order.paid_at == datetime.fromtimestamp(created, UTC)
    assert intent_of(order.id).status == "succeeded"
    assert [kind for kind, _, _ in outbox_rows(order.id)] == ["line_paid", "line_paid"]
    assert db.session.scalar(select(PaymentEvent.status)) == "processed"


@pytest.mark.parametrize("case", ["wrong_secret", "stale", "tampered", "missing", "garbage", "no_v1"])
def test_bad_signatures_are_400_and_write_nothing(client, pending, case):
    body = intent_event("payment_intent.succeeded", pending)
    payload = json.dumps(body)
    signature = {
        "wrong_secret": stripe_signature(payload, "whsec_someone_else"),
        "stale": stripe_signature(payload, timestamp=int(time.time()) - 301),
        "tampered": stripe_signature(payload.replace(str(pending.amount_fen), "1")),
        "missing": "",
        "garbage": "t=abc,v1",
        "no_v1": stripe_signature(payload).replace("v1=", "v0="),
    }[case]
    before = counts()

    response = client.post(WEBHOOK, data=payload, headers={"Stripe-Signature": signature} if signature else {})

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert counts() == before
    assert order_status(pending.order_id) == "pending_payment"


def test_a_timestamp_within_tolerance_is_accepted(client, pending):
    response = deliver(client, intent_event("payment_intent.succeeded", pending), timestamp=int(time.time()) - 250)

    assert response.status_code == 200
    assert order_status(pending.order_id) == "paid"


def test_a_signed_body_that_is_not_an_event_is_400_invalid_event(client, pending):
    response = deliver(client, {"id": "evt_x", "type": "payment_intent.succeeded", "created": "yesterday",
                                "data": {"object": {}}})

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_event"
    assert counts()["events"] == 0


def test_a_replay_five_times_is_one_event_one_payment_one_set_of_outbox_rows(client, pending):
    body = intent_event("payment_intent.succeeded", pending)

    statuses = [deliver(client, body).status_code for _ in range(5)]

    assert statuses == [200] * 5
    assert counts()["events"] == 1
    assert len(outbox_rows(pending.order_id)) == 2
    assert db.session.scalars(select(OrderTransition.to_status).where(
        OrderTransition.order_id == pending.order_id)).all() == ["pending_payment", "paid"]


def test_unknown_event_types_are_stored_as_ignored(client, pending):
    response = deliver(client, event("customer.created", {"id": "cus_1", "object": "customer"}))

    assert response.status_code == 200
    assert db.session.scalar(select(PaymentEvent.status)) == "ignored"
    assert order_status(pending.order_id) == "pending_payment"


def test_a_failed_attempt_keeps_the_order_pending_and_records_only_the_error_code(client, pending):
    response = deliver(client, intent_event("payment_intent.payment_failed", pending))

    assert response.status_code == 200
    payment = intent_of(pending.order_id)
    db.session.refresh(payment)
    assert (payment.status, payment.last_error) == ("failed", "insufficient_funds")
    assert order_status(pending.order_id) == "pending_payment"
    # the customer can try again: a later success pays the order
    deliver(client, intent_event("payment_intent.succeeded", pending))
    db.session.refresh(payment)
    assert (payment.status, payment.last_error) == ("succeeded", None)
    assert order_status(pending.order_id) == "paid"


def test_a_failure_arriving_after_the_success_changes_nothing(client, pending):
    deliver(client, intent_event("payment_intent.succeeded", pending))

    deliver(client, intent_event("payment_intent.payment_failed", pending))

    payment = intent_of(pending.order_id)
    db.session.refresh(payment)
    assert (payment.status, payment.last_error) == ("succeeded", None)
    assert order_status(pending.order_id) == "paid"


def test_a_refund_arriving_before_the_payment_waits_and_is_applied_after_it(client, pending):
    now = int(time.time())
    refund = refund_event(pending, [("re_dash_1", 800, now)])

    deliver(client, refund)
    assert db.session.scalar(select(PaymentEvent.status)) == "deferred"
    assert outbox_rows(pending.order_id) == []

    deliver(client, intent_event("payment_intent.succeeded", pending))

    kinds = [kind for kind, _, _ in outbox_rows(pending.order_id)]
    assert kinds == ["line_paid", "line_paid", "line_refunded"]
    assert db.session.scalars(select(PaymentEvent.status)).all() == ["processed", "processed"]
    assert db.session.scalar(select(Refund.provider_refund_id)) == "re_dash_1"


def test_refunds_already_known_are_never_reversed_twice(client, pending):
    deliver(client, intent_event("payment_intent.succeeded", pending))
    now = int(time.time())
    deliver(client, refund_event(pending, [("re_1", 800, now)]))

    deliver(client, refund_event(pending, [("re_1", 800, now), ("re_2", 1250, now + 1)]))

    assert sorted(db.session.scalars(select(Refund.provider_refund_id))) == ["re_1", "re_2"]
    kinds = [kind for kind, _, _ in outbox_rows(pending.order_id)]
    assert kinds.count("line_refunded") == 2


def test_broker_down_at_commit_the_webhook_still_answers_and_the_sweeper_processes_it(client, pending, monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.drain_payment_events, "delay", broker_down)
    response = deliver(client, intent_event("payment_intent.succeeded", pending))
    assert response.status_code == 200
    assert db.session.scalar(select(PaymentEvent.status)) == "pending"
    assert order_status(pending.order_id) == "pending_payment"

    monkeypatch.undo()
    sweep()  # within the grace period: not re-queued yet
    assert order_status(pending.order_id) == "pending_payment"
    stored = db.session.scalar(select(PaymentEvent))
    stored.queued_at = stored.received_at = datetime(2020, 1, 1, tzinfo=UTC)
    db.session.commit()
    sweep()

    assert order_status(pending.order_id) == "paid"
    db.session.expire_all()
    stored = db.session.scalar(select(PaymentEvent))
    assert (stored.status, stored.attempts) == ("processed", 1)
    rows = db.session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == pending.order_id)).all()
    assert len(rows) == 2 and all(row.delivered_at is not None for row in rows)


def test_the_embedded_drain_takes_a_backlog_run_after_run_never_nested(client, pending, monkeypatch):
    """A drain that reached its limit ran the next from within itself, so in the embedded default a backlog of many
    limits' worth reached the recursion limit; now the next run starts once this one has returned."""
    monkeypatch.setattr(tasks, "DRAIN_LIMIT", 1)
    with monkeypatch.context() as outage:
        outage.setattr(service, "wake", lambda: None)  # the events wait, as after an outage
        for _ in range(50):
            assert deliver(client, intent_event("payment_intent.payment_failed", pending)).status_code == 200
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(traceback.extract_stack()) + 250)  # room for a run, not for 50 nested
    try:
        service.wake()  # the next webhook's
    finally:
        sys.setrecursionlimit(limit)

    assert db.session.scalars(select(PaymentEvent.status).distinct()).all() == ["processed"]


def test_an_event_for_an_intent_we_do_not_know_is_ignored(client, pending):
    stranger = Payment(order_id=pending.order_id, provider="stripe", intent_id="pi_elsewhere", amount_fen=1)
    body = intent_event("payment_intent.succeeded", stranger)
    body["data"]["object"]["metadata"] = {}

    response = deliver(client, body)

    assert response.status_code == 200
    assert db.session.scalar(select(PaymentEvent.status)) == "ignored"
    assert order_status(pending.order_id) == "pending_payment"


def test_the_outbox_rows_of_one_payment_wake_one_drain_that_delivers_them(client, pending, monkeypatch):
    from orders import tasks as orders_tasks

    sent, send = [], orders_tasks.drain_outbox.delay
    monkeypatch.setattr(orders_tasks.drain_outbox, "delay", lambda: (sent.append("drain"), send())[1])

    deliver(client, intent_event("payment_intent.succeeded", pending))

    rows = db.session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == pending.order_id)
                              .order_by(OutboxEvent.id)).all()
    assert sent == ["drain"] and len(rows) == 2
    assert all(row.delivered_at is not None for row in rows)


BILLING = {"name": "测试 付款人", "email": "payer.test@example.com", "phone": "+86 139 1234 5678",
           "address": {"line1": "测试路 88 号", "city": "佛山市", "postal_code": "528300", "country": "CN"}}
PERSONAL = ("测试 付款人", "payer.test@example.com", "139 1234 5678", "测试路 88 号", "528300")


def stored_payloads() -> list[dict]:
    """Every stored event's payload, oldest first."""
    db.session.expire_all()
    return list(db.session.scalars(select(PaymentEvent.payload).order_by(PaymentEvent.id)))


def test_an_ignored_event_type_is_stored_as_its_id_and_type_only(client, pending):
    charge = {"id": "ch_test_1", "object": "charge", "amount": 2500, "billing_details": BILLING,
              "receipt_email": BILLING["email"], "payment_intent": pending.intent_id}
    body = event("charge.captured", charge)

    assert deliver(client, body).status_code == 200

    assert stored_payloads() == [{"id": body["id"], "type": "charge.captured"}]


def test_handled_events_are_processed_but_their_billing_details_are_not_stored(client, pending):
    failure = intent_event("payment_intent.payment_failed", pending)
    failure["data"]["object"]["last_payment_error"]["payment_method"] = {"id": "pm_1", "billing_details": BILLING}
    success = intent_event("payment_intent.succeeded", pending)
    success["data"]["object"].update(receipt_email=BILLING["email"], shipping={"name": BILLING["name"],
                                                                               "phone": BILLING["phone"],
                                                                               "address": BILLING["address"]})
    refund = refund_event(pending, [("re_billed_1", 800, int(time.time()))])
    refund["data"]["object"].update(billing_details=BILLING, receipt_email=BILLING["email"])
    refund["data"]["object"]["refunds"]["data"][0]["metadata"] = {"note": BILLING["name"]}
    charge = event("charge.succeeded", {"id": "ch_billed_1", "object": "charge", "amount": pending.amount_fen,
                                        "currency": "cny", "payment_intent": pending.intent_id,
                                        "billing_details": BILLING, "receipt_email": BILLING["email"]})

    for body in (failure, success, refund, charge):
        assert deliver(client, body).status_code == 200

    assert order_status(pending.order_id) == "paid"
    assert db.session.scalar(select(Payment.last_error)) is None
    assert db.session.scalar(select(Refund.provider_refund_id)) == "re_billed_1"
    payloads = stored_payloads()
    assert [p["type"] for p in payloads] == [failure["type"], success["type"], refund["type"], charge["type"]]
    assert not [value for value in PERSONAL if value in json.dumps(payloads, ensure_ascii=False)]
    assert payloads[0]["data"]["object"]["last_payment_error"] == {"code": "card_declined",
                                                                   "decline_code": "insufficient_funds"}
    assert payloads[2]["data"]["object"]["refunds"] == {"data": [
        {"id": "re_billed_1", "amount": 800, "created": refund["data"]["object"]["refunds"]["data"][0]["created"],
         "status": "succeeded", "metadata": {}}]}
