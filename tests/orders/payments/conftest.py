"""Fixtures of the payments tests: stock, consumers with tokens, orders placed through the API, webhook
bodies signed exactly as Stripe signs them, and a stub HTTP client under the real `stripe` library."""
from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl

import pytest
import stripe
from sqlalchemy import func, select

from orders.models import Order, OutboxEvent, Payment, PaymentEvent
from shop.auth.security import issue_token
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.conftest import TEST_SECRETS, close_checked, make_app
from tests.factories import UserFactory

SECRET = TEST_SECRETS["STRIPE_WEBHOOK_SECRET"]
ADDRESS = {"district_code": "440604", "detail": "测试路 1 号", "recipient": "测试收件人", "phone": "13800000000"}
WEBHOOK = "/api/v1/payments/stripe/webhook"


def user_with_token(role: str = "consumer", **scope) -> tuple:
    """A user of `role` and Authorization headers for it."""
    user = UserFactory(role=role, **scope)
    db.session.flush()
    token, _ = issue_token(user)
    return user, {"Authorization": f"Bearer {token}"}


def stock(*, quantity: int = 10, prices: tuple[int, ...] = (1250, 800)) -> dict:
    """A warehouse holding `quantity` units of a product per price (committed)."""
    warehouse = LocationFactory()
    products = [ProductFactory(price_fen=price) for price in prices]
    for product in products:
        make_lot(product, warehouse, quantity=quantity)
    db.session.commit()
    return {"warehouse": warehouse, "products": products}


