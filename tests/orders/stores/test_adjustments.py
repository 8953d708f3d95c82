"""Stock adjustments: counts, write-offs and finds per lot, audited, never below what is reserved nor above what
the lot is missing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from catalog import inventory
from catalog.models import Stock
from orders.models import StockAdjustment
from orders.stores import service
from shop.auth.models import User
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.catalog.test_concurrency import race
from tests.factories import UserFactory
from tests.orders.factories import StoreFactory
from tests.shop.test_errors import assert_error


@pytest.fixture
def store_lot(store):
    """A lot of 10 units in the store's back room."""
    lot = make_lot(ProductFactory(), inventory.get_location(store.location_id), quantity=10)
    db.session.commit()
    return lot


def _adjust(client, headers, store, lot, delta, reason, **extra):
    body = {"location_id": store.location_id, "lot_id": lot.id, "delta": delta, "reason": reason, **extra}
    return client.post("/api/v1/stock-adjustments", json=body, headers=headers)


def _on_hand(store, lot) -> int:
    db.session.expire_all()
    return db.session.scalar(select(Stock.on_hand).where(Stock.location_id == store.location_id,
                                                         Stock.lot_id == lot.id))


def test_staff_write_off_spoiled_stock_and_the_row_is_the_audit(client, store, staff_of, store_lot):
    response = _adjust(client, staff_of(store), store, store_lot, -3, "spoiled", note=" 运输挤压 ")

    assert response.status_code == 201, response.json
    assert (response.json["delta"], response.json["reason"], response.json["note"]) == (-3, "spoiled", "运输挤压")
    clerk = db.session.scalar(select(User).where(User.role == "store_staff"))
    row = db.session.get(StockAdjustment, response.json["id"])
    assert (row.created_by, row.location_id, row.lot_id) == (clerk.id, store.location_id, store_lot.id)
    assert row.created_at is not None
    assert _on_hand(store, store_lot) == 7


def test_an_adjustment_is_read_at_its_location_by_its_stores_staff_only(client, store, staff_of, store_lot):
    created = _adjust(client, staff_of(store), store, store_lot, -1, "damaged")

    read = client.get(created.headers["Location"], headers=staff_of(store))
    hidden = client.get(created.headers["Location"], headers=staff_of(StoreFactory()))

    assert (read.status_code, read.json["id"], read.json["delta"]) == (200, created.json["id"], -1)
    assert (hidden.status_code, hidden.json["error"]["code"]) == (404, "adjustment_not_found")


@pytest.mark.parametrize(("delta", "reason", "on_hand"), [(5, "found", 9), (-2, "stocktake", 2),
                                                          (4, "stocktake", 8), (-1, "damaged", 3)])
def test_each_reason_moves_stock_its_way(client, login, store, store_lot, delta, reason, on_hand):
    assert _adjust(client, login("admin"), store, store_lot, -6, "spoiled").status_code == 201
    assert _adjust(client, login("admin"), store, store_lot, delta, reason).status_code == 201
    assert _on_hand(store, store_lot) == on_hand


def test_no_stock_of_a_lot_is_found_beyond_its_quantity(client, staff_of, login, store, store_lot):
    """A lot of 10 units: counting a million of them is refused, so no sale can pay its households for units they
    never delivered."""
    found = _adjust(client, staff_of(store), store, store_lot, 1_000_000, "found")
    counted = _adjust(client, login("admin"), store, store_lot, 1_000_000, "stocktake")

    for response in (found, counted):
        assert (response.status_code, response.json["error"]["code"]) == (409, "lot_quantity_exceeded")
        assert response.json["error"]["details"] == {"lot_id": store_lot.id, "lot_quantity": 10,
                                                     "requested": 1_000_000, "restorable": 0}
        assert "at most 0 more units" in response.json["error"]["message"]
    assert _on_hand(store, store_lot) == 10
    assert db.session.scalar(select(func.count()).select_from(StockAdjustment)) == 0


