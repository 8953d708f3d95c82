"""A late payment that cannot be allocated is returned automatically; a refund made at Stripe's dashboard before
that return is part of it: the return gives back only what Stripe has not refunded yet, and the `payment_returned`
events add up to exactly the payment, whatever order the events arrive in (real `stripe` library, stub HTTP client
keeping the charge's refunds as Stripe does, signed webhooks)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from orders.checkout.service import expire_reservations
from orders.ledger.models import LedgerAccount, Posting
from orders.ledger.verify import verify_ledger
from orders.models import OutboxEvent, Refund
from orders.refunds.service import is_return_key
from shop.db import db, utcnow
from shop.tasks import sweep
from tests.orders.payments.conftest import deliver, event, intent_event, intent_of, place_order, stock, user_with_token

SECRET = "whsec_test_stripe"
DASHBOARD = {"id": "re_dash_1", "object": "refund", "amount": 1800, "created": int(time.time()) - 60,
             "currency": "cny", "status": "succeeded", "metadata": {}}


@pytest.fixture
def returning(stripe_app, stripe_http):
    """An expired order of 4 × 12.50 whose stock another buyer took, its intent paid late (5000 fen) and 18.00 of it
    refunded at Stripe's dashboard; the client and the payment row."""
    client = stripe_app.test_client()
    world = stock(quantity=4, prices=(1250,))
    _, late, other = user_with_token(), *(user_with_token()[1] for _ in range(2))
    db.session.commit()
    payment = intent_of(place_order(client, late, [(world["products"][0].sku, 4)])["id"])
    assert expire_reservations(now=utcnow() + timedelta(hours=1)) == 1
    db.session.commit()
    place_order(client, other, [(world["products"][0].sku, 4)])
    stripe_http.charged[payment.intent_id] = 5000
    stripe_http.listed_refunds = [{**DASHBOARD, "payment_intent": payment.intent_id}]
    return client, payment


def _charge_refunded(payment, refunds: list[dict]) -> dict:
    """`charge.refunded` embedding the charge's refunds as Stripe lists them now."""
    return event("charge.refunded", {"id": "ch_late", "object": "charge", "amount": 5000, "currency": "cny",
                                     "amount_refunded": sum(r["amount"] for r in refunds),
                                     "payment_intent": payment.intent_id, "refunded": True, "metadata": {},
                                     "refunds": {"object": "list", "data": [dict(r) for r in refunds],
                                                 "has_more": False}})


def _sweep_returns() -> None:
    """The pending-refund sweeper, once the return has waited past its grace period."""
    db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2), retry_at=None))
    db.session.commit()
    sweep()


def _late(client, payment, stripe_http):
    deliver(client, intent_event("payment_intent.succeeded", payment), secret=SECRET)


def _late_answer_lost(client, payment, stripe_http):
    stripe_http.lost_refund_answers = 1
    _late(client, payment, stripe_http)


def _dashboard(client, payment, stripe_http):
    deliver(client, _charge_refunded(payment, [{**DASHBOARD, "payment_intent": payment.intent_id}]), secret=SECRET)


def _all_listed(client, payment, stripe_http):
    deliver(client, _charge_refunded(payment, stripe_http.listed_refunds), secret=SECRET)


def _swept(client, payment, stripe_http):
    _sweep_returns()


@pytest.mark.parametrize("steps", [
    (_dashboard, _late, _all_listed),
    (_late, _dashboard, _all_listed),
    (_late, _all_listed, _dashboard),
    (_late_answer_lost, _dashboard, _swept, _all_listed),
    (_late_answer_lost, _all_listed, _swept, _dashboard),
    (_late_answer_lost, _swept, _dashboard, _all_listed),
    (_dashboard, _late_answer_lost, _all_listed, _swept),
], ids=lambda steps: "-".join(step.__name__.strip("_") for step in steps))
def test_a_return_gives_back_only_what_the_dashboard_left_and_the_returns_add_up_to_the_payment(
        returning, stripe_http, steps):
    client, payment = returning

    for step in steps:
        step(client, payment, stripe_http)

    db.session.expire_all()
    asked = [r["params"] for r in stripe_http.requests if r["method"] == "post" and r["url"].endswith("/v1/refunds")]
    assert {(p["amount"], p["metadata[refund_key]"]) for p in asked} == {("3200", f"{payment.intent_id}-returned")}
    returns = db.session.execute(select(Refund.provider_refund_id, Refund.amount_fen, Refund.status)
                                 .where(Refund.payment_id == payment.id, Refund.amount_fen > 0)).all()
    assert sorted(returns) == sorted([("re_dash_1", 1800, "succeeded"),
                                      (stripe_http.listed_refunds[0]["id"], 3200, "succeeded")])
    money = db.session.execute(select(OutboxEvent.kind, OutboxEvent.amount_fen)
                               .where(OutboxEvent.order_id == payment.order_id)).all()
    assert sorted(money) == [("payment_returned", 1800), ("payment_returned", 3200), ("payment_unallocated", 5000)]
    assert db.session.scalar(select(Refund.id).where(Refund.status == "pending")) is None
    assert _ledger("unallocated") == (3, 0)  # in once, out in two parts: exactly what it received
    assert verify_ledger()["ok"] is True


