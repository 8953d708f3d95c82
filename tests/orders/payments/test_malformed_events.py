"""Correctly signed events that are not what Stripe sends: refused at the door or settled once, never a 500 and
never retried for ever."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from orders.models import Payment, PaymentEvent, Refund
from orders.payments.service import MAX_ATTEMPTS
from shop.db import db
from shop.tasks import sweep
from tests.orders.payments.conftest import (
    SECRET,
    WEBHOOK,
    counts,
    deliver,
    intent_event,
    intent_of,
    order_status,
    place_order,
    refund_event,
    stock,
    stripe_signature,
    user_with_token,
)
from tests.orders.payments.test_webhook import pending  # noqa: F401 - the fixture


def test_a_signed_body_nested_too_deep_is_400_whatever_its_content_type(client, pending):  # noqa: F811
    payload = '{"a":' * 100_000 + "1" + "}" * 100_000
    response = client.post(WEBHOOK, data=payload, headers={"Stripe-Signature": stripe_signature(payload, SECRET),
                                                           "Content-Type": "text/plain"})

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_event"
    assert "nested deeper than 64 levels" in response.json["error"]["message"]
    assert counts()["events"] == 0


def test_a_refund_list_that_is_not_a_list_is_processed_once_as_nothing_to_refund(client, pending):  # noqa: F811
    deliver(client, intent_event("payment_intent.succeeded", pending))
    body = refund_event(pending, [])
    body["data"]["object"]["refunds"] = "zzz"

    assert deliver(client, body).status_code == 200

    db.session.expire_all()
    assert db.session.scalars(select(PaymentEvent.status).order_by(PaymentEvent.id)).all() == ["processed"] * 2
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0


def test_one_malformed_refund_entry_does_not_hold_back_the_valid_ones(client, pending):  # noqa: F811
    deliver(client, intent_event("payment_intent.succeeded", pending))
    now = int(time.time())
    body = refund_event(pending, [("re_good", 800, now), ("re_bad", 800, now + 1)])
    body["data"]["object"]["refunds"]["data"][0]["created"] = 2**40  # the newest is listed first

    assert deliver(client, body).status_code == 200

    db.session.expire_all()
    assert db.session.scalars(select(Refund.provider_refund_id)).all() == ["re_good"]
    assert db.session.scalars(select(PaymentEvent.status).order_by(PaymentEvent.id)).all() == ["processed"] * 2


def test_a_non_ascii_digit_order_id_in_metadata_names_no_order(client, pending):  # noqa: F811
    stranger = Payment(order_id=pending.order_id, provider="stripe", intent_id="pi_elsewhere", amount_fen=1)
    body = intent_event("payment_intent.succeeded", stranger)
    body["data"]["object"]["metadata"] = {"order_id": "²"}

    assert deliver(client, body).status_code == 200

    assert db.session.scalar(select(PaymentEvent.status)) == "ignored"
    assert order_status(pending.order_id) == "pending_payment"


def test_a_refund_or_failure_of_an_intent_we_never_recorded_adds_no_payment_to_the_order(client, pending):  # noqa: F811
    deliver(client, intent_event("payment_intent.succeeded", pending))
    stranger = Payment(order_id=pending.order_id, provider="stripe", intent_id="pi_forged", amount_fen=1)
    refund = refund_event(stranger, [("re_forged", 800, int(time.time()))])
    refund["data"]["object"]["metadata"] = {"order_id": str(pending.order_id)}
    failure = intent_event("payment_intent.payment_failed", stranger)

    assert deliver(client, refund).status_code == deliver(client, failure).status_code == 200

    db.session.expire_all()
    assert db.session.scalars(select(Payment.intent_id)).all() == [pending.intent_id]
    assert db.session.scalars(select(PaymentEvent.status).order_by(PaymentEvent.id)).all() == [
        "processed", "ignored", "ignored"]
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
    assert order_status(pending.order_id) == "paid"


def test_an_event_that_keeps_failing_is_given_up_after_max_attempts(client, pending, caplog):  # noqa: F811
    deliver(client, intent_event("payment_intent.succeeded", pending))
    stuck = db.session.scalar(select(PaymentEvent))
    stuck.status, stuck.attempts = "pending", MAX_ATTEMPTS
    stuck.queued_at = stuck.received_at = datetime(2020, 1, 1, tzinfo=UTC)
    db.session.commit()

    assert sweep()["orders.payment_events"] == 0

    db.session.expire_all()
    assert (stuck.status, stuck.attempts) == ("failed", MAX_ATTEMPTS)
    assert any(r.levelname == "ERROR" and "given up" in r.getMessage() for r in caplog.records)
    assert sweep()["orders.payment_events"] == 0


@pytest.mark.parametrize("kind", ["payment_intent.succeeded", "charge.dispute.created"])
def test_an_amount_beyond_any_stripe_payment_is_settled_once_as_no_amount_never_retried(client, pending,  # noqa: F811
                                                                                         kind):
    disputed = kind.startswith("charge.dispute")
    if disputed:
        deliver(client, intent_event("payment_intent.succeeded", pending))
    body = intent_event(kind, pending)
    body["data"]["object"].update(amount=10**20, amount_received=10**20)
    if disputed:
        body["data"]["object"].update(object="dispute", id="dp_huge", payment_intent=pending.intent_id,
                                      status="needs_response", reason="fraudulent")

    assert deliver(client, body).status_code == 200

    db.session.expire_all()
    events = db.session.execute(select(PaymentEvent.status, PaymentEvent.attempts).order_by(PaymentEvent.id)).all()
    assert [tuple(e) for e in events] == [("processed", 0)] * (2 if disputed else 1)
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
    payment = db.session.get(Payment, pending.id)
    assert payment.dispute_amount_fen in (None, 0)
    assert payment.status == ("succeeded" if disputed else "created")
    assert order_status(pending.order_id) == ("paid" if disputed else "pending_payment")


@pytest.mark.postgres
@pytest.mark.parametrize("field", ["decline_code", "event_id"])
def test_a_control_character_in_an_events_string_is_no_value_and_never_fails_on_postgresql(pg_app, field):
    world = stock(prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    client = pg_app.test_client()
    payment = intent_of(place_order(client, headers, [(world["products"][0].sku, 1)])["id"])
    body = intent_event("payment_intent.payment_failed", payment)
    if field == "event_id":
        body["id"] = "evt_a\u0000b"
    else:
        body["data"]["object"]["last_payment_error"].update(decline_code="x\u0000y", code="card_declined")

    response = deliver(client, body)

    db.session.expire_all()
    if field == "event_id":
        assert (response.status_code, response.json["error"]["code"]) == (400, "invalid_event")
        assert counts()["events"] == 0
    else:
        assert response.status_code == 200
        assert [tuple(e) for e in db.session.execute(select(PaymentEvent.status, PaymentEvent.attempts))] == [
            ("processed", 0)]
        assert (intent_of(payment.order_id).status, intent_of(payment.order_id).last_error) == (
            "failed", "card_declined")
