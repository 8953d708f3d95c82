"""After-sales: the owner asks within 7 days of delivery or pickup; staff of the store or admins approve
(→ a refund through the refund service) or reject (the reason is shown to the consumer)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from orders.models import AfterSalesRequest, Order, OrderLine, OutboxEvent, Refund
from orders.refunds.service import record_provider_refund
from shop.db import db, utcnow
from shop.tasks import sweep
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.orders.refunds.conftest import days_ago, paid_order, user_with_token


@pytest.fixture
def sold(app):
    """A pickup order of 3 units collected at a store (paid in cash: refunds come out of the till's open shift), its
    consumer, and staff of that and another store."""
    store = StoreFactory()
    ShiftFactory(store=store)
    product = ProductFactory(price_fen=1500)
    from catalog.models import Location

    make_lot(product, db.session.get(Location, store.location_id), quantity=10)
    consumer, consumer_headers = user_with_token("consumer")
    _, clerk = user_with_token("store_staff", store_id=store.id)
    _, other_clerk = user_with_token("store_staff", store_id=StoreFactory().id)
    _, admin = user_with_token("admin")
    db.session.commit()

    def order(completed_days_ago=1, status="fulfilled", payment_method="cash"):
        made = paid_order(location_id=store.location_id, channel="pickup", store=store, consumer=consumer,
                          lines=[(product, 3)], payment_method=payment_method, status=status,
                          completed_at=days_ago(completed_days_ago))
        db.session.commit()
        return made

    return {"order": order, "consumer": consumer_headers, "clerk": clerk, "other_clerk": other_clerk,
            "admin": admin}


def _ask(client, headers, order, quantity=2, **extra):
    """POST an after-sales request for `quantity` units of the order's line."""
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order.id))
    return client.post(f"/api/v1/orders/{order.id}/after-sales", headers=headers,
                       json={"lines": [{"line_id": line_id, "quantity": quantity}], "reason": "包装破损", **extra})


def test_the_owner_asks_within_7_days_and_an_approval_refunds_the_units(client, sold):
    order = sold["order"](completed_days_ago=6)

    asked = _ask(client, sold["consumer"], order, photo="https://img.example.com/p/1.jpg")

    assert asked.status_code == 201, asked.json
    assert (asked.json["status"], asked.json["photo"]) == ("open", "https://img.example.com/p/1.jpg")
    approved = client.post(f"/api/v1/after-sales/{asked.json['id']}/approve", headers=sold["clerk"],
                           json={"resellable": True})
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "approved"
    refund = db.session.get(Refund, approved.json["refund_id"])
    assert (refund.source, refund.amount_fen, refund.lines[0].quantity) == ("after_sales", 3000, 2)
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)
                             .where(OutboxEvent.kind == "line_refunded")) == 1
    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"])
    assert [(r["status"], r["refund_id"]) for r in seen.json["items"]] == [("approved", refund.id)]

    again = client.post(f"/api/v1/after-sales/{asked.json['id']}/approve", headers=sold["admin"], json={})
    assert again.status_code == 409
    assert again.json["error"]["code"] == "after_sales_decided"


def test_an_approval_resent_with_its_idempotency_key_gets_the_same_answer_and_one_refund(client, sold):
    """A till that lost the answer resends the approval: the first answer, not a 409 that looks like a failure."""
    order = sold["order"](completed_days_ago=1)
    asked = _ask(client, sold["consumer"], order)
    headers = {**sold["clerk"], "Idempotency-Key": "approve-1"}
    first = client.post(f"/api/v1/after-sales/{asked.json['id']}/approve", headers=headers, json={})
    again = client.post(f"/api/v1/after-sales/{asked.json['id']}/approve", headers=headers)  # `{}` is no body
    assert first.status_code == again.status_code == 200 and again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1


