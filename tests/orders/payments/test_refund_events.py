"""Refunds made at Stripe in today's event shapes: a Refund's own events, a Charge that no longer embeds its refunds
(listed through the `stripe` library), each refund counted once by its id, and a refund that later fails shown;
disputes of a payment kept and shown to admins, a lost one counted as the money it took back."""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from catalog.models import Location
from orders.models import OrderLine, OutboxEvent, PaymentEvent, Refund
from shop.db import db, utcnow
from shop.tasks import sweep
from tests.catalog.factories import ProductFactory, make_lot
from tests.orders.factories import StoreFactory
from tests.orders.payments.conftest import deliver, event, intent_event, intent_of, place_order, stock, user_with_token

SECRET = "whsec_test_stripe"


@pytest.fixture
def paid(stripe_app):
    """A delivery order of 2 units at 12.50 paid through (stubbed) Stripe; its payment row and an admin's headers."""
    client = stripe_app.test_client()
    world = stock(prices=(1250,))
    _, headers = user_with_token()
    _, admin = user_with_token("admin")
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 2)])
    payment = intent_of(order["id"])
    assert deliver(client, intent_event("payment_intent.succeeded", payment), secret=SECRET).status_code == 200
    return client, payment, admin


def _refund_object(payment, refund_id: str, amount: int, status: str = "succeeded") -> dict:
    """A Stripe Refund of the payment (API version 2022-11-15 on: no charge embeds it)."""
    return {"id": refund_id, "object": "refund", "amount": amount, "currency": "cny", "created": int(time.time()),
            "payment_intent": payment.intent_id, "status": status, "metadata": {}}


def _refunded_units() -> int:
    """Units refunded on the order's line."""
    db.session.expire_all()
    return db.session.scalar(select(OrderLine.refunded_quantity))


def test_a_dashboard_refund_is_recorded_from_its_refund_created_event_once(paid):
    client, payment, _ = paid

    for kind in ("refund.created", "refund.updated"):
        body = event(kind, _refund_object(payment, "re_dash_1", 1250))
        assert deliver(client, body, secret=SECRET).status_code == 200

    assert _refunded_units() == 1
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1


def test_a_charge_refunded_without_its_refunds_lists_them_through_stripe(paid, stripe_http):
    client, payment, _ = paid
    assert deliver(client, event("refund.created", _refund_object(payment, "re_dash_1", 1250)),
                   secret=SECRET).status_code == 200
    stripe_http.listed_refunds = [_refund_object(payment, "re_dash_2", 1250),
                                  _refund_object(payment, "re_dash_1", 1250)]
    charge = {"id": "ch_1", "object": "charge", "amount": 2500, "amount_refunded": 2500, "currency": "cny",
              "payment_intent": payment.intent_id, "refunded": True}

    assert deliver(client, event("charge.refunded", charge), secret=SECRET).status_code == 200

    listed = stripe_http.requests[-1]
    assert (listed["method"], listed["url"].split("?")[0]) == ("get", "https://api.stripe.com/v1/refunds")
    assert f"payment_intent={payment.intent_id}" in listed["url"]
    assert _refunded_units() == 2
    assert sorted(db.session.scalars(select(Refund.provider_refund_id))) == ["re_dash_1", "re_dash_2"]


@pytest.mark.parametrize("refunds", [None, {"object": "list", "url": "/v1/charges/ch_1/refunds"}])
def test_a_charge_refunded_whose_refunds_are_not_embedded_as_a_list_lists_them_through_stripe(paid, stripe_http,
                                                                                             refunds):
    client, payment, _ = paid
    stripe_http.listed_refunds = [_refund_object(payment, "re_dash_3", 1250)]
    charge = {"id": "ch_1", "object": "charge", "amount": 2500, "amount_refunded": 1250, "currency": "cny",
              "payment_intent": payment.intent_id, "refunded": False, "refunds": refunds}

    assert deliver(client, event("charge.refunded", charge), secret=SECRET).status_code == 200

    assert db.session.scalars(select(Refund.provider_refund_id)).all() == ["re_dash_3"]
    assert _refunded_units() == 1


