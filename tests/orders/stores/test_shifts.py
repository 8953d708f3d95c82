"""Cash shifts: one open at a time per store, the cash-up per payment method, late entries, scope."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from orders.models import Order, Refund, Shift, Store
from orders.payments.provider import MAX_PAYMENT_FEN
from orders.stores import service
from shop.auth.models import User
from shop.db import db
from shop.errors import Conflict, NotFound
from shop.fields import MAX_AMOUNT_FEN
from tests.contract.conftest import documented_codes
from tests.factories import UserFactory
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.parallel import second_while_first_uncommitted

PAID_AT = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def _sale(shift, method: str, total_fen: int, *, late: bool = False) -> Order:
    """A counter sale rung up in `shift`."""
    order = Order(channel="counter", status="fulfilled", store_id=shift.store_id,
                  location_id=db.session.get(Store, shift.store_id).location_id,
                  donor_code="440606", total_fen=total_fen, paid_at=PAID_AT, sale_date=PAID_AT.date(),
                  shift_id=shift.id, payment_method=method, late_entry=late,
                  client_created_at=PAID_AT if late else None)
    db.session.add(order)
    db.session.flush()
    return order


def _refund(shift, order: Order, method: str, amount_fen: int) -> None:
    """A refund paid out of the drawer (cash) or back to the card within `shift`."""
    db.session.add(Refund(order_id=order.id, amount_fen=amount_fen, method=method, reason="坏果",
                          source="staff", shift_id=shift.id))
    db.session.flush()


def test_staff_open_a_shift_once(client, store, staff_of):
    staff = staff_of(store)

    opened = client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 20000}, headers=staff)
    again = client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 100}, headers=staff)

    assert opened.status_code == 201
    assert (opened.json["store_id"], opened.json["float_fen"], opened.json["closed_at"]) == (store.id, 20000, None)
    assert (again.status_code, again.json["error"]["code"]) == (409, "shift_already_open")
    assert again.json["error"]["details"] == {"shift_id": opened.json["id"]}


def test_a_deactivated_stores_clerk_opens_no_shift(client, store, staff_of):
    staff = staff_of(store)
    store.active = False
    db.session.commit()

    response = client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 100}, headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, "store_inactive")
    assert db.session.scalar(select(Shift).where(Shift.store_id == store.id)) is None


def test_the_refusal_to_open_a_shift_in_a_deactivated_store_is_documented(client, store, staff_of):
    """A generated till client must know the 409 `store_inactive` of opening a shift, as it knows a sale's."""
    staff = staff_of(store)
    store.active = False
    db.session.commit()
    operation = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/stores/{store_id}/shifts"]["post"]

    response = client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 100}, headers=staff)

    assert (response.status_code, response.json["error"]["code"]) == (409, "store_inactive")
    assert "store_inactive" in documented_codes(operation).get(409, set())


@pytest.mark.postgres
def test_a_shift_opened_while_its_store_is_deactivated_is_refused(pg_app):
    """A clerk who read the store active just before an admin's deactivation committed opens no shift in it: the
    opening waits for the deactivation and gets store_inactive."""
    store = StoreFactory()
    clerk, admin = UserFactory(role="store_staff", store_id=store.id), UserFactory(role="admin")
    db.session.commit()
    store_id, clerk_id, admin_id = store.id, clerk.id, admin.id

    def deactivate():
        service.update_store(store_id=store_id, actor=db.session.get(User, admin_id),
                             changes=service.StoreChanges(active=False))

    def open_one():
        return service.start_shift(actor=db.session.get(User, clerk_id), store_id=store_id, float_fen=100).id

    assert second_while_first_uncommitted(pg_app, deactivate, open_one) == "store_inactive"
    assert db.session.scalar(select(Shift).where(Shift.store_id == store_id)) is None


def test_another_stores_staff_cannot_open_read_or_close_its_shifts(client, store, staff_of, login):
    other = StoreFactory()
    shift = ShiftFactory(store=store)
    db.session.commit()
    outsider = staff_of(other)

    opened = client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 0}, headers=outsider)
    read = client.get(f"/api/v1/shifts/{shift.id}", headers=outsider)
    closed = client.post(f"/api/v1/shifts/{shift.id}/close", json={"counted_cash_fen": 0}, headers=outsider)

    assert (opened.status_code, opened.json["error"]["code"]) == (404, "store_not_found")
    assert (read.status_code, read.json["error"]["code"]) == (404, "shift_not_found")
    assert (closed.status_code, closed.json["error"]["code"]) == (404, "shift_not_found")
    assert client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 0},
                       headers=login("consumer")).status_code == 403


