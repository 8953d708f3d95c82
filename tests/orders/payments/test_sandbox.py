"""The sandbox confirm route: a Stripe-format event, signed, handed to the webhook's own handler; only the
order's buyer or an admin, only in sandbox mode, never in production."""
from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import select

from orders.models import OutboxEvent, PaymentEvent
from orders.payments import service
from shop.config import load_config
from shop.db import db
from tests.conftest import make_app
from tests.orders.factories import StoreFactory
from tests.orders.payments.conftest import (
    SECRET,
    counts,
    intent_of,
    place_order,
    stock,
    stripe_signature,
    user_with_token,
)


def confirm_url(intent_id: str) -> str:
    """The sandbox confirm route of an intent."""
    return f"/api/v1/payments/sandbox/{intent_id}/confirm"


@pytest.fixture
def bought(app, client):
    """A consumer's pending order (2 × A) and its headers."""
    world = stock()
    _, headers = user_with_token()
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 2)])
    return intent_of(order["id"]), headers


def test_the_buyer_pays_through_the_sandbox_and_the_event_is_a_signed_stripe_event(client, bought, monkeypatch):
    payment, headers = bought
    seen = []
    original = service.verify_event
    monkeypatch.setattr(service, "verify_event", lambda **kw: seen.append(kw) or original(**kw))

    response = client.post(confirm_url(payment.intent_id), json={"outcome": "succeeded"}, headers=headers)

    assert response.status_code == 200, response.json
    assert response.json == {"order_id": payment.order_id, "status": "paid", "payment_status": "succeeded"}
    stored = db.session.scalar(select(PaymentEvent))
    assert stored.type == "payment_intent.succeeded" and stored.event_id.startswith("evt_")
    assert stored.payload["data"]["object"] == {"object": "payment_intent", "id": payment.intent_id, "amount": 2500,
                                                "amount_received": 2500, "last_payment_error": None,
                                                "currency": "cny", "status": "succeeded", "metadata": {}}
    (call,) = seen
    timestamp = call["signature"].split(",")[0][2:]
    assert call["signature"] == stripe_signature(call["payload"].decode(), SECRET, int(timestamp))
    assert json.loads(call["payload"])["id"] == stored.event_id
    assert [e.kind for e in db.session.scalars(select(OutboxEvent))] == ["line_paid"]


def test_the_signature_check_is_not_skipped(client, bought, monkeypatch):
    payment, headers = bought
    monkeypatch.setattr(service, "sign", lambda payload, secret: "t=1,v1=00")

    response = client.post(confirm_url(payment.intent_id), json={"outcome": "succeeded"}, headers=headers)

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_signature"
    assert counts()["events"] == 0


def test_a_payment_confirmed_twice_is_one_succeeded_event_as_stripe_pays_an_intent_once(client, bought):
    """A double tap on the demo's pay button, or a confirm resent after a lost answer: the intent succeeds once, so its
    success is one event (the webhook stores an event id once), and the second answer is the order paid."""
    payment, headers = bought

    first = client.post(confirm_url(payment.intent_id), json={"outcome": "succeeded"}, headers=headers)
    second = client.post(confirm_url(payment.intent_id), json={"outcome": "succeeded"}, headers=headers)

    assert first.status_code == second.status_code == 200
    assert second.json == {"order_id": payment.order_id, "status": "paid", "payment_status": "succeeded"}
    assert [event.type for event in db.session.scalars(select(PaymentEvent))] == ["payment_intent.succeeded"]
    assert [e.kind for e in db.session.scalars(select(OutboxEvent))] == ["line_paid"]


def test_a_failed_outcome_leaves_the_order_pending(client, bought):
    payment, headers = bought

    response = client.post(confirm_url(payment.intent_id), json={"outcome": "failed"}, headers=headers)

    assert response.status_code == 200
    assert response.json == {"order_id": payment.order_id, "status": "pending_payment", "payment_status": "failed"}


def test_an_admin_may_confirm(client, bought):
    payment, _ = bought
    _, admin = user_with_token("admin")
    db.session.commit()

    response = client.post(confirm_url(payment.intent_id), json={"outcome": "succeeded"}, headers=admin)

    assert response.status_code == 200
    assert response.json["status"] == "paid"


def test_another_consumer_gets_404_and_nothing_happens(client, bought):
    payment, _ = bought
    _, stranger = user_with_token()
    db.session.commit()

    response = client.post(confirm_url(payment.intent_id), json={"outcome": "succeeded"}, headers=stranger)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "payment_not_found"
    assert counts()["events"] == 0


def test_an_unknown_intent_is_404(client, bought):
    _, headers = bought

    response = client.post(confirm_url("pi_nothing"), json={"outcome": "succeeded"}, headers=headers)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "payment_not_found"


def test_store_staff_may_not(client, bought):
    payment, _ = bought
    _, staff = user_with_token("store_staff", store_id=StoreFactory().id)
    db.session.commit()

    response = client.post(confirm_url(payment.intent_id), json={"outcome": "succeeded"}, headers=staff)

    assert response.status_code == 403


@pytest.mark.parametrize("body", [{"outcome": "refunded"}, {"outcome": "succeeded", "amount": 1}, {}])
def test_the_outcome_is_validated(client, bought, body):
    payment, headers = bought

    response = client.post(confirm_url(payment.intent_id), json=body, headers=headers)

    assert response.status_code == 422
    assert counts()["events"] == 0


@pytest.mark.parametrize("setting", [{"PAYMENTS": "stripe", "STRIPE_API_KEY": "sk_test_x"},
                                     {"PAYMENTS": "sandbox", "STRIPE_API_KEY": "sk_test_x"}])
def test_the_route_and_its_documentation_do_not_exist_outside_sandbox_mode(sqlite_template, tmp_path, setting):
    """A shop on Stripe (production's sandbox staging copy is refused by the same `sandbox_enabled`): the confirm
    route is an unknown path, and the OpenAPI document does not offer it."""
    shutil.copy(sqlite_template, tmp_path / "shop.db")
    client = make_app(tmp_path, **setting).test_client()

    response = client.post(confirm_url("pi_123"), json={"outcome": "succeeded"})
    document = client.get("/api/v1/openapi.json").json

    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    assert not [path for path in document["paths"] if "sandbox" in path]
    assert "/api/v1/payments/stripe/webhook" in document["paths"]


def test_the_route_is_documented_in_sandbox_mode(client):
    assert "/api/v1/payments/sandbox/{payment_intent_id}/confirm" in client.get("/api/v1/openapi.json").json["paths"]


def test_a_cancelled_orders_payment_can_no_longer_be_made(client, bought):
    payment, headers = bought
    assert client.post(f"/api/v1/orders/{payment.order_id}/cancel", headers=headers).status_code == 200

    response = client.post(confirm_url(payment.intent_id), json={"outcome": "succeeded"}, headers=headers)

    assert response.status_code == 409 and response.json["error"]["code"] == "payment_intent_canceled"
    assert counts() == {"events": 0, "outbox": 0}


def test_a_production_staging_copy_on_sandbox_payments_has_no_confirm_route(tmp_path):
    """SHOP_ENV=production with PAYMENTS=sandbox: orders are paid only by signed events posted to the webhook."""
    from tests.shop.test_app import PRODUCTION

    staging = {k: v for k, v in PRODUCTION.items() if k not in ("STRIPE_API_KEY", "STRIPE_PUBLISHABLE_KEY")}
    config = load_config({**staging, "PAYMENTS": "sandbox"}, str(tmp_path))

    assert config["PAYMENTS"] == "sandbox" and not service.sandbox_enabled(config)