def test_units_lost_elsewhere_are_never_found_where_the_lot_never_was(client, staff_of, login, store):
    """A lot written off at its warehouse: the store, which never held it, cannot find those units."""
    warehouse = LocationFactory()
    lot = make_lot(ProductFactory(), warehouse, quantity=3)
    db.session.commit()
    written_off = client.post("/api/v1/stock-adjustments", headers=login("admin"),
                              json={"location_id": warehouse.id, "lot_id": lot.id, "delta": -1, "reason": "spoiled"})
    assert written_off.status_code == 201

    found = _adjust(client, staff_of(store), store, lot, 1, "found")

    assert (found.status_code, found.json["error"]["code"]) == (409, "lot_not_held_here")
    assert _on_hand(store, lot) is None
    assert db.session.scalar(select(func.sum(Stock.on_hand)).where(Stock.lot_id == lot.id)) == 2


def test_a_lot_never_held_here_is_neither_written_off_nor_found_here(client, staff_of, login, store):
    """A clerk who types a lot the store never held is told so, whichever way the count goes."""
    lot = make_lot(ProductFactory(), LocationFactory(), quantity=3)
    db.session.commit()

    answers = [_adjust(client, staff_of(store), store, lot, delta, reason)
               for delta, reason in ((-1, "damaged"), (-1, "stocktake"), (1, "found"))]

    for response in answers:
        assert (response.status_code, response.json["error"]["code"]) == (409, "lot_not_held_here"), response.json
        assert response.json["error"]["details"] == {"lot_id": lot.id, "location_id": store.location_id}
    assert _on_hand(store, lot) is None
    assert db.session.scalar(select(func.count()).select_from(StockAdjustment)) == 0


def test_found_stock_restores_what_was_written_off_and_no_more(client, staff_of, store, store_lot):
    staff = staff_of(store)
    assert _adjust(client, staff, store, store_lot, -3, "spoiled").status_code == 201

    too_many = _adjust(client, staff, store, store_lot, 4, "found")
    restored = _adjust(client, staff, store, store_lot, 3, "found")
    beyond = _adjust(client, staff, store, store_lot, 1, "stocktake")

    assert (too_many.status_code, too_many.json["error"]["code"]) == (409, "lot_quantity_exceeded")
    assert too_many.json["error"]["details"]["restorable"] == 3
    assert restored.status_code == 201, restored.json
    assert (beyond.status_code, beyond.json["error"]["details"]["restorable"]) == (409, 0)
    assert _on_hand(store, store_lot) == 10
    assert [row.delta for row in db.session.scalars(select(StockAdjustment).order_by(StockAdjustment.id))] == [-3, 3]


@pytest.mark.parametrize(("delta", "reason"), [(3, "spoiled"), (1, "damaged"), (-1, "found")])
def test_a_reason_with_the_wrong_sign_is_refused(client, login, store, store_lot, delta, reason):
    response = _adjust(client, login("admin"), store, store_lot, delta, reason)

    assert (response.status_code, response.json["error"]["code"]) == (422, "adjustment_sign")
    assert "delta" in response.json["error"]["details"]
    assert _on_hand(store, store_lot) == 10


def test_zero_unknown_reasons_and_huge_deltas_are_refused(client, login, store, store_lot):
    admin = login("admin")
    assert _adjust(client, admin, store, store_lot, 0, "stocktake").status_code == 422
    assert _adjust(client, admin, store, store_lot, -1, "stolen").status_code == 422
    assert _adjust(client, admin, store, store_lot, 10**9, "found").status_code == 422
    assert _on_hand(store, store_lot) == 10