def test_close_reports_expected_counted_and_difference_per_method(client, store, staff_of):
    shift = ShiftFactory(store=store, float_fen=20000)
    cash_a = _sale(shift, "cash", 3980)
    _sale(shift, "cash", 7900)
    card = _sale(shift, "card", 14900)
    _refund(shift, cash_a, "cash", 1990)
    _refund(shift, card, "card", 4900)
    other_shift = ShiftFactory(store=StoreFactory())
    _sale(other_shift, "cash", 99999)
    db.session.commit()

    response = client.post(f"/api/v1/shifts/{shift.id}/close", json={"counted_cash_fen": 29800},
                           headers=staff_of(store))

    assert response.status_code == 200, response.json
    report = response.json
    assert report["open"] is False and report["sales"] == 3
    assert report["methods"] == [
        {"method": "cash", "sales_fen": 11880, "refunds_fen": 1990, "expected_fen": 29890,
         "counted_fen": 29800, "difference_fen": -90, "late_entries_fen": 0, "unexplained_fen": -90},
        {"method": "card", "sales_fen": 14900, "refunds_fen": 4900, "expected_fen": 10000,
         "counted_fen": None, "difference_fen": None, "late_entries_fen": 0, "unexplained_fen": None},
    ]
    assert report["late_entries"] == []


def test_the_report_is_live_while_open_and_lists_late_entries_apart(client, store, staff_of):
    shift = ShiftFactory(store=store, float_fen=5000)
    _sale(shift, "cash", 1000)
    db.session.commit()
    staff = staff_of(store)

    live = client.get(f"/api/v1/shifts/{shift.id}", headers=staff).json
    client.post(f"/api/v1/shifts/{shift.id}/close", json={"counted_cash_fen": 6000}, headers=staff)
    late = _sale(shift, "cash", 2500, late=True)
    db.session.commit()
    after = client.get(f"/api/v1/shifts/{shift.id}", headers=staff).json

    assert live["open"] is True
    assert live["methods"][0] == {"method": "cash", "sales_fen": 1000, "refunds_fen": 0, "expected_fen": 6000,
                                  "counted_fen": None, "difference_fen": None, "late_entries_fen": 0,
                                  "unexplained_fen": None}
    assert after["methods"][0]["difference_fen"] == 0  # the late sale is not in the cash-up ...
    assert [(e["order_id"], e["total_fen"], e["payment_method"]) for e in after["late_entries"]] == [
        (late.id, 2500, "cash")]  # ... but listed beside it


def test_closing_twice_is_a_conflict(client, store, staff_of):
    shift = ShiftFactory(store=store)
    db.session.commit()
    staff = staff_of(store)

    first = client.post(f"/api/v1/shifts/{shift.id}/close", json={"counted_cash_fen": 1}, headers=staff)
    assert first.status_code == 200
    again = client.post(f"/api/v1/shifts/{shift.id}/close", json={"counted_cash_fen": 2}, headers=staff)

    assert (again.status_code, again.json["error"]["code"]) == (409, "shift_closed")
    assert client.get(f"/api/v1/shifts/{shift.id}", headers=staff).json["shift"]["counted_cash_fen"] == 1


def test_a_new_shift_may_open_once_the_last_closed(client, store, staff_of):
    shift = ShiftFactory(store=store)
    db.session.commit()
    staff = staff_of(store)
    client.post(f"/api/v1/shifts/{shift.id}/close", json={"counted_cash_fen": 0}, headers=staff)

    assert client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 0}, headers=staff).status_code == 201


def test_negative_or_huge_money_is_refused(client, store, staff_of):
    staff = staff_of(store)
    for value in (-1, 10**13, "100", 1.5):
        response = client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": value}, headers=staff)
        assert response.status_code == 422, value


def test_a_float_of_a_drawer_carried_over_opens_a_shift_and_only_an_amount_beyond_any_total_is_refused(
        client, store, staff_of):
    staff = staff_of(store)

    refused = client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": MAX_AMOUNT_FEN + 1}, headers=staff)
    assert (refused.status_code, list(refused.json["error"]["details"])) == (422, ["float_fen"])
    assert db.session.scalars(select(Shift)).all() == []

    opened = client.post(f"/api/v1/stores/{store.id}/shifts", json={"float_fen": 5_000_000}, headers=staff)  # ¥50,000
    assert (opened.status_code, opened.json["float_fen"]) == (201, 5_000_000)


