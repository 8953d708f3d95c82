"""The Stripe provider drives the real `stripe` library (only its HTTP client is stubbed); the sandbox
makes Stripe-shaped objects locally and idempotently."""
from __future__ import annotations

import logging
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import stripe
from sqlalchemy import func, select

from catalog.models import Stock
from orders.checkout.service import expire_reservations
from orders.models import Order, Refund
from orders.payments.provider import get_provider
from orders.payments.sandbox import SandboxProvider
from orders.payments.stripe_provider import StripeProvider
from shop.db import db, utcnow
from tests.conftest import make_app
from tests.orders.payments.conftest import (
    ADDRESS,
    created_key,
    deliver,
    intent_event,
    intent_of,
    place_order,
    stock,
    user_with_token,
)
from tests.shop.test_errors import assert_error


def test_stripe_intent_request_is_cny_in_fen_keyed_by_the_caller_with_only_the_order_id(stripe_app, stripe_http):
    provider = get_provider()

    intent = provider.create_intent(order_id=42, amount_fen=4900, idempotency_key="order-42-intent@1")

    assert isinstance(provider, StripeProvider)
    (sent,) = stripe_http.requests
    assert (sent["method"], sent["url"]) == ("post", "https://api.stripe.com/v1/payment_intents")
    assert sent["headers"]["Idempotency-Key"] == "order-42-intent@1"
    assert sent["headers"]["Authorization"] == "Bearer sk_test_not_real"
    assert sent["params"]["amount"] == "4900"
    assert sent["params"]["currency"] == "cny"
    assert {v for k, v in sent["params"].items() if k.startswith("payment_method_types")} == {
        "card", "alipay", "wechat_pay"}
    assert {k: v for k, v in sent["params"].items() if k.startswith("metadata")} == {"metadata[order_id]": "42"}
    assert (intent.id, intent.client_secret, intent.amount_fen) == ("pi_stub1", "pi_stub1_secret_x", 4900)


def test_checkout_creates_the_intent_with_no_personal_data(stripe_app, stripe_http):
    client = stripe_app.test_client()
    world = stock()
    _, headers = user_with_token()

    order = place_order(client, headers, [(world["products"][0].sku, 2)])

    (sent,) = stripe_http.requests
    assert sent["params"]["amount"] == str(2 * 1250)
    created_at = db.session.get(Order, order["id"]).created_at
    assert sent["headers"]["Idempotency-Key"] == created_key(f"order-{order['id']}-intent", created_at)
    body = " ".join(sent["params"].values())
    for personal in ("测试收件人", "13800000000", "测试路"):
        assert personal not in body
    assert intent_of(order["id"]).intent_id == "pi_stub1"


def test_stripe_refund_carries_the_callers_idempotency_key(stripe_app, stripe_http):
    refund = get_provider().refund(intent_id="pi_abc", amount_fen=800, idempotency_key="refund-7")

    (sent,) = stripe_http.requests
    assert sent["url"] == "https://api.stripe.com/v1/refunds"
    assert sent["headers"]["Idempotency-Key"] == "refund-7"
    assert sent["params"] == {"payment_intent": "pi_abc", "amount": "800", "metadata[refund_key]": "refund-7"}
    assert (refund.id, refund.status) == ("re_stub1", "succeeded")


def test_a_stripe_refund_not_yet_final_is_pending_and_is_asked_about_again_by_its_id(stripe_app, stripe_http):
    stripe_http.refund_status = "pending"
    made = get_provider().refund(intent_id="pi_abc", amount_fen=800, idempotency_key="refund-7")
    stripe_http.refund_status = "succeeded"

    now = get_provider().retrieve_refund(refund_id=made.id)

    assert made.status == "pending"
    asked = stripe_http.requests[-1]
    assert (asked["method"], asked["url"]) == ("get", f"https://api.stripe.com/v1/refunds/{made.id}")
    assert (now.id, now.status) == (made.id, "succeeded")