def test_never_below_what_is_reserved(client, login, store, store_lot):
    inventory.reserve(location_id=store.location_id, product_id=store_lot.product_id, quantity=6)
    db.session.commit()

    refused = _adjust(client, login("admin"), store, store_lot, -5, "stocktake")
    allowed = _adjust(client, login("admin"), store, store_lot, -4, "stocktake")

    assert (refused.status_code, refused.json["error"]["code"]) == (409, "below_reserved")
    assert refused.json["error"]["details"] == {"on_hand": 10, "reserved": 6, "delta": -5}
    assert allowed.status_code == 201
    assert _on_hand(store, store_lot) == 6
    assert db.session.scalar(select(StockAdjustment.delta)) == -4


def test_staff_adjust_and_list_only_their_own_location(client, login, store, staff_of, store_lot):
    other = StoreFactory()
    elsewhere = make_lot(ProductFactory(), inventory.get_location(other.location_id), quantity=5)
    db.session.commit()
    staff = staff_of(store)
    _adjust(client, login("admin"), other, elsewhere, -1, "damaged")
    _adjust(client, staff, store, store_lot, -1, "damaged")

    refused = _adjust(client, staff, other, elsewhere, -1, "damaged")
    own = client.get("/api/v1/stock-adjustments", headers=staff).json["items"]
    foreign = client.get(f"/api/v1/stock-adjustments?location_id={other.location_id}", headers=staff)
    everything = client.get("/api/v1/stock-adjustments", headers=login("auditor")).json["items"]

    assert (refused.status_code, refused.json["error"]["code"]) == (404, "location_not_found")
    assert [row["location_id"] for row in own] == [store.location_id]
    assert (foreign.status_code, foreign.json["error"]["code"]) == (404, "location_not_found")
    assert sorted(row["location_id"] for row in everything) == sorted([store.location_id, other.location_id])
    assert _adjust(client, login("consumer"), store, store_lot, -1, "damaged").status_code == 403


def test_a_repeated_idempotency_key_adjusts_once(client, login, store, store_lot):
    admin = {**login("admin"), "Idempotency-Key": "count-1"}
    assert _adjust(client, admin, store, store_lot, -2, "stocktake").status_code == 201
    assert _adjust(client, admin, store, store_lot, -2, "stocktake").status_code == 201
    assert _on_hand(store, store_lot) == 8


@pytest.mark.postgres
def test_a_write_off_resent_by_another_clerk_of_the_store_with_its_key_is_written_once(client, store, staff_of,
                                                                                       store_lot):
    first = _adjust(client, {**staff_of(store), "Idempotency-Key": "spoiled-1"}, store, store_lot, -3, "spoiled")
    resent = _adjust(client, {**staff_of(store), "Idempotency-Key": "spoiled-1"}, store, store_lot, -3, "spoiled")

    assert first.status_code == resent.status_code == 201, resent.json
    assert resent.json == first.json
    assert db.session.scalar(select(func.count()).select_from(StockAdjustment)) == 1
    assert inventory.available(location_id=store.location_id, product_id=store_lot.product_id) == 7


def test_a_write_off_racing_reservations_never_dips_below_reserved(pg_app):
    store = StoreFactory()
    lot = make_lot(ProductFactory(), inventory.get_location(store.location_id), quantity=10)
    admin = UserFactory(role="admin")
    db.session.commit()
    ids = (store.location_id, lot.id, lot.product_id, admin.id)

    def operation(i: int) -> None:
        if i < 8:
            inventory.reserve(location_id=ids[0], product_id=ids[2], quantity=1)
        else:
            service.adjust_stock(actor=db.session.get(User, ids[3]), location_id=ids[0], lot_id=ids[1],
                                 delta=-4, reason="spoiled")

    outcomes = race(pg_app, 10, operation)

    db.session.expire_all()
    row = db.session.scalar(select(Stock).where(Stock.location_id == ids[0], Stock.lot_id == ids[1]))
    write_offs = len(db.session.scalars(select(StockAdjustment)).all())
    assert sum(outcomes.values()) == 10 and set(outcomes) <= {"ok", "below_reserved", "insufficient_stock"}
    assert row.on_hand == 10 - 4 * write_offs
    assert row.reserved == outcomes["ok"] - write_offs
    assert 0 <= row.reserved <= row.on_hand
    assert outcomes["below_reserved"] == 2 - write_offs