def test_a_drawer_holding_more_than_a_million_yuan_closes_with_its_real_count(client, store, staff_of):
    shift = ShiftFactory(store=store, float_fen=20000)
    for _ in range(3):
        _sale(shift, "cash", MAX_PAYMENT_FEN)  # three cash sales of ¥999,999.99
    db.session.commit()
    staff = staff_of(store)
    counted = 20000 + 3 * MAX_PAYMENT_FEN

    refused = client.post(f"/api/v1/shifts/{shift.id}/close", json={"counted_cash_fen": MAX_AMOUNT_FEN + 1},
                          headers=staff)
    assert (refused.status_code, list(refused.json["error"]["details"])) == (422, ["counted_cash_fen"])
    assert client.get(f"/api/v1/shifts/{shift.id}", headers=staff).json["shift"]["closed_at"] is None

    closed = client.post(f"/api/v1/shifts/{shift.id}/close", json={"counted_cash_fen": counted}, headers=staff)
    assert closed.status_code == 200, closed.json
    cash = closed.json["methods"][0]
    assert (cash["expected_fen"], cash["counted_fen"], cash["difference_fen"]) == (counted, counted, 0)


def test_open_shift_checks_store_and_state(store):
    shift = ShiftFactory(store=store)
    other = StoreFactory()
    db.session.flush()

    assert service.open_shift(store_id=store.id, shift_id=shift.id) is shift
    with pytest.raises(NotFound) as wrong_store:
        service.open_shift(store_id=other.id, shift_id=shift.id)
    shift.closed_at = PAID_AT
    with pytest.raises(Conflict) as closed:
        service.open_shift(store_id=store.id, shift_id=shift.id)

    assert wrong_store.value.code == "shift_not_found" and closed.value.code == "shift_closed"


def _closed_shift(store, *, opened_at, float_fen=20000, counted=None):
    """A shift of `store` opened at `opened_at` and closed 8 hours later with `counted` cash (still open if None)."""
    shift = ShiftFactory(store=store, float_fen=float_fen, opened_at=opened_at)
    if counted is not None:
        shift.closed_at, shift.closed_by = opened_at + timedelta(hours=8), shift.opened_by
        shift.counted_cash_fen = counted
    db.session.flush()
    return shift


def test_a_stores_shifts_are_listed_newest_first_with_their_cash_up(client, store, staff_of, login):
    first = _closed_shift(store, opened_at=datetime(2026, 11, 1, 1, 0, tzinfo=UTC), counted=23980)
    _sale(first, "cash", 3980)
    card = _sale(first, "card", 5000)
    _refund(first, card, "card", 1000)
    second = _closed_shift(store, opened_at=datetime(2026, 11, 2, 1, 0, tzinfo=UTC), counted=20000)
    third = _closed_shift(store, opened_at=datetime(2026, 11, 3, 1, 0, tzinfo=UTC), float_fen=10000)
    _sale(third, "cash", 700)
    ShiftFactory(store=StoreFactory(), opened_at=datetime(2026, 11, 3, 2, 0, tzinfo=UTC))  # another store's
    db.session.commit()
    url, clerk = f"/api/v1/stores/{store.id}/shifts", staff_of(store)

    page = client.get(f"{url}?limit=2", headers=clerk)
    rest = client.get(f"{url}?limit=2&cursor={page.json['next_cursor']}", headers=clerk)

    assert page.status_code == 200, page.json
    assert [item["shift"]["id"] for item in page.json["items"]] == [third.id, second.id]
    assert [item["shift"]["id"] for item in rest.json["items"]] == [first.id] and rest.json["next_cursor"] is None
    live, old = page.json["items"][0], rest.json["items"][0]
    assert (live["open"], live["shift"]["float_fen"], live["shift"]["closed_at"]) == (True, 10000, None)
    assert live["methods"][0] == {"method": "cash", "sales_fen": 700, "refunds_fen": 0, "expected_fen": 10700,
                                  "counted_fen": None, "difference_fen": None, "late_entries_fen": 0,
                                  "unexplained_fen": None}
    assert old == client.get(f"/api/v1/shifts/{first.id}", headers=staff_of(store)).json
    assert (old["open"], old["sales"], old["shift"]["opened_by"], old["shift"]["closed_by"]) == (
        False, 2, first.opened_by, first.opened_by)
    assert old["methods"][1] == {"method": "card", "sales_fen": 5000, "refunds_fen": 1000, "expected_fen": 4000,
                                 "counted_fen": None, "difference_fen": None, "late_entries_fen": 0,
                                 "unexplained_fen": None}
    assert client.get(url, headers=login("admin")).json["items"] == page.json["items"] + rest.json["items"]
    assert client.get(url, headers=login("auditor")).status_code == 200