def _money_events() -> list[tuple[str, int]]:
    """The refund events written to the outbox (kind, amount)."""
    return [(e.kind, e.amount_fen) for e in db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.kind != "line_paid").order_by(OutboxEvent.id))]


def _refund_state(admin, client, payment) -> list[tuple]:
    """The order's refunds as an admin reads them (provider id, status, provider status)."""
    listed = client.get(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin).json["items"]
    return [(r["provider_refund_id"], r["status"], r["provider_status"]) for r in listed]


def test_a_dashboard_refund_still_pending_holds_its_units_and_books_money_only_once_it_succeeds(paid):
    client, payment, admin = paid

    assert deliver(client, event("refund.created", _refund_object(payment, "re_dash_1", 1250, "pending")),
                   secret=SECRET).status_code == 200

    assert _refund_state(admin, client, payment) == [("re_dash_1", "pending", "pending")]
    assert _refunded_units() == 1  # held: no one refunds it again meanwhile
    assert _money_events() == []
    for _ in range(2):  # delivered twice
        body = event("refund.updated", _refund_object(payment, "re_dash_1", 1250, "succeeded"))
        assert deliver(client, body, secret=SECRET).status_code == 200
    assert _refund_state(admin, client, payment) == [("re_dash_1", "succeeded", "succeeded")]
    assert _money_events() == [("line_refunded", 1250)]


def test_a_dashboard_refund_that_fails_while_pending_gives_its_unit_back_and_books_nothing(paid):
    client, payment, admin = paid
    assert deliver(client, event("refund.created", _refund_object(payment, "re_dash_1", 1250, "pending")),
                   secret=SECRET).status_code == 200

    body = event("refund.failed", _refund_object(payment, "re_dash_1", 1250, "failed"))
    assert deliver(client, body, secret=SECRET).status_code == 200

    assert _refund_state(admin, client, payment) == [("re_dash_1", "failed", "failed")]
    assert (_refunded_units(), _money_events()) == (0, [])
    again = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers={**admin, "Idempotency-Key": "r-1"},
                        json={"lines": [{"line_id": db.session.scalar(select(OrderLine.id)), "quantity": 2}],
                              "reason": "退货"})
    assert again.status_code == 201, again.json  # both units are refundable again
    assert _money_events() == [("line_refunded", 2500)]


def test_a_dashboard_refund_whose_events_come_in_any_order_ends_as_its_last_status(paid):
    client, payment, admin = paid
    for status in ("succeeded", "pending"):  # the refund.created event is delivered after the refund.updated
        body = event(f"refund.{'updated' if status == 'succeeded' else 'created'}",
                     _refund_object(payment, "re_dash_1", 1250, status))
        assert deliver(client, body, secret=SECRET).status_code == 200

    assert _refund_state(admin, client, payment) == [("re_dash_1", "succeeded", "succeeded")]
    assert _money_events() == [("line_refunded", 1250)]


def test_a_pending_dashboard_refund_whose_last_event_is_lost_is_settled_by_asking_stripe(paid, stripe_http):
    client, payment, admin = paid
    failed = event("refund.failed", _refund_object(payment, "re_dash_1", 1250, "failed"))
    assert deliver(client, failed, secret=SECRET).status_code == 200  # before its refund.created: nothing to do
    assert deliver(client, event("refund.created", _refund_object(payment, "re_dash_1", 1250, "pending")),
                   secret=SECRET).status_code == 200
    assert _refund_state(admin, client, payment) == [("re_dash_1", "pending", "pending")]
    db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2)))
    db.session.commit()
    stripe_http.refund_status = "failed"

    assert sweep()["orders.pending_refunds"] == 1

    asked = stripe_http.requests[-1]
    assert (asked["method"], asked["url"]) == ("get", "https://api.stripe.com/v1/refunds/re_dash_1")
    assert _refund_state(admin, client, payment) == [("re_dash_1", "failed", "failed")]
    assert (_refunded_units(), _money_events()) == (0, [])