@pytest.mark.postgres
def test_finds_racing_at_once_restore_no_more_than_the_lot_is_missing(pg_app):
    store = StoreFactory()
    lot = make_lot(ProductFactory(), inventory.get_location(store.location_id), quantity=10)
    admin = UserFactory(role="admin")
    db.session.commit()
    inventory.adjust(location_id=store.location_id, lot_id=lot.id, delta=-3)
    db.session.commit()
    location, ids = store.location_id, (lot.id, admin.id)

    def operation(i: int) -> None:
        service.adjust_stock(actor=db.session.get(User, ids[1]), location_id=location, lot_id=ids[0], delta=1,
                             reason="found")

    outcomes = race(pg_app, 8, operation)

    db.session.expire_all()
    assert outcomes == {"ok": 3, "lot_quantity_exceeded": 5}
    assert db.session.scalar(select(func.sum(Stock.on_hand)).where(Stock.lot_id == ids[0])) == 10


def test_staff_read_the_per_lot_stock_of_their_own_stores_location_only(client, login, store, staff_of, store_lot):
    other = StoreFactory()
    db.session.commit()
    staff, warehouse = staff_of(store), LocationFactory()
    db.session.commit()

    own = client.get(f"/api/v1/locations/{store.location_id}/stock", headers=staff)
    elsewhere = client.get(f"/api/v1/locations/{other.location_id}/stock", headers=staff)
    a_warehouse = client.get(f"/api/v1/locations/{warehouse.id}/stock", headers=staff)
    missing = client.get("/api/v1/locations/999999/stock", headers=staff)

    assert own.status_code == 200, own.json
    assert [(row["lot_id"], row["lot_code"], row["trace_code"], row["on_hand"]) for row in own.json["items"]] == [
        (store_lot.id, store_lot.lot_code, store_lot.trace_code, 10)]
    for response in (elsewhere, a_warehouse, missing):
        assert (response.status_code, response.json["error"]["code"]) == (404, "location_not_found")
    assert client.get(f"/api/v1/locations/{other.location_id}/stock", headers=login("auditor")).status_code == 200
    assert client.get(f"/api/v1/locations/{store.location_id}/stock", headers=login("consumer")).status_code == 403


def test_a_write_off_resent_by_an_admin_with_the_clerks_key_is_written_once(client, login, store, staff_of,
                                                                            store_lot):
    """Adjustment keys belong to the store whose stock is adjusted, whoever sends them: a clerk's queued write-off
    resent by an admin is the same write-off."""
    first = _adjust(client, {**staff_of(store), "Idempotency-Key": "spoiled-2"}, store, store_lot, -3, "spoiled")
    resent = _adjust(client, {**login("admin"), "Idempotency-Key": "spoiled-2"}, store, store_lot, -3, "spoiled")

    assert first.status_code == resent.status_code == 201, resent.json
    assert resent.headers.get("Idempotent-Replayed") == "true" and resent.json == first.json
    assert db.session.scalar(select(func.count()).select_from(StockAdjustment)) == 1
    assert _on_hand(store, store_lot) == 7