def test_a_stores_shifts_filter_by_state_and_the_day_they_opened(client, store, staff_of):
    first = _closed_shift(store, opened_at=datetime(2026, 10, 31, 15, 59, tzinfo=UTC), counted=20000)  # 10-31 23:59
    second = _closed_shift(store, opened_at=datetime(2026, 10, 31, 16, 0, tzinfo=UTC), counted=20000)  # 11-01 00:00
    third = _closed_shift(store, opened_at=datetime(2026, 11, 2, 1, 0, tzinfo=UTC))
    db.session.commit()
    url, staff = f"/api/v1/stores/{store.id}/shifts", staff_of(store)

    def ids(query):
        response = client.get(f"{url}?{query}", headers=staff)
        assert response.status_code == 200, response.json
        return [item["shift"]["id"] for item in response.json["items"]]

    assert ids("status=open") == [third.id]
    assert ids("status=closed") == [second.id, first.id]
    assert ids("from=2026-11-01") == [third.id, second.id]
    assert ids("to=2026-11-01") == [first.id]
    assert ids("from=2026-11-01&to=2026-11-02&status=closed") == [second.id]
    for query, field in (("status=lost", "status"), ("from=1999-12-31", "from"), ("to=2100-01-01", "to"),
                         ("from=2026-11-02&to=2026-11-01", "to"), ("limit=101", "limit")):
        refused = client.get(f"{url}?{query}", headers=staff)
        assert (refused.status_code, refused.json["error"]["code"]) == (422, "validation_error"), query
        assert field in refused.json["error"]["details"], query
    cursor = client.get(f"{url}?status=closed&limit=1", headers=staff).json["next_cursor"]
    moved = client.get(f"{url}?status=open&limit=1&cursor={cursor}", headers=staff)
    assert (moved.status_code, moved.json["error"]["code"]) == (400, "invalid_cursor")


def test_only_the_stores_own_staff_admins_and_auditors_list_its_shifts(client, store, staff_of, login):
    ShiftFactory(store=store)
    other = StoreFactory()
    db.session.commit()
    url = f"/api/v1/stores/{store.id}/shifts"

    outsider = client.get(url, headers=staff_of(other))
    consumer = client.get(url, headers=login("consumer"))
    unknown = client.get("/api/v1/stores/999999/shifts", headers=login("admin"))

    assert (outsider.status_code, outsider.json["error"]["code"]) == (404, "store_not_found")
    assert (unknown.status_code, unknown.json["error"]["code"]) == (404, "store_not_found")
    assert (consumer.status_code, consumer.json["error"]["code"]) == (403, "forbidden")
    assert client.get(url).status_code == 401


def test_a_shift_opened_or_closed_then_resent_by_another_clerk_with_its_key_is_answered_as_the_first(client, store,
                                                                                                     staff_of):
    open_url = f"/api/v1/stores/{store.id}/shifts"
    opened = client.post(open_url, json={"float_fen": 20000}, headers={**staff_of(store), "Idempotency-Key": "open-1"})
    reopened = client.post(open_url, json={"float_fen": 20000},
                           headers={**staff_of(store), "Idempotency-Key": "open-1"})
    close_url = f"/api/v1/shifts/{opened.json['id']}/close"
    closed = client.post(close_url, json={"counted_cash_fen": 20000},
                         headers={**staff_of(store), "Idempotency-Key": "close-1"})
    reclosed = client.post(close_url, json={"counted_cash_fen": 20000},
                           headers={**staff_of(store), "Idempotency-Key": "close-1"})
    elsewhere = StoreFactory()
    db.session.commit()
    other_store = client.post(close_url, json={"counted_cash_fen": 20000},
                              headers={**staff_of(elsewhere), "Idempotency-Key": "close-1"})

    assert opened.status_code == reopened.status_code == 201, reopened.json
    assert reopened.json == opened.json
    assert closed.status_code == reclosed.status_code == 200, reclosed.json
    assert reclosed.json == closed.json
    assert (other_store.status_code, other_store.json["error"]["code"]) == (404, "shift_not_found")
    assert db.session.scalar(select(func.count()).select_from(Shift).where(Shift.store_id == store.id)) == 1
