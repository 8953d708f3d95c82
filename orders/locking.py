"""One lock per order: every operation that changes an order's money or status takes it first.

On PostgreSQL the order row is locked `FOR UPDATE`; on SQLite (no row locks) the transaction takes
the database's write lock first. So a webhook, a refund, the expiry task and a pickup working on
the same order run one after the other, and each sees what the previous one committed.
"""
from __future__ import annotations

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import joinedload

from orders.errors import OrderCode
from orders.models import Order, OrderLine
from shop.db import db
from shop.errors import NotFound

# Built once: a statement's construction costs about as much CPU as its execution.
_LOCKED_ORDER = (select(Order).where(Order.id == bindparam("order_id"))
                 .options(joinedload(Order.lines).joinedload(OrderLine.allocations))
                 .with_for_update(of=Order).execution_options(populate_existing=True))


def lock_order(order_id: int) -> Order:
    """The order with its lines and their allocations, locked for the rest of the transaction and freshly read
    in one statement (`order_not_found` 404 if missing)."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE orders SET id = id WHERE id = :id"), {"id": order_id})
    order = db.session.scalars(_LOCKED_ORDER, {"order_id": order_id}).unique().first()
    if order is None:
        raise NotFound(f"No order {order_id}.", code=OrderCode.ORDER_NOT_FOUND)
    return order
