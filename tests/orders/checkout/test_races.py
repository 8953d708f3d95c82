"""Checkout races over HTTP on SQLite (the embedded default) and PostgreSQL: no oversell, no deadlock
reaching a client, one order per Idempotency-Key, one buyer's unpaid orders capped."""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update

from catalog.models import Stock
from orders.checkout import service as checkout_service
from orders.models import Order, Payment
from shop.auth.models import User
from shop.db import db, utcnow
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.checkout.conftest import confirm, delivery_body, make_world, pickup_body
from tests.parallel import second_while_first_uncommitted


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def racing_app(request):
    """The app on SQLite (a file, as `make run` serves it) and on PostgreSQL."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


def _consumer(app) -> dict:
    """Headers of a new consumer of `app`."""
    user = UserFactory(role="consumer")
    db.session.commit()
    token = app.test_client().post("/api/v1/auth/token",
                                   json={"username": user.username, "password": DEFAULT_PASSWORD}).json
    return {"Authorization": f"Bearer {token['access_token']}"}


def _post_together(app, requests: list[tuple[dict, dict]]) -> list:
    """POST each (headers, body) to /orders from its own thread, released together; the responses."""
    barrier = threading.Barrier(len(requests))
    responses: list = [None] * len(requests)

    def run(i: int) -> None:
        headers, body = requests[i]
        client = app.test_client()
        barrier.wait()
        responses[i] = client.post("/api/v1/orders", json=body, headers=headers)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return responses


def _stock_totals() -> tuple[int, int, int]:
    """(on hand, reserved, lowest available) over every stock row."""
    db.session.expire_all()
    return tuple(db.session.execute(select(func.sum(Stock.on_hand), func.sum(Stock.reserved),
                                           func.min(Stock.on_hand - Stock.reserved))).one())


def test_64_concurrent_checkouts_on_a_lot_of_10(racing_app):
    product = ProductFactory()
    make_lot(product, LocationFactory(), quantity=10)
    db.session.commit()
    consumers = [_consumer(racing_app) for _ in range(16)]  # 4 checkouts each: under the unpaid-orders cap

    responses = _post_together(racing_app, [(consumers[i % 16], delivery_body((product.sku, 1)))
                                            for i in range(64)])

    outcomes = Counter((r.status_code, r.json.get("error", {}).get("code")) for r in responses)
    assert outcomes == Counter({(201, None): 10, (409, "insufficient_stock"): 54})
    assert _stock_totals() == (10, 10, 0)
    assert db.session.scalar(select(func.count(Order.id))) == 10


def test_carts_locking_skus_in_opposite_order_never_deadlock(racing_app):
    warehouse = LocationFactory()
    products = [ProductFactory() for _ in range(3)]
    for product in products:
        make_lot(product, warehouse, quantity=500)
        make_lot(product, warehouse, quantity=500)
    db.session.commit()
    skus = [p.sku for p in products]
    consumers = [_consumer(racing_app) for _ in range(24)]  # buyers of their own: their checkouts do not queue

    requests = [(consumers[i], delivery_body(*[(sku, 2) for sku in (skus if i % 2 else list(reversed(skus)))]))
                for i in range(24)]
    responses = _post_together(racing_app, requests)

    assert Counter(r.status_code for r in responses) == Counter({201: 24})
    assert _stock_totals() == (3000, 24 * 2 * 3, 500 - 24 * 2)  # FIFO: the first lot of each


def test_the_same_idempotency_key_five_times_at_once_is_one_order(racing_app):
    product = ProductFactory()
    make_lot(product, LocationFactory(), quantity=10)
    db.session.commit()
    headers = {**_consumer(racing_app), "Idempotency-Key": "same-cart"}

    responses = _post_together(racing_app, [(headers, delivery_body((product.sku, 3)))] * 5)

    assert [r.status_code for r in responses] == [201] * 5, [r.json for r in responses]
    assert len({r.json["id"] for r in responses}) == 1
    assert len({r.get_data() for r in responses}) == 1
    assert db.session.scalar(select(func.count(Order.id))) == 1
    assert _stock_totals()[1] == 3


def test_one_buyers_concurrent_checkouts_hold_at_most_five_unpaid_orders(racing_app):
    product = ProductFactory()
    make_lot(product, LocationFactory(), quantity=100)
    db.session.commit()
    buyer = _consumer(racing_app)

    responses = _post_together(racing_app, [(buyer, delivery_body((product.sku, 1))) for _ in range(12)])

    outcomes = Counter((r.status_code, r.json.get("error", {}).get("code")) for r in responses)
    assert outcomes == Counter({(201, None): 5, (409, "too_many_unpaid_orders"): 7})
    assert _stock_totals() == (100, 5, 95)


def test_one_buyers_concurrent_checkouts_expire_their_past_due_orders_once_and_hold_at_most_five(racing_app):
    product = ProductFactory()
    make_lot(product, LocationFactory(), quantity=100)
    db.session.commit()
    buyer = _consumer(racing_app)
    client = racing_app.test_client()
    for _ in range(5):
        assert client.post("/api/v1/orders", json=delivery_body((product.sku, 1)), headers=buyer).status_code == 201
    db.session.execute(update(Order).values(expires_at=utcnow() - timedelta(seconds=1)))  # the expiry not run yet
    db.session.commit()

    responses = _post_together(racing_app, [(buyer, delivery_body((product.sku, 1))) for _ in range(12)])

    outcomes = Counter((r.status_code, r.json.get("error", {}).get("code")) for r in responses)
    assert outcomes == Counter({(201, None): 5, (409, "too_many_unpaid_orders"): 7})
    assert Counter(db.session.scalars(select(Order.status))) == Counter({"expired": 5, "pending_payment": 5})
    assert _stock_totals() == (100, 5, 95)


def test_one_buyers_concurrent_checkouts_under_their_own_keys_queue_and_never_deadlock(racing_app):
    product = ProductFactory()
    make_lot(product, LocationFactory(), quantity=100)
    db.session.commit()
    buyer = _consumer(racing_app)

    responses = _post_together(racing_app, [({**buyer, "Idempotency-Key": f"cart-{i}"}, delivery_body((product.sku, 1)))
                                            for i in range(8)])

    outcomes = Counter((r.status_code, r.json.get("error", {}).get("code")) for r in responses)
    assert outcomes == Counter({(201, None): 5, (409, "too_many_unpaid_orders"): 3})


def test_a_cancel_racing_the_buyers_payment_lets_exactly_one_of_them_through(racing_app):
    product = ProductFactory()
    make_lot(product, LocationFactory(), quantity=100)
    db.session.commit()
    placed = []
    for _ in range(8):
        buyer = _consumer(racing_app)
        order = racing_app.test_client().post("/api/v1/orders", json=delivery_body((product.sku, 1)),
                                              headers=buyer).json
        placed.append((buyer, order["id"], order["payment"]["client_secret"].split("_secret_")[0]))
    barrier = threading.Barrier(2 * len(placed))
    answers: dict = {}

    def run(kind: str, buyer: dict, order_id: int, intent_id: str) -> None:
        client = racing_app.test_client()
        barrier.wait()
        path = (f"/api/v1/orders/{order_id}/cancel" if kind == "cancel"
                else f"/api/v1/payments/sandbox/{intent_id}/confirm")
        answers[kind, order_id] = client.post(path, json=None if kind == "cancel" else {"outcome": "succeeded"},
                                              headers=buyer).status_code

    threads = [threading.Thread(target=run, args=(kind, *order)) for order in placed for kind in ("cancel", "confirm")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    db.session.expire_all()
    for _, order_id, _ in placed:
        cancelled, paid = answers["cancel", order_id] == 200, answers["confirm", order_id] == 200
        assert cancelled != paid, (order_id, answers["cancel", order_id], answers["confirm", order_id])
        status = db.session.get(Order, order_id).status
        assert status == ("cancelled" if cancelled else "paid"), (order_id, status)
    assert not db.session.scalars(select(Payment).where(Payment.status == "returned")).all()


@pytest.mark.postgres
def test_two_payments_drawing_one_pickup_code_at_once_give_their_orders_different_codes(pg_app, monkeypatch):
    world = make_world()
    store, client = world["store"], pg_app.test_client()
    orders = []
    for _ in range(2):
        response = client.post("/api/v1/orders", json=pickup_body(store.id, (world["a"].sku, 1)),
                               headers=_consumer(pg_app))
        orders.append(db.session.get(Order, response.json["id"]))
    assert confirm(orders[0].id, amount_fen=orders[0].total_fen) == "paid"
    db.session.commit()
    draws = iter([424242, 424242, 135790])
    monkeypatch.setattr(checkout_service, "secrets", SimpleNamespace(randbelow=lambda _: next(draws)))
    other = db.engine.connect()  # another payment that drew 424242 for the first order, not yet committed
    other.begin()
    other.execute(update(Order).where(Order.id == orders[0].id).values(pickup_code="424242"))

    def pay_second() -> None:
        with pg_app.app_context():
            assert confirm(orders[1].id, amount_fen=orders[1].total_fen) == "paid"
            db.session.commit()

    payer = threading.Thread(target=pay_second)
    payer.start()
    time.sleep(1)  # the second payment drew the same code and checked it free: the first is not committed yet
    other.commit()
    other.close()
    payer.join(timeout=30)

    db.session.expire_all()
    codes = db.session.execute(select(Order.status, Order.pickup_code).order_by(Order.id)).all()
    assert [tuple(row) for row in codes] == [("paid", "424242"), ("paid", "135790")]
    clerk = UserFactory(role="store_staff", store_id=store.id)
    db.session.commit()
    token = client.post("/api/v1/auth/token", json={"username": clerk.username, "password": DEFAULT_PASSWORD}).json
    handed = client.post(f"/api/v1/stores/{store.id}/pickups", json={"pickup_code": "135790"},
                         headers={"Authorization": f"Bearer {token['access_token']}"})
    assert (handed.status_code, handed.json["id"]) == (200, orders[1].id)


@pytest.mark.postgres
def test_a_pickup_order_placed_while_its_store_is_being_closed_waits_and_is_refused(pg_app):
    """A buyer who read the store open just before an admin's deactivation committed places no pickup order there:
    checkout waits for the deactivation and finds no open store."""
    from orders.stores import service as stores

    world = make_world()
    buyer, admin = UserFactory(role="consumer"), UserFactory(role="admin")
    db.session.commit()
    store_id, sku, buyer_id, admin_id = world["store"].id, world["a"].sku, buyer.id, admin.id

    def deactivate():
        stores.update_store(store_id=store_id, actor=db.session.get(User, admin_id),
                            changes=stores.StoreChanges(active=False))

    def place():
        return checkout_service.place_order(actor=db.session.get(User, buyer_id), channel="pickup", store_id=store_id,
                                            lines=[{"sku": sku, "quantity": 1}]).id

    assert second_while_first_uncommitted(pg_app, deactivate, place) == "store_unavailable"
    assert db.session.scalar(select(func.count(Order.id))) == 0
