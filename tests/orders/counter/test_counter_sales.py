"""Online counter sales: paid and fulfilled at once from the store's stock, receipts, idempotent resends."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from catalog import inventory
from catalog.models import Location
from orders.models import Allocation, Order, OrderTransition, OutboxEvent, SaleConflict
from shop.db import db, utcnow
from suppliers.models import Supplier
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.contract.conftest import documented_codes
from tests.orders.counter.conftest import clerk, paid_pickup_order, sale_body
from tests.orders.factories import ShiftFactory, StoreFactory


def _available(counter, product) -> int:
    return inventory.available(location_id=counter.store.location_id, product_id=product.id)


def _orders() -> int:
    return db.session.scalar(select(func.count(Order.id)))


def test_cash_sale_is_paid_fulfilled_and_gives_change(client, counter, staff):
    body = sale_body(counter, lines=[{"sku": counter.rice.sku, "quantity": 3},
                                     {"sku": counter.tea.sku.lower(), "quantity": 1}])

    response = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=body, headers=staff)

    assert response.status_code == 201, response.json
    sale = response.json
    assert (sale["channel"], sale["status"], sale["payment_method"]) == ("counter", "fulfilled", "cash")
    assert (sale["total_fen"], sale["tendered_fen"], sale["change_fen"]) == (9500, 10000, 500)
    assert sale["shift_id"] == counter.shift.id and sale["late_entry"] is False
    assert sale["store"]["id"] == counter.store.id
    assert [(t["from_status"], t["to_status"]) for t in sale["transitions"]] == [(None, "paid"), ("paid", "fulfilled")]
    receipt = sale["receipt"]
    assert receipt["store"] == {"id": counter.store.id, "name": counter.store.name}
    assert (receipt["total_fen"], receipt["paid_fen"], receipt["change_fen"]) == (9500, 10000, 500)
    # the ledger attributed the sale on commit; the counter's lots have no households: none reached, nothing
    assert receipt["impact"] == sale["impact"] == {"households": 0, "attributed_fen": 0, "counties": []}
    assert [line["trace_codes"] for line in receipt["lines"]] == [[counter.old_lot.trace_code],
                                                                 [counter.tea_lot.trace_code]]
    db.session.expire_all()
    order = db.session.get(Order, sale["id"])
    assert order.donor_code == counter.store.district_code and order.location_id == counter.store.location_id
    assert order.store_id == counter.store.id and order.created_by is not None
    assert order.sale_date is not None and order.paid_at is not None
    steps = db.session.execute(select(OrderTransition.from_status, OrderTransition.to_status)
                               .where(OrderTransition.order_id == order.id).order_by(OrderTransition.id)).all()
    assert steps == [(None, "paid"), ("paid", "fulfilled")]
    assert [(a.lot_id, a.quantity, a.state) for a in order.lines[0].allocations] == [
        (counter.old_lot.id, 3, "allocated")]
    assert (order.lines[1].platform_fee_bp, order.lines[1].store_commission_bp) == (500, 800)
    events = db.session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == order.id)
                                .order_by(OutboxEvent.id)).all()
    assert [(e.kind, e.order_line_id, e.amount_fen) for e in events] == [
        ("line_paid", order.lines[0].id, 6000), ("line_paid", order.lines[1].id, 3500)]
    assert events[0].payload["allocations"][0]["lot_id"] == counter.old_lot.id
    assert (_available(counter, counter.rice), _available(counter, counter.tea)) == (10, 3)


def test_a_scanned_lot_is_taken_first(client, counter, staff):
    body = sale_body(counter, lines=[{"trace_code": counter.new_lot.trace_code.lower(), "quantity": 2}])

    response = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=body, headers=staff)

    assert response.status_code == 201, response.json
    assert db.session.get(Order, response.json["id"]).lines[0].scanned_lot_id == counter.new_lot.id
    assert response.json["receipt"]["lines"][0]["trace_codes"] == [counter.new_lot.trace_code]
    assert db.session.scalars(select(Allocation.lot_id)).all() == [counter.new_lot.id]


def test_a_scanned_lot_short_of_units_is_topped_up_fifo(client, counter, staff):
    body = sale_body(counter, lines=[{"trace_code": counter.new_lot.trace_code, "quantity": 10}],
                     payment={"method": "card"})

    response = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=body, headers=staff)

    assert response.status_code == 201, response.json
    assert response.json["receipt"]["lines"][0]["trace_codes"] == [counter.new_lot.trace_code,
                                                                    counter.old_lot.trace_code]
    assert response.json["change_fen"] == 0 and response.json["receipt"]["paid_fen"] == 20000


def test_a_scanned_lot_with_no_unit_at_the_store_is_refused_not_swapped_for_another(client, counter, staff):
    elsewhere = make_lot(counter.rice, LocationFactory(), quantity=4)
    sold_out = make_lot(counter.rice, db.session.get(Location, counter.store.location_id), quantity=1)
    inventory.adjust(location_id=counter.store.location_id, lot_id=sold_out.id, delta=-1)
    db.session.commit()
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    for lot in (elsewhere, sold_out):
        refused = client.post(url, headers=staff, json=sale_body(counter, lines=[
            {"trace_code": lot.trace_code, "quantity": 1}], payment={"method": "card"}))

        assert (refused.status_code, refused.json["error"]["code"]) == (409, "lot_not_held_here")
        assert refused.json["error"]["details"] == {"lot_id": lot.id, "location_id": counter.store.location_id}
    assert _orders() == 0 and _available(counter, counter.rice) == 13  # the store's own lots are untouched


def test_a_line_typed_by_sku_never_takes_the_units_of_a_lot_scanned_on_a_later_line(client, counter, staff):
    body = sale_body(counter, lines=[{"sku": counter.rice.sku, "quantity": 12},  # all but one of both lots
                                     {"trace_code": counter.old_lot.trace_code, "quantity": 1}],
                     payment={"method": "card"})

    response = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=body, headers=staff)

    assert response.status_code == 201, response.json
    typed, scanned = response.json["receipt"]["lines"]
    assert scanned["trace_codes"] == [counter.old_lot.trace_code]  # the unit in the customer's hand
    assert typed["trace_codes"] == [counter.old_lot.trace_code, counter.new_lot.trace_code]
    order = db.session.get(Order, response.json["id"])
    assert [(a.lot_id, a.quantity) for a in order.lines[1].allocations] == [(counter.old_lot.id, 1)]
    assert [(a.lot_id, a.quantity) for a in order.lines[0].allocations] == [(counter.old_lot.id, 4),
                                                                           (counter.new_lot.id, 8)]


def test_a_scanned_lot_held_here_but_all_reserved_is_short_of_stock_not_absent(client, counter, staff):
    inventory.reserve(location_id=counter.store.location_id, product_id=counter.rice.id, quantity=5,
                      lot_id=counter.old_lot.id)  # every unit of the older lot waits for pickup orders
    db.session.commit()

    refused = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", headers=staff, json=sale_body(
        counter, lines=[{"trace_code": counter.old_lot.trace_code, "quantity": 1}], payment={"method": "card"}))

    assert (refused.status_code, refused.json["error"]["code"]) == (409, "insufficient_stock")
    assert refused.json["error"]["details"] == {
        "lot_id": counter.old_lot.id, "location_id": counter.store.location_id, "available": 0, "reserved": 5,
        "lines": [{"sku": counter.rice.sku, "product_id": counter.rice.id, "lot_id": counter.old_lot.id, "requested": 1,
                   "available": 0}]}  # the short line by SKU, as every insufficient_stock names it
    assert _orders() == 0


def test_cash_change_arithmetic(client, counter, staff):
    exact = sale_body(counter, payment={"method": "cash", "tendered_fen": 6000})
    short = sale_body(counter, payment={"method": "cash", "tendered_fen": 5999})
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    assert client.post(url, json=exact, headers=staff).json["change_fen"] == 0
    refused = client.post(url, json=short, headers=staff)

    assert refused.status_code == 422
    assert refused.json["error"]["code"] == "tendered_below_total"
    assert "tendered_fen" in refused.json["error"]["details"]["payment"]
    assert _orders() == 1 and _available(counter, counter.rice) == 10


def test_cash_tendered_exceeds_the_total_by_less_than_a_100_yuan_note(client, counter, staff):
    def paid_with(tendered):
        return client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", headers=staff,
                           json=sale_body(counter, payment={"method": "cash", "tendered_fen": tendered}))

    before = _available(counter, counter.rice)
    refused = [paid_with(16000), paid_with(10**12)]
    assert _orders() == 0 and _available(counter, counter.rice) == before
    taken = paid_with(15999)

    for response in refused:
        assert (response.status_code, response.json["error"]["code"]) == (422, "tendered_too_much")
        assert "a note was not needed" in response.json["error"]["message"]
        assert response.json["error"]["details"]["payment"]["tendered_fen"] == [
            "At most 15999 fen for a total of 6000 fen."]
    assert (taken.status_code, taken.json["change_fen"]) == (201, 9999)


def test_cash_needs_tendered_and_card_takes_none(client, counter, staff):
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    cash = client.post(url, json=sale_body(counter, payment={"method": "cash"}), headers=staff)
    card = client.post(url, json=sale_body(counter, payment={"method": "card", "tendered_fen": 100}), headers=staff)

    assert (cash.status_code, card.status_code) == (422, 422)
    assert cash.json["error"]["details"]["payment"]["tendered_fen"]
    assert card.json["error"]["details"]["payment"]["tendered_fen"]
    assert _orders() == 0


def test_a_sale_needs_an_open_shift_of_the_store(client, counter, staff):
    closed = ShiftFactory(store=counter.store, closed_at=utcnow(), closed_by=counter.shift.opened_by,
                          counted_cash_fen=0)
    elsewhere = ShiftFactory(store=StoreFactory())
    db.session.commit()
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    on_closed = client.post(url, json=sale_body(counter, shift_id=closed.id), headers=staff)
    on_other = client.post(url, json=sale_body(counter, shift_id=elsewhere.id), headers=staff)

    assert (on_closed.status_code, on_closed.json["error"]["code"]) == (409, "shift_closed")
    assert (on_other.status_code, on_other.json["error"]["code"]) == (404, "shift_not_found")
    assert _orders() == 0 and db.session.scalar(select(func.count(SaleConflict.id))) == 0


def test_an_inactive_store_sells_nothing_new(client, counter, staff):
    counter.store.active = False
    db.session.commit()
    response = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=sale_body(counter),
                           headers=staff)
    assert (response.status_code, response.json["error"]["code"]) == (409, "store_inactive")
    assert _orders() == 0


def test_only_the_stores_staff_and_admins_sell(client, counter, login):
    other_clerk = clerk(StoreFactory())
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    other = client.post(url, json=sale_body(counter), headers=other_clerk)
    consumer = client.post(url, json=sale_body(counter), headers=login("consumer"))
    admin = client.post(url, json=sale_body(counter), headers=login("admin"))

    assert (other.status_code, other.json["error"]["code"]) == (404, "store_not_found")
    assert consumer.status_code == 403
    assert admin.status_code == 201


def test_unknown_items_and_stale_prices_are_refused_without_a_conflict(client, counter, staff):
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    unknown = client.post(url, json=sale_body(counter, lines=[{"sku": "NO-SUCH-SKU", "quantity": 1},
                                                              {"trace_code": "ZZZZZZZZZZ", "quantity": 1}]),
                          headers=staff)
    stale = client.post(url, json=sale_body(counter, lines=[{"sku": counter.rice.sku, "quantity": 1,
                                                             "unit_price_fen": 1900}]), headers=staff)
    short = client.post(url, json=sale_body(counter, lines=[{"sku": counter.tea.sku, "quantity": 5}],
                                            payment={"method": "card"}), headers=staff)

    assert (unknown.status_code, unknown.json["error"]["code"]) == (422, "unknown_item")
    assert set(unknown.json["error"]["details"]["lines"]) == {"0", "1"}
    assert (stale.status_code, stale.json["error"]["code"]) == (409, "price_mismatch")
    assert (short.status_code, short.json["error"]["code"]) == (409, "insufficient_stock")
    assert short.json["error"]["details"] == {"location_id": counter.store.location_id, "lines": [
        {"sku": counter.tea.sku, "product_id": counter.tea.id, "requested": 5, "available": 4}]}
    assert _orders() == 0 and db.session.scalar(select(func.count(SaleConflict.id))) == 0


def test_short_stock_of_a_product_on_two_lines_names_its_total_requested_and_available(client, counter, staff):
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"
    lines = [{"trace_code": counter.tea_lot.trace_code, "quantity": 3}, {"sku": counter.rice.sku, "quantity": 1},
             {"sku": counter.tea.sku, "quantity": 2}]  # the tea in hand scanned, then typed: 5 of the 4 here

    short = client.post(url, json=sale_body(counter, lines=lines, payment={"method": "card"}), headers=staff)

    assert (short.status_code, short.json["error"]["code"]) == (409, "insufficient_stock")
    assert short.json["error"]["details"] == {"location_id": counter.store.location_id, "lines": [
        {"sku": counter.tea.sku, "product_id": counter.tea.id, "requested": 5, "available": 4}]}
    assert _orders() == 0 and _available(counter, counter.tea) == 4


def test_a_line_needs_exactly_one_of_sku_and_trace_code(client, counter, staff):
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"
    both = {"sku": counter.rice.sku, "trace_code": counter.old_lot.trace_code, "quantity": 1}

    for line in (both, {"quantity": 1}):
        response = client.post(url, json=sale_body(counter, lines=[line]), headers=staff)
        assert response.status_code == 422, line


def test_a_resent_sale_is_one_sale_also_from_another_clerk(client, counter, staff):
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"
    headers = {**staff, "Idempotency-Key": "till-1-0001"}
    first = client.post(url, json=sale_body(counter), headers=headers)

    again = client.post(url, json=sale_body(counter), headers=headers)
    handed_over = client.post(url, json=sale_body(counter),
                              headers={**clerk(counter.store), "Idempotency-Key": "till-1-0001"})

    assert first.status_code == again.status_code == handed_over.status_code == 201
    assert first.json == again.json == handed_over.json
    assert handed_over.headers["Idempotent-Replayed"] == "true"
    assert _orders() == 1 and _available(counter, counter.rice) == 10


def test_a_sale_resent_spelt_otherwise_is_one_sale_and_another_is_refused(client, counter, staff):
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"
    headers = {**staff, "Idempotency-Key": "till-1-respelt", "Content-Type": "application/json"}
    body = sale_body(counter)
    first = client.post(url, data=json.dumps(body), headers=headers)
    sku = "".join(f"\\u{ord(char):04x}" for char in counter.rice.sku)  # as a library escaping every letter writes it
    respelt = (f'{{ "shift_id" : {counter.shift.id},\n  "payment": {{"tendered_fen": 10000, "method": "cash"}},\n'
               f'  "lines": [ {{"quantity": 3, "sku": "{sku}"}} ] }}')

    again = client.post(url, data=respelt.encode(), headers=headers)
    other = client.post(url, data=respelt.replace('"quantity": 3', '"quantity": 2').encode(), headers=headers)

    assert (first.status_code, again.status_code) == (201, 201), again.json
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert (other.status_code, other.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert _orders() == 1


def test_another_stores_clerk_never_gets_a_replay(client, counter, staff):
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"
    client.post(url, json=sale_body(counter), headers={**staff, "Idempotency-Key": "till-1-0002"})

    stranger = client.post(url, json=sale_body(counter),
                           headers={**clerk(StoreFactory()), "Idempotency-Key": "till-1-0002"})

    assert (stranger.status_code, stranger.json["error"]["code"]) == (404, "store_not_found")


def test_an_inactive_suppliers_products_are_not_sold_but_paid_pickups_are_handed_over(client, counter, staff):
    order = paid_pickup_order(counter.store, counter.rice, pickup_code="246810")
    db.session.get(Supplier, counter.rice.supplier_id).active = False
    db.session.commit()
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    by_sku = client.post(url, json=sale_body(counter), headers=staff)
    by_trace = client.post(url, json=sale_body(counter, lines=[{"trace_code": counter.old_lot.trace_code,
                                                                "quantity": 1}]), headers=staff)
    other = client.post(url, json=sale_body(counter, lines=[{"sku": counter.tea.sku, "quantity": 1}]), headers=staff)
    handed = client.post(f"/api/v1/stores/{counter.store.id}/pickups", json={"pickup_code": "246810"}, headers=staff)

    for refused in (by_sku, by_trace):
        assert (refused.status_code, refused.json["error"]["code"]) == (422, "unknown_item")
    assert other.status_code == 201  # another supplier's product still sells
    assert (handed.status_code, handed.json["id"], handed.json["status"]) == (200, order.id, "fulfilled")


def test_the_document_names_each_refusal_a_till_gets(client, counter, staff):
    codes = {404: {"shift_not_found"},
             409: {"shift_closed", "store_inactive", "insufficient_stock", "lot_not_held_here", "price_mismatch",
                   "unknown_item", "sale_too_old", "sale_in_future", "sale_before_shift", "sale_after_shift"},
             422: {"validation_error", "unknown_item", "tendered_below_total", "tendered_too_much",
                   "order_total_too_large"}}

    document = client.get("/api/v1/openapi.json").json
    named = documented_codes(document["paths"]["/api/v1/stores/{store_id}/counter-sales"]["post"])

    assert {status: codes[status] - named.get(status, set()) for status in codes} == {404: set(), 409: set(),
                                                                                      422: set()}


def test_a_card_sale_beyond_what_one_payment_carries_is_refused_and_takes_no_stock(client, counter, staff):
    dear = ProductFactory(price_fen=99_999_999)  # ¥999,999.99, the dearest price there is
    make_lot(dear, db.session.get(Location, counter.store.location_id), quantity=2)
    db.session.commit()
    body = sale_body(counter, lines=[{"sku": dear.sku, "quantity": 2}], payment={"method": "card"})

    response = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=body, headers=staff)

    assert response.status_code == 422 and response.json["error"]["code"] == "order_total_too_large"
    assert "199999998" in response.json["error"]["message"]
    assert _orders() == 0 and _available(counter, dear) == 2
    one = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", headers=staff,
                      json=sale_body(counter, lines=[{"sku": dear.sku, "quantity": 1}], payment={"method": "card"}))
    assert one.status_code == 201 and one.json["total_fen"] == 99_999_999
