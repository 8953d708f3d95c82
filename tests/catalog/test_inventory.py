"""Locations, lots with household contributions, and the stock service."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import event, func, select

from catalog import inventory
from catalog.inventory import TRACE_ALPHABET, Portion, StockRequest
from catalog.models import Location, Lot, Stock
from shop.auth.models import User
from shop.clock import today
from shop.db import db
from shop.errors import Conflict, NotFound, ValidationError
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households, lot_body, make_lot
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.shop.test_errors import assert_error
from tests.statements import statements
from tests.suppliers.factories import HouseholdFactory


def stock_of(location, product) -> list[tuple[int, int, int]]:
    """(lot id, on hand, reserved) of a product at a location, by lot id."""
    db.session.expire_all()
    rows = db.session.query(Stock).filter_by(location_id=location.id, product_id=product.id).order_by(Stock.lot_id)
    return [(row.lot_id, row.on_hand, row.reserved) for row in rows]


# --- locations ---------------------------------------------------------------------------------------

def test_admin_adds_locations_with_unique_codes(client, login):
    headers = login("admin")
    body = {"code": "FS-WH", "name": "佛山仓", "kind": "warehouse", "region_code": "440604"}
    created = client.post("/api/v1/locations", json=body, headers=headers)
    assert created.status_code == 201
    assert created.json["kind"] == "warehouse"
    again = client.post("/api/v1/locations", json=body, headers=headers)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "location_code_taken"
    assert client.get("/api/v1/locations", headers=headers).json["items"][0]["code"] == "FS-WH"
    bad = client.post("/api/v1/locations", json={**body, "code": "X", "region_code": "999999"}, headers=headers)
    assert bad.status_code == 422 and bad.json["error"]["details"] == {"region_code": ["No region with this code."]}
    assert client.post("/api/v1/locations", json={**body, "kind": "shed"}, headers=headers).status_code == 422


def test_a_location_code_that_reads_as_a_taken_one_is_taken_and_names_that_location(client, login, coop):
    headers = login("admin")
    body = {"code": "FS-WH", "name": "佛山仓", "kind": "warehouse", "region_code": "440604"}
    assert client.post("/api/v1/locations", json=body, headers=headers).status_code == 201

    for look_alike in ("FS_WH", "FS.WH", "fs-wh", "ＦＳ－ＷＨ", "ＦＳ＿ＷＨ", "FS\u200b-WH"):
        response = client.post("/api/v1/locations", json={**body, "code": look_alike}, headers=headers)
        assert (response.status_code, response.json["error"]["code"]) == (409, "location_code_taken"), look_alike
        assert response.json["error"]["details"] == {"code": "FS-WH"}
    for ragged in ("FS--WH", "FS-WH-", "FS_.WH"):  # separators that read as one, or as none
        response = client.post("/api/v1/locations", json={**body, "code": ragged}, headers=headers)
        assert list(assert_error(response, 422, "validation_error")["details"]) == ["code"], ragged
    assert [item["code"] for item in client.get("/api/v1/locations", headers=headers).json["items"]] == ["FS-WH"]


@pytest.mark.postgres
def test_a_location_code_longer_than_a_location_can_keep_is_refused_naming_the_field(pg_app):
    client, admin = pg_app.test_client(), UserFactory(role="admin")
    db.session.commit()
    token = client.post("/api/v1/auth/token", json={"username": admin.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}
    body = {"name": "佛山仓", "kind": "warehouse", "region_code": "440604"}
    longest = "FS-" + "W" * (Location.code.type.length - 3)
    response = client.post("/api/v1/locations", json={**body, "code": longest + "H"}, headers=headers)
    assert list(assert_error(response, 422, "validation_error")["details"]) == ["code"]
    assert client.post("/api/v1/locations", json={**body, "code": longest}, headers=headers).status_code == 201


def test_coops_cannot_add_locations(client, coop):
    body = {"code": "FS-WH", "name": "佛山仓", "kind": "warehouse", "region_code": "440604"}
    assert client.post("/api/v1/locations", json=body, headers=coop[1]).status_code == 403


def test_location_stock_shows_on_hand_reserved_and_available(client, login):
    location, product = LocationFactory(), ProductFactory()
    lot = make_lot(product, location, quantity=8)
    inventory.reserve(location_id=location.id, product_id=product.id, quantity=3)
    db.session.commit()
    items = client.get(f"/api/v1/locations/{location.id}/stock", headers=login("admin")).json["items"]
    assert items == [{"location_id": location.id, "lot_id": lot.id, "lot_code": lot.lot_code,
                      "trace_code": lot.trace_code, "sku": product.sku, "name": product.name,
                      "on_hand": 8, "reserved": 3, "available": 5}]
    missing = client.get("/api/v1/locations/999/stock", headers=login("admin"))
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "location_not_found"


STOCK_PAGE_BUDGET = 3  # the token's user, the location, the page of stock rows with their lots and products


def test_a_location_stock_page_takes_the_same_statements_for_1_and_50_lots(client, login):
    headers = login("auditor")
    one, fifty = LocationFactory(), LocationFactory()
    make_lot(ProductFactory(), one)
    for _ in range(50):
        make_lot(ProductFactory(), fifty)
    db.session.commit()
    for location, rows in ((one, 1), (fifty, 50)):
        db.session.expire_all()
        with statements() as seen:
            response = client.get(f"/api/v1/locations/{location.id}/stock?limit=100", headers=headers)
        assert len(response.json["items"]) == rows and all(item["sku"] for item in response.json["items"])
        assert len(seen) == STOCK_PAGE_BUDGET, seen


# --- lots --------------------------------------------------------------------------------------------

def test_coop_creates_a_lot_from_linked_households(client, coop_world):
    w = coop_world
    response = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"]),
                           headers=w["headers"])
    assert response.status_code == 201, response.json
    assert response.json["quantity"] == 33
    assert response.json["households"] == 3
    assert response.json["stock"] == [{"location_id": w["location"].id, "on_hand": 33, "reserved": 0,
                                       "available": 33}]
    code = response.json["trace_code"]
    assert len(code) == 10 and set(code) <= set(TRACE_ALPHABET)
    coop_user = db.session.scalar(select(User.id).where(User.supplier_id == w["supplier"].id))
    assert response.json["created_by"] == coop_user and response.json["created_at"]  # who put the units in


def test_trace_codes_are_unique_and_unguessable(app):
    location, product = LocationFactory(), ProductFactory()
    codes = {make_lot(product, location, quantity=1).trace_code for _ in range(200)}
    assert len(codes) == 200
    assert all(len(code) == 10 and set(code) <= set(TRACE_ALPHABET) for code in codes)


def test_households_without_a_purchase_link_are_refused(client, coop_world):
    w = coop_world
    unlinked = HouseholdFactory(supplier=w["supplier"], code="UNLINKED-1")
    db.session.commit()
    response = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], [*w["households"], unlinked]),
                           headers=w["headers"])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "household_not_linked"
    assert "UNLINKED-1" in response.json["error"]["message"]
    assert "UNLINKED-1" in response.json["error"]["details"]["contributions"]["3"]["household_code"][0]
    assert db.session.query(Lot).count() == 0 and db.session.query(Stock).count() == 0


def test_the_link_must_be_valid_on_the_harvest_date(client, coop_world):
    w = coop_world
    late = linked_households(w["supplier"], 1, valid_from=date(2026, 10, 1))
    db.session.commit()
    response = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], late), headers=w["headers"])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "household_not_linked"


def test_another_suppliers_household_is_refused(client, coop_world, other_coop):
    w = coop_world
    foreign = linked_households(other_coop[0], 1)
    db.session.commit()
    response = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], foreign), headers=w["headers"])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "household_not_linked"


def test_a_deactivated_household_cannot_deliver_into_a_new_lot(client, coop_world):
    w = coop_world
    w["households"][1].active = False
    db.session.commit()
    response = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"]),
                           headers=w["headers"])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "household_not_linked"
    assert "deactivated" in response.json["error"]["details"]["contributions"]["1"]["household_code"][0]
    assert db.session.query(Lot).count() == 0


def test_a_household_listed_twice_in_a_lot_is_told_as_such_not_as_unlinked(client, coop_world):
    """A co-op that types one household's delivery on two lines is told it listed the household twice (as an upload
    is), not that the household it has linked has no purchase link."""
    w = coop_world
    body = lot_body(w["product"], w["location"], [*w["households"], w["households"][0]])
    body["contributions"][-1]["household_code"] = f" {w['households'][0].code.lower()} "
    response = client.post("/api/v1/lots", json=body, headers=w["headers"])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "household_twice_in_lot"
    last = str(len(body["contributions"]) - 1)
    assert list(response.json["error"]["details"]["contributions"]) == [last]
    assert "twice" in response.json["error"]["details"]["contributions"][last]["household_code"][0]
    assert db.session.query(Lot).count() == 0 and db.session.query(Stock).count() == 0


def test_a_purchase_link_cannot_be_ended_before_a_delivery_already_in_a_lot(client, coop_world):
    """A lot records that a household delivered on its harvest date under a purchase link: ending the link before that
    date would leave the lot's contribution outside every purchase period. A link ends on or after the household's
    last harvest delivered to this supplier, or it is `benefit_link_backdated`."""
    w = coop_world
    harvest = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"]),
                          headers=w["headers"])
    assert harvest.status_code == 201, harvest.json
    household = w["households"][0]
    links = client.get(f"/api/v1/suppliers/{w['supplier'].id}/benefit-links?household_id={household.id}",
                       headers=w["headers"]).json["items"]
    url = f"/api/v1/benefit-links/{links[0]['id']}"

    early = client.patch(url, json={"valid_until": "2026-09-02"}, headers=w["headers"])
    assert early.status_code == 409 and early.json["error"]["code"] == "benefit_link_backdated"
    assert early.json["error"]["details"]["valid_until"] == ["Must not be before 2026-09-03."]
    assert client.get(url, headers=w["headers"]).json["valid_until"] is None
    on_the_harvest = client.patch(url, json={"valid_until": "2026-09-03"}, headers=w["headers"])
    assert on_the_harvest.status_code == 200 and on_the_harvest.json["valid_until"] == "2026-09-03"


def test_a_lot_checks_its_households_in_bulk_not_per_contribution(app, client, coop_world):
    w = coop_world
    many = linked_households(w["supplier"], 40)
    db.session.commit()
    bodies = [lot_body(w["product"], w["location"], w["households"]),
              lot_body(w["product"], w["location"], many, lot_code="2026-KQ-02")]
    counts = []
    for body in bodies:
        statements = []
        listener = lambda *args, seen=statements: seen.append(args[2])  # noqa: E731 - (conn, cursor, statement, …)
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert client.post("/api/v1/lots", json=body, headers=w["headers"]).status_code == 201
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        counts.append(len(statements))
    assert counts[1] == counts[0]  # 40 households cost what 3 do


def test_lot_codes_are_unique_per_supplier(client, coop_world):
    w = coop_world
    body = lot_body(w["product"], w["location"], w["households"])
    assert client.post("/api/v1/lots", json=body, headers=w["headers"]).status_code == 201
    again = client.post("/api/v1/lots", json=body, headers=w["headers"])
    assert again.status_code == 409
    assert again.json["error"]["code"] == "lot_code_taken"


@pytest.mark.parametrize("code", ["L--1", "L-1-", "-L1", "L-.1", "L__1", "L1."])
def test_a_lot_code_with_doubled_leading_or_trailing_separators_is_refused_naming_the_rule(client, coop_world, code):
    """A lot code is scanned and typed at the till as letters and digits parted by single separators, as a location's
    is: `L--1` or `L-1-` would read as `L-1` on a label yet be another code, so it is refused, saying why."""
    w = coop_world
    refused = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"], lot_code=code),
                          headers=w["headers"])
    assert refused.status_code == 422, code
    assert "single" in refused.json["error"]["details"]["lot_code"][0]
    assert db.session.scalar(select(func.count(Lot.id))) == 0


def test_a_lot_code_reading_as_a_lot_the_supplier_has_is_taken(client, coop_world, other_coop, login):
    """Lot codes that differ only by their separators (2026-KQ-01, 2026_KQ_01, 2026.KQ.01) read as one on a label and
    in a co-op's books: the second is the supplier's lot code taken, named as the first was written; another
    supplier may still use it."""
    w = coop_world
    assert client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"]),
                       headers=w["headers"]).status_code == 201
    for code in ("2026_KQ_01", "2026.KQ.01", "2026-KQ_01"):
        again = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"], lot_code=code),
                            headers=w["headers"])
        assert again.status_code == 409 and again.json["error"]["code"] == "lot_code_taken", code
        assert again.json["error"]["details"] == {"lot_code": "2026-KQ-01"}
    assert db.session.scalar(select(func.count(Lot.id))) == 1
    other, _ = other_coop
    other_product = ProductFactory(supplier=other)
    db.session.commit()
    body = lot_body(other_product, w["location"], [], lot_code="2026_KQ_01", quantity=5)
    assert client.post("/api/v1/lots", json=body, headers=login("admin")).status_code == 201


def test_only_admins_give_a_quantity_without_contributions(client, coop_world, login):
    w = coop_world
    body = lot_body(w["product"], w["location"], [], quantity=50)
    coop_try = client.post("/api/v1/lots", json=body, headers=w["headers"])
    assert coop_try.status_code == 422
    assert "quantity" in coop_try.json["error"]["details"]
    admin = client.post("/api/v1/lots", json=body, headers=login("admin"))
    assert admin.status_code == 201
    assert admin.json["quantity"] == 50 and admin.json["households"] == 0
    both = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"], quantity=5,
                                                     lot_code="B"), headers=login("admin"))
    assert both.status_code == 422
    neither = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], [], lot_code="C"),
                          headers=login("admin"))
    assert neither.status_code == 422


def test_lot_dates_and_location_are_checked(client, coop_world):
    w = coop_world
    base = lot_body(w["product"], w["location"], w["households"])
    future = (today() + timedelta(days=1)).isoformat()
    for overrides, field in (({"harvested_on": future}, "harvested_on"),
                             ({"packed_on": "2026-09-01"}, "packed_on"),
                             ({"location_code": "NOWHERE"}, "location_code"),
                             ({"contributions": [{"household_code": w["households"][0].code, "quantity": 0}]},
                              "contributions")):
        response = client.post("/api/v1/lots", json={**base, **overrides}, headers=w["headers"])
        assert response.status_code == 422, overrides
        assert field in response.json["error"]["details"], response.json


def test_a_lot_comes_in_at_a_warehouse_never_straight_onto_a_stores_shelf(client, coop_world, login):
    w = coop_world
    store = LocationFactory(kind="store", region_code="440606")
    db.session.commit()

    for headers in (w["headers"], login("admin")):
        response = client.post("/api/v1/lots", json=lot_body(w["product"], store, w["households"]), headers=headers)

        assert (response.status_code, response.json["error"]["code"]) == (422, "location_not_warehouse")
        assert "location_code" in response.json["error"]["details"]
    assert client.get(f"/api/v1/locations/{store.id}/stock", headers=login("admin")).json["items"] == []


def test_coop_gets_404_for_another_suppliers_product_and_lots(client, coop_world, other_coop, login):
    w = coop_world
    foreign_product = ProductFactory(supplier=other_coop[0])
    foreign_lot = make_lot(foreign_product, w["location"])
    db.session.commit()
    response = client.post("/api/v1/lots", json=lot_body(foreign_product, w["location"], w["households"]),
                           headers=w["headers"])
    assert response.status_code == 404
    assert response.json["error"]["code"] == "product_not_found"
    lot = client.get(f"/api/v1/lots/{foreign_lot.id}", headers=w["headers"])
    assert lot.status_code == 404 and lot.json["error"]["code"] == "lot_not_found"
    lots = client.get(f"/api/v1/suppliers/{other_coop[0].id}/lots", headers=w["headers"])
    assert lots.status_code == 404 and lots.json["error"]["code"] == "supplier_not_found"
    assert client.get(f"/api/v1/lots/{foreign_lot.id}", headers=other_coop[1]).status_code == 200
    assert client.get(f"/api/v1/lots/{foreign_lot.id}", headers=login("admin")).status_code == 200


def test_coop_lists_its_lots_with_stock_per_location(client, coop_world):
    w = coop_world
    store = LocationFactory(kind="store", region_code="440604")
    lot = make_lot(w["product"], w["location"], quantity=10)
    inventory.move(from_location_id=w["location"].id, to_location_id=store.id, product_id=w["product"].id,
                   quantity=4)
    db.session.commit()
    items = client.get(f"/api/v1/suppliers/{w['supplier'].id}/lots", headers=w["headers"]).json["items"]
    assert [item["lot_code"] for item in items] == [lot.lot_code]
    assert items[0]["stock"] == [
        {"location_id": w["location"].id, "on_hand": 6, "reserved": 0, "available": 6},
        {"location_id": store.id, "on_hand": 4, "reserved": 0, "available": 4}]


def test_a_coops_lots_are_listed_newest_first_across_pages(client, coop_world):
    w = coop_world
    codes = [make_lot(w["product"], w["location"]).lot_code for _ in range(3)]
    db.session.commit()
    url = f"/api/v1/suppliers/{w['supplier'].id}/lots?limit=2"
    first = client.get(url, headers=w["headers"]).json
    rest = client.get(f"{url}&cursor={first['next_cursor']}", headers=w["headers"]).json
    assert [item["lot_code"] for item in first["items"] + rest["items"]] == codes[::-1]


# --- the stock service -------------------------------------------------------------------------------

@pytest.fixture
def three_lots(app):
    """A product with three lots at one location: two harvested on 9-10, then one (newest id) on 9-01."""
    location, product = LocationFactory(), ProductFactory()
    late = make_lot(product, location, quantity=5, harvested_on=date(2026, 9, 10))
    late_too = make_lot(product, location, quantity=5, harvested_on=date(2026, 9, 10))
    early = make_lot(product, location, quantity=5, harvested_on=date(2026, 9, 1))
    db.session.commit()
    return location, product, early, late, late_too


def test_reserve_takes_lots_fifo_by_harvest_date_then_lot_id(three_lots):
    location, product, early, late, late_too = three_lots
    portions = inventory.reserve(location_id=location.id, product_id=product.id, quantity=8)
    assert portions == [Portion(location.id, early.id, product.id, 5), Portion(location.id, late.id, product.id, 3)]
    assert stock_of(location, product) == [(late.id, 5, 3), (late_too.id, 5, 0), (early.id, 5, 5)]


def test_a_named_lot_is_taken_first(three_lots):
    location, product, early, late, late_too = three_lots
    portions = inventory.take(location_id=location.id, product_id=product.id, quantity=7, lot_id=late_too.id)
    assert [(p.lot_id, p.quantity) for p in portions] == [(late_too.id, 5), (early.id, 2)]
    assert stock_of(location, product) == [(late.id, 5, 0), (late_too.id, 0, 0), (early.id, 3, 0)]


def test_insufficient_stock_names_every_short_line_and_changes_nothing(three_lots):
    location, product, *_ = three_lots
    other = ProductFactory()
    make_lot(other, location, quantity=2)
    with pytest.raises(Conflict) as raised:
        inventory.reserve_lines(location_id=location.id, lines=[StockRequest(other.id, 1),
                                                                StockRequest(product.id, 16)])
    assert raised.value.code == "insufficient_stock"
    assert raised.value.details["lines"] == [{"sku": product.sku, "product_id": product.id, "requested": 16,
                                              "available": 15}]
    assert all(reserved == 0 for _, _, reserved in stock_of(location, product) + stock_of(location, other))


def test_release_and_allocate_reserved_units(three_lots):
    location, product, early, late, _ = three_lots
    assert [p.quantity for p in inventory.reserve(location_id=location.id, product_id=product.id, quantity=7)] == [5, 2]
    inventory.release(portions=[Portion(location.id, late.id, product.id, 2)])
    assert inventory.available(location_id=location.id, product_id=product.id) == 10
    sold = inventory.allocate(portions=[Portion(location.id, early.id, product.id, 5)])
    assert sold == [Portion(location.id, early.id, product.id, 5)]
    assert stock_of(location, product)[2] == (early.id, 0, 0)
    with pytest.raises(Conflict) as raised:
        inventory.allocate(portions=[Portion(location.id, early.id, product.id, 1)])
    assert raised.value.code == "reservation_not_held"
    with pytest.raises(Conflict):
        inventory.release(portions=[Portion(location.id, late.id, product.id, 3)])


def test_move_goes_lot_by_lot_fifo(three_lots):
    location, product, early, late, late_too = three_lots
    store = LocationFactory(kind="store")
    moved = inventory.move(from_location_id=location.id, to_location_id=store.id, product_id=product.id,
                           quantity=7)
    assert [(p.location_id, p.lot_id, p.quantity) for p in moved] == [(store.id, early.id, 5), (store.id, late.id, 2)]
    assert stock_of(store, product) == [(late.id, 2, 0), (early.id, 5, 0)]
    inventory.move(from_location_id=store.id, to_location_id=location.id, product_id=product.id, quantity=6)
    assert stock_of(location, product) == [(late.id, 4, 0), (late_too.id, 5, 0), (early.id, 5, 0)]
    with pytest.raises(ValidationError):
        inventory.move(from_location_id=store.id, to_location_id=store.id, product_id=product.id, quantity=1)
    with pytest.raises(Conflict):
        inventory.move(from_location_id=store.id, to_location_id=location.id, product_id=product.id, quantity=2)


def test_quantities_must_be_positive(three_lots):
    location, product, *_ = three_lots
    with pytest.raises(ValidationError):
        inventory.reserve(location_id=location.id, product_id=product.id, quantity=0)


def test_adjustments_count_write_off_and_find_but_never_below_reserved_nor_beyond_the_lot(three_lots):
    location, product, early, late, _ = three_lots
    inventory.reserve(location_id=location.id, product_id=product.id, quantity=3, lot_id=early.id)
    inventory.adjust(location_id=location.id, lot_id=early.id, delta=-2)
    inventory.adjust(location_id=location.id, lot_id=late.id, delta=-4)
    inventory.adjust(location_id=location.id, lot_id=late.id, delta=3)
    by_lot = {lot: (on_hand, reserved) for lot, on_hand, reserved in stock_of(location, product)}
    assert (by_lot[early.id], by_lot[late.id]) == ((3, 3), (4, 0))
    with pytest.raises(Conflict) as refused:
        inventory.adjust(location_id=location.id, lot_id=early.id, delta=-1)
    assert refused.value.code == "below_reserved"
    by_lot = {lot: (on_hand, reserved) for lot, on_hand, reserved in stock_of(location, product)}
    assert by_lot[early.id] == (3, 3)
    with pytest.raises(NotFound) as unknown:
        inventory.adjust(location_id=location.id, lot_id=early.id + 100, delta=-1)
    assert unknown.value.code == "lot_not_found"
    other = LocationFactory()
    with pytest.raises(Conflict) as elsewhere:
        inventory.adjust(location_id=other.id, lot_id=early.id, delta=2)  # never stocked there
    assert elsewhere.value.code == "lot_not_held_here" and stock_of(other, product) == []
    inventory.adjust(location_id=location.id, lot_id=early.id, delta=2)  # found where it was written off
    with pytest.raises(Conflict) as whole:
        inventory.adjust(location_id=location.id, lot_id=late.id, delta=2)  # late misses one unit only
    assert (whole.value.code, whole.value.details["restorable"]) == ("lot_quantity_exceeded", 1)
    by_lot = {lot: (on_hand, reserved) for lot, on_hand, reserved in stock_of(location, product)}
    assert (by_lot[early.id], by_lot[late.id]) == ((5, 3), (4, 0))


def test_a_lot_names_its_location_by_a_look_alike_of_its_code(client, login):
    headers = login("admin")
    warehouse = LocationFactory(code="XC-WH")
    product = ProductFactory()
    db.session.commit()

    response = client.post("/api/v1/lots", headers=headers, json={
        "product_sku": product.sku, "lot_code": "L-1", "harvested_on": "2026-09-01", "village": "村",
        "location_code": "xc_wh", "quantity": 4})

    assert response.status_code == 201, response.json
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 4