@pytest.mark.parametrize("decision, body", [("approve", {}), ("reject", {"reason": "照片看不出破损"})])
def test_a_decision_resent_with_its_key_by_another_clerk_of_the_store_gets_the_first_answer(client, sold, decision,
                                                                                          body):
    """A till's resend after a hand-over: the key is the store's, so the second clerk is told of the decision made,
    not a 409 `after_sales_decided` that looks like a failure; one refund at most."""
    order = sold["order"](completed_days_ago=1)
    asked = _ask(client, sold["consumer"], order)
    _, next_clerk = user_with_token("store_staff", store_id=order.store_id)
    db.session.commit()
    url = f"/api/v1/after-sales/{asked.json['id']}/{decision}"

    first = client.post(url, headers={**sold["clerk"], "Idempotency-Key": "decide-1"}, json=body)
    resent = client.post(url, headers={**next_clerk, "Idempotency-Key": "decide-1"}, json=body)
    stranger = client.post(url, headers={**sold["other_clerk"], "Idempotency-Key": "decide-1"}, json=body)

    assert first.status_code == resent.status_code == 200, resent.json
    assert resent.headers.get("Idempotent-Replayed") == "true" and resent.json == first.json
    assert (stranger.status_code, stranger.json["error"]["code"]) == (404, "after_sales_not_found")
    assert db.session.scalar(select(func.count()).select_from(Refund)) == (1 if decision == "approve" else 0)


def test_an_approval_whose_refund_the_provider_then_fails_is_open_again_and_is_approved_anew(client, sold, provider):
    order = sold["order"](payment_method="stripe")
    asked = _ask(client, sold["consumer"], order).json
    provider.status = "pending"  # Stripe accepted the refund, then failed it (the buyer's card was closed)
    approved = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["admin"], json={})
    assert approved.status_code == 200 and approved.json["status"] == "approved"
    provider.statuses["re_stub_1"] = "failed"
    db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2), retry_at=None))
    db.session.commit()

    assert sweep()["orders.pending_refunds"] == 1

    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"]).json["items"]
    assert [(r["id"], r["status"], r["refund_id"]) for r in seen] == [(asked["id"], "open", None)]
    failed = approved.json["refund_id"]
    assert seen[0]["decision_reason"] == f"退款 #{failed} 未能在支付渠道完成，申请已重新打开，等待处理。"
    assert db.session.get(OrderLine, asked["lines"][0]["line_id"]).refunded_quantity == 0
    provider.status = "succeeded"
    again = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["admin"], json={})
    assert again.status_code == 200 and again.json["status"] == "approved", again.json
    assert db.session.get(Refund, again.json["refund_id"]).status == "succeeded"
    assert db.session.get(OrderLine, asked["lines"][0]["line_id"]).refunded_quantity == 2


def test_no_second_request_while_an_approvals_refund_is_pending_so_a_failure_reopens_the_only_one(client, sold,
                                                                                                   provider):
    """An approval whose refund is still pending may yet be reopened: a second request meanwhile would leave two open
    requests, the approval of one counted toward the other (its consumer refunded one unit of the two asked for)."""
    order = sold["order"](payment_method="stripe")
    first = _ask(client, sold["consumer"], order, quantity=1).json
    provider.status = "pending"
    assert client.post(f"/api/v1/after-sales/{first['id']}/approve", headers=sold["admin"], json={}).status_code == 200

    second = _ask(client, sold["consumer"], order, quantity=1)

    assert (second.status_code, second.json["error"]["code"]) == (409, "after_sales_open")
    provider.statuses["re_stub_1"] = "failed"
    db.session.execute(update(Refund).values(created_at=utcnow() - timedelta(minutes=2), retry_at=None))
    db.session.commit()
    assert sweep()["orders.pending_refunds"] == 1
    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"]).json["items"]
    assert [(r["id"], r["status"]) for r in seen] == [(first["id"], "open")]


def test_after_8_days_the_window_is_closed(client, sold):
    order = sold["order"](completed_days_ago=8)

    response = _ask(client, sold["consumer"], order)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "after_sales_window_closed"
    assert db.session.scalar(select(func.count()).select_from(AfterSalesRequest)) == 0


