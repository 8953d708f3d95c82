"""Counter sales racing on SQLite and PostgreSQL: resends of one till key from several clerks are one sale (or one
conflict); concurrent sales of the last units never oversell; a shift closing under them counts every sale; a burst of
wrong pickup codes gets no more checked than the limit allows."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from catalog import inventory
from catalog.models import Stock
from orders.models import Order, OutboxEvent, SaleConflict
from shop.db import db, utcnow
from tests.orders.counter.conftest import clerk, make_counter, paid_pickup_order, sale_body
from tests.parallel import post_together


def test_one_key_resent_concurrently_by_five_clerks_is_one_sale(racing_app):
    counter = make_counter()
    clerks = [clerk(counter.store) for _ in range(5)]
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    results = post_together(racing_app, url, [({**h, "Idempotency-Key": "till-9-0001"}, sale_body(counter))
                                           for h in clerks])

    assert [status for status, _ in results] == [201] * 5
    assert len({body["id"] for _, body in results}) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Order.id))) == 1
    assert db.session.scalar(select(func.count(OutboxEvent.id))) == 1
    assert inventory.available(location_id=counter.store.location_id, product_id=counter.rice.id) == 10


def test_one_refused_offline_sale_resent_concurrently_is_one_conflict(racing_app):
    counter = make_counter()
    clerks = [clerk(counter.store) for _ in range(5)]
    body = sale_body(counter, lines=[{"sku": counter.rice.sku, "quantity": 1, "unit_price_fen": 1}],
                     client_created_at=(utcnow() - timedelta(hours=1)).isoformat())
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    results = post_together(racing_app, url, [({**h, "Idempotency-Key": "till-9-0002"}, body) for h in clerks])

    assert Counter(status for status, _ in results) == Counter({409: 5})
    assert {body["error"]["code"] for _, body in results} == {"price_mismatch"}
    db.session.expire_all()
    [conflict] = db.session.scalars(select(SaleConflict)).all()
    assert {body["error"]["details"]["conflict_id"] for _, body in results} == {conflict.id}
    assert db.session.scalar(select(func.count(Order.id))) == 0


def test_concurrent_sales_of_the_last_units_never_oversell(racing_app):
    counter = make_counter()
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"
    body = sale_body(counter, lines=[{"sku": counter.tea.sku, "quantity": 1}], payment={"method": "card"})

    results = post_together(racing_app, url, [(clerk(counter.store), body) for _ in range(8)])

    assert Counter(status for status, _ in results) == Counter({201: 4, 409: 4})
    db.session.expire_all()
    assert db.session.scalar(select(Stock.on_hand).where(Stock.lot_id == counter.tea_lot.id)) == 0
    assert db.session.scalar(select(func.count(Order.id))) == 4


def test_a_shift_closing_while_clerks_sell_counts_every_sale_it_took(racing_app):
    counter = make_counter()
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"
    body = sale_body(counter, lines=[{"sku": counter.rice.sku, "quantity": 1}],
                     payment={"method": "cash", "tendered_fen": 2000})
    sellers = [(clerk(counter.store), body) for _ in range(6)]
    closer, close_url = clerk(counter.store), f"/api/v1/shifts/{counter.shift.id}/close"
    barrier = threading.Barrier(len(sellers) + 1)
    results: list = []

    def sell(headers) -> None:
        client = racing_app.test_client()
        barrier.wait()
        response = client.post(url, json=body, headers=headers)
        results.append((response.status_code, response.json))

    def close() -> None:
        client = racing_app.test_client()
        barrier.wait()
        response = client.post(close_url, json={"counted_cash_fen": 0}, headers=closer)
        results.append(("report", response.json))

    threads = [threading.Thread(target=sell, args=(h,)) for h, _ in sellers] + [threading.Thread(target=close)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    [report] = [body for status, body in results if status == "report"]
    sold = [body for status, body in results if status == 201]
    refused = [body["error"]["code"] for status, body in results if status == 409]
    assert len(sold) + len(refused) == 6 and set(refused) <= {"shift_closed"}
    cash = next(m for m in report["methods"] if m["method"] == "cash")
    assert cash["sales_fen"] == sum(sale["total_fen"] for sale in sold)


def test_a_parallel_burst_of_wrong_pickup_codes_gets_ten_checked(racing_app):
    counter = make_counter()
    paid_pickup_order(counter.store, counter.rice, pickup_code="123456")
    staff = clerk(counter.store)
    url = f"/api/v1/stores/{counter.store.id}/pickups"

    results = post_together(racing_app, url, [(staff, {"pickup_code": f"{n:06d}"}) for n in range(24)])

    assert Counter(status for status, _ in results) == Counter({409: 10, 429: 14})
    assert racing_app.test_client().post(url, json={"pickup_code": "123456"}, headers=staff).status_code == 429


def _price_at(changes: list, product_id: int, at, first: int) -> int:
    """A product's price at `at` by its history (`first` before any change)."""
    before = [change for change in changes if change.product_id == product_id and change.changed_at <= at]
    return before[-1].new_value if before else first


def test_every_line_of_a_sale_is_charged_the_prices_of_one_instant_while_prices_change(racing_app):
    from catalog.models import Location, ProductChange
    from orders.models import OrderLine
    from tests.catalog.factories import make_lot
    from tests.factories import UserFactory
    from tests.orders.counter.conftest import bearer

    counter = make_counter()
    location = db.session.get(Location, counter.store.location_id)
    make_lot(counter.rice, location, quantity=100)
    make_lot(counter.tea, location, quantity=100)
    admin = UserFactory(role="admin")
    db.session.commit()
    rice, tea, start = counter.rice.sku, counter.tea.sku, {counter.rice.id: 2000, counter.tea.id: 3500}
    sale = sale_body(counter, lines=[{"sku": rice, "quantity": 1}, {"sku": tea, "quantity": 1}],
                     payment={"method": "card"})
    staff, boss = clerk(counter.store), bearer(admin)
    sell = f"/api/v1/stores/{counter.store.id}/counter-sales"

    for round_ in range(1, 11):  # prices only go up, rice first: "old rice, new tea" never was a price list
        barrier, outcomes = threading.Barrier(3), []

        def raise_prices(round_: int = round_, barrier: threading.Barrier = barrier) -> None:
            client = racing_app.test_client()
            barrier.wait()
            for sku, base in ((rice, 2000), (tea, 3500)):
                client.patch(f"/api/v1/products/{sku}", headers=boss, json={"price_fen": base + round_})

        def sell_once(barrier: threading.Barrier = barrier, outcomes: list = outcomes) -> None:
            client = racing_app.test_client()
            barrier.wait()
            outcomes.append(client.post(sell, headers=staff, json=sale).status_code)

        threads = [threading.Thread(target=raise_prices), *(threading.Thread(target=sell_once) for _ in range(2))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert outcomes == [201, 201]

    db.session.expire_all()
    changes = db.session.scalars(select(ProductChange).where(ProductChange.field == "price_fen")
                                 .order_by(ProductChange.changed_at, ProductChange.id)).all()
    orders = db.session.scalars(select(Order).where(Order.channel == "counter")).all()
    assert len(orders) == 20
    for order in orders:
        lines = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order.id)).all()
        charged = {line.product_id: line.unit_price_fen for line in lines}
        assert charged == {pid: _price_at(changes, pid, order.paid_at, first) for pid, first in start.items()}