def test_a_refund_that_fails_after_it_succeeded_stays_booked_and_is_shown_to_admins(paid, caplog):
    client, payment, admin = paid
    assert deliver(client, event("refund.created", _refund_object(payment, "re_dash_1", 1250)),
                   secret=SECRET).status_code == 200

    with caplog.at_level(logging.WARNING, logger="orders.refunds.service"):
        body = event("refund.failed", _refund_object(payment, "re_dash_1", 1250, "failed"))
        assert deliver(client, body, secret=SECRET).status_code == 200

    assert _refund_state(admin, client, payment) == [("re_dash_1", "succeeded", "failed")]
    assert (_refunded_units(), _money_events()) == (1, [("line_refunded", 1250)])
    assert any(r.levelname == "WARNING" and "re_dash_1 failed" in r.getMessage() for r in caplog.records)


def test_a_dispute_is_kept_logged_and_shown_to_admins_only(paid, caplog):
    client, payment, admin = paid
    dispute = {"id": "dp_1", "object": "dispute", "amount": 2500, "currency": "cny", "charge": "ch_1",
               "payment_intent": payment.intent_id, "reason": "fraudulent", "status": "needs_response",
               "evidence": {"customer_name": "张三"}}

    with caplog.at_level(logging.WARNING, logger="orders.payments.service"):
        assert deliver(client, event("charge.dispute.created", dispute), secret=SECRET).status_code == 200
        closed = {**dispute, "status": "lost"}
        assert deliver(client, event("charge.dispute.closed", closed), secret=SECRET).status_code == 200

    shown = client.get(f"/api/v1/orders/{payment.order_id}", headers=admin).json["payment"]["dispute"]
    assert shown == {"id": "dp_1", "status": "lost", "reason": "fraudulent", "amount_fen": 2500}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all("disputed" in w and "张三" not in w for w in warnings)
    _, buyer = user_with_token()
    db.session.commit()
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=buyer).status_code == 404


def test_a_disputes_outcome_stands_when_its_earlier_event_arrives_late(paid):
    client, payment, admin = paid
    dispute = {"id": "dp_2", "object": "dispute", "amount": 2500, "currency": "cny", "charge": "ch_1",
               "payment_intent": payment.intent_id, "reason": "product_not_received", "status": "lost"}

    assert deliver(client, event("charge.dispute.closed", dispute), secret=SECRET).status_code == 200
    late = {**dispute, "status": "needs_response"}
    assert deliver(client, event("charge.dispute.created", late), secret=SECRET).status_code == 200

    shown = client.get(f"/api/v1/orders/{payment.order_id}", headers=admin).json["payment"]["dispute"]
    assert shown["status"] == "lost"


def _dispute(payment, dispute_id: str, amount: int, status: str) -> dict:
    """A Stripe Dispute of the payment."""
    return {"id": dispute_id, "object": "dispute", "amount": amount, "currency": "cny", "charge": "ch_1",
            "payment_intent": payment.intent_id, "reason": "fraudulent", "status": status}


def _refunds() -> list[tuple[str, int, str]]:
    """Every refund recorded: provider id, amount, reason."""
    db.session.expire_all()
    refunds = db.session.scalars(select(Refund).order_by(Refund.id))
    return [(refund.provider_refund_id, refund.amount_fen, refund.reason) for refund in refunds]


def test_a_lost_dispute_takes_the_money_back_once_and_leaves_nothing_to_refund(paid, caplog):
    client, payment, admin = paid
    for kind, status in (("charge.dispute.created", "needs_response"), ("charge.dispute.funds_withdrawn",
                                                                        "needs_response")):
        assert deliver(client, event(kind, _dispute(payment, "dp_9", 2500, status)), secret=SECRET).status_code == 200
    assert _refunds() == []  # withdrawn funds may yet be reinstated: only a lost dispute moves the money for good

    with caplog.at_level(logging.WARNING):
        for kind in ("charge.dispute.closed", "charge.dispute.updated", "charge.dispute.closed"):
            body = event(kind, _dispute(payment, "dp_9", 2500, "lost"))
            assert deliver(client, body, secret=SECRET).status_code == 200
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # a replay is known, not a second chargeback

    assert _refunds() == [("dp_9", 2500, "Chargeback: the buyer's bank won the dispute.")]
    assert _refunded_units() == 2
    order = client.get(f"/api/v1/orders/{payment.order_id}", headers=admin).json
    assert order["status"] == "refunded"
    line_id = order["lines"][0]["id"]
    again = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                        json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "buyer asked"})
    assert again.status_code == 409 and again.json["error"]["code"] == "order_not_refundable", again.json