def test_a_stripe_call_ends_well_before_the_readmes_gunicorn_kills_its_worker(app):
    app.config.update(PAYMENTS="stripe", STRIPE_API_KEY="sk_test_not_real")
    provider = get_provider()
    readme = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
    (command,) = [line for line in readme.splitlines() if line.startswith("gunicorn ")]
    worker_timeout = int(re.search(r"--timeout (\d+)", command).group(1))

    tries = provider.client._requestor._options.max_network_retries + 1
    per_try = provider.client._requestor._client._timeout
    worst = tries * per_try + (tries - 1) * stripe.HTTPClient.MAX_DELAY

    assert worst <= worker_timeout / 2, (worst, worker_timeout)


def test_sandbox_is_the_default_and_idempotent(app):
    provider = get_provider()

    first = provider.create_intent(order_id=5, amount_fen=100, idempotency_key="order-5-intent@1")
    again = provider.create_intent(order_id=5, amount_fen=100, idempotency_key="order-5-intent@1")

    assert isinstance(provider, SandboxProvider)
    assert first == again
    assert first.id.startswith("pi_") and first.client_secret.startswith(f"{first.id}_secret_")
    assert provider.create_intent(order_id=5, amount_fen=100, idempotency_key="order-5-intent@2").id != first.id
    refund = provider.refund(intent_id=first.id, amount_fen=100, idempotency_key="k1")
    assert refund.id.startswith("re_") and refund.status == "succeeded"
    assert refund == provider.refund(intent_id=first.id, amount_fen=100, idempotency_key="k1")
    assert refund != provider.refund(intent_id=first.id, amount_fen=100, idempotency_key="k2")


def test_an_unallocatable_stripe_payment_is_refunded_through_stripe(stripe_app, stripe_http):
    client = stripe_app.test_client()
    world = stock(quantity=2, prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 2)])
    expire_reservations(now=utcnow() + timedelta(hours=1))
    db.session.commit()
    place_order(client, headers, [(world["products"][0].sku, 2)])  # the stock is gone

    response = deliver(client, intent_event("payment_intent.succeeded", intent_of(order["id"])),
                       secret="whsec_test_stripe")

    assert response.status_code == 200
    refund_call = stripe_http.requests[-1]
    assert refund_call["url"] == "https://api.stripe.com/v1/refunds"
    assert refund_call["params"] == {"payment_intent": "pi_stub1", "amount": "2500",
                                     "metadata[refund_key]": "pi_stub1-returned"}  # the intent is unique: so is this
    assert refund_call["headers"]["Idempotency-Key"] == "pi_stub1-returned"
    asked_first = stripe_http.requests[-2]  # what Stripe already refunded (its dashboard) is not returned again
    assert (asked_first["method"], asked_first["url"].split("?")[0]) == ("get", "https://api.stripe.com/v1/refunds")
    assert db.session.scalar(select(Refund.provider_refund_id)) == f"re_stub{len(stripe_http.requests)}"


def _reserved(location_id: int) -> int:
    """The units reserved at a location."""
    db.session.expire_all()
    return db.session.scalar(select(func.sum(Stock.reserved)).where(Stock.location_id == location_id))


@pytest.mark.parametrize("payments", ["sandbox", "stripe"])
def test_an_order_total_beyond_what_one_payment_can_carry_is_refused_and_nothing_is_reserved(request, payments):
    """Stripe takes at most 99,999,999 in the smallest unit (¥999,999.99): a larger order would fail at the provider
    for ever, so it is refused before anything is written, in the sandbox as under Stripe."""
    client = request.getfixturevalue("app" if payments == "sandbox" else "stripe_app").test_client()
    world = stock(quantity=5, prices=(33_333_333, 50_000_000))
    _, headers = user_with_token()
    db.session.commit()
    third, half = (product.sku for product in world["products"])
    body = {"channel": "delivery", "address": dict(ADDRESS), "lines": [{"sku": half, "quantity": 2}]}

    response = client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": "too-much"})

    error = assert_error(response, 422, "order_total_too_large")
    assert "100000000" in error["message"] and "99999999" in error["message"]
    assert error["details"] == {"lines": [error["message"]]}
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    assert _reserved(world["warehouse"].id) == 0
    if payments == "stripe":
        assert request.getfixturevalue("stripe_http").requests == []
    assert place_order(client, headers, [(third, 3)])["total_fen"] == 99_999_999  # the limit itself is taken


