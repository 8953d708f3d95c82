"""Reservation expiry on a frozen clock, and confirmed payments: allocation, outbox, late and wrong payments."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from catalog.models import Stock
from orders.checkout.service import expire_reservations
from orders.models import Allocation, Order, OrderTransition, OutboxEvent
from shop.db import db
from tests.catalog.factories import make_lot
from tests.orders.checkout.conftest import confirm, delivery_body, pickup_body

PAID_AT = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 2026-03-02 01:30 in Shanghai


def _stock(location_id: int) -> tuple[int, int]:
    """(on hand, reserved) summed over a location."""
    db.session.expire_all()
    return tuple(db.session.execute(select(func.sum(Stock.on_hand), func.sum(Stock.reserved))
                                    .where(Stock.location_id == location_id)).one())


def _order(client, headers, body) -> Order:
    """Place an order through the API and load it."""
    response = client.post("/api/v1/orders", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return db.session.get(Order, response.json["id"])


def _expire(order: Order, *, seconds: int = 1) -> int:
    """Run the expiry with the clock `seconds` after the order's reservation ends."""
    expired = expire_reservations(now=order.expires_at + timedelta(seconds=seconds))
    db.session.commit()
    return expired


def test_reservations_expire_on_a_frozen_clock(client, login, world, app):
    headers = login("consumer")
    order = _order(client, headers, delivery_body((world["a"].sku, 4)))
    assert order.expires_at - order.created_at == timedelta(seconds=app.config["ORDER_RESERVATION_SECONDS"])

    assert expire_reservations(now=order.expires_at - timedelta(seconds=1)) == 0
    assert _expire(order) == 1
    db.session.refresh(order)
    assert order.status == "expired"
    assert _stock(world["warehouse"].id) == (20, 0)
    last = db.session.scalar(select(OrderTransition).order_by(OrderTransition.id.desc()))
    assert (last.from_status, last.to_status, last.actor_id) == ("pending_payment", "expired", None)
    assert _expire(order, seconds=600) == 0  # idempotent
    assert client.get(f"/api/v1/orders/{order.id}", headers=headers).json["status"] == "expired"


def test_expiry_is_on_the_beat_schedule(app):
    assert app.config["CELERY_BEAT_SCHEDULE"]["orders.expire_reservations"] == {
        "task": "orders.expire_reservations", "schedule": 60.0}
    assert "orders.expire_reservations" in app.extensions["celery"].tasks


def test_the_expiry_task_leaves_fresh_orders_alone(client, login, world, app):
    order = _order(client, login("consumer"), delivery_body((world["a"].sku, 1)))
    assert app.extensions["celery"].tasks["orders.expire_reservations"].apply().get() == 0
    db.session.refresh(order)
    assert order.status == "pending_payment"