def test_only_delivered_or_collected_orders_and_one_open_request_at_a_time(client, sold):
    paid_only = sold["order"](status="paid")
    response = _ask(client, sold["consumer"], paid_only)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "after_sales_not_allowed"

    order = sold["order"]()
    assert _ask(client, sold["consumer"], order).status_code == 201
    second = _ask(client, sold["consumer"], order, quantity=1)
    assert second.status_code == 409
    assert second.json["error"]["code"] == "after_sales_open"


def test_more_units_than_sold_is_409(client, sold):
    response = _ask(client, sold["consumer"], sold["order"](), quantity=4)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "refund_exceeds_sold"


def test_a_rejection_reason_is_what_the_consumer_sees(client, sold):
    order = sold["order"]()
    asked = _ask(client, sold["consumer"], order).json

    rejected = client.post(f"/api/v1/after-sales/{asked['id']}/reject", headers=sold["admin"],
                           json={"reason": "照片显示包装完好"})

    assert rejected.status_code == 200
    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"]).json["items"]
    assert [(r["status"], r["decision_reason"], r["refund_id"]) for r in seen] == [
        ("rejected", "照片显示包装完好", None)]
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
    assert db.session.get(Order, order.id).status == "fulfilled"


def test_other_consumers_and_other_stores_staff_see_nothing(client, sold):
    order = sold["order"]()
    _, stranger = user_with_token("consumer")
    db.session.commit()

    assert _ask(client, stranger, order).json["error"]["code"] == "order_not_found"
    assert client.get(f"/api/v1/orders/{order.id}/after-sales", headers=stranger).status_code == 404
    asked = _ask(client, sold["consumer"], order).json
    response = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["other_clerk"], json={})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "after_sales_not_found"
    assert client.post(f"/api/v1/after-sales/{asked['id']}/reject", headers=sold["consumer"],
                       json={"reason": "x"}).status_code == 403


def test_delivery_orders_are_decided_by_admins_not_store_staff(client, sold):
    warehouse, product = LocationFactory(), ProductFactory()
    make_lot(product, warehouse, quantity=5)
    consumer, headers = user_with_token("consumer")
    order = paid_order(location_id=warehouse.id, channel="delivery", consumer=consumer, lines=[(product, 1)],
                       payment_method="stripe", status="delivered", completed_at=days_ago(2))
    db.session.commit()
    asked = _ask(client, headers, order, quantity=1).json

    assert client.post(f"/api/v1/after-sales/{asked['id']}/reject", headers=sold["clerk"],
                       json={"reason": "x"}).status_code == 404


@pytest.mark.parametrize("photo", ["javascript:alert(1)", "http://\u202eexample.com/x", "https://a.example/\x00"])
def test_a_photo_must_be_a_web_link_that_reads_as_where_it_goes(client, sold, photo):
    response = _ask(client, sold["consumer"], sold["order"](), photo=photo)

    assert response.status_code == 422
    assert "photo" in response.json["error"]["details"]


@pytest.mark.parametrize("photo", ["https://img.example.com@evil.example/p.jpg", "https://user:pw@evil.example/p.jpg",
                                   "https://img.example.com:@evil.example/p.jpg"])
def test_a_photo_link_whose_host_is_hidden_behind_a_user_name_is_refused(client, sold, photo):
    """`https://img.example.com@evil.example/…` reads as img.example.com but goes to evil.example: the staff who
    open a consumer's photo would be led elsewhere (and a password in a link is kept and shown to everyone)."""
    response = _ask(client, sold["consumer"], sold["order"](), photo=photo)

    assert response.status_code == 422, response.json
    assert "photo" in response.json["error"]["details"]
    assert db.session.scalar(select(func.count()).select_from(AfterSalesRequest)) == 0


@pytest.mark.parametrize("photo", ["https://xn--80ak6aa92e.com/p.jpg", "https://img.XN--80AK6AA92E.com/p.jpg",
                                   "https://\u0430\u0440\u0440\u04cf\u0435.com/p.jpg", "https://img.ex\u0430mple.com/p.jpg",
                                   "https://img.example.xn--fiqs8s/p.jpg"])