def test_a_lost_dispute_covers_only_what_was_not_refunded_already(paid):
    client, payment, _ = paid
    assert deliver(client, event("refund.created", _refund_object(payment, "re_dash_1", 1250)),
                   secret=SECRET).status_code == 200
    assert deliver(client, event("charge.dispute.closed", _dispute(payment, "dp_8", 2500, "lost")),
                   secret=SECRET).status_code == 200
    assert [(rid, amount) for rid, amount, _ in _refunds()] == [("re_dash_1", 1250), ("dp_8", 1250)]
    assert _refunded_units() == 2

    assert deliver(client, event("charge.dispute.closed", _dispute(payment, "dp_7", 2500, "lost")),
                   secret=SECRET).status_code == 200
    assert len(_refunds()) == 2  # nothing left to take back: no refund of 0 fen (the dispute is kept on the payment)


def test_a_lost_dispute_delivered_before_its_payment_is_applied_once_the_payment_is(stripe_app):
    client = stripe_app.test_client()
    world = stock(prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 2)])
    payment = intent_of(order["id"])

    assert deliver(client, event("charge.dispute.closed", _dispute(payment, "dp_6", 2500, "lost")),
                   secret=SECRET).status_code == 200
    assert _refunds() == []
    assert deliver(client, intent_event("payment_intent.succeeded", payment), secret=SECRET).status_code == 200

    assert [(rid, amount) for rid, amount, _ in _refunds()] == [("dp_6", 2500)]
    assert _refunded_units() == 2


def test_a_pickup_order_whose_every_unit_a_pending_refund_holds_is_not_handed_over(stripe_app, stripe_http):
    client = stripe_app.test_client()
    store = StoreFactory()
    product = ProductFactory(price_fen=1250)
    make_lot(product, db.session.get(Location, store.location_id), quantity=5)
    _, buyer = user_with_token()
    _, clerk = user_with_token("store_staff", store_id=store.id)
    _, admin = user_with_token("admin")
    db.session.commit()
    placed = client.post("/api/v1/orders", headers={**buyer, "Idempotency-Key": "pickup-1"},
                         json={"channel": "pickup", "store_id": store.id,
                               "lines": [{"sku": product.sku, "quantity": 2}]})
    payment = intent_of(placed.json["id"])
    assert deliver(client, intent_event("payment_intent.succeeded", payment), secret=SECRET).status_code == 200
    order = client.get(f"/api/v1/orders/{payment.order_id}", headers=buyer).json
    code = order["pickup_code"]
    stripe_http.refund_status = "pending"  # the buyer called it off; Stripe has not finished the refund

    refunded = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                           json={"lines": [{"line_id": order["lines"][0]["id"], "quantity": 2}], "reason": "顾客取消"})

    assert refunded.status_code == 202 and refunded.json["status"] == "pending"
    waiting = client.get(f"/api/v1/stores/{store.id}/pickups", headers=clerk).json["items"]
    assert payment.order_id not in [item["id"] for item in waiting]
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=buyer).json["pickup_code"] is None
    handed = client.post(f"/api/v1/stores/{store.id}/pickups", headers=clerk, json={"pickup_code": code})
    assert handed.status_code == 409 and handed.json["error"]["code"] == "pickup_code_invalid"
    refund = _refund_object(payment, refunded.json["provider_refund_id"], 2500)
    assert deliver(client, event("refund.updated", refund), secret=SECRET).status_code == 200
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=buyer).json["status"] == "refunded"


