"""Pickups handed over by the store's staff with the customer's code; receipts reprinted in scope."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from limits.storage import memory
from sqlalchemy import select

from catalog import inventory
from orders.models import OrderTransition
from shop.auth.models import User
from shop.db import db
from tests.orders.counter.conftest import bearer, clerk, paid_pickup_order, partly_refunded_pickup_order, sale_body
from tests.orders.factories import StoreFactory


def test_the_waiting_list_shows_the_stores_paid_pickups_oldest_first_without_codes(client, counter, staff):
    first = paid_pickup_order(counter.store, counter.rice, pickup_code="111111")
    second = paid_pickup_order(counter.store, counter.tea, pickup_code="222222")
    paid_pickup_order(counter.store, counter.rice, pickup_code="333333", status="pending_payment")
    paid_pickup_order(counter.store, counter.rice, pickup_code="444444", status="fulfilled")
    paid_pickup_order(StoreFactory(), counter.rice, pickup_code="555555")
    url = f"/api/v1/stores/{counter.store.id}/pickups"

    page = client.get(f"{url}?limit=1", headers=staff)
    rest = client.get(f"{url}?limit=1&cursor={page.json['next_cursor']}", headers=staff)

    assert page.status_code == 200
    assert [o["id"] for o in page.json["items"] + rest.json["items"]] == [first.id, second.id]
    assert rest.json["next_cursor"] is None
    assert "pickup_code" not in page.json["items"][0] and "consumer_id" not in page.json["items"][0]


def test_the_right_code_hands_the_order_over(client, counter, staff):
    order = paid_pickup_order(counter.store, counter.rice, pickup_code="123456")

    response = client.post(f"/api/v1/stores/{counter.store.id}/pickups", json={"pickup_code": "１２３ ４５６"},
                           headers=staff)

    assert response.status_code == 200, response.json
    assert (response.json["id"], response.json["status"]) == (order.id, "fulfilled")
    assert response.json["pickup_code"] is None  # the code is the customer's, never shown to staff
    step = db.session.scalar(select(OrderTransition).where(OrderTransition.order_id == order.id)
                             .order_by(OrderTransition.id.desc()))
    assert (step.from_status, step.to_status, step.reason) == ("paid", "fulfilled", "picked up")
    again = client.post(f"/api/v1/stores/{counter.store.id}/pickups", json={"pickup_code": "123456"}, headers=staff)
    assert (again.status_code, again.json["error"]["code"]) == (409, "pickup_code_invalid")


def test_a_hand_over_resent_with_its_idempotency_key_replays_the_first_answer(client, counter, staff):
    """A till retrying after a lost response is told the order was handed over, not that the code is wrong; the key
    is the store's, as a counter sale's, so another clerk's till resending it gets the same answer."""
    order = paid_pickup_order(counter.store, counter.rice, pickup_code="123456")
    url = f"/api/v1/stores/{counter.store.id}/pickups"
    key = {"Idempotency-Key": "till-3-pickup-0001"}

    first = client.post(url, json={"pickup_code": "123456"}, headers={**staff, **key})
    again = client.post(url, json={"pickup_code": "123456"}, headers={**staff, **key})
    other_clerk = client.post(url, json={"pickup_code": "123456"}, headers={**clerk(counter.store), **key})

    assert first.status_code == 200, first.json
    for retry in (again, other_clerk):
        assert retry.status_code == 200, retry.json
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json == first.json
    transitions = db.session.scalars(select(OrderTransition).where(OrderTransition.order_id == order.id,
                                                                   OrderTransition.to_status == "fulfilled")).all()
    assert len(transitions) == 1
    other = client.post(f"/api/v1/stores/{StoreFactory().id}/pickups", json={"pickup_code": "123456"},
                        headers={**staff, **key})
    assert other.status_code == 404  # a key is never replayed to another store


def test_a_wrong_code_is_409_and_changes_nothing(client, counter, staff):
    order = paid_pickup_order(counter.store, counter.rice, pickup_code="123456")

    response = client.post(f"/api/v1/stores/{counter.store.id}/pickups", json={"pickup_code": "654321"},
                           headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, "pickup_code_invalid")
    db.session.expire_all()
    assert order.status == "paid"


def test_a_code_must_be_six_digits(client, counter, staff):
    for code in ("12345", "1234567", "12a456"):
        response = client.post(f"/api/v1/stores/{counter.store.id}/pickups", json={"pickup_code": code},
                               headers=staff)
        assert response.status_code == 422, code