def test_a_payment_refunded_in_full_at_the_dashboard_is_not_returned_again(returning, stripe_http):
    client, payment = returning
    stripe_http.listed_refunds[0]["amount"] = 5000

    deliver(client, intent_event("payment_intent.succeeded", payment), secret=SECRET)
    _all_listed(client, payment, stripe_http)

    db.session.expire_all()
    assert not [r for r in stripe_http.requests if r["method"] == "post" and r["url"].endswith("/v1/refunds")]
    money = db.session.execute(select(OutboxEvent.kind, OutboxEvent.amount_fen)
                               .where(OutboxEvent.order_id == payment.order_id)).all()
    assert sorted(money) == [("payment_returned", 5000), ("payment_unallocated", 5000)]
    assert db.session.scalar(select(Refund.id).where(Refund.status != "succeeded")) is None


def test_a_dashboard_refund_still_pending_at_stripe_books_its_part_of_the_return_once_it_succeeds(returning,
                                                                                                  stripe_http):
    client, payment = returning
    pending = {**DASHBOARD, "payment_intent": payment.intent_id, "status": "pending"}
    stripe_http.listed_refunds = [pending]

    deliver(client, intent_event("payment_intent.succeeded", payment), secret=SECRET)
    booked_while_pending = _money(payment)
    deliver(client, event("refund.updated", {**pending, "status": "succeeded"}), secret=SECRET)

    assert booked_while_pending == [("payment_returned", 3200), ("payment_unallocated", 5000)]
    assert _money(payment) == [("payment_returned", 1800), ("payment_returned", 3200), ("payment_unallocated", 5000)]
    assert db.session.scalar(select(Refund.id).where(Refund.status != "succeeded")) is None


def _ledger(code: str) -> tuple[int, int]:
    """How many postings a ledger account has, and their sum."""
    count, total = db.session.execute(select(func.count(Posting.id), func.coalesce(func.sum(Posting.amount_fen), 0))
                                      .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
                                      .where(LedgerAccount.code == code)).one()
    return count, int(total)


def _money(payment) -> list[tuple[str, int]]:
    """The order's money events (kind, amount), sorted."""
    db.session.expire_all()
    return sorted(db.session.execute(select(OutboxEvent.kind, OutboxEvent.amount_fen)
                                     .where(OutboxEvent.order_id == payment.order_id)).all())


def _dashboard_refund_races_the_return(stripe_http, payment) -> None:
    """Stripe's dashboard refunds 18.00 of the payment between our listing of its refunds and our return request."""
    stripe_http.listed_refunds = []
    answer = stripe_http.request

    def racing(method, url, headers, post_data=None, **kwargs):
        if method == "post" and url.endswith("/v1/refunds") and not stripe_http.listed_refunds:
            stripe_http.listed_refunds.append({**DASHBOARD, "payment_intent": payment.intent_id})
        return answer(method, url, headers, post_data, **kwargs)

    stripe_http.request = racing