def test_a_delivery_order_whose_every_unit_a_pending_refund_holds_is_not_shipped(paid, stripe_http):
    client, payment, admin = paid
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == payment.order_id))
    stripe_http.refund_status = "pending"
    refunded = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                           json={"lines": [{"line_id": line_id, "quantity": 2}], "reason": "顾客取消"})
    assert refunded.status_code == 202
    ship = {"carrier": "顺丰", "tracking_number": "SF1234567890"}

    refused = client.post(f"/api/v1/orders/{payment.order_id}/ship", headers=admin, json=ship)

    assert refused.status_code == 409 and refused.json["error"]["code"] == "nothing_to_ship"
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=admin).json["status"] == "paid"
    failed = _refund_object(payment, refunded.json["provider_refund_id"], 2500, status="failed")
    assert deliver(client, event("refund.failed", failed), secret=SECRET).status_code == 200
    shipped = client.post(f"/api/v1/orders/{payment.order_id}/ship", headers=admin, json=ship)
    assert shipped.status_code == 200 and shipped.json["status"] == "shipped"


def test_an_order_is_not_closed_as_refunded_while_a_refund_of_its_last_units_is_pending_and_then_fails(paid,
                                                                                                         stripe_http):
    client, payment, admin = paid
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == payment.order_id))
    stripe_http.refund_status = "pending"
    ours = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                       json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "顾客退一件"})
    assert ours.status_code == 202

    deliver(client, event("refund.created", _refund_object(payment, "re_dash_1", 1250)), secret=SECRET)
    closed_while_pending = client.get(f"/api/v1/orders/{payment.order_id}", headers=admin).json["status"]
    failed = _refund_object(payment, ours.json["provider_refund_id"], 1250, status="failed")
    deliver(client, event("refund.failed", failed), secret=SECRET)

    assert closed_while_pending == "paid"
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=admin).json["status"] == "paid"
    assert _refunded_units() == 1
    stripe_http.refund_status = "succeeded"
    again = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                        json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "顾客退一件"})
    assert again.status_code == 201, again.json
    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=admin).json["status"] == "refunded"


def test_an_order_closes_as_refunded_when_the_pending_refund_of_its_last_units_succeeds(paid, stripe_http):
    client, payment, admin = paid
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == payment.order_id))
    stripe_http.refund_status = "pending"
    ours = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                       json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "顾客退一件"})
    deliver(client, event("refund.created", _refund_object(payment, "re_dash_1", 1250)), secret=SECRET)

    deliver(client, event("refund.updated", _refund_object(payment, ours.json["provider_refund_id"], 1250)),
            secret=SECRET)

    assert client.get(f"/api/v1/orders/{payment.order_id}", headers=admin).json["status"] == "refunded"
    assert _refunded_units() == 2


EPOCH_PLUS_ONE = 1  # 1970-01-01T00:00:01Z: a Stripe timestamp, but no refund of this shop's was made then


def _dated_1970(payment) -> dict:
    """Provider refund events of 12.50 of the payment whose refund (and event) say they were made in 1970."""
    refund = {**_refund_object(payment, "re_1970", 1250), "created": EPOCH_PLUS_ONE}
    charge = {"id": "ch_1", "object": "charge", "amount": 2500, "amount_refunded": 1250, "currency": "cny",
              "payment_intent": payment.intent_id, "refunded": False,
              "refunds": {"object": "list", "data": [refund], "has_more": False}}
    return {"refund.created": event("refund.created", refund, created=EPOCH_PLUS_ONE),
            "charge.refunded": event("charge.refunded", charge, created=EPOCH_PLUS_ONE),
            "charge.dispute.closed": event("charge.dispute.closed", _dispute(payment, "dp_1970", 1250, "lost"),
                                           created=EPOCH_PLUS_ONE)}


@pytest.mark.parametrize("kind", ["refund.created", "charge.refunded", "charge.dispute.closed"])
def test_a_provider_refund_dated_before_its_payment_is_dated_when_the_payment_was_made(stripe_app, kind):
    client = stripe_app.test_client()
    world = stock(prices=(1250,))
    _, headers = user_with_token()
    db.session.commit()
    payment = intent_of(place_order(client, headers, [(world["products"][0].sku, 2)])["id"])
    paid_at = int(time.time()) + 3600  # the payment is dated an hour after its order was placed
    assert deliver(client, intent_event("payment_intent.succeeded", payment, created=paid_at),
                   secret=SECRET).status_code == 200

    assert deliver(client, _dated_1970(payment)[kind], secret=SECRET).status_code == 200

    db.session.expire_all()
    refunded = db.session.scalars(select(OutboxEvent.occurred_at).where(OutboxEvent.kind == "line_refunded")).all()
    assert refunded == [intent_of(payment.order_id).succeeded_at]
    assert refunded[0].timestamp() == paid_at


