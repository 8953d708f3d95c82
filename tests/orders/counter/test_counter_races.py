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


def _post_together(app, url: str, requests: list[tuple[dict, dict]]) -> list:
    """POST each (headers, body) from its own thread, released together; the responses' (status, json)."""
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def run(i: int) -> None:
        headers, body = requests[i]
        client = app.test_client()
        barrier.wait()
        response = client.post(url, json=body, headers=headers)
        results[i] = (response.status_code, response.json)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_one_key_resent_concurrently_by_five_clerks_is_one_sale(racing_app):
    counter = make_counter()
    clerks = [clerk(counter.store) for _ in range(5)]
    url = f"/api/v1/stores/{counter.store.id}/counter-sales"

    results = _post_together(racing_app, url, [({**h, "Idempotency-Key": "till-9-0001"}, sale_body(counter))
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

    results = _post_together(racing_app, url, [({**h, "Idempotency-Key": "till-9-0002"}, body) for h in clerks])

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

    results = _post_together(racing_app, url, [(clerk(counter.store), body) for _ in range(8)])

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

    results = _post_together(racing_app, url, [(staff, {"pickup_code": f"{n:06d}"}) for n in range(24)])

    assert Counter(status for status, _ in results) == Counter({409: 10, 429: 14})
    assert racing_app.test_client().post(url, json={"pickup_code": "123456"}, headers=staff).status_code == 429
