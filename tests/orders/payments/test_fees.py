"""What Stripe keeps of a payment (a charge's fee on its balance transaction, a dispute's fee) reaches the ledger
once, as the platform's cost (`platform_costs`), converted to fen at the charge's rate, and never attributed."""
from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import select

from orders.models import OutboxEvent
from orders.outbox import sale_date_of
from shop.db import db
from tests.orders.payments.conftest import deliver, event, intent_event, intent_of, place_order, stock, user_with_token

SECRET = "whsec_test_stripe"


@pytest.fixture
def paid(stripe_app):
    """A delivery order of 2 units at 12.50 paid through (stubbed) Stripe; its client, payment row and an auditor's
    headers."""
    client = stripe_app.test_client()
    world = stock(prices=(1250,))
    _, headers = user_with_token()
    _, auditor = user_with_token("auditor")
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 2)])
    payment = intent_of(order["id"])
    return client, payment, auditor


def _charge(payment, kind: str = "charge.succeeded", balance_transaction: str | None = "txn_1") -> dict:
    """A Charge event of the payment naming its balance transaction."""
    return event(kind, {"id": f"ch_{payment.intent_id[3:]}", "object": "charge", "amount": payment.amount_fen,
                        "currency": "cny", "payment_intent": payment.intent_id, "status": "succeeded",
                        "balance_transaction": balance_transaction})


def _costs(client, auditor) -> list[dict]:
    """The auditor's view of the transactions on `platform_costs` (none while the account does not exist): kind and
    postings per account."""
    listed = client.get("/api/v1/ledger/transactions?account=platform_costs", headers=auditor)
    if listed.status_code == 404 and listed.json["error"]["code"] == "account_not_found":  # nothing posted to it yet
        return []
    assert listed.status_code == 200, listed.json
    return [{"kind": t["kind"], **{p["account"]: p["amount_fen"] for p in t["postings"]}}
            for t in listed.json["items"]]


def _pay(client, payment) -> None:
    """Deliver the payment's succeeded event."""
    assert deliver(client, intent_event("payment_intent.succeeded", payment), secret=SECRET).status_code == 200


def test_a_charges_fee_is_fetched_from_stripe_and_booked_once_as_the_platforms_cost(paid, stripe_http):
    client, payment, auditor = paid
    _pay(client, payment)
    stripe_http.balance_transactions["txn_1"] = {"id": "txn_1", "amount": 2500, "fee": 95, "currency": "cny",
                                                 "exchange_rate": None}

    for kind in ("charge.succeeded", "charge.updated", "charge.updated"):  # and a replay
        assert deliver(client, _charge(payment, kind), secret=SECRET).status_code == 200

    asked = [r["url"] for r in stripe_http.requests if "/v1/balance_transactions/" in r["url"]]
    assert asked == ["https://api.stripe.com/v1/balance_transactions/txn_1"]  # once: later updates find it booked
    assert _costs(client, auditor) == [{"kind": "processor_fee", "platform_costs": -95, "payments:stripe": 95}]


def test_a_fee_kept_in_another_currency_is_converted_to_fen_at_the_charges_rate(paid, stripe_http):
    client, payment, auditor = paid
    _pay(client, payment)
    # 25.00 CNY settled as 27.00 HKD (rate 1.08); Stripe kept 3.50 HKD: 3.2407… CNY
    stripe_http.balance_transactions["txn_1"] = {"id": "txn_1", "amount": 2700, "fee": 350, "currency": "hkd",
                                                 "exchange_rate": 1.08}

    assert deliver(client, _charge(payment), secret=SECRET).status_code == 200

    assert _costs(client, auditor) == [{"kind": "processor_fee", "platform_costs": -324, "payments:stripe": 324}]


def test_a_charge_event_before_its_payment_books_its_fee_once_the_payment_succeeds(paid, stripe_http):
    client, payment, auditor = paid
    stripe_http.balance_transactions["txn_1"] = {"id": "txn_1", "amount": 2500, "fee": 95, "currency": "cny",
                                                 "exchange_rate": None}

    assert deliver(client, _charge(payment), secret=SECRET).status_code == 200
    assert _costs(client, auditor) == []
    _pay(client, payment)

    assert _costs(client, auditor) == [{"kind": "processor_fee", "platform_costs": -95, "payments:stripe": 95}]


def test_a_charge_with_no_balance_transaction_yet_books_nothing_until_its_update_names_one(paid, stripe_http):
    client, payment, auditor = paid
    _pay(client, payment)
    stripe_http.balance_transactions["txn_1"] = {"id": "txn_1", "amount": 2500, "fee": 95, "currency": "cny",
                                                 "exchange_rate": None}

    assert deliver(client, _charge(payment, balance_transaction=None), secret=SECRET).status_code == 200
    assert _costs(client, auditor) == []
    assert deliver(client, _charge(payment, "charge.updated"), secret=SECRET).status_code == 200

    assert _costs(client, auditor) == [{"kind": "processor_fee", "platform_costs": -95, "payments:stripe": 95}]


