"""Stock transfers: dispatched FIFO lot by lot from a warehouse, received per lot by the store's staff."""
from __future__ import annotations

from sqlalchemy import func, select

from catalog import inventory
from catalog.models import Stock
from orders.counter import service as counter_service
from orders.models import MAX_TRANSFER_LOTS, StockTransfer, Store
from orders.stores import service
from shop.auth.models import User
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.catalog.test_concurrency import race
from tests.contract.conftest import documented_codes
from tests.factories import UserFactory
from tests.orders.counter.conftest import make_counter
from tests.orders.factories import StoreFactory
from tests.statements import statements


def _code(store) -> str:
    """The store's location code."""
    return inventory.get_location(store.location_id).code


def _send(client, headers, warehouse, store, product, quantity, **extra):
    body = {"from_location": warehouse.code.lower(), "to_location": _code(store),
            "lines": [{"sku": product.sku, "quantity": quantity}]}
    return client.post("/api/v1/stock-transfers", json=body, headers={**headers, **extra})


def test_dispatch_takes_the_oldest_lots_first_and_records_each(client, login, store, stocked_warehouse):
    warehouse, product, old, new = stocked_warehouse

    response = _send(client, login("admin"), warehouse, store, product, 7)

    assert response.status_code == 201, response.json
    assert response.json["status"] == "dispatched"
    assert [(line["lot_id"], line["sent"], line["received"], line["discrepancy"])
            for line in response.json["lines"]] == [(old.id, 5, None, None), (new.id, 2, None, None)]
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 6
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 0