def test_a_photo_link_to_an_internationalised_host_is_refused(client, sold, photo):
    """A host spelt in punycode (`xn--80ak6aa92e.com` is `аррӏе.com`, Cyrillic) or with non-ASCII letters reads as a
    site it is not (`img.exаmple.com` with a Cyrillic а): staff would open a look-alike's page. A link's host is
    ASCII letters, digits, dashes and dots only; an internationalised one is refused, whatever its scripts."""
    response = _ask(client, sold["consumer"], sold["order"](), photo=photo)

    assert response.status_code == 422, response.json
    assert "photo" in response.json["error"]["details"]
    assert db.session.scalar(select(func.count()).select_from(AfterSalesRequest)) == 0
    assert _ask(client, sold["consumer"], sold["order"](), photo="https://img.example.com/p.jpg").status_code == 201


def test_a_refund_made_directly_decides_the_open_request_it_covers_and_the_consumer_sees_it(client, sold):
    order = sold["order"]()
    asked = _ask(client, sold["consumer"], order, quantity=2).json
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order.id))
    one_unit = {"lines": [{"line_id": line_id, "quantity": 1, "resellable": False}], "reason": "包装破损，直接退款"}

    first = client.post(f"/api/v1/orders/{order.id}/refunds", headers=sold["admin"], json=one_unit)
    still = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"]).json["items"]
    assert first.status_code == 201 and [r["status"] for r in still] == ["open"]  # 2 asked, 1 refunded since
    last = client.post(f"/api/v1/orders/{order.id}/refunds", headers=sold["admin"], json=one_unit)

    assert last.status_code == 201
    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"]).json["items"]
    assert [(r["id"], r["status"], r["refund_id"]) for r in seen] == [(asked["id"], "approved", last.json["id"])]
    again = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["clerk"], json={"resellable": True})
    assert again.status_code == 409 and again.json["error"]["code"] == "after_sales_decided"
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 2
    assert db.session.get(OrderLine, line_id).refunded_quantity == 2  # what was asked, no more


@pytest.mark.parametrize(("asked_units", "approved_fen"), [(3, 2 * 1500), (2, 1500)])  # of 3 sold
def test_an_approval_after_a_direct_refund_of_one_unit_refunds_only_what_the_request_still_asks(
        client, sold, asked_units, approved_fen):
    order = sold["order"]()
    asked = _ask(client, sold["consumer"], order, quantity=asked_units).json
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order.id))
    direct = client.post(f"/api/v1/orders/{order.id}/refunds", headers=sold["admin"], json={
        "lines": [{"line_id": line_id, "quantity": 1, "resellable": False}], "reason": "先退一件"})
    assert direct.status_code == 201

    approved = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["clerk"],
                           json={"resellable": False})

    assert approved.status_code == 200 and approved.json["status"] == "approved", approved.json
    assert db.session.get(Refund, approved.json["refund_id"]).amount_fen == approved_fen
    assert db.session.get(OrderLine, line_id).refunded_quantity == asked_units  # what was asked, not 1 more
    assert db.session.get(Order, order.id).status == ("refunded" if asked_units == 3 else "fulfilled")


def test_a_refund_stamped_by_a_host_whose_clock_is_behind_still_counts_toward_the_request_made_before_it(
        client, sold):
    """Which refunds came after a request is their order under the order's lock, not the hosts' clocks: a direct
    refund made after the request on a host a minute behind still counts, so the approval refunds only what is left."""
    order = sold["order"]()
    asked = _ask(client, sold["consumer"], order, quantity=2).json
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order.id))
    direct = client.post(f"/api/v1/orders/{order.id}/refunds", headers=sold["admin"], json={
        "lines": [{"line_id": line_id, "quantity": 1, "resellable": False}], "reason": "先退一件"})
    assert direct.status_code == 201
    request_made = db.session.get(AfterSalesRequest, asked["id"]).created_at
    db.session.execute(update(Refund).where(Refund.id == direct.json["id"])
                       .values(created_at=request_made - timedelta(minutes=1)))
    db.session.commit()

    approved = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["clerk"],
                           json={"resellable": False})

    assert approved.status_code == 200 and approved.json["status"] == "approved", approved.json
    assert db.session.get(Refund, approved.json["refund_id"]).amount_fen == 1500
    assert db.session.get(OrderLine, line_id).refunded_quantity == 2  # what was asked, not one unit more