def test_a_warehouse_count_resent_by_another_admin_with_its_key_is_written_once(client, login, store, staff_of):
    """A warehouse's adjustment keys belong to the warehouse, as a store's to the store: an admin's count resent with
    its key by another admin is written once, another body under the key is `idempotency_key_reused`, and a clerk
    sending the key for the warehouse is told it does not exist, not given the admins' answer."""
    warehouse = LocationFactory()
    lot = make_lot(ProductFactory(), warehouse, quantity=10)
    db.session.commit()
    admin, other_admin = login("admin"), login("admin")
    body = {"location_id": warehouse.id, "lot_id": lot.id, "delta": -2, "reason": "stocktake"}

    def adjust(headers, **changes):
        return client.post("/api/v1/stock-adjustments", json={**body, **changes},
                           headers={**headers, "Idempotency-Key": "count-w1"})

    first, resent, changed, clerk = (adjust(admin), adjust(other_admin), adjust(other_admin, delta=-3),
                                     adjust(staff_of(store)))

    assert first.status_code == resent.status_code == 201, resent.json
    assert resent.json == first.json and resent.headers.get("Idempotent-Replayed") == "true"
    assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert (clerk.status_code, clerk.json["error"]["code"]) == (404, "location_not_found")
    assert db.session.scalar(select(func.count()).select_from(StockAdjustment)) == 1
    db.session.expire_all()
    assert db.session.scalar(select(Stock.on_hand).where(Stock.location_id == warehouse.id)) == 8


def test_an_adjustment_key_of_a_clerk_sent_for_another_stores_stock_is_404_not_the_other_stores_answer(
        client, login, store, staff_of, store_lot):
    """A key is never answered across stores: a clerk naming another store's location is told it does not exist."""
    other = StoreFactory()
    other_lot = make_lot(ProductFactory(), inventory.get_location(other.location_id), quantity=10)
    db.session.commit()
    first = _adjust(client, {**login("admin"), "Idempotency-Key": "count-9"}, other, other_lot, -1, "stocktake")
    stranger = _adjust(client, {**staff_of(store), "Idempotency-Key": "count-9"}, other, other_lot, -1, "stocktake")

    assert first.status_code == 201, first.json
    assert (stranger.status_code, stranger.json["error"]["code"]) == (404, "location_not_found"), stranger.json
    assert _on_hand(other, other_lot) == 9


@pytest.mark.parametrize("location_id", ["x", [1], {"id": 1}, None, 10 ** 20, -1, True])
def test_a_keyed_adjustment_naming_no_valid_location_is_refused_and_nothing_adjusted(client, login, store, store_lot,
                                                                                     location_id):
    body = {"location_id": location_id, "lot_id": store_lot.id, "delta": -1, "reason": "stocktake"}
    refused = client.post("/api/v1/stock-adjustments", json=body,
                          headers={**login("admin"), "Idempotency-Key": "count-bad"})

    assert refused.status_code in (404, 422) and refused.json["error"]["code"] in (
        "validation_error", "location_not_found"), refused.json
    assert _on_hand(store, store_lot) == 10


@pytest.mark.parametrize("data, content_type", [(b"", None), (b"", "application/json"), (b"{", "application/json"),
                                                 (b"location_id=1", "application/x-www-form-urlencoded")])
def test_a_keyed_adjustment_whose_body_is_no_json_is_refused_as_such_not_a_500(client, login, store, store_lot, data,
                                                                                content_type):
    refused = client.post("/api/v1/stock-adjustments", data=data, content_type=content_type,
                          headers={**login("store_staff", store_id=store.id), "Idempotency-Key": "count-no-body"})

    assert 400 <= refused.status_code < 500 and refused.json["error"]["code"] != "internal_error", refused.json
    assert _on_hand(store, store_lot) == 10


def test_a_closed_stores_clerk_adjusts_no_stock_but_an_admin_still_counts_it(client, login, store, staff_of, store_lot):
    """A deactivated store's staff change nothing of its stock, as a deactivated co-op's users change none of its data
    (409 `store_inactive`); an admin still writes off or counts what was left there."""
    clerk = staff_of(store)
    assert client.patch(f"/api/v1/stores/{store.id}", json={"active": False, "reason": "关店"},
                        headers=login("admin")).status_code == 200
    before = _on_hand(store, store_lot)
    assert_error(_adjust(client, clerk, store, store_lot, -1, "spoiled"), 409, "store_inactive")
    assert _on_hand(store, store_lot) == before
    assert _adjust(client, login("admin"), store, store_lot, -1, "spoiled").status_code == 201
    assert _on_hand(store, store_lot) == before - 1