def test_the_expiry_task_releases_every_reservation_past_its_end_not_one_batch_a_minute(client, login, world, app):
    """The task expired one batch (200) a run, once a minute: after a burst of abandoned checkouts, stock stayed
    reserved by orders long past their end, for as many minutes as there were batches."""
    from orders.checkout.service import EXPIRY_BATCH, place_order
    from tests.factories import UserFactory

    make_lot(world["a"], world["warehouse"], quantity=EXPIRY_BATCH + 1)
    buyers = [UserFactory(role="consumer") for _ in range(EXPIRY_BATCH // 5 + 1)]  # five unpaid orders each at most
    db.session.commit()
    body = delivery_body((world["a"].sku, 1))
    ids = [place_order(actor=buyers[i // 5], channel="delivery", lines=body["lines"], address=body["address"]).id
           for i in range(EXPIRY_BATCH + 1)]
    db.session.execute(Order.__table__.update().where(Order.id.in_(ids)).values(
        expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    db.session.commit()

    assert app.extensions["celery"].tasks["orders.expire_reservations"].apply().get() == EXPIRY_BATCH + 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Order).where(
        Order.id.in_(ids), Order.status == "pending_payment")) == 0
    assert _stock(world["warehouse"].id)[1] == 0


def test_a_confirmed_payment_allocates_the_reservation_and_writes_the_outbox(client, login, world):
    order = _order(client, login("consumer"), delivery_body((world["a"].sku, 3), (world["b"].sku, 2)))

    assert confirm(order.id, amount_fen=order.total_fen, paid_at=PAID_AT) == "paid"
    db.session.commit()

    db.session.refresh(order)
    assert (order.status, order.paid_at, order.sale_date) == ("paid", PAID_AT, date(2026, 3, 2))
    assert {a.state for a in db.session.scalars(select(Allocation))} == {"allocated"}
    assert _stock(world["warehouse"].id) == (15, 0)
    events = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    assert [(e.kind, e.order_line_id, e.amount_fen) for e in events] == [
        ("line_paid", order.lines[0].id, 3 * 1250), ("line_paid", order.lines[1].id, 2 * 800)]
    assert sum(p["quantity"] for p in events[0].payload["allocations"]) == 3
    assert order.pickup_code is None

    assert confirm(order.id, amount_fen=order.total_fen,
                           paid_at=PAID_AT) == "already_paid"
    db.session.commit()
    assert db.session.scalar(select(func.count(OutboxEvent.id))) == 2
    assert _stock(world["warehouse"].id) == (15, 0)


def test_a_paid_pickup_order_gets_a_code(client, login, world):
    order = _order(client, login("consumer"), pickup_body(world["store"].id, (world["a"].sku, 2)))
    assert confirm(order.id, amount_fen=order.total_fen, paid_at=PAID_AT) == "paid"
    db.session.commit()
    db.session.refresh(order)
    assert len(order.pickup_code) == 6 and order.pickup_code.isdigit()
    assert _stock(world["store"].location_id) == (3, 0)


def test_a_wrong_amount_is_not_allocated(client, login, world):
    order = _order(client, login("consumer"), delivery_body((world["a"].sku, 1)))
    assert confirm(order.id, amount_fen=order.total_fen - 1,
                           paid_at=PAID_AT) == "unallocatable"
    db.session.commit()
    db.session.refresh(order)
    assert order.status == "pending_payment"
    assert _stock(world["warehouse"].id) == (20, 1)
    assert db.session.scalar(select(func.count(OutboxEvent.id))) == 0


def test_a_late_payment_is_allocated_afresh_when_stock_allows(client, login, world):
    order = _order(client, login("consumer"), delivery_body((world["a"].sku, 4)))
    _expire(order)
    newer = make_lot(world["a"], world["warehouse"], quantity=5, harvested_on=date(2026, 1, 1))
    db.session.commit()

    assert confirm(order.id, amount_fen=order.total_fen, paid_at=PAID_AT) == "paid"
    db.session.commit()
    db.session.refresh(order)
    assert order.status == "paid"
    allocated = db.session.scalars(select(Allocation).where(Allocation.state == "allocated")).all()
    assert [(a.lot_id, a.quantity) for a in allocated] == [(newer.id, 4)]  # FIFO now: the earlier harvest
    assert _stock(world["warehouse"].id) == (21, 0)
    assert [t.to_status for t in db.session.scalars(select(OrderTransition).order_by(OrderTransition.id))] == [
        "pending_payment", "expired", "paid"]


def test_a_late_payment_without_stock_changes_nothing(client, login, world):
    headers = login("consumer")
    order = _order(client, headers, delivery_body((world["a"].sku, 4)))
    _expire(order)
    _order(client, headers, delivery_body((world["a"].sku, 8)))

    assert confirm(order.id, amount_fen=order.total_fen,
                           paid_at=PAID_AT) == "unallocatable"
    db.session.commit()
    db.session.refresh(order)
    assert order.status == "expired"
    assert _stock(world["warehouse"].id) == (20, 8)
    assert db.session.scalar(select(func.count(OutboxEvent.id))) == 0


def test_a_late_payment_for_a_pickup_at_a_store_closed_since_is_not_allocated_there(client, login, world):
    """The expired order no longer holds the store open; once it is closed, a late payment would have the buyer
    collect at a closed store: it is not allocated (the caller refunds it), and the store's stock stays put."""
    order = _order(client, login("consumer"), pickup_body(world["store"].id, (world["a"].sku, 2)))
    _expire(order)
    closed = client.patch(f"/api/v1/stores/{world['store'].id}", json={"active": False}, headers=login("admin"))
    assert closed.status_code == 200, closed.json

    assert confirm(order.id, amount_fen=order.total_fen, paid_at=PAID_AT) == "unallocatable"
    db.session.commit()
    db.session.refresh(order)
    assert (order.status, order.pickup_code) == ("expired", None)
    assert _stock(world["store"].location_id) == (5, 0)
    assert db.session.scalar(select(func.count(OutboxEvent.id))) == 0


def test_a_payment_for_a_cancelled_order_is_not_allocated(client, login, world):
    headers = login("consumer")
    order = _order(client, headers, delivery_body((world["a"].sku, 1)))
    client.post(f"/api/v1/orders/{order.id}/cancel", headers=headers)
    assert confirm(order.id, amount_fen=order.total_fen,
                           paid_at=PAID_AT) == "unallocatable"
    db.session.commit()
    assert _stock(world["warehouse"].id) == (20, 0)