def test_a_request_its_approval_would_refuse_for_more_than_was_paid_is_refused_when_asked(client, sold):
    """A 2000 fen refund from the provider's dashboard took 1 of 3 units (1500) and 500 fen more: 2500 fen is left to
    refund, less than the 2 units still sold are worth. Asking for both is refused as approving would be, and does
    not stand in the way of the request that can be approved."""
    order = sold["order"](payment_method="stripe")
    record_provider_refund(order_id=order.id, provider_refund_id="re_dashboard", amount_fen=2000, occurred_at=utcnow())
    db.session.commit()

    refused = _ask(client, sold["consumer"], order, quantity=2)

    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "refund_exceeds_paid"
    assert refused.json["error"]["details"] == {"amount_fen": 3000, "refundable_fen": 2500}
    assert db.session.scalar(select(func.count()).select_from(AfterSalesRequest)) == 0
    asked = _ask(client, sold["consumer"], order, quantity=1)
    assert asked.status_code == 201, asked.json
    approved = client.post(f"/api/v1/after-sales/{asked.json['id']}/approve", headers=sold["clerk"], json={})
    assert approved.status_code == 200, approved.json
    assert db.session.get(Refund, approved.json["refund_id"]).amount_fen == 1500


def test_refunds_at_the_provider_that_gave_the_whole_payment_back_decide_the_open_request(client, sold):
    """4000 fen refunded at the provider's dashboard took 2 of the 3 units asked for (1500 each) and 1000 fen more,
    then 500 fen more: the buyer has had all 4500 fen back, 1 unit still sold below a unit's price (DESIGN.md)."""
    order = sold["order"](payment_method="stripe")
    asked = _ask(client, sold["consumer"], order, quantity=3).json
    record_provider_refund(order_id=order.id, provider_refund_id="re_dash_1", amount_fen=4000, occurred_at=utcnow())
    db.session.commit()
    last = record_provider_refund(order_id=order.id, provider_refund_id="re_dash_2", amount_fen=500,
                                  occurred_at=utcnow())
    db.session.commit()

    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"]).json["items"]
    assert [(r["id"], r["status"], r["refund_id"]) for r in seen] == [(asked["id"], "approved", last.id)]
    assert seen[0]["decision_reason"] == f"已由退款 #{last.id} 退回全部货款。"
    again = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["clerk"], json={})
    assert again.status_code == 409 and again.json["error"]["code"] == "after_sales_decided"
    assert db.session.get(Order, order.id).status == "refunded"


def test_the_owner_withdraws_an_open_request_and_may_ask_for_the_units_again(client, sold):
    order = sold["order"]()
    asked = _ask(client, sold["consumer"], order, quantity=3).json

    withdrawn = client.post(f"/api/v1/after-sales/{asked['id']}/withdraw", headers=sold["consumer"])

    assert withdrawn.status_code == 200, withdrawn.json
    assert (withdrawn.json["status"], withdrawn.json["refund_id"]) == ("withdrawn", None)
    assert withdrawn.json["decided_at"]
    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["clerk"]).json["items"]
    assert [r["status"] for r in seen] == ["withdrawn"]
    again = _ask(client, sold["consumer"], order, quantity=3)
    assert again.status_code == 201, again.json
    approved = client.post(f"/api/v1/after-sales/{again.json['id']}/approve", headers=sold["clerk"], json={})
    assert approved.status_code == 200, approved.json
    assert db.session.get(Refund, approved.json["refund_id"]).amount_fen == 4500