def test_another_stores_staff_get_404_even_with_the_right_code(client, counter, login):
    order = paid_pickup_order(counter.store, counter.rice, pickup_code="123456")
    url = f"/api/v1/stores/{counter.store.id}/pickups"
    stranger = clerk(StoreFactory())

    handed = client.post(url, json={"pickup_code": "123456"}, headers=stranger)
    listed = client.get(url, headers=stranger)
    admin = client.post(url, json={"pickup_code": "123456"}, headers=login("admin"))

    assert (handed.status_code, handed.json["error"]["code"]) == (404, "store_not_found")
    assert listed.status_code == 404
    assert admin.status_code == 403
    db.session.expire_all()
    assert order.status == "paid"


def test_repeated_wrong_codes_are_rate_limited(client, counter, staff):
    """Only the 429 tells the clerk to wait (Retry-After): a wrong code's 409 does not, waiting would not right it."""
    paid_pickup_order(counter.store, counter.rice, pickup_code="123456")
    url = f"/api/v1/stores/{counter.store.id}/pickups"

    wrong = [client.post(url, json={"pickup_code": f"00000{i}"}, headers=staff) for i in range(10)]
    right_after = client.post(url, json={"pickup_code": "123456"}, headers=staff)
    colleague = client.post(url, json={"pickup_code": "123456"}, headers=clerk(counter.store))

    assert [answer.status_code for answer in wrong] == [409] * 10
    assert not [answer.headers["Retry-After"] for answer in wrong if "Retry-After" in answer.headers]
    assert (right_after.status_code, right_after.json["error"]["code"]) == (429, "rate_limited")
    assert int(right_after.headers["Retry-After"]) >= 1
    assert colleague.status_code == 200 and "Retry-After" not in colleague.headers


def test_right_codes_do_not_count_against_the_limit(client, counter, staff):
    url = f"/api/v1/stores/{counter.store.id}/pickups"
    codes = [f"{i:06d}" for i in range(12)]
    for code in codes:
        paid_pickup_order(counter.store, counter.rice, pickup_code=code)

    assert [client.post(url, json={"pickup_code": c}, headers=staff).status_code for c in codes] == [200] * 12


def test_a_hand_over_refused_for_its_idempotency_key_checks_no_code_and_does_not_count_against_the_limit(
        client, counter, staff):
    """A till resending a hand-over under a key it used for another code gets idempotency_key_reused: no code was
    tried, so the clerk is not made to wait for the next customer's."""
    codes = [f"{i:06d}" for i in range(12)]
    for code in codes:
        paid_pickup_order(counter.store, counter.rice, pickup_code=code)
    url = f"/api/v1/stores/{counter.store.id}/pickups"
    first = client.post(url, json={"pickup_code": codes[0]}, headers={**staff, "Idempotency-Key": "till-7"})
    assert first.status_code == 200, first.json

    reused = [client.post(url, json={"pickup_code": code}, headers={**staff, "Idempotency-Key": "till-7"})
              for code in codes[1:11]]
    next_customer = client.post(url, json={"pickup_code": codes[11]}, headers=staff)

    assert {(answer.status_code, answer.json["error"]["code"]) for answer in reused} == {
        (409, "idempotency_key_reused")}
    assert next_customer.status_code == 200, next_customer.json


def test_a_receipt_is_reprinted_for_the_store_and_admins(client, counter, staff, login):
    sold = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=sale_body(counter), headers=staff)
    url = f"/api/v1/orders/{sold.json['id']}/receipt"

    reprint = client.get(url, headers=clerk(counter.store))
    admin = client.get(url, headers=login("admin"))
    stranger = client.get(url, headers=clerk(StoreFactory()))
    consumer = client.get(url, headers=login("consumer"))
    coop = client.get(url, headers=login("coop", supplier_id=counter.rice.supplier_id))

    assert reprint.status_code == admin.status_code == 200
    assert reprint.json == admin.json == sold.json["receipt"]
    assert reprint.json["lines"][0]["trace_codes"] == [counter.old_lot.trace_code]
    assert (stranger.status_code, stranger.json["error"]["code"]) == (404, "order_not_found")
    assert consumer.status_code == 404
    assert coop.status_code == 403


