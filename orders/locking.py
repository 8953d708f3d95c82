"""One lock per order: every operation that changes an order's money or status takes it first.

On PostgreSQL the order row is locked `FOR UPDATE`; on SQLite (no row locks) the transaction takes
the database's write lock first. So a webhook, a refund, the expiry task and a pickup working on
the same order run one after the other, and each sees what the previous one committed.
"""
from __future__ import annotations

from sqlalchemy import select, text

from orders.models import Order
from shop.db import db
from shop.errors import NotFound


def lock_order(order_id: int) -> Order:
    """The order, locked for the rest of the transaction and freshly read (`order_not_found` 404 if missing)."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE orders SET id = id WHERE id = :id"), {"id": order_id})
    order = db.session.scalar(select(Order).where(Order.id == order_id).with_for_update()
                              .execution_options(populate_existing=True))
    if order is None:
        raise NotFound(f"No order {order_id}.", code="order_not_found")
    return order
