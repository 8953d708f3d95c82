"""Cancelling an unpaid order tells the provider: its PaymentIntent is cancelled, so it can no longer be paid; an
order whose payment the provider already reported made is not cancelled under it."""
from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from orders.models import Payment, PaymentEvent
from orders.payments import service
from shop.db import db
from tests.orders.payments.conftest import (
    deliver,
    intent_event,
    intent_of,
    order_status,
    place_order,
    stock,
    user_with_token,
)

SECRET = "whsec_test_stripe"  # the stripe app's


def _bought(client) -> tuple[Payment, dict]:
    """A consumer's pending order of 2 units at 12.50 (its payment row) and the consumer's headers."""
    world = stock(prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 2)])
    return intent_of(order["id"]), headers


def test_cancelling_an_order_cancels_its_intent_at_stripe(stripe_app, stripe_http):
    client = stripe_app.test_client()
    payment, headers = _bought(client)

    response = client.post(f"/api/v1/orders/{payment.order_id}/cancel", headers=headers)

    assert response.status_code == 200 and response.json["status"] == "cancelled"
    cancel = stripe_http.requests[-1]
    assert (cancel["method"], cancel["url"]) == ("post",
                                                 f"https://api.stripe.com/v1/payment_intents/{payment.intent_id}/cancel")
    assert cancel["headers"]["Idempotency-Key"] == f"{payment.intent_id}-cancel"
    shown = client.get(f"/api/v1/orders/{payment.order_id}", headers=headers).json["payment"]
    assert (shown["status"], shown["client_secret"]) == ("canceled", None)  # not a payment still to make


def test_an_intent_stripe_will_not_cancel_leaves_the_order_cancelled_and_its_payment_returned(stripe_app, stripe_http,
                                                                                               caplog):
    client = stripe_app.test_client()
    payment, headers = _bought(client)
    stripe_http.uncancellable = True  # the buyer paid at Stripe a moment before the cancel

    with caplog.at_level(logging.WARNING, logger="orders.checkout.service"):
        response = client.post(f"/api/v1/orders/{payment.order_id}/cancel", headers=headers)
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    assert any("did not cancel intent" in r.getMessage() for r in caplog.records)
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=headers).json["payment"]["status"] == "created"

    assert deliver(client, intent_event("payment_intent.succeeded", payment), secret=SECRET).status_code == 200
    db.session.expire_all()
    assert order_status(payment.order_id) == "cancelled"
    assert db.session.get(Payment, payment.id).status == "returned"
    assert stripe_http.requests[-1]["url"] == "https://api.stripe.com/v1/refunds"


def test_an_intent_stripe_refuses_the_shops_key_to_cancel_is_logged_as_a_key_to_fix(stripe_app, stripe_http, caplog):
    client = stripe_app.test_client()
    payment, headers = _bought(client)
    stripe_http.key_refused = 401

    with caplog.at_level(logging.WARNING):
        response = client.post(f"/api/v1/orders/{payment.order_id}/cancel", headers=headers)

    assert response.status_code == 200 and response.json["status"] == "cancelled"
    logged = [r for r in caplog.records if r.name == "orders.checkout.service"]
    assert [r.levelname for r in logged] == ["ERROR"]
    assert "AuthenticationError" in logged[0].getMessage() and "API key" in logged[0].getMessage()
    assert not any("_test_" in r.getMessage() or r.exc_info for r in caplog.records)
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=headers).json["payment"]["status"] == "created"


def test_an_order_whose_payment_is_being_confirmed_is_not_cancelled(stripe_app, stripe_http):
    client = stripe_app.test_client()
    payment, headers = _bought(client)
    body = intent_event("payment_intent.succeeded", payment)
    event = PaymentEvent(provider="stripe", event_id=body["id"], type=body["type"], intent_id=payment.intent_id,
                         created=datetime.fromtimestamp(body["created"], UTC), payload=body,
                         status="pending")  # stored by the webhook; the worker has not processed it yet
    db.session.add(event)
    db.session.commit()

    response = client.post(f"/api/v1/orders/{payment.order_id}/cancel", headers=headers)

    assert response.status_code == 409 and response.json["error"]["code"] == "payment_being_confirmed"
    assert not any(r["url"].endswith("/cancel") for r in stripe_http.requests)
    assert service.process_event(event_id=event.id) == "processed"
    db.session.commit()
    assert order_status(payment.order_id) == "paid"
    assert db.session.scalar(select(Payment.status).where(Payment.id == payment.id)) == "succeeded"


def test_a_cancelled_order_whose_buyer_was_declined_first_shows_its_payment_canceled(stripe_app, stripe_http):
    client = stripe_app.test_client()
    payment, headers = _bought(client)
    assert deliver(client, intent_event("payment_intent.payment_failed", payment), secret=SECRET).status_code == 200
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=headers).json["payment"]["status"] == "failed"

    assert client.post(f"/api/v1/orders/{payment.order_id}/cancel", headers=headers).status_code == 200

    assert stripe_http.requests[-1]["url"].endswith(f"/payment_intents/{payment.intent_id}/cancel")
    shown = client.get(f"/api/v1/orders/{payment.order_id}", headers=headers).json["payment"]
    assert (shown["status"], shown["client_secret"]) == ("canceled", None)  # Stripe cancelled it: no attempt is left


def test_a_decline_reported_after_the_cancel_leaves_the_payment_canceled(stripe_app, stripe_http):
    client = stripe_app.test_client()
    payment, headers = _bought(client)
    declined = intent_event("payment_intent.payment_failed", payment)  # sent before the cancel, delivered after it
    assert client.post(f"/api/v1/orders/{payment.order_id}/cancel", headers=headers).status_code == 200

    assert deliver(client, declined, secret=SECRET).status_code == 200

    db.session.expire_all()
    assert db.session.scalar(select(PaymentEvent.status).where(PaymentEvent.event_id == declined["id"])) == "processed"
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=headers).json["payment"]["status"] == "canceled"