def _dispute(payment, kind: str, transactions: list[dict], status: str) -> dict:
    """A dispute event of the payment listing its balance transactions."""
    return event(kind, {"id": "dp_1", "object": "dispute", "amount": 2500, "currency": "cny",
                        "charge": f"ch_{payment.intent_id[3:]}", "payment_intent": payment.intent_id,
                        "reason": "fraudulent", "status": status, "balance_transactions": transactions})


def test_a_disputes_fee_is_booked_once_and_its_return_when_the_dispute_is_won(paid):
    client, payment, auditor = paid
    _pay(client, payment)
    withdrawn = {"id": "txn_dp_1", "amount": -347, "fee": 1500, "currency": "usd", "exchange_rate": 0.1386}
    reinstated = {"id": "txn_dp_2", "amount": 347, "fee": -1500, "currency": "usd", "exchange_rate": 0.1386}

    for kind, listed, status in (("charge.dispute.created", [withdrawn], "needs_response"),
                                 ("charge.dispute.funds_withdrawn", [withdrawn], "needs_response"),
                                 ("charge.dispute.closed", [withdrawn, reinstated], "won")):
        assert deliver(client, _dispute(payment, kind, listed, status), secret=SECRET).status_code == 200

    # 15.00 USD at 0.1386 USD per CNY: 108.2251… CNY, and given back when the dispute was won
    assert _costs(client, auditor) == [{"kind": "processor_fee", "platform_costs": -10823, "payments:stripe": 10823},
                                       {"kind": "processor_fee", "platform_costs": 10823, "payments:stripe": -10823}]


@pytest.mark.parametrize("rate", [None, 0, -1.08, 1e-12])  # none, nonsense, or one giving a fee beyond bounds
def test_a_fee_with_no_usable_rate_to_cny_is_logged_to_book_by_hand_and_not_guessed(paid, stripe_http, caplog, rate):
    client, payment, auditor = paid
    _pay(client, payment)
    stripe_http.balance_transactions["txn_1"] = {"id": "txn_1", "amount": 2700, "fee": 350, "currency": "hkd",
                                                 "exchange_rate": rate}

    with caplog.at_level(logging.ERROR, logger="orders.payments.service"):
        assert deliver(client, _charge(payment), secret=SECRET).status_code == 200

    assert _costs(client, auditor) == []
    assert any("txn_1" in r.getMessage() and "book it by hand" in r.getMessage() for r in caplog.records)


EPOCH_PLUS_ONE = 1  # 1970-01-01T00:00:01Z: a Stripe timestamp, but no fee of this shop's was kept then


def _fee_event_dated_1970(payment, kind: str) -> dict:
    """A charge's or a dispute's event of the payment, naming a fee, that says it was made in 1970."""
    made = (_charge(payment) if kind == "charge" else
            _dispute(payment, "charge.dispute.funds_withdrawn", [{"id": "txn_1", "fee": 95, "currency": "cny"}],
                     "needs_response"))
    return {**made, "created": EPOCH_PLUS_ONE}


@pytest.mark.parametrize("kind", ["charge", "dispute"])
@pytest.mark.parametrize("amount", [2500, 2499], ids=["paid", "returned"])  # allocated, or returned as not the total
def test_a_fee_dated_before_its_payment_is_dated_when_the_payment_was_made(paid, stripe_http, kind, amount):
    client, payment, _ = paid
    stripe_http.balance_transactions["txn_1"] = {"id": "txn_1", "amount": 2500, "fee": 95, "currency": "cny",
                                                 "exchange_rate": None}
    paid_at = int(time.time()) + 3600  # the payment is dated an hour after its order was placed
    succeeded = intent_event("payment_intent.succeeded", payment, created=paid_at)
    succeeded["data"]["object"]["amount_received"] = amount
    assert deliver(client, succeeded, secret=SECRET).status_code == 200

    assert deliver(client, _fee_event_dated_1970(payment, kind), secret=SECRET).status_code == 200

    db.session.expire_all()
    fees = db.session.execute(select(OutboxEvent.occurred_at, OutboxEvent.sale_date)
                              .where(OutboxEvent.kind == "processor_fee")).all()
    assert [occurred_at.timestamp() for occurred_at, _ in fees] == [paid_at]
    assert fees[0].sale_date == sale_date_of(intent_of(payment.order_id).succeeded_at)
