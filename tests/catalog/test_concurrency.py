"""Stock operations racing on both databases: threads, each with its own app context and session.

The embedded default (SQLite under the threaded dev server) must be as safe as PostgreSQL."""
from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from catalog import inventory
from catalog.models import Stock
from shop.db import db
from shop.errors import Conflict
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot


def race(app, workers: int, operation) -> Counter:
    """Run `operation(i)` in `workers` threads released together; count the outcomes by name."""
    barrier = threading.Barrier(workers)
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def run(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                operation(i)
                db.session.commit()
                outcome = "ok"
            except Conflict as exc:
                db.session.rollback()
                outcome = exc.code
            finally:
                db.session.remove()
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_64_concurrent_reservations_against_a_lot_of_10(racing_app):
    location, product = LocationFactory(), ProductFactory()
    make_lot(product, location, quantity=10)
    db.session.commit()
    ids = (location.id, product.id)

    outcomes = race(racing_app, 64, lambda i: inventory.reserve(location_id=ids[0], product_id=ids[1], quantity=1))

    assert outcomes == Counter({"ok": 10, "insufficient_stock": 54})
    db.session.expire_all()
    row = db.session.scalar(select(Stock))
    assert (row.on_hand, row.reserved) == (10, 10)


def test_moves_reservations_and_allocations_racing_keep_every_unit(racing_app):
    warehouse, store, product = LocationFactory(), LocationFactory(kind="store"), ProductFactory()
    for _ in range(3):
        make_lot(product, warehouse, quantity=20)
        make_lot(product, store, quantity=20)
    db.session.commit()
    w, s, p = warehouse.id, store.id, product.id

    def operation(i: int) -> None:
        kind = i % 4
        if kind == 0:
            inventory.move(from_location_id=w, to_location_id=s, product_id=p, quantity=3)
        elif kind == 1:
            inventory.move(from_location_id=s, to_location_id=w, product_id=p, quantity=3)
        elif kind == 2:
            inventory.allocate(portions=inventory.reserve(location_id=s, product_id=p, quantity=2))
        else:
            inventory.reserve(location_id=w, product_id=p, quantity=2)

    outcomes = race(racing_app, 40, operation)

    # Enough stock for every operation in any order: all succeed, none deadlocks, no unit is lost.
    assert outcomes == Counter({"ok": 40})
    db.session.expire_all()
    on_hand, reserved, lowest = db.session.execute(
        select(func.sum(Stock.on_hand), func.sum(Stock.reserved), func.min(Stock.on_hand - Stock.reserved))).one()
    assert lowest >= 0
    assert on_hand == 120 - 10 * 2
    assert reserved == 10 * 2