def test_only_the_owner_withdraws_and_only_an_open_request(client, sold):
    order = sold["order"]()
    asked = _ask(client, sold["consumer"], order).json
    _, stranger = user_with_token("consumer")
    db.session.commit()
    url = f"/api/v1/after-sales/{asked['id']}/withdraw"

    by_stranger = client.post(url, headers=stranger)
    by_clerk = client.post(url, headers=sold["clerk"])
    by_admin = client.post(url, headers=sold["admin"])
    unknown = client.post("/api/v1/after-sales/999999/withdraw", headers=sold["consumer"])

    assert (by_stranger.status_code, by_stranger.json["error"]["code"]) == (404, "after_sales_not_found")
    assert (by_clerk.status_code, by_admin.status_code) == (403, 403)
    assert (unknown.status_code, unknown.json["error"]["code"]) == (404, "after_sales_not_found")
    assert db.session.get(AfterSalesRequest, asked["id"]).status == "open"
    rejected = client.post(f"/api/v1/after-sales/{asked['id']}/reject", headers=sold["clerk"],
                           json={"reason": "包装完好"})
    assert rejected.status_code == 200
    late = client.post(url, headers=sold["consumer"])
    assert (late.status_code, late.json["error"]["code"]) == (409, "after_sales_decided")
    assert late.json["error"]["details"] == {"status": "rejected"}
    withdrawn = _ask(client, sold["consumer"], order).json
    assert client.post(f"/api/v1/after-sales/{withdrawn['id']}/withdraw", headers=sold["consumer"]).status_code == 200
    twice = client.post(f"/api/v1/after-sales/{withdrawn['id']}/withdraw", headers=sold["consumer"])
    approve_withdrawn = client.post(f"/api/v1/after-sales/{withdrawn['id']}/approve", headers=sold["clerk"], json={})
    assert (twice.status_code, twice.json["error"]["code"]) == (409, "after_sales_decided")
    assert (approve_withdrawn.status_code, approve_withdrawn.json["error"]["code"]) == (409, "after_sales_decided")
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_phone_number_in_a_consumers_reason_is_masked_for_the_staff_who_decide(client, sold):
    order = sold["order"]()
    asked = client.post(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"], json={
        "lines": [{"line_id": order.lines[0].id, "quantity": 1}], "reason": "包装破损，请打 139-1234-5678 联系"})
    assert asked.status_code == 201, asked.json
    for viewer in ("clerk", "admin", "consumer"):
        seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold[viewer]).json["items"]
        assert [request["reason"] for request in seen] == ["包装破损，请打 *** 联系"], viewer


def test_a_dashboard_refund_does_not_decide_a_request_whose_other_unit_a_pending_refund_holds_which_then_fails(
        client, sold, provider):
    """Of the 2 units asked for, an admin's refund still pending at the provider holds one and the dashboard refunds
    the other: the request stays open until the pending refund ends, and when it fails its approval refunds the unit
    still sold (not approved by the dashboard's refund with one of the two units never refunded)."""
    order = sold["order"](payment_method="stripe")
    asked = _ask(client, sold["consumer"], order, quantity=2).json
    line_id = asked["lines"][0]["line_id"]
    provider.status = "pending"
    pending = client.post(f"/api/v1/orders/{order.id}/refunds", headers=sold["admin"],
                          json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "先退一件"})
    assert pending.status_code == 202, pending.json
    record_provider_refund(order_id=order.id, provider_refund_id="re_dash_1", amount_fen=1500, occurred_at=utcnow())
    db.session.commit()
    provider.statuses[pending.json["provider_refund_id"]] = "failed"
    db.session.execute(update(Refund).where(Refund.id == pending.json["id"])
                       .values(asked_at=utcnow() - timedelta(minutes=2)))
    db.session.commit()
    assert sweep()["orders.pending_refunds"] == 1

    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"]).json["items"]
    assert [(r["status"], r["refund_id"]) for r in seen] == [("open", None)]
    provider.status = "succeeded"
    approved = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["admin"], json={})
    assert approved.status_code == 200, approved.json
    assert db.session.get(Refund, approved.json["refund_id"]).lines[0].quantity == 1
    assert db.session.get(OrderLine, line_id).refunded_quantity == 2