@pytest.mark.parametrize("steps", [
    (_late, _dashboard, _swept, _all_listed),
    (_late, _swept, _all_listed, _dashboard),
    (_late, _swept, _dashboard, _all_listed),
    (_late, _all_listed, _swept, _all_listed),
], ids=lambda steps: "-".join(step.__name__.strip("_") for step in steps))
def test_a_return_refused_because_the_dashboard_refunded_meanwhile_is_asked_again_for_what_is_left(
        returning, stripe_http, steps):
    client, payment = returning
    _dashboard_refund_races_the_return(stripe_http, payment)

    for step in steps:
        step(client, payment, stripe_http)

    asked = [r["params"] for r in stripe_http.requests if r["method"] == "post" and r["url"].endswith("/v1/refunds")]
    keys = [p["metadata[refund_key]"] for p in asked]
    assert [p["amount"] for p in asked] == ["5000", "3200"] and len(set(keys)) == 2
    assert all(key.startswith(f"{payment.intent_id}-returned") for key in keys)
    returns = db.session.execute(select(Refund.provider_refund_id, Refund.amount_fen, Refund.status)
                                 .where(Refund.payment_id == payment.id, Refund.amount_fen > 0)).all()
    assert sorted(returns) == sorted([("re_dash_1", 1800, "succeeded"),
                                      (stripe_http.listed_refunds[0]["id"], 3200, "succeeded")])
    assert _money(payment) == [("payment_returned", 1800), ("payment_returned", 3200), ("payment_unallocated", 5000)]
    assert db.session.scalar(select(Refund.id).where(Refund.status != "succeeded")) is None
    assert _ledger("unallocated") == (3, 0)
    assert verify_ledger()["ok"] is True


def _listed_pending(client, payment, stripe_http):
    """The dashboard's 18.00 refund is still pending at Stripe (as Stripe lists it)."""
    stripe_http.listed_refunds[0]["status"] = "pending"


def _dashboard_pending(client, payment, stripe_http):
    _listed_pending(client, payment, stripe_http)
    deliver(client, _charge_refunded(payment, [stripe_http.listed_refunds[0]]), secret=SECRET)


def _dashboard_fails(client, payment, stripe_http):
    dashboard = next(r for r in stripe_http.listed_refunds if r["id"] == "re_dash_1")
    dashboard["status"] = "failed"
    deliver(client, event("charge.refund.updated", dict(dashboard)), secret=SECRET)


def _dashboard_fails_again(client, payment, stripe_http):
    dashboard = next(r for r in stripe_http.listed_refunds if r["id"] == "re_dash_1")
    deliver(client, event("refund.failed", dict(dashboard)), secret=SECRET)


def _second_dashboard(client, payment, stripe_http):
    """The dashboard refunds 10.00 more, whose event has not come yet."""
    stripe_http.listed_refunds.insert(0, {**DASHBOARD, "id": "re_dash_2", "amount": 1000,
                                          "payment_intent": payment.intent_id})


def _dashboard_fails_during_our_return(client, payment, stripe_http):
    """The dashboard's refund fails (and its event is processed) between our listing of its refunds and our return
    request, which was computed with it still pending."""
    answer = stripe_http.request

    def racing(method, url, headers, post_data=None, **kwargs):
        if method == "post" and url.endswith("/v1/refunds") and stripe_http.request is racing:
            stripe_http.request = answer
            _dashboard_fails(client, payment, stripe_http)
        return answer(method, url, headers, post_data, **kwargs)

    stripe_http.request = racing
    _late(client, payment, stripe_http)


@pytest.mark.parametrize("steps", [
    (_listed_pending, _late, _dashboard_fails),
    (_listed_pending, _late, _dashboard_fails, _dashboard_fails_again, _all_listed),
    (_dashboard_pending, _late, _dashboard_fails),
    (_dashboard_pending, _dashboard_fails, _late),
    (_listed_pending, _dashboard_fails, _late),
    (_listed_pending, _late_answer_lost, _dashboard_fails, _swept, _all_listed),
    (_listed_pending, _late, _dashboard_fails, _all_listed, _swept),
    (_listed_pending, _dashboard_fails_during_our_return, _swept),
    (_listed_pending, _late, _second_dashboard, _dashboard_fails, _all_listed),
    (_listed_pending, _late, _second_dashboard, _all_listed, _dashboard_fails),
], ids=lambda steps: "-".join(step.__name__.strip("_") for step in steps))
def test_a_dashboard_refund_that_fails_after_it_cut_the_return_is_returned_to_the_buyer(returning, stripe_http, steps):
    client, payment = returning

    for step in steps:
        step(client, payment, stripe_http)

    db.session.expire_all()
    asked = [r["params"] for r in stripe_http.requests if r["method"] == "post" and r["url"].endswith("/v1/refunds")]
    keys = {(p["metadata[refund_key]"], p["amount"]) for p in asked}
    made = [r["amount"] for r in stripe_http.listed_refunds if r["status"] == "succeeded"]
    assert all(is_return_key(key, payment.intent_id) for key, _ in keys)
    assert len({key for key, _ in keys}) == len(keys)  # a key asked again only for the same amount, as Stripe takes it
    assert sum(made) == 5000  # the buyer has the whole payment back, once
    assert _money(payment) == sorted([("payment_unallocated", 5000),
                                      *(("payment_returned", amount) for amount in made)])
    assert db.session.scalar(select(Refund.id).where(Refund.status == "pending")) is None
    assert db.session.scalar(select(Refund.status).where(Refund.provider_refund_id == "re_dash_1")) in (None, "failed")
    assert _ledger("unallocated")[1] == 0
    assert verify_ledger()["ok"] is True


