"""The orders demo world: a stocked store with a clerk in each Foshan district and the demo consumer's
orders paid through the sandbox (delivery, pickup, counter), seeded idempotently."""
from __future__ import annotations

from sqlalchemy import func, select

from catalog import inventory
from orders.models import Order, OutboxEvent, PaymentEvent, Shift, StockTransfer, Store
from shop.auth.service import find_user
from shop.db import db

FOSHAN = {"440604", "440605", "440606", "440607", "440608"}


def test_seed_demo_opens_a_stocked_store_per_foshan_district_once(runner, client):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    db.session.expire_all()
    stores = db.session.scalars(select(Store)).all()
    transfers = db.session.scalar(select(func.count()).select_from(StockTransfer))

    assert {store.district_code for store in stores} == FOSHAN and len(stores) == 5
    assert first.output.count("clerk staff-") == 5 and first.output.count("password: ") >= 5
    for store in stores:
        stock = inventory.location_stock(location_id=store.location_id, limit=100, cursor=None)["items"]
        assert sum(row.available for row in stock) > 0, store.name
    assert db.session.scalar(select(func.count()).select_from(StockTransfer)
                             .where(StockTransfer.status != "received")) == 0

    # The co-ops' uploaded lots reach the Foshan warehouse only after the seed commits (eager import
    # tasks); the seeder's after-commit pass sends them too, so every store holds all 15 demo products.
    assert "more lots received by the stores after the co-op imports" in first.output
    for store in stores:
        rows = inventory.location_stock(location_id=store.location_id, limit=100, cursor=None)["items"]
        assert len({row.product_id for row in rows}) == 15, store.name

    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert "password: " not in second.output.split("orders: ", 1)[1]
    assert "orders: 0 lots received" in second.output
    assert len(db.session.scalars(select(Store)).all()) == 5
    assert db.session.scalar(select(func.count()).select_from(StockTransfer)) == transfers

    token = client.post("/api/v1/auth/token", json={"username": "staff-shunde", "password": _password(first.output,
                                                                                                      "staff-shunde")})
    assert token.status_code == 200
    shunde = next(store for store in stores if store.district_code == "440606")
    mine = client.get("/api/v1/stores", headers={"Authorization": f"Bearer {token.json['access_token']}"}).json
    assert [item["id"] for item in mine["items"]] == [shunde.id]


def test_with_a_broker_and_no_worker_yet_the_seed_still_stocks_every_store_with_the_co_op_lots(redis_app):
    result = redis_app.test_cli_runner().invoke(args=["seed-demo"])

    assert result.exit_code == 0, result.output
    assert "more lots received by the stores after the co-op imports" in result.output
    for store in db.session.scalars(select(Store)).all():
        rows = inventory.location_stock(location_id=store.location_id, limit=100, cursor=None)["items"]
        assert len({row.product_id for row in rows}) == 15, store.name


def _password(output: str, username: str) -> str:
    """The password the demo printed for `username`."""
    line = next(line for line in output.splitlines() if f"clerk {username} password: " in line)
    return line.split("password: ", 1)[1]


def _demo_orders() -> list[tuple[int, str, str, str | None, int | None]]:
    """Every order with its channel, status, pickup code and buyer, by id."""
    db.session.expire_all()
    return [(o.id, o.channel, o.status, o.pickup_code, o.consumer_id)
            for o in db.session.scalars(select(Order).order_by(Order.id))]


def test_seed_demo_pays_a_delivery_two_pickups_and_a_counter_sale_through_the_sandbox_once(runner):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    orders = _demo_orders()
    consumer = find_user(username="13800000000")
    shunde = db.session.scalar(select(Store).where(Store.district_code == "440606"))

    assert [(channel, status) for _, channel, status, _, _ in orders] == [
        ("delivery", "paid"), ("pickup", "fulfilled"), ("pickup", "paid"), ("counter", "fulfilled")]
    assert all(buyer == consumer.id for *_, buyer in orders[:3]) and orders[3][4] is None
    assert {o.store_id for o in db.session.scalars(select(Order).where(Order.channel != "delivery"))} == {shunde.id}
    # Paid the way the sandbox confirm route pays: one signed succeeded event per online order, processed.
    events = db.session.scalars(select(PaymentEvent)).all()
    assert sorted((e.type, e.status) for e in events) == [("payment_intent.succeeded", "processed")] * 3
    # Every paid line wrote its outbox row (the ledger's source), the counter sale too.
    paid_lines = db.session.scalars(select(OutboxEvent.order_id).where(OutboxEvent.kind == "line_paid")).all()
    assert sorted(paid_lines) == [order_id for order_id, *_ in orders]
    assert db.session.scalar(select(func.count()).select_from(Shift).where(Shift.store_id == shunde.id,
                                                                            Shift.closed_at.is_(None))) == 1
    waiting_id, waiting_code = orders[2][0], orders[2][3]
    assert len(waiting_code) == 6 and orders[1][3] is not None
    for order_id, channel, status, _, _ in orders:
        assert f"orders: demo order {order_id} {channel} {status}" in first.output
    assert f"orders: demo order {waiting_id} pickup paid, pickup code {waiting_code}" in first.output
    assert "not made now" not in first.output

    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert _demo_orders() == orders
    assert db.session.scalar(select(func.count()).select_from(PaymentEvent)) == 3
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == len(paid_lines)
    assert db.session.scalar(select(func.count()).select_from(Shift)) == 1
    assert f"orders: demo order {waiting_id} pickup paid, pickup code {waiting_code}" in second.output