@pytest.mark.parametrize("spacing", ["    ", "\n", "\r\n    ", "\t\t\t\t", "\u3000\u3000"])
def test_a_number_spaced_out_over_a_multi_line_reason_is_read_as_one(client, sold, spacing):
    # a multi-line reason keeps its spacing: a number typed with wide gaps or one group a line is still one number
    order = sold["order"]()
    card = spacing.join(("6222", "0202", "0011", "2345", "678"))
    refused = client.post(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"], json={
        "lines": [{"line_id": order.lines[0].id, "quantity": 1}], "reason": f"退到卡号\n{card}\n谢谢"})
    assert (refused.status_code, refused.json["error"]["code"]) == (422, "validation_error"), refused.json
    asked = client.post(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"], json={
        "lines": [{"line_id": order.lines[0].id, "quantity": 1}],
        "reason": f"包装破损，请打\n{spacing.join(('139', '1234', '5678'))}\n联系"})
    assert asked.status_code == 201, asked.json
    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["clerk"]).json["items"]
    assert [request["reason"] for request in seen] == ["包装破损，请打\n***\n联系"]


@pytest.mark.parametrize("before", [165, 167, 168, 170])
def test_a_phone_number_cut_short_where_the_approvals_refund_reason_ends_is_never_shown_in_part(client, sold, before):
    """The refund an approval makes quotes the request's reason within its own bound of 200 characters: the cut never
    falls inside a number, whose remaining digits would no longer read as a phone number and be shown unmasked."""
    order = sold["order"]()
    asked = client.post(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"], json={
        "lines": [{"line_id": order.lines[0].id, "quantity": 1}], "reason": "包" * before + "139 1234 5678"})
    approved = client.post(f"/api/v1/after-sales/{asked.json['id']}/approve", headers=sold["clerk"], json={})
    assert approved.status_code == 200, approved.json

    for viewer in ("clerk", "admin", "consumer"):
        reason = client.get(f"/api/v1/refunds/{approved.json['refund_id']}", headers=sold[viewer]).json["reason"]
        assert reason.startswith(f"After-sales request {asked.json['id']}: 包") and len(reason) <= 200, viewer
        assert not re.search(r"\d{3}", reason.split(":", 1)[1]), (viewer, reason[-20:])


def test_a_request_the_dashboard_refunded_while_another_refund_was_pending_is_decided_when_that_one_fails(
        client, sold, provider):
    """Both units asked for are refunded at the dashboard while an admin's refund of the third is pending at the
    provider; that refund then fails: the request is approved with the dashboard's refund, which gave the consumer
    what they asked for (not left open, for its approval to make a refund of nothing and tell them of it)."""
    order = sold["order"](payment_method="stripe")
    asked = _ask(client, sold["consumer"], order, quantity=2).json
    line_id = asked["lines"][0]["line_id"]
    provider.status = "pending"
    pending = client.post(f"/api/v1/orders/{order.id}/refunds", headers=sold["admin"],
                          json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "先退一件"})
    assert pending.status_code == 202, pending.json
    dashboard = record_provider_refund(order_id=order.id, provider_refund_id="re_dash_2", amount_fen=3000,
                                       occurred_at=utcnow())
    db.session.commit()
    provider.statuses[pending.json["provider_refund_id"]] = "failed"
    db.session.execute(update(Refund).where(Refund.id == pending.json["id"])
                       .values(asked_at=utcnow() - timedelta(minutes=2)))
    db.session.commit()
    assert sweep()["orders.pending_refunds"] == 1

    seen = client.get(f"/api/v1/orders/{order.id}/after-sales", headers=sold["consumer"]).json["items"]
    assert [(r["status"], r["refund_id"]) for r in seen] == [("approved", dashboard.id)]
    approved = client.post(f"/api/v1/after-sales/{asked['id']}/approve", headers=sold["admin"], json={})
    assert (approved.status_code, approved.json["error"]["code"]) == (409, "after_sales_decided")
    assert db.session.scalars(select(Refund.amount_fen).order_by(Refund.id)).all() == [1500, 3000]
    assert db.session.get(OrderLine, line_id).refunded_quantity == 2