def test_a_receipt_printed_through_the_api_is_counted_and_each_print_after_the_first_is_a_reprint(client, counter,
                                                                                                   staff, login):
    """A till printing through the API counts its prints as the till page does: the first is the original, any later
    one a reprint (重打印) with its number and time, so a copy cannot pass for a second original; a print resent with
    its Idempotency-Key after a lost answer is not counted twice; another store's clerk prints nothing of it."""
    sold = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=sale_body(counter), headers=staff)
    url = f"/api/v1/orders/{sold.json['id']}/receipt/prints"

    first = client.post(url, headers={**staff, "Idempotency-Key": "print-1"})
    resent = client.post(url, headers={**staff, "Idempotency-Key": "print-1"})
    stranger = client.post(url, headers=clerk(StoreFactory()))
    consumer = client.post(url, headers=login("consumer"))
    second = client.post(url, headers=login("admin"))
    read = client.get(f"/api/v1/orders/{sold.json['id']}/receipt", headers=staff)

    assert first.status_code == 200, first.json
    assert (first.json["prints"], first.json["reprint"]) == (1, False)
    assert resent.json == first.json
    assert (stranger.status_code, stranger.json["error"]["code"]) == (404, "order_not_found")
    assert consumer.status_code == 403
    assert (second.json["prints"], second.json["reprint"]) == (2, True) and second.json["printed_at"]
    assert {k: v for k, v in second.json.items() if k not in ("prints", "reprint", "printed_at")} == {
        k: v for k, v in sold.json["receipt"].items() if k not in ("prints", "reprint")}
    assert (read.json["prints"], read.json["reprint"]) == (2, True)


def test_a_consumer_reprints_their_own_paid_order_only(client, counter):
    paid = paid_pickup_order(counter.store, counter.rice, pickup_code="123456")
    pending = paid_pickup_order(counter.store, counter.rice, pickup_code="654321", status="pending_payment")

    def owner(order):
        return bearer(db.session.get(User, order.consumer_id))

    mine = client.get(f"/api/v1/orders/{paid.id}/receipt", headers=owner(paid))
    unpaid = client.get(f"/api/v1/orders/{pending.id}/receipt", headers=owner(pending))

    assert mine.status_code == 200 and mine.json["store"]["id"] == counter.store.id
    assert (unpaid.status_code, unpaid.json["error"]["code"]) == (409, "order_not_paid")


def test_a_store_with_pickup_orders_waiting_is_not_deactivated_and_is_told_which(client, counter, staff, login):
    """A consumer who paid to collect at a store (or is paying) is not left with an order at a closed store: the store
    closes once its pickups are handed over, cancelled or refunded."""
    waiting = paid_pickup_order(counter.store, counter.rice, pickup_code="123456")
    paying = paid_pickup_order(counter.store, counter.tea, pickup_code=None, status="pending_payment")
    inventory.reserve(location_id=counter.store.location_id, product_id=counter.tea.id, quantity=1)  # as checkout
    db.session.commit()
    collected = paid_pickup_order(counter.store, counter.rice, pickup_code="654321", status="fulfilled")
    admin, url = login("admin"), f"/api/v1/stores/{counter.store.id}"

    refused = client.patch(url, json={"active": False}, headers=admin)

    assert (refused.status_code, refused.json["error"]["code"]) == (409, "pickups_waiting")
    assert refused.json["error"]["details"] == {"order_ids": [waiting.id, paying.id]}
    assert collected.id not in refused.json["error"]["details"]["order_ids"]
    assert client.get(url, headers=admin).json["active"] is True
    handed = client.post(f"{url}/pickups", json={"pickup_code": "123456"}, headers=staff)
    cancelled = client.post(f"/api/v1/orders/{paying.id}/cancel", headers=admin)
    assert (handed.status_code, cancelled.status_code) == (200, 200), cancelled.json
    closed = client.patch(url, json={"active": False}, headers=admin)
    assert closed.status_code == 200 and closed.json["active"] is False


def test_the_waiting_list_gives_the_value_and_units_still_to_hand_over_after_a_partial_refund(client, counter, staff):
    """Units refunded before collection are not handed over: each waiting order says the value of what is handed over
    and each line its units still sold, as the till's pickup page does (the amount first paid stays `total_fen`)."""
    order = partly_refunded_pickup_order(counter, pickup_code="246810")

    waiting = client.get(f"/api/v1/stores/{counter.store.id}/pickups", headers=staff).json["items"]

    (listed,) = [item for item in waiting if item["id"] == order.id]
    assert (listed["total_fen"], listed["to_hand_over_fen"]) == (9500, 4000)
    assert [line["to_hand_over"] for line in listed["lines"]] == [2, 0]