def place_order(client, headers: dict, lines: list[tuple[str, int]], *, key: str | None = None) -> dict:
    """Place a delivery order of `(sku, quantity)` lines through the API; its JSON."""
    body = {"channel": "delivery", "address": dict(ADDRESS),
            "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines]}
    response = client.post("/api/v1/orders", json=body,
                           headers={**headers, "Idempotency-Key": key or f"k-{time.monotonic_ns()}"})
    assert response.status_code == 201, response.json
    return response.json


def created_key(stem: str, created_at: datetime) -> str:
    """A provider key as an auditor reads it: `<stem>@<the object's creation time, microseconds since 1970 UTC>`."""
    return f"{stem}@{calendar.timegm(created_at.utctimetuple()) * 1_000_000 + created_at.microsecond}"


def intent_of(order_id: int) -> Payment:
    """The order's payment row."""
    return db.session.scalar(select(Payment).where(Payment.order_id == order_id))


def stripe_signature(payload: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    """`Stripe-Signature` as Stripe computes it: `t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>">`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


_serial = {"n": 0}


def event(kind: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> dict:
    """A Stripe event of type `kind` about `obj`."""
    _serial["n"] += 1
    return {"id": event_id or f"evt_test_{_serial['n']:06d}", "object": "event", "api_version": "2024-06-20",
            "created": created or int(time.time()), "livemode": False, "type": kind, "data": {"object": obj}}


def intent_event(kind: str, payment: Payment, **kwargs) -> dict:
    """`payment_intent.succeeded` / `payment_intent.payment_failed` for a payment row."""
    succeeded = kind == "payment_intent.succeeded"
    obj = {"id": payment.intent_id, "object": "payment_intent", "amount": payment.amount_fen,
           "amount_received": payment.amount_fen if succeeded else 0, "currency": "cny",
           "status": "succeeded" if succeeded else "requires_payment_method",
           "metadata": {"order_id": str(payment.order_id)},
           "last_payment_error": None if succeeded else {"code": "card_declined", "decline_code": "insufficient_funds",
                                                         "message": "Your card has insufficient funds."}}
    return event(kind, obj, **kwargs)


def refund_event(payment: Payment, refunds: list[tuple[str, int, int]], **kwargs) -> dict:
    """`charge.refunded` carrying the charge's refunds `(id, amount, created)` (newest first, as Stripe lists)."""
    data = [{"id": rid, "object": "refund", "amount": amount, "created": created, "currency": "cny",
             "payment_intent": payment.intent_id, "status": "succeeded"}
            for rid, amount, created in sorted(refunds, key=lambda r: r[2], reverse=True)]
    obj = {"id": f"ch_{payment.intent_id[3:]}", "object": "charge", "amount": payment.amount_fen,
           "amount_refunded": sum(amount for _, amount, _ in refunds), "currency": "cny",
           "payment_intent": payment.intent_id, "refunded": False, "metadata": {},
           "refunds": {"object": "list", "data": data, "has_more": False}}
    return event("charge.refunded", obj, **kwargs)


def deliver(client, body: dict, *, secret: str = SECRET, timestamp: int | None = None, signature: str | None = None):
    """POST an event to the webhook, signed (unless `signature` is given)."""
    payload = json.dumps(body)
    header = signature if signature is not None else stripe_signature(payload, secret, timestamp)
    return client.post(WEBHOOK, data=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"})


def counts() -> dict:
    """How many payment events and outbox events are stored."""
    return {"events": db.session.scalar(select(func.count()).select_from(PaymentEvent)),
            "outbox": db.session.scalar(select(func.count()).select_from(OutboxEvent))}


def order_status(order_id: int) -> str:
    """The order's committed status."""
    db.session.expire_all()
    return db.session.get(Order, order_id).status


KEY_REFUSED = {  # Stripe's answers to a restricted key without a permission (403) and to a key it does not know (401)
    403: {"type": "invalid_request_error", "code": "secret_key_required",
          "message": "The provided key 'rk_test_******************abcd' does not have the required permissions for "
                     "this endpoint on account 'acct_1Stub'. Having the 'rak_refund_write' permission would allow "
                     "this request to continue."},
    401: {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_**********real"}}


@dataclass
class StubHTTPClient(stripe.HTTPClient):
    """Stands in for Stripe's HTTP layer: records each request and answers as the API would."""

    name = "stub"
    requests: list = field(default_factory=list)
    listed_refunds: list = field(default_factory=list)  # what GET /v1/refunds answers
    refund_status: str = "succeeded"  # the status of a Refund made or retrieved
    balance_transactions: dict = field(default_factory=dict)  # what GET /v1/balance_transactions/<id> answers
    uncancellable: bool = False  # POST /v1/payment_intents/<id>/cancel answers as for an intent already paid
    charged: dict = field(default_factory=dict)  # intent id -> amount: its refunds are kept as Stripe keeps them
    lost_refund_answers: int = 0  # POST /v1/refunds answers lost (a 500 after the refund was made), so many times
    minimum_charge: int = 0  # POST /v1/payment_intents below it is refused as Stripe refuses it (`amount_too_small`)
    key_refused: int = 0  # every request answered as Stripe answers a key without the permission it needs (403) or
    # an invalid key (401)
    failing: int = 0  # every request answered with this server error (500, 503), as Stripe answers when it is down


    def __post_init__(self):
        super().__init__()

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        """Record the request; answer a PaymentIntent (made or cancelled), a Refund made from its parameters or
        retrieved (as listed, if it is), the refunds listed, or a balance transaction."""
        params = dict(parse_qsl(post_data or ""))
        self.requests.append({"method": method, "url": url, "headers": dict(headers or {}), "params": params})
        if self.key_refused:
            return json.dumps({"error": KEY_REFUSED[self.key_refused]}), self.key_refused, {"request-id": "req_stub"}
        if self.failing:
            error = {"type": "api_error", "message": "An unknown error occurred (sk_test_not_real)."}
            headers = {"request-id": "req_stub", "stripe-should-retry": "false"}
            return json.dumps({"error": error}), self.failing, headers
        if url.endswith("/v1/payment_intents") and int(params["amount"]) < self.minimum_charge:
            error = {"type": "invalid_request_error", "code": "amount_too_small", "param": "amount",
                     "message": f"Amount must be at least ¥{self.minimum_charge / 100:.2f} cny",
                     "doc_url": "https://stripe.com/docs/error-codes/amount-too-small"}
            return json.dumps({"error": error}), 400, {"request-id": "req_stub"}
        if url.endswith("/v1/payment_intents"):
            n = len(self.requests)
            body = {"id": f"pi_stub{n}", "object": "payment_intent", "amount": int(params["amount"]),
                    "currency": params["currency"], "client_secret": f"pi_stub{n}_secret_x",
                    "status": "requires_payment_method", "metadata": {"order_id": params["metadata[order_id]"]}}
        elif url.endswith("/cancel") and "/v1/payment_intents/" in url:
            intent_id = url.rsplit("/", 2)[1]
            if self.uncancellable:
                error = {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                         "message": "This PaymentIntent's status is succeeded: it cannot be canceled."}
                return json.dumps({"error": error}), 400, {"request-id": "req_stub"}
            body = {"id": intent_id, "object": "payment_intent", "status": "canceled", "amount": 1, "currency": "cny"}
        elif method == "get" and "/v1/refunds?" in url:
            body = {"object": "list", "url": "/v1/refunds", "has_more": False, "data": self.listed_refunds}
        elif url.endswith("/v1/refunds") and params["payment_intent"] in self.charged:
            return self._charged_refund(params)
        elif url.endswith("/v1/refunds"):
            body = {"id": f"re_stub{len(self.requests)}", "object": "refund", "amount": int(params["amount"]),
                    "payment_intent": params["payment_intent"], "status": self.refund_status, "currency": "cny"}
        elif method == "get" and "/v1/balance_transactions/" in url:
            body = {"object": "balance_transaction", **self.balance_transactions[url.rsplit("/", 1)[1]]}
        elif method == "get" and "/v1/refunds/re_" in url:
            refund_id = url.rsplit("/", 1)[1]
            body = next((r for r in self.listed_refunds if r["id"] == refund_id), None) or {
                "id": refund_id, "object": "refund", "amount": 1, "status": self.refund_status, "currency": "cny"}
        else:
            return json.dumps({"error": {"message": "not stubbed"}}), 404, {}
        return json.dumps(body), 200, {"request-id": "req_stub"}

    def _charged_refund(self, params: dict) -> tuple:
        """A refund of a charge whose refunds are kept: one of its idempotency key made again is answered as made;
        one beyond what is left unrefunded is refused as Stripe refuses it; else made and listed (newest first)."""
        key = params["metadata[refund_key]"]
        made = next((r for r in self.listed_refunds if r["metadata"].get("refund_key") == key), None)
        taken = sum(r["amount"] for r in self.listed_refunds if r["payment_intent"] == params["payment_intent"]
                    and r["status"] not in ("failed", "canceled"))
        if made is None and taken + int(params["amount"]) > self.charged[params["payment_intent"]]:
            error = {"type": "invalid_request_error", "code": "amount_too_large",
                     "message": "Refund amount is greater than unrefunded amount on charge."}
            return json.dumps({"error": error}), 400, {"request-id": "req_stub"}
        if made is None:
            made = {"id": f"re_stub{len(self.requests)}", "object": "refund", "amount": int(params["amount"]),
                    "created": int(time.time()), "currency": "cny", "payment_intent": params["payment_intent"],
                    "status": self.refund_status, "metadata": {"refund_key": key}}
            self.listed_refunds.insert(0, made)
        if self.lost_refund_answers:
            self.lost_refund_answers -= 1
            return json.dumps({"error": {"type": "api_error"}}), 500, {"stripe-should-retry": "false"}
        return json.dumps(made), 200, {"request-id": "req_stub"}

    def close(self):
        """Nothing to close."""


@pytest.fixture
def stripe_http():
    """The stub under the `stripe` library."""
    return StubHTTPClient()


@pytest.fixture
def stripe_app(sqlite_template, tmp_path, stripe_http, request):
    """The app configured for Stripe (a test key and webhook secret), its HTTP layer stubbed."""
    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path, STRIPE_API_KEY="sk_test_not_real", STRIPE_WEBHOOK_SECRET="whsec_test_stripe")
    app.config["STRIPE_HTTP_CLIENT"] = stripe_http
    with app.app_context():
        yield app
        close_checked(request)