@pytest.mark.parametrize(("status", "error"), [(403, "PermissionError"), (401, "AuthenticationError")])
def test_a_refund_stripe_refuses_for_the_keys_permission_is_logged_as_that_and_asked_again_once_fixed(
        paid, stripe_http, caplog, status, error):
    client, payment, admin = paid
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == payment.order_id))
    stripe_http.key_refused = status

    with caplog.at_level(logging.WARNING):
        asked = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                            json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "顾客退货"})
        db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2),
                                                 retry_at=utcnow() - timedelta(seconds=1)))  # its pause is over
        db.session.commit()
        assert sweep()["orders.pending_refunds"] == 1  # retried: nothing was refunded, and the key may be fixed

    assert asked.status_code == 202 and asked.json["status"] == "pending"
    logged = [r for r in caplog.records if r.name == "orders.refunds.service"]
    assert len(logged) == 2 and all(r.levelname == "ERROR" for r in logged)
    assert all(error in r.getMessage() and "permission" in r.getMessage() and "no answer" not in r.getMessage()
               and "rk_test" not in r.getMessage() and "sk_test" not in r.getMessage() for r in logged)
    stripe_http.key_refused = 0
    db.session.execute(update(Refund).values(asked_at=utcnow() - timedelta(minutes=2),
                                             retry_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert sweep()["orders.pending_refunds"] == 1
    assert _refund_state(admin, client, payment)[0][1] == "succeeded"
    assert _money_events() == [("line_refunded", 1250)]


def test_a_refund_whose_key_stripe_keeps_refusing_is_asked_again_after_pauses_doubling_up_to_an_hour(
        paid, stripe_http, caplog):
    """A refused key is not asked about every minute for ever: the pause doubles at each refusal in a row, from 1 to at
    most 60 minutes, kept on the refund's row (a restarted worker keeps it); each attempt logs one error naming the
    key's mode, never the key; once the key is fixed the next attempt refunds."""
    client, payment, admin = paid
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == payment.order_id))
    stripe_http.key_refused = 401

    def refund_row() -> Refund:
        db.session.expire_all()
        return db.session.scalar(select(Refund))

    with caplog.at_level(logging.WARNING):
        asked = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                            json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "顾客退货"})
        pauses, before_due = [], []
        for _ in range(8):
            refund = refund_row()
            pauses.append(round((refund.retry_at - utcnow()) / timedelta(minutes=1)))
            db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(hours=2),
                                                     asked_at=utcnow() - timedelta(hours=2),
                                                     retry_at=refund.retry_at - timedelta(seconds=5)))
            db.session.commit()
            before_due.append(sweep()["orders.pending_refunds"])  # not yet: its pause has 5 s left
            db.session.execute(update(Refund).values(retry_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            assert sweep()["orders.pending_refunds"] == 1

    assert asked.status_code == 202 and asked.json["status"] == "pending"
    assert pauses == [1, 2, 4, 8, 16, 32, 60, 60]
    assert before_due == [0] * 8
    assert refund_row().failed_attempts == 9
    logged = [r for r in caplog.records if r.name == "orders.refunds.service"]
    assert len(logged) == 9 and all(r.levelname == "ERROR" for r in logged)
    assert all("test-mode API key" in r.getMessage() and "AuthenticationError" in r.getMessage()
               and "sk_test" not in r.getMessage() and "not_real" not in r.getMessage() for r in logged)
    assert "in 60 min (refusal 9 in a row)" in logged[-1].getMessage()
    stripe_http.key_refused = 0
    db.session.execute(update(Refund).values(asked_at=utcnow() - timedelta(hours=2),
                                             retry_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert sweep()["orders.pending_refunds"] == 1
    assert (refund_row().status, refund_row().failed_attempts, refund_row().retry_at) == ("succeeded", 0, None)
    assert _money_events() == [("line_refunded", 1250)]


@pytest.mark.parametrize("status", [500, 503])
def test_a_refund_stripe_keeps_failing_is_asked_again_after_pauses_doubling_up_to_an_hour(
        paid, stripe_http, caplog, status):
    """Not only a refused key: any failed attempt (Stripe down, answering 5xx) pauses the refund as a refused key does,
    1 to at most 60 minutes, kept on its row, with one warning per attempt and no secret in it; once Stripe answers,
    the next attempt refunds and the pauses start over."""
    client, payment, admin = paid
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == payment.order_id))
    stripe_http.failing = status

    def refund_row() -> Refund:
        db.session.expire_all()
        return db.session.scalar(select(Refund))

    with caplog.at_level(logging.WARNING):
        asked = client.post(f"/api/v1/orders/{payment.order_id}/refunds", headers=admin,
                            json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "顾客退货"})
        pauses, before_due = [], []
        for _ in range(8):
            refund = refund_row()
            pauses.append(round((refund.retry_at - utcnow()) / timedelta(minutes=1)))
            db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(hours=2),
                                                     asked_at=utcnow() - timedelta(hours=2),
                                                     retry_at=refund.retry_at - timedelta(seconds=5)))
            db.session.commit()
            before_due.append(sweep()["orders.pending_refunds"])
            db.session.execute(update(Refund).values(retry_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            assert sweep()["orders.pending_refunds"] == 1

    assert asked.status_code == 202 and asked.json["status"] == "pending"
    assert pauses == [1, 2, 4, 8, 16, 32, 60, 60]
    assert before_due == [0] * 8
    assert refund_row().failed_attempts == 9
    logged = [r for r in caplog.records if r.name == "orders.refunds.service"]
    assert len(logged) == 9 and all(r.levelname == "WARNING" for r in logged)
    assert all("APIError" in r.getMessage() and "sk_test" not in r.getMessage() for r in logged)
    assert "in 60 min (attempt 9 in a row)" in logged[-1].getMessage()
    stripe_http.failing = 0
    db.session.execute(update(Refund).values(asked_at=utcnow() - timedelta(hours=2),
                                             retry_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert sweep()["orders.pending_refunds"] == 1
    assert (refund_row().status, refund_row().failed_attempts, refund_row().retry_at) == ("succeeded", 0, None)
    assert _money_events() == [("line_refunded", 1250)]


def _needing_stripe(payment, stripe_http) -> dict:
    """Events whose processing asks Stripe: a charge refunded that does not embed its refunds (listed), and a charge
    naming its balance transaction (its fee fetched)."""
    stripe_http.listed_refunds = [_refund_object(payment, "re_dash_1", 1250)]
    stripe_http.balance_transactions["txn_1"] = {"id": "txn_1", "fee": 95, "currency": "cny", "exchange_rate": None}
    charge = {"id": "ch_1", "object": "charge", "amount": 2500, "currency": "cny", "payment_intent": payment.intent_id}
    return {"listed": event("charge.refunded", {**charge, "amount_refunded": 1250, "refunded": False}),
            "fee": event("charge.succeeded", {**charge, "status": "succeeded", "balance_transaction": "txn_1"})}


@pytest.mark.parametrize("kind", ["listed", "fee"])
def test_an_event_stripe_refuses_the_shops_key_for_is_logged_as_that_and_processed_once_the_key_is_fixed(
        paid, stripe_http, caplog, kind):
    client, payment, _ = paid
    stripe_http.key_refused = 401

    with caplog.at_level(logging.WARNING):
        assert deliver(client, _needing_stripe(payment, stripe_http)[kind], secret=SECRET).status_code == 200

    refused = db.session.scalar(select(PaymentEvent).where(PaymentEvent.type != "payment_intent.succeeded"))
    assert (refused.status, refused.attempts) == ("pending", 1)  # retried by the sweeper, a bounded number of times
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in logged] == ["ERROR"]
    assert "AuthenticationError" in logged[0].getMessage() and "API key" in logged[0].getMessage()
    assert not any("_test_" in r.getMessage() or r.exc_info for r in caplog.records)
    stripe_http.key_refused = 0
    db.session.execute(update(PaymentEvent).values(queued_at=utcnow() - timedelta(minutes=2)))
    db.session.commit()
    sweep()
    db.session.expire_all()
    assert db.session.get(PaymentEvent, refused.id).status == "processed"
    assert _money_events() == [("line_refunded", 1250)] if kind == "listed" else [("processor_fee", 95)]


def _failed_for_the_key(client, payment, stripe_http) -> PaymentEvent:
    """A dashboard refund's event Stripe refused the shop's key for until the sweeper gave it up (`failed`)."""
    stripe_http.key_refused = 401
    assert deliver(client, _needing_stripe(payment, stripe_http)["listed"], secret=SECRET).status_code == 200
    db.session.execute(update(PaymentEvent).where(PaymentEvent.status == "pending")
                       .values(attempts=10, queued_at=utcnow() - timedelta(minutes=2)))
    db.session.commit()
    sweep()
    db.session.expire_all()
    failed = db.session.scalar(select(PaymentEvent).where(PaymentEvent.type == "charge.refunded"))
    assert failed.status == "failed"
    return failed


def test_failed_events_are_queued_again_by_an_operator_once_the_key_is_fixed_and_processed_once(
        paid, stripe_app, stripe_http, caplog):
    """`flask payments requeue-failed` puts failed events back as new ones (attempts reset) and the drain processes
    them: the refund the event reports is counted once, and a second run finds nothing to requeue; each run is
    audited in the log with who ran it and how many."""
    client, payment, _ = paid
    failed = _failed_for_the_key(client, payment, stripe_http)
    stripe_http.key_refused = 0

    with caplog.at_level(logging.WARNING):
        first = stripe_app.test_cli_runner().invoke(args=["payments", "requeue-failed"])
        second = stripe_app.test_cli_runner().invoke(args=["payments", "requeue-failed"])

    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"1 failed payment events requeued: {failed.id}"
    assert second.exit_code == 0 and second.output.strip() == "0 failed payment events requeued"
    db.session.expire_all()
    assert (db.session.get(PaymentEvent, failed.id).status, db.session.get(PaymentEvent, failed.id).attempts) == (
        "processed", 0)
    assert _money_events() == [("line_refunded", 1250)]
    audits = [r.getMessage() for r in caplog.records if r.name == "orders.payments.cli"]
    assert len(audits) == 2 and all("requeued by " in audit for audit in audits)
    assert audits[0].endswith(f": 1 ({failed.id})") and audits[1].endswith(": 0 (none)")


def test_requeue_failed_takes_only_the_event_or_the_days_asked_for_and_bounded_input(paid, stripe_app, stripe_http):
    client, payment, _ = paid
    failed = _failed_for_the_key(client, payment, stripe_http)
    stripe_http.key_refused = 0
    runner = stripe_app.test_cli_runner()

    other_event = runner.invoke(args=["payments", "requeue-failed", "--event-id", str(failed.id + 1)])
    tomorrow = runner.invoke(args=["payments", "requeue-failed", "--since",
                                   (utcnow() + timedelta(days=2)).date().isoformat()])
    bad = [runner.invoke(args=["payments", "requeue-failed", *option]) for option in (
        ["--event-id", "0"], ["--event-id", str(2**31)], ["--since", "1999-12-31"], ["--since", "2026-02-30"],
        ["--since", "yesterday"])]
    db.session.expire_all()
    still = db.session.get(PaymentEvent, failed.id).status
    this_one = runner.invoke(args=["payments", "requeue-failed", "--event-id", str(failed.id), "--since",
                                   (utcnow() - timedelta(days=1)).date().isoformat()])

    assert [result.output.strip() for result in (other_event, tomorrow)] == ["0 failed payment events requeued"] * 2
    assert [result.exit_code for result in bad] == [2] * 5 and not any(result.exception and not isinstance(
        result.exception, SystemExit) for result in bad)
    assert still == "failed"
    assert this_one.output.strip() == f"1 failed payment events requeued: {failed.id}"
    db.session.expire_all()
    assert db.session.get(PaymentEvent, failed.id).status == "processed"