def _first_order_in_a_database(sqlite_template, folder, **env) -> dict:
    """Order 1 of a fresh database in `folder` (its own app, the same secrets and Stripe account): its JSON and
    `created_at`."""
    folder.mkdir()
    shutil.copy(sqlite_template, folder / "shop.db")
    stub = env.pop("STRIPE_HTTP_CLIENT", None)
    other = make_app(folder, **env)
    other.config["STRIPE_HTTP_CLIENT"] = stub
    with other.app_context():
        world = stock()
        _, headers = user_with_token()
        order = place_order(other.test_client(), headers, [(world["products"][0].sku, 1)])
        order["created_at"] = db.session.get(Order, order["id"]).created_at
        db.session.remove()
        db.engine.dispose()
    return order


def test_order_1_of_two_databases_on_one_stripe_account_asks_for_two_intents(stripe_http, sqlite_template, tmp_path):
    stripe = {"STRIPE_API_KEY": "sk_test_not_real", "STRIPE_WEBHOOK_SECRET": "whsec_test_stripe",
              "STRIPE_HTTP_CLIENT": stripe_http}
    staging = _first_order_in_a_database(sqlite_template, tmp_path / "staging", **stripe)
    recreated = _first_order_in_a_database(sqlite_template, tmp_path / "recreated", **stripe)

    assert staging["id"] == recreated["id"]
    keys = [sent["headers"]["Idempotency-Key"] for sent in stripe_http.requests]
    assert keys == [created_key(f"order-{staging['id']}-intent", staging["created_at"]),
                    created_key(f"order-{recreated['id']}-intent", recreated["created_at"])]
    assert keys[0] != keys[1]


def test_order_1_of_two_sandbox_databases_gets_two_intents(sqlite_template, tmp_path):
    first = _first_order_in_a_database(sqlite_template, tmp_path / "first")
    second = _first_order_in_a_database(sqlite_template, tmp_path / "second")

    assert first["id"] == second["id"]
    assert first["payment"]["client_secret"] != second["payment"]["client_secret"]


def test_an_order_total_below_stripes_minimum_charge_is_refused_clearly_and_nothing_stays_reserved(stripe_app,
                                                                                                   stripe_http):
    """Stripe refuses an intent below its minimum charge (`amount_too_small`, a minimum that follows the account's
    settlement currency, so only Stripe knows it): the buyer is told so in a 422, not that the provider is down, the
    order is cancelled with its stock released, and the key is free for a corrected order."""
    client = stripe_app.test_client()
    world = stock(quantity=5, prices=(100, 1250))
    _, headers = user_with_token()
    db.session.commit()
    cheap, dear = (product.sku for product in world["products"])
    stripe_http.minimum_charge = 400
    body = {"channel": "delivery", "address": dict(ADDRESS), "lines": [{"sku": cheap, "quantity": 1}]}

    response = client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": "too-little"})

    error = assert_error(response, 422, "order_total_too_small")
    assert "100" in error["message"]
    assert error["details"] == {"lines": [error["message"]]}
    order = db.session.scalar(select(Order))
    db.session.refresh(order)
    assert order.status == "cancelled"
    assert _reserved(world["warehouse"].id) == 0
    body["lines"] = [{"sku": dear, "quantity": 1}]
    again = client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": "too-little"})
    assert again.status_code == 201, again.json


@pytest.mark.parametrize(("status", "error"), [(403, "PermissionError"), (401, "AuthenticationError")])
def test_an_order_stripe_refuses_the_shops_key_for_is_refused_and_logged_as_a_key_to_fix(stripe_app, stripe_http,
                                                                                         caplog, status, error):
    client = stripe_app.test_client()
    world = stock(quantity=5, prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    stripe_http.key_refused = status
    body = {"channel": "delivery", "address": dict(ADDRESS),
            "lines": [{"sku": world["products"][0].sku, "quantity": 1}]}

    with caplog.at_level(logging.WARNING):
        response = client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": "refused-key"})

    assert_error(response, 503, "payment_provider_unavailable")
    assert db.session.scalar(select(Order.status)) == "cancelled"
    assert _reserved(world["warehouse"].id) == 0
    logged = [r for r in caplog.records if r.name == "orders.checkout.service"]
    assert [r.levelname for r in logged] == ["ERROR"]
    assert error in logged[0].getMessage() and "API key" in logged[0].getMessage()
    assert not any("_test_" in r.getMessage() or r.exc_info for r in caplog.records)