def test_short_stock_sends_nothing(client, login, store, stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse

    response = _send(client, login("admin"), warehouse, store, product, 14)

    assert (response.status_code, response.json["error"]["code"]) == (409, "insufficient_stock")
    assert response.json["error"]["details"] == {"location_id": warehouse.id, "lines": [
        {"sku": product.sku, "product_id": product.id, "requested": 14, "available": 13}]}  # the SKU the admin sent
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 13
    assert db.session.scalar(select(func.count()).select_from(StockTransfer)) == 0


def test_locations_and_products_are_checked(client, login, store, stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    admin = login("admin")
    bare_store_location = LocationFactory(kind="store")
    db.session.commit()

    def send(**body):
        base = {"from_location": warehouse.code, "to_location": _code(store),
                "lines": [{"sku": product.sku, "quantity": 1}]}
        return client.post("/api/v1/stock-transfers", json={**base, **body}, headers=admin)

    from_store = send(from_location=_code(store))
    to_warehouse = send(to_location=warehouse.code)
    to_no_store = send(to_location=bare_store_location.code)
    unknown = send(lines=[{"sku": "NO-SUCH-SKU", "quantity": 1}])
    twice = send(lines=[{"sku": product.sku, "quantity": 1}, {"sku": product.sku.lower(), "quantity": 1}])

    assert (from_store.status_code, from_store.json["error"]["code"]) == (422, "location_not_warehouse")
    assert (to_warehouse.status_code, to_warehouse.json["error"]["code"]) == (422, "location_not_store")
    assert (to_no_store.status_code, to_no_store.json["error"]["code"]) == (422, "location_not_store")
    assert (unknown.status_code, unknown.json["error"]["code"]) == (422, "product_not_found")
    assert twice.status_code == 422
    assert send(lines=[]).status_code == 422
    assert send(lines=[{"sku": product.sku, "quantity": 0}]).status_code == 422
    staff = login("store_staff", store_id=store.id)
    assert client.post("/api/v1/stock-transfers", json={"from_location": warehouse.code, "to_location": _code(store),
                                                        "lines": [{"sku": product.sku, "quantity": 1}]},
                       headers=staff).status_code == 403


def test_a_repeated_idempotency_key_dispatches_once(client, login, store, stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    admin = login("admin")

    first = _send(client, admin, warehouse, store, product, 3, **{"Idempotency-Key": "t-1"})
    second = _send(client, admin, warehouse, store, product, 3, **{"Idempotency-Key": "t-1"})

    assert first.status_code == second.status_code == 201
    assert first.json == second.json
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 10


def test_a_transfer_resent_by_another_admin_with_its_key_is_dispatched_once(client, login, store, stocked_warehouse):
    """A dispatch's keys belong to the warehouse it takes stock from, as a store's belong to the store: a transfer
    resent with its key by another admin (the first's browser retried after a hand-over) gets the first answer, not a
    second transfer; another body under the key is `idempotency_key_reused`."""
    warehouse, product, _, _ = stocked_warehouse
    admin, other_admin = login("admin"), login("admin")

    first = _send(client, admin, warehouse, store, product, 3, **{"Idempotency-Key": "dispatch-1"})
    resent = _send(client, other_admin, warehouse, store, product, 3, **{"Idempotency-Key": "dispatch-1"})
    changed = _send(client, other_admin, warehouse, store, product, 4, **{"Idempotency-Key": "dispatch-1"})

    assert first.status_code == resent.status_code == 201, resent.json
    assert resent.json == first.json and resent.headers.get("Idempotent-Replayed") == "true"
    assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert db.session.scalar(select(func.count()).select_from(StockTransfer)) == 1
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 10


def test_the_store_receives_per_lot_and_the_discrepancy_is_kept(client, login, store, staff_of, stocked_warehouse):
    warehouse, product, old, new = stocked_warehouse
    transfer = _send(client, login("admin"), warehouse, store, product, 7).json
    staff = staff_of(store)

    unexplained = client.post(f"/api/v1/stock-transfers/{transfer['id']}/receive", headers=staff,
                              json={"lines": [{"lot_id": new.id, "received": 2}, {"lot_id": old.id, "received": 4}]})
    response = client.post(f"/api/v1/stock-transfers/{transfer['id']}/receive", headers=staff,
                           json={"lines": [{"lot_id": new.id, "received": 2}, {"lot_id": old.id, "received": 4}],
                                 "note": "一箱在运输中压坏"})

    # a unit missing from its lot is written off with its reason, as any adjustment is
    assert (unexplained.status_code, list(unexplained.json["error"]["details"])) == (422, ["note"])
    assert response.status_code == 200, response.json
    assert response.json["status"] == "received" and response.json["received_at"]
    assert response.json["receipt_note"] == "一箱在运输中压坏"
    assert [(line["lot_id"], line["sent"], line["received"], line["discrepancy"])
            for line in response.json["lines"]] == [(old.id, 5, 4, 1), (new.id, 2, 2, 0)]
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 6
    again = client.post(f"/api/v1/stock-transfers/{transfer['id']}/receive", headers=staff,
                        json={"lines": [{"lot_id": new.id, "received": 2}, {"lot_id": old.id, "received": 4}]})
    assert (again.status_code, again.json["error"]["code"]) == (409, "transfer_already_received")
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 6


def test_units_on_the_way_count_for_their_lot_and_units_lost_on_the_way_may_be_found(client, login, store, staff_of,
                                                                                      stocked_warehouse):
    warehouse, product, old, new = stocked_warehouse
    admin = login("admin")
    transfer = _send(client, admin, warehouse, store, product, 7).json

    def found(location_id, quantity):
        return client.post("/api/v1/stock-adjustments", headers=admin, json={
            "location_id": location_id, "lot_id": old.id, "delta": quantity, "reason": "found"})

    on_the_way = found(warehouse.id, 1)
    received = client.post(f"/api/v1/stock-transfers/{transfer['id']}/receive", headers=staff_of(store),
                           json={"lines": [{"lot_id": old.id, "received": 4}, {"lot_id": new.id, "received": 2}],
                                 "note": "少到一袋"})
    beyond_the_loss = found(store.location_id, 2)
    lost_and_found = found(store.location_id, 1)

    assert (on_the_way.status_code, on_the_way.json["error"]["code"]) == (409, "lot_quantity_exceeded")
    assert on_the_way.json["error"]["details"]["restorable"] == 0
    assert received.status_code == 200, received.json
    assert (beyond_the_loss.status_code, beyond_the_loss.json["error"]["details"]["restorable"]) == (409, 1)
    assert lost_and_found.status_code == 201, lost_and_found.json
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 7
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 6


def test_a_lot_lost_whole_on_the_way_may_be_found_at_the_store_that_wrote_it_off(client, login, store, staff_of,
                                                                               stocked_warehouse):
    """A box that did not arrive is written off at the store on the receipt; when it turns up there the next day, the
    store's staff find it there, as they would a part of a lot: no more than was lost, and not at another store."""
    warehouse, product, old, new = stocked_warehouse
    other = StoreFactory(name="另一家体验店")
    db.session.commit()
    staff = staff_of(store)
    transfer = _send(client, login("admin"), warehouse, store, product, 7).json
    received = client.post(f"/api/v1/stock-transfers/{transfer['id']}/receive", headers=staff,
                           json={"lines": [{"lot_id": old.id, "received": 5}, {"lot_id": new.id, "received": 0}],
                                 "note": "一箱未到"})

    def found(headers, location_id, quantity):
        return client.post("/api/v1/stock-adjustments", headers=headers, json={
            "location_id": location_id, "lot_id": new.id, "delta": quantity, "reason": "found"})

    elsewhere = found(login("admin"), other.location_id, 1)
    beyond_the_loss = found(staff, store.location_id, 3)
    turned_up = found(staff, store.location_id, 2)

    assert received.status_code == 200, received.json
    assert (elsewhere.status_code, elsewhere.json["error"]["code"]) == (409, "lot_not_held_here")
    assert (beyond_the_loss.status_code, beyond_the_loss.json["error"]["details"]["restorable"]) == (409, 2)
    assert turned_up.status_code == 201, turned_up.json
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 7


def test_units_lost_on_the_way_are_a_write_off_in_the_lots_adjustments_and_each_lot_adds_up(
        client, login, store, staff_of, stocked_warehouse):
    """What an auditor checks from the API alone: a lot's quantity is what is on hand anywhere less what its
    adjustments wrote off (nothing sold, nothing in transit); a store's on-hand is what was sent to it plus its
    adjustments."""
    warehouse, product, old, new = stocked_warehouse
    admin, auditor, staff = login("admin"), login("auditor"), staff_of(store)
    transfer = _send(client, admin, warehouse, store, product, 7).json
    received = client.post(f"/api/v1/stock-transfers/{transfer['id']}/receive", headers=staff,
                           json={"lines": [{"lot_id": old.id, "received": 3}, {"lot_id": new.id, "received": 2}],
                                 "note": "一袋破损"})
    assert received.status_code == 200, received.json
    found = client.post("/api/v1/stock-adjustments", headers=staff, json={
        "location_id": store.location_id, "lot_id": old.id, "delta": 1, "reason": "found"})
    assert found.status_code == 201, found.json

    adjustments = client.get(f"/api/v1/stock-adjustments?lot_id={old.id}", headers=auditor).json["items"]
    at_store = client.get(f"/api/v1/stock-adjustments?location_id={store.location_id}", headers=staff).json["items"]
    on_hand = {(row["location_id"], row["lot_id"]): row["on_hand"]
               for location in (warehouse.id, store.location_id)
               for row in client.get(f"/api/v1/locations/{location}/stock", headers=auditor).json["items"]}
    sent = client.get(f"/api/v1/stores/{store.id}/incoming-transfers", headers=auditor).json["items"][0]["lines"]

    lost = [a for a in adjustments if a["reason"] == "lost_in_transit"]
    assert [(a["location_id"], a["delta"], a["note"], a["transfer_id"], a["created_by"]) for a in lost] == [
        (store.location_id, -2, "一袋破损", transfer["id"], received.json["received_by"])]
    assert sorted(a["delta"] for a in adjustments) == [-2, 1]
    assert [a["id"] for a in at_store] == [a["id"] for a in adjustments]
    for lot in (old, new):
        lot_adjustments = sum(a["delta"] for a in at_store if a["lot_id"] == lot.id)
        held = sum(units for (_, lot_id), units in on_hand.items() if lot_id == lot.id)
        assert lot.quantity == held - lot_adjustments
        sent_to_store = sum(line["sent"] for line in sent if line["lot_id"] == lot.id)
        assert on_hand.get((store.location_id, lot.id), 0) == sent_to_store + lot_adjustments


def test_a_transfer_sends_no_more_lots_than_its_receipt_may_name(client, login, store, staff_of):
    """Small lots of one SKU: a transfer taking one lot more than a receipt accepts is refused before anything leaves
    the warehouse; one taking as many as it accepts is sent and received whole."""
    warehouse, product = LocationFactory(), ProductFactory()
    for _ in range(MAX_TRANSFER_LOTS + 1):
        make_lot(product, warehouse, quantity=1)
    db.session.commit()
    admin = login("admin")

    too_many = _send(client, admin, warehouse, store, product, MAX_TRANSFER_LOTS + 1)
    assert (too_many.status_code, too_many.json["error"]["code"]) == (422, "transfer_too_many_lots")
    assert f"at most {MAX_TRANSFER_LOTS} lots" in too_many.json["error"]["message"]
    assert too_many.json["error"]["details"] == {"lines": [f"These lines take {MAX_TRANSFER_LOTS + 1} lots; "
                                                           f"one transfer sends at most {MAX_TRANSFER_LOTS}."]}
    operation = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/stock-transfers"]["post"]
    assert "transfer_too_many_lots" in documented_codes(operation).get(422, set())  # a client knows this answer
    assert db.session.scalar(select(func.count()).select_from(StockTransfer)) == 0
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == MAX_TRANSFER_LOTS + 1

    sent = _send(client, admin, warehouse, store, product, MAX_TRANSFER_LOTS)
    assert sent.status_code == 201, sent.json
    received = client.post(f"/api/v1/stock-transfers/{sent.json['id']}/receive", headers=staff_of(store), json={
        "lines": [{"lot_id": line["lot_id"], "received": line["sent"]} for line in sent.json["lines"]]})
    assert received.status_code == 200, received.json
    assert inventory.available(location_id=store.location_id, product_id=product.id) == MAX_TRANSFER_LOTS


def test_received_lines_must_match_the_lots_sent(client, login, store, staff_of, stocked_warehouse):
    warehouse, product, old, new = stocked_warehouse
    transfer = _send(client, login("admin"), warehouse, store, product, 7).json
    url, staff = f"/api/v1/stock-transfers/{transfer['id']}/receive", staff_of(store)

    missing = client.post(url, headers=staff, json={"lines": [{"lot_id": old.id, "received": 5}]})
    doubled = client.post(url, headers=staff, json={"lines": [{"lot_id": old.id, "received": 1},
                                                              {"lot_id": old.id, "received": 1},
                                                              {"lot_id": new.id, "received": 1}]})
    too_many = client.post(url, headers=staff, json={"lines": [{"lot_id": old.id, "received": 6},
                                                               {"lot_id": new.id, "received": 2}]})
    negative = client.post(url, headers=staff, json={"lines": [{"lot_id": old.id, "received": -1},
                                                               {"lot_id": new.id, "received": 2}]})

    for response in (missing, doubled, too_many):
        assert (response.status_code, response.json["error"]["code"]) == (422, "transfer_lines_mismatch")
    assert negative.status_code == 422
    assert client.get(f"/api/v1/stock-transfers/{transfer['id']}", headers=staff).json["status"] == "dispatched"
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 0


def test_another_stores_staff_neither_see_nor_receive_a_transfer(client, login, store, staff_of, stocked_warehouse):
    warehouse, product, old, new = stocked_warehouse
    transfer = _send(client, login("admin"), warehouse, store, product, 3).json
    other = StoreFactory()
    db.session.commit()
    outsider = staff_of(other)

    received = client.post(f"/api/v1/stock-transfers/{transfer['id']}/receive", headers=outsider,
                           json={"lines": [{"lot_id": old.id, "received": 3}]})
    shown = client.get(f"/api/v1/stock-transfers/{transfer['id']}", headers=outsider)
    listed = client.get(f"/api/v1/stores/{store.id}/incoming-transfers", headers=outsider)

    assert (received.status_code, received.json["error"]["code"]) == (404, "transfer_not_found")
    assert (shown.status_code, shown.json["error"]["code"]) == (404, "transfer_not_found")
    assert (listed.status_code, listed.json["error"]["code"]) == (404, "store_not_found")
    assert client.get(f"/api/v1/stores/{other.id}/incoming-transfers", headers=outsider).json["items"] == []


def test_incoming_transfers_list_oldest_first_or_by_status(client, login, store, staff_of, stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    admin, staff = login("admin"), staff_of(store)
    first = _send(client, admin, warehouse, store, product, 1).json
    second = _send(client, admin, warehouse, store, product, 1).json
    client.post(f"/api/v1/stock-transfers/{first['id']}/receive", headers=staff,
                json={"lines": [{"lot_id": line["lot_id"], "received": 1} for line in first["lines"]]})
    third = _send(client, admin, warehouse, store, product, 1).json

    everything = client.get(f"/api/v1/stores/{store.id}/incoming-transfers", headers=staff).json
    page = client.get(f"/api/v1/stores/{store.id}/incoming-transfers?limit=2", headers=admin).json
    rest = client.get(f"/api/v1/stores/{store.id}/incoming-transfers?limit=2&cursor={page['next_cursor']}",
                      headers=admin).json
    received = client.get(f"/api/v1/stores/{store.id}/incoming-transfers?status=received", headers=staff).json
    waiting = client.get(f"/api/v1/stores/{store.id}/incoming-transfers?status=dispatched", headers=staff).json

    assert [t["id"] for t in everything["items"]] == [first["id"], second["id"], third["id"]]
    assert [t["id"] for t in page["items"] + rest["items"]] == [first["id"], second["id"], third["id"]]
    assert [t["id"] for t in received["items"]] == [first["id"]]
    assert [t["id"] for t in waiting["items"]] == [second["id"], third["id"]]


def test_a_transfer_received_during_a_walk_of_the_list_is_listed_once(client, login, store, staff_of,
                                                                       stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    admin, staff = login("admin"), staff_of(store)
    sent = [_send(client, admin, warehouse, store, product, 1).json for _ in range(3)]
    url = f"/api/v1/stores/{store.id}/incoming-transfers?limit=1"

    page = client.get(url, headers=staff).json
    seen = [t["id"] for t in page["items"]]
    client.post(f"/api/v1/stock-transfers/{sent[0]['id']}/receive", headers=staff,
                json={"lines": [{"lot_id": line["lot_id"], "received": 1} for line in sent[0]["lines"]]})
    while page["next_cursor"]:
        page = client.get(f"{url}&cursor={page['next_cursor']}", headers=staff).json
        seen += [t["id"] for t in page["items"]]

    assert seen == [transfer["id"] for transfer in sent]


def test_one_transfer_sends_several_products(client, login, store, stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    second_product = ProductFactory()
    lot = make_lot(second_product, warehouse, quantity=4)
    db.session.commit()
    body = {"from_location": warehouse.code, "to_location": _code(store),
            "lines": [{"sku": product.sku, "quantity": 2}, {"sku": second_product.sku, "quantity": 4}]}

    response = client.post("/api/v1/stock-transfers", json=body, headers=login("admin"))

    assert response.status_code == 201
    assert [(line["product_id"], line["sent"]) for line in response.json["lines"]] == [
        (product.id, 2), (second_product.id, 4)]
    assert response.json["lines"][1]["lot_id"] == lot.id


def test_an_inactive_store_is_sent_nothing(client, login, stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    closed = StoreFactory(active=False)
    db.session.commit()

    response = _send(client, login("admin"), warehouse, closed, product, 2)

    assert (response.status_code, response.json["error"]["code"]) == (409, "store_inactive")
    assert "to_location" in response.json["error"]["details"]
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 13
    assert db.session.scalar(select(func.count()).select_from(StockTransfer)) == 0


def test_a_transfers_lines_name_what_to_count_sku_product_lot_and_trace_code(client, login, store, staff_of,
                                                                             stocked_warehouse):
    warehouse, product, old, new = stocked_warehouse
    staff = staff_of(store)

    created = _send(client, login("admin"), warehouse, store, product, 7).json
    shown = client.get(f"/api/v1/stock-transfers/{created['id']}", headers=staff).json
    listed = client.get(f"/api/v1/stores/{store.id}/incoming-transfers", headers=staff).json["items"]

    expected = [{"lot_id": lot.id, "product_id": product.id, "sku": product.sku, "name": product.name,
                 "lot_code": lot.lot_code, "trace_code": lot.trace_code} for lot in (old, new)]
    for lines in (created["lines"], shown["lines"], listed[0]["lines"]):
        assert [{key: line[key] for key in expected[0]} for line in lines] == expected


def test_a_store_with_transfers_on_their_way_is_not_deactivated_and_is_told_which(client, login, store, staff_of,
                                                                                  stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    admin, staff = login("admin"), staff_of(store)
    received, waiting = (_send(client, admin, warehouse, store, product, 1).json for _ in range(2))
    client.post(f"/api/v1/stock-transfers/{received['id']}/receive", headers=staff,
                json={"lines": [{"lot_id": line["lot_id"], "received": 1} for line in received["lines"]]})

    refused = client.patch(f"/api/v1/stores/{store.id}", json={"active": False, "name": "已关"}, headers=admin)

    assert (refused.status_code, refused.json["error"]["code"]) == (409, "transfers_in_transit")
    assert refused.json["error"]["details"] == {"transfer_ids": [waiting["id"]]}
    assert str(waiting["id"]) in refused.json["error"]["message"]
    db.session.expire_all()
    assert db.session.get(type(store), store.id).active is True
    assert db.session.get(type(store), store.id).name != "已关"
    client.post(f"/api/v1/stock-transfers/{waiting['id']}/receive", headers=staff,
                json={"lines": [{"lot_id": line["lot_id"], "received": 1} for line in waiting["lines"]]})
    closed = client.patch(f"/api/v1/stores/{store.id}", json={"active": False}, headers=admin)
    assert closed.status_code == 200 and closed.json["active"] is False


def test_a_store_closing_while_stock_is_dispatched_to_it_either_refuses_or_is_sent_nothing(racing_app):
    warehouse, product = LocationFactory(), ProductFactory()
    make_lot(product, warehouse, quantity=10)
    store, admin = StoreFactory(), UserFactory(role="admin")
    db.session.commit()
    ids = (warehouse.code, inventory.get_location(store.location_id).code, product.sku, store.id, admin.id)

    def operation(i: int) -> None:
        actor = db.session.get(User, ids[4])
        if i == 0:
            service.update_store(store_id=ids[3], actor=actor, changes=service.StoreChanges(active=False))
        else:
            service.create_transfer(actor=actor, from_location=ids[0], to_location=ids[1],
                                    lines=[{"sku": ids[2], "quantity": 1}])

    outcomes = race(racing_app, 3, operation)

    db.session.expire_all()
    sent = db.session.scalar(select(func.count()).select_from(StockTransfer))
    if db.session.get(Store, ids[3]).active:  # a transfer went first: the close was refused, naming it
        assert (outcomes, sent) == ({"ok": 2, "transfers_in_transit": 1}, 2)
    else:  # the close went first: nothing was sent to the closed store
        assert (outcomes, sent) == ({"ok": 1, "store_inactive": 2}, 0)
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 10 - sent


def _receive_all(client, headers, transfer):
    return client.post(f"/api/v1/stock-transfers/{transfer['id']}/receive", headers=headers,
                       json={"lines": [{"lot_id": line["lot_id"], "received": line["sent"]}
                                       for line in transfer["lines"]]})


def test_an_admin_cancels_a_dispatched_transfer_and_its_units_go_back_on_their_lots(client, login, store, staff_of,
                                                                                    stocked_warehouse):
    warehouse, product, old, new = stocked_warehouse
    admin, auditor = login("admin"), login("auditor")
    transfer = _send(client, admin, warehouse, store, product, 7).json
    before = {row["lot_id"]: row["on_hand"]
              for row in client.get(f"/api/v1/locations/{warehouse.id}/stock", headers=auditor).json["items"]}

    unexplained = client.post(f"/api/v1/stock-transfers/{transfer['id']}/cancel", headers=admin, json={})
    cancelled = client.post(f"/api/v1/stock-transfers/{transfer['id']}/cancel", headers=admin,
                            json={"reason": "发错门店，车辆返回仓库"})

    assert (unexplained.status_code, list(unexplained.json["error"]["details"])) == (422, ["reason"])
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled"
    assert cancelled.json["cancel_reason"] == "发错门店，车辆返回仓库"
    assert cancelled.json["cancelled_by"] == client.get("/api/v1/users/me", headers=admin).json["id"]
    assert cancelled.json["cancelled_at"] and cancelled.json["received_at"] is None
    shown = client.get(f"/api/v1/stock-transfers/{transfer['id']}", headers=auditor).json
    assert (shown["status"], shown["cancel_reason"]) == ("cancelled", "发错门店，车辆返回仓库")
    after = {row["lot_id"]: row["on_hand"]
             for row in client.get(f"/api/v1/locations/{warehouse.id}/stock", headers=auditor).json["items"]}
    assert (before[old.id], before[new.id]) == (0, 6)
    assert (after[old.id], after[new.id]) == (5, 8)  # the same lots they left
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 13
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 0
    listed = client.get(f"/api/v1/stores/{store.id}/incoming-transfers?status=cancelled", headers=auditor).json
    assert [item["id"] for item in listed["items"]] == [transfer["id"]]
    # no longer in transit: the store may close, and a unit of the lot is not "found" beyond its quantity
    found = client.post("/api/v1/stock-adjustments", headers=admin, json={
        "location_id": warehouse.id, "lot_id": old.id, "delta": 1, "reason": "found"})
    assert (found.status_code, found.json["error"]["code"]) == (409, "lot_quantity_exceeded")
    assert client.patch(f"/api/v1/stores/{store.id}", json={"active": False}, headers=admin).status_code == 200


def test_a_cancel_resent_by_another_admin_with_its_key_is_the_first_cancel(client, login, store, stocked_warehouse):
    """A cancel's keys belong to the warehouse its units go back to: a cancel resent with its key by another admin
    gets the first answer, not 409 `transfer_cancelled`; another body under the key is `idempotency_key_reused`."""
    warehouse, product, _, _ = stocked_warehouse
    admin, other_admin = login("admin"), login("admin")
    transfer = _send(client, admin, warehouse, store, product, 7).json
    url = f"/api/v1/stock-transfers/{transfer['id']}/cancel"

    first = client.post(url, json={"reason": "发错门店"}, headers={**admin, "Idempotency-Key": "cancel-1"})
    resent = client.post(url, json={"reason": "发错门店"}, headers={**other_admin, "Idempotency-Key": "cancel-1"})
    changed = client.post(url, json={"reason": "车辆故障"}, headers={**other_admin, "Idempotency-Key": "cancel-1"})

    assert first.status_code == resent.status_code == 200, resent.json
    assert resent.json == first.json and resent.headers.get("Idempotent-Replayed") == "true"
    assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 13


def test_a_cancelled_transfer_is_not_received_and_a_received_one_not_cancelled(client, login, store, staff_of,
                                                                               stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    admin, staff = login("admin"), staff_of(store)
    to_cancel, to_receive = (_send(client, admin, warehouse, store, product, 2).json for _ in range(2))
    assert client.post(f"/api/v1/stock-transfers/{to_cancel['id']}/cancel", headers=admin,
                       json={"reason": "取消"}).status_code == 200
    assert _receive_all(client, staff, to_receive).status_code == 200

    receive_cancelled = _receive_all(client, staff, to_cancel)
    cancel_cancelled = client.post(f"/api/v1/stock-transfers/{to_cancel['id']}/cancel", headers=admin,
                                   json={"reason": "再取消"})
    cancel_received = client.post(f"/api/v1/stock-transfers/{to_receive['id']}/cancel", headers=admin,
                                  json={"reason": "取消"})

    assert (receive_cancelled.status_code, receive_cancelled.json["error"]["code"]) == (409, "transfer_cancelled")
    assert (cancel_cancelled.status_code, cancel_cancelled.json["error"]["code"]) == (409, "transfer_cancelled")
    assert (cancel_received.status_code, cancel_received.json["error"]["code"]) == (409, "transfer_already_received")
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 11
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 2


def test_only_an_admin_cancels_a_transfer_with_a_bounded_reason(client, login, store, staff_of, stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    transfer = _send(client, login("admin"), warehouse, store, product, 2).json
    url = f"/api/v1/stock-transfers/{transfer['id']}/cancel"

    by_staff = client.post(url, headers=staff_of(store), json={"reason": "取消"})
    by_auditor = client.post(url, headers=login("auditor"), json={"reason": "取消"})
    too_long = client.post(url, headers=login("admin"), json={"reason": "长" * 201})
    with_id = client.post(url, headers=login("admin"), json={"reason": "身份证 110101199003074514"})
    unknown = client.post("/api/v1/stock-transfers/999999/cancel", headers=login("admin"), json={"reason": "取消"})

    assert (by_staff.status_code, by_auditor.status_code) == (403, 403)
    assert (too_long.status_code, list(too_long.json["error"]["details"])) == (422, ["reason"])
    assert with_id.status_code == 422
    assert (unknown.status_code, unknown.json["error"]["code"]) == (404, "transfer_not_found")
    assert inventory.available(location_id=warehouse.id, product_id=product.id) == 11


def test_a_cancel_racing_a_receipt_one_wins_and_the_stock_is_conserved(racing_app):
    warehouse, product = LocationFactory(), ProductFactory()
    make_lot(product, warehouse, quantity=10)
    store, admin = StoreFactory(), UserFactory(role="admin")
    clerk = UserFactory(role="store_staff", store_id=store.id)
    db.session.commit()
    transfer = service.create_transfer(actor=admin, from_location=warehouse.code,
                                       to_location=inventory.get_location(store.location_id).code,
                                       lines=[{"sku": product.sku, "quantity": 4}])
    db.session.commit()
    ids = (transfer.id, transfer.lines[0].lot_id, admin.id, clerk.id)

    def operation(i: int) -> None:
        if i == 0:
            service.cancel_transfer(actor=db.session.get(User, ids[2]), transfer_id=ids[0], reason="车辆返回")
        else:
            service.receive_transfer(actor=db.session.get(User, ids[3]), transfer_id=ids[0],
                                     lines=[{"lot_id": ids[1], "received": 4}])

    outcomes = race(racing_app, 2, operation)

    db.session.expire_all()
    status = db.session.get(StockTransfer, ids[0]).status
    at_warehouse = inventory.available(location_id=warehouse.id, product_id=product.id)
    at_store = inventory.available(location_id=store.location_id, product_id=product.id)
    if status == "cancelled":
        assert (outcomes, at_warehouse, at_store) == ({"ok": 1, "transfer_cancelled": 1}, 10, 0)
    else:
        assert status == "received"
        assert (outcomes, at_warehouse, at_store) == ({"ok": 1, "transfer_already_received": 1}, 6, 4)


def test_a_receipt_resent_by_another_clerk_of_the_store_with_its_key_is_the_first_receipt(client, login, store,
                                                                                           staff_of, stocked_warehouse):
    warehouse, product, old, new = stocked_warehouse
    transfer = _send(client, login("admin"), warehouse, store, product, 7).json
    body = {"lines": [{"lot_id": old.id, "received": 5}, {"lot_id": new.id, "received": 2}]}
    url = f"/api/v1/stock-transfers/{transfer['id']}/receive"

    first = client.post(url, json=body, headers={**staff_of(store), "Idempotency-Key": "receipt-1"})
    resent = client.post(url, json=body, headers={**staff_of(store), "Idempotency-Key": "receipt-1"})
    changed = client.post(url, json={"lines": [{"lot_id": old.id, "received": 4}, {"lot_id": new.id, "received": 2}],
                                     "note": "压坏"}, headers={**staff_of(store), "Idempotency-Key": "receipt-1"})
    elsewhere = StoreFactory()
    db.session.commit()
    other_store = client.post(url, json=body, headers={**staff_of(elsewhere), "Idempotency-Key": "receipt-1"})

    assert first.status_code == resent.status_code == 200, resent.json
    assert resent.json == first.json
    assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert (other_store.status_code, other_store.json["error"]["code"]) == (404, "transfer_not_found")
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 7


def test_a_transfer_of_many_products_reads_them_at_once(client, login, store):
    """The products a transfer names are read together: a transfer of 50 products (of 50 co-ops) reads with as many
    statements as a transfer of 1, not a product and a supplier read per line (each lot moved is still a write)."""
    warehouse, products = LocationFactory(), [ProductFactory() for _ in range(100)]
    for product in products:
        make_lot(product, warehouse, quantity=1)
    db.session.commit()
    admin = login("admin")

    def cost(sent: list) -> int:
        body = {"from_location": warehouse.code, "to_location": _code(store),
                "lines": [{"sku": product.sku, "quantity": 1} for product in sent]}
        with statements() as seen:
            response = client.post("/api/v1/stock-transfers", json=body, headers=admin)
        assert response.status_code == 201, response.json
        assert [line["sku"] for line in response.json["lines"]] == [product.sku for product in sent]
        return sum(statement.lstrip().upper().startswith("SELECT") for statement in seen)

    assert cost(products[:50]) == cost(products[50:51])


def _return(client, headers, store, warehouse, product, quantity):
    return client.post("/api/v1/stock-transfers", headers=headers, json={
        "from_location": _code(store), "to_location": warehouse.code, "lines": [{"sku": product.sku,
                                                                                  "quantity": quantity}]})


def test_a_closed_stores_leftover_stock_goes_back_to_a_warehouse_lot_by_lot_and_an_admin_receives_it(
        client, login, store, staff_of, stocked_warehouse):
    """A store closed with stock on its shelves: an admin sends it back to a warehouse (oldest lots first, each lot on
    its own line), the store's staff see it leave but only an admin receives it at the warehouse, per lot, and what did
    not arrive is written off there with the note."""
    warehouse, product, old, new = stocked_warehouse
    admin, auditor, staff = login("admin"), login("auditor"), staff_of(store)
    assert _receive_all(client, staff, _send(client, admin, warehouse, store, product, 7).json).status_code == 200
    assert client.patch(f"/api/v1/stores/{store.id}", json={"active": False}, headers=admin).status_code == 200

    by_staff = _return(client, staff, store, warehouse, product, 6)
    sent = _return(client, admin, store, warehouse, product, 6)

    assert by_staff.status_code == 403
    assert sent.status_code == 201, sent.json
    back = sent.json
    assert (back["from_location_id"], back["to_location_id"], back["status"]) == (store.location_id, warehouse.id,
                                                                                  "dispatched")
    assert [(line["lot_id"], line["sent"]) for line in back["lines"]] == [(old.id, 5), (new.id, 1)]
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 1
    assert client.get(f"/api/v1/stock-transfers/{back['id']}", headers=staff).json["id"] == back["id"]
    waiting = client.get(f"/api/v1/stores/{store.id}/returned-transfers?status=dispatched", headers=admin).json
    assert [item["id"] for item in waiting["items"]] == [back["id"]]
    url = f"/api/v1/stock-transfers/{back['id']}/receive"
    body = {"lines": [{"lot_id": old.id, "received": 4}, {"lot_id": new.id, "received": 1}], "note": "一袋破损"}
    staff_receipt = client.post(url, headers=staff, json=body)
    received = client.post(url, headers=admin, json=body)
    again = client.post(url, headers=admin, json=body)

    assert (staff_receipt.status_code, staff_receipt.json["error"]["code"]) == (403, "forbidden")
    assert received.status_code == 200, received.json
    assert [(line["lot_id"], line["received"], line["discrepancy"]) for line in received.json["lines"]] == [
        (old.id, 4, 1), (new.id, 1, 0)]
    assert (again.status_code, again.json["error"]["code"]) == (409, "transfer_already_received")
    on_hand = {row["lot_id"]: row["on_hand"]
               for row in client.get(f"/api/v1/locations/{warehouse.id}/stock", headers=auditor).json["items"]}
    assert (on_hand[old.id], on_hand[new.id]) == (4, 7)
    lost = client.get(f"/api/v1/stock-adjustments?lot_id={old.id}", headers=auditor).json["items"]
    assert [(a["location_id"], a["delta"], a["reason"], a["transfer_id"]) for a in lost] == [
        (warehouse.id, -1, "lost_in_transit", back["id"])]
    assert inventory.available(location_id=store.location_id, product_id=product.id) == 1
    to_store = _send(client, admin, warehouse, store, product, 1)
    assert (to_store.status_code, to_store.json["error"]["code"]) == (409, "store_inactive")  # only back, not to it


def test_a_return_goes_only_from_a_store_to_a_warehouse_and_an_admin_receives_only_returns(
        client, login, store, staff_of, stocked_warehouse):
    warehouse, product, _, _ = stocked_warehouse
    admin = login("admin")
    other = StoreFactory(name="另一家体验店")
    db.session.commit()
    to_store = _send(client, admin, warehouse, store, product, 2).json

    store_to_store = client.post("/api/v1/stock-transfers", headers=admin, json={
        "from_location": _code(store), "to_location": _code(other), "lines": [{"sku": product.sku, "quantity": 1}]})
    admin_receipt = _receive_all(client, admin, to_store)

    assert (store_to_store.status_code, store_to_store.json["error"]["code"]) == (422, "location_not_warehouse")
    assert list(store_to_store.json["error"]["details"]) == ["to_location"]
    assert (admin_receipt.status_code, admin_receipt.json["error"]["code"]) == (403, "forbidden")
    assert _receive_all(client, staff_of(store), to_store).status_code == 200


def test_a_return_receipt_resent_by_another_admin_with_its_key_is_the_first_receipt(client, login, store, staff_of,
                                                                                     stocked_warehouse):
    """A warehouse's receipt keys belong to the warehouse, as a store's belong to the store: an admin's receipt resent
    with its key by another admin (the first's browser retried after a hand-over) gets the first answer, not 409
    `transfer_already_received`; another body under the key stays `idempotency_key_reused`, and the sending store's
    staff resending it are still refused."""
    warehouse, product, old, new = stocked_warehouse
    admin, other_admin = login("admin"), login("admin")
    assert _receive_all(client, staff_of(store), _send(client, admin, warehouse, store, product, 7).json
                        ).status_code == 200
    assert client.patch(f"/api/v1/stores/{store.id}", json={"active": False}, headers=admin).status_code == 200
    back = _return(client, admin, store, warehouse, product, 6).json
    url = f"/api/v1/stock-transfers/{back['id']}/receive"
    body = {"lines": [{"lot_id": old.id, "received": 5}, {"lot_id": new.id, "received": 1}]}

    first = client.post(url, json=body, headers={**admin, "Idempotency-Key": "return-1"})
    resent = client.post(url, json=body, headers={**other_admin, "Idempotency-Key": "return-1"})
    changed = client.post(url, json={"lines": [{"lot_id": old.id, "received": 4}, {"lot_id": new.id, "received": 1}],
                                     "note": "压坏"}, headers={**other_admin, "Idempotency-Key": "return-1"})
    by_staff = client.post(url, json=body, headers={**staff_of(store), "Idempotency-Key": "return-1"})

    assert first.status_code == resent.status_code == 200, resent.json
    assert resent.json == first.json and resent.headers.get("Idempotent-Replayed") == "true"
    assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert (by_staff.status_code, by_staff.json["error"]["code"]) == (403, "forbidden")
    on_hand = {row["lot_id"]: row["on_hand"]
               for row in client.get(f"/api/v1/locations/{warehouse.id}/stock", headers=admin).json["items"]}
    assert (on_hand[old.id], on_hand[new.id]) == (5, 7)


def test_a_return_never_takes_units_reserved_for_orders(client, login, store, staff_of, stocked_warehouse):
    """An open store's reserved units (pickup orders being paid) stay: a return takes only what is free, and the
    stock row never goes below what is reserved."""
    warehouse, product, _, _ = stocked_warehouse
    admin = login("admin")
    assert _receive_all(client, staff_of(store), _send(client, admin, warehouse, store, product, 7).json
                        ).status_code == 200
    inventory.reserve(location_id=store.location_id, product_id=product.id, quantity=3)
    db.session.commit()

    too_many = _return(client, admin, store, warehouse, product, 5)
    free = _return(client, admin, store, warehouse, product, 4)

    assert (too_many.status_code, too_many.json["error"]["code"]) == (409, "insufficient_stock")
    assert too_many.json["error"]["details"]["lines"][0]["available"] == 4
    assert free.status_code == 201, free.json
    db.session.expire_all()
    rows = db.session.scalars(select(Stock).where(Stock.location_id == store.location_id)).all()
    assert sum(row.on_hand for row in rows) == sum(row.reserved for row in rows) == 3
    assert all(row.on_hand >= row.reserved for row in rows)


def test_a_counter_sale_racing_a_return_of_the_same_units_one_wins_and_nothing_is_oversold(racing_app):
    counter = make_counter()  # 13 bags of rice at the store, its shift open
    warehouse, admin = LocationFactory(), UserFactory(role="admin")
    clerk = UserFactory(role="store_staff", store_id=counter.store.id)
    db.session.commit()
    ids = (counter.store.id, counter.shift.id, counter.rice.sku, admin.id, clerk.id, warehouse.code,
           inventory.get_location(counter.store.location_id).code)

    def operation(i: int) -> None:
        if i == 0:
            counter_service.sell(actor=db.session.get(User, ids[4]), store_id=ids[0], shift_id=ids[1],
                                 lines=[{"sku": ids[2], "quantity": 10}], payment={"method": "card"})
        else:
            service.create_transfer(actor=db.session.get(User, ids[3]), from_location=ids[6], to_location=ids[5],
                                    lines=[{"sku": ids[2], "quantity": 10}])

    outcomes = race(racing_app, 2, operation)

    db.session.expire_all()
    assert outcomes == {"ok": 1, "insufficient_stock": 1}
    rows = db.session.scalars(select(Stock).where(Stock.location_id == counter.store.location_id,
                                                  Stock.product_id == counter.rice.id)).all()
    assert sum(row.on_hand for row in rows) == 3 and all(row.on_hand >= row.reserved >= 0 for row in rows)