@pytest.fixture
def clock(monkeypatch) -> dict:
    """The limits' clock, moved on by `clock["offset"]` seconds."""
    moved = {"offset": 0.0}
    monkeypatch.setattr(memory, "time", SimpleNamespace(time=lambda: time.time() + moved["offset"]))
    return moved


def test_a_clerks_wrong_codes_are_capped_by_the_hour_and_by_the_day_and_hold_up_no_colleague(client, counter, staff,
                                                                                               clock):
    """A clerk's real mistakes (a mistyped code, an old one shown) are a few an hour: 30 wrong codes an hour and 100 a
    day from one clerk stop their guessing with a 429 whose Retry-After runs to the window's end, while their
    colleagues (a stolen till session is one clerk's) still hand orders over."""
    paid_pickup_order(counter.store, counter.rice, pickup_code="123456")
    url = f"/api/v1/stores/{counter.store.id}/pickups"

    def wrong_codes(count: int) -> list[int]:
        """`count` wrong codes from the clerk, 10 a minute (within the per-minute limit)."""
        answers = []
        for i in range(count):
            if i and i % 10 == 0:
                clock["offset"] += 61
            answers.append(client.post(url, json={"pickup_code": f"9{i:05d}"}, headers=staff).status_code)
        return answers

    assert wrong_codes(30) == [409] * 30
    clock["offset"] += 61
    hour_over = client.post(url, json={"pickup_code": "123456"}, headers=staff)
    assert (hour_over.status_code, hour_over.json["error"]["code"]) == (429, "rate_limited")
    assert 60 < int(hour_over.headers["Retry-After"]) <= 3600
    colleague = clerk(counter.store)
    assert client.post(url, json={"pickup_code": "000001"}, headers=colleague).status_code == 409

    for count in (30, 30, 10):
        clock["offset"] += 3601
        assert wrong_codes(count) == [409] * count
    clock["offset"] += 3601
    day_over = client.post(url, json={"pickup_code": "123456"}, headers=staff)
    assert (day_over.status_code, day_over.json["error"]["code"]) == (429, "rate_limited")
    assert 3600 < int(day_over.headers["Retry-After"]) <= 86400
    assert client.post(url, json={"pickup_code": "123456"}, headers=colleague).status_code == 200


def test_wrong_codes_at_a_store_are_capped_by_the_hour_and_by_the_day_whichever_clerks_try(client, counter, clock):
    """Many clerks' wrong codes together are capped too (100 an hour, 300 a day at a store: room for every clerk's
    mistakes, ~300 guesses a day at most), with a 429 whose Retry-After runs to the window's end; another store is not
    held up."""
    paid_pickup_order(counter.store, counter.rice, pickup_code="123456")
    url = f"/api/v1/stores/{counter.store.id}/pickups"

    def wrong_codes(count: int) -> list[int]:
        """`count` wrong codes from new clerks, 10 each (each within their own per-minute limit)."""
        clerks = [clerk(counter.store) for _ in range(-(-count // 10))]
        return [client.post(url, json={"pickup_code": f"9{i:05d}"}, headers=clerks[i // 10]).status_code
                for i in range(count)]

    assert wrong_codes(100) == [409] * 100
    hour_over = client.post(url, json={"pickup_code": "123456"}, headers=clerk(counter.store))
    assert (hour_over.status_code, hour_over.json["error"]["code"]) == (429, "rate_limited")
    assert 60 < int(hour_over.headers["Retry-After"]) <= 3600
    elsewhere = StoreFactory()
    paid_pickup_order(elsewhere, counter.rice, pickup_code="123456")
    assert client.post(f"/api/v1/stores/{elsewhere.id}/pickups", json={"pickup_code": "123456"},
                       headers=clerk(elsewhere)).status_code == 200

    for count in (100, 100):
        clock["offset"] += 3601
        assert wrong_codes(count) == [409] * count
    clock["offset"] += 3601
    day_over = client.post(url, json={"pickup_code": "123456"}, headers=clerk(counter.store))
    assert (day_over.status_code, day_over.json["error"]["code"]) == (429, "rate_limited")
    assert 3600 < int(day_over.headers["Retry-After"]) <= 86400