def test_a_failed_dashboard_refund_is_returned_under_the_next_attempts_key(returning, stripe_http):
    client, payment = returning
    _listed_pending(client, payment, stripe_http)

    _late(client, payment, stripe_http)
    _dashboard_fails(client, payment, stripe_http)

    asked = [(r["params"]["amount"], r["params"]["metadata[refund_key]"]) for r in stripe_http.requests
             if r["method"] == "post" and r["url"].endswith("/v1/refunds")]
    assert asked == [("3200", f"{payment.intent_id}-returned"), ("1800", f"{payment.intent_id}-returned-1")]
    assert _money(payment) == [("payment_returned", 1800), ("payment_returned", 3200), ("payment_unallocated", 5000)]
    assert _ledger("unallocated") == (3, 0)


def test_a_new_return_after_one_that_was_asked_again_has_its_own_attempts(returning, stripe_http):
    """The return refused three times (the dashboard refunding 5.00 each time between our listing and our request,
    the first still pending at Stripe) and made at its fourth attempt leaves the return of the first's part, once it
    fails, its own attempts: refused once too, it is asked again for what is left, not failed."""
    client, payment = returning
    stripe_http.listed_refunds = []
    racing = iter([500, 500, 500, 0, 200, 0])  # what the dashboard refunds just before each of our requests
    answer = stripe_http.request

    def dashboard_meanwhile(method, url, headers, post_data=None, **kwargs):
        amount = next(racing) if method == "post" and url.endswith("/v1/refunds") else 0
        if amount:
            n = sum(r["id"].startswith("re_dash") for r in stripe_http.listed_refunds) + 1
            stripe_http.listed_refunds.insert(0, {**DASHBOARD, "id": f"re_dash_{n}", "amount": amount,
                                                  "payment_intent": payment.intent_id,
                                                  "status": "pending" if n == 1 else "succeeded"})
        return answer(method, url, headers, post_data, **kwargs)

    stripe_http.request = dashboard_meanwhile
    _late(client, payment, stripe_http)
    for _ in range(3):
        _sweep_again()
    _dashboard_fails(client, payment, stripe_http)  # its 5.00 returned anew: refused, re_dash_4 took 2.00 meanwhile
    _sweep_again()

    asked = [(r["params"]["amount"], r["params"]["metadata[refund_key]"].removeprefix(payment.intent_id))
             for r in stripe_http.requests if r["method"] == "post" and r["url"].endswith("/v1/refunds")]
    assert asked == [("5000", "-returned"), ("4500", "-returned-1"), ("4000", "-returned-2"), ("3500", "-returned-3"),
                     ("500", "-returned-4"), ("300", "-returned-5")]
    assert _money(payment) == [*(("payment_returned", amount) for amount in (200, 300, 500, 500, 3500)),
                               ("payment_unallocated", 5000)]
    assert db.session.scalar(select(Refund.id).where(Refund.status == "pending")) is None
    assert _ledger("unallocated")[1] == 0


def _sweep_again() -> None:
    """The pending-refund sweeper, once every pending return has waited past its grace period since it was asked."""
    db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2), asked_at=None, retry_at=None))
    db.session.commit()
    sweep()



def _dashboard_1970(client, payment, stripe_http):
    deliver(client, _charge_refunded(payment, stripe_http.listed_refunds[-1:]), secret=SECRET)


@pytest.mark.parametrize("steps", [(_late, _dashboard_1970), (_dashboard_1970, _late), (_late, _all_listed)],
                         ids=lambda steps: "-".join(step.__name__.strip("_") for step in steps))
def test_a_dashboard_refund_of_a_returned_payment_dated_1970_is_dated_when_the_payment_was_made(
        returning, stripe_http, steps):
    client, payment = returning
    stripe_http.listed_refunds = [{**DASHBOARD, "payment_intent": payment.intent_id, "created": 1}]

    for step in steps:
        step(client, payment, stripe_http)

    db.session.expire_all()
    returned = db.session.scalars(select(OutboxEvent.occurred_at).where(OutboxEvent.kind == "payment_returned",
                                                                        OutboxEvent.amount_fen == 1800)).all()
    assert returned == [intent_of(payment.order_id).succeeded_at]
