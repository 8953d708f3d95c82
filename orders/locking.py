"""One lock per order: every operation that changes an order's money or status takes it first.

On PostgreSQL the order row is locked `FOR UPDATE`; on SQLite (no row locks) the transaction takes
the database's write lock first. So a webhook, a refund, the expiry task and a pickup working on
the same order run one after the other, and each sees what the previous one committed.
"""
from __future__ import annotations

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import defaultload, joinedload, load_only

from orders.errors import OrderCode
from orders.models import Order, OrderLine
from shop.db import db
from shop.errors import NotFound

# Built once: a statement's construction costs about as much CPU as its execution.
_LOCKED_ORDER = (select(Order).where(Order.id == bindparam("order_id"))
                 .options(joinedload(Order.lines).joinedload(OrderLine.allocations))
                 .with_for_update(of=Order).execution_options(populate_existing=True))
# the columns a payment's processing reads (the worker's hot path: each column read costs CPU), the rest loaded if
# ever read
_LOCKED_FOR_PAYMENT = _LOCKED_ORDER.options(
    load_only(Order.channel, Order.status, Order.consumer_id, Order.store_id, Order.location_id, Order.donor_code,
              Order.total_fen, Order.expires_at, Order.paid_at, Order.sale_date, Order.pickup_code, Order.created_at),
    defaultload(Order.lines).load_only(OrderLine.order_id, OrderLine.product_id, OrderLine.supplier_id,
                                       OrderLine.quantity, OrderLine.unit_price_fen))


def lock_order(order_id: int, *, for_payment: bool = False) -> Order:
    """The order with its lines and their allocations, locked for the rest of the transaction and freshly read
    in one statement (`order_not_found` 404 if missing); `for_payment`: only the columns a payment's processing
    reads."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE orders SET id = id WHERE id = :id"), {"id": order_id})
    statement = _LOCKED_FOR_PAYMENT if for_payment else _LOCKED_ORDER
    order = db.session.scalars(statement, {"order_id": order_id}).unique().first()
    if order is None:
        raise NotFound(f"No order {order_id}.", code=OrderCode.ORDER_NOT_FOUND)
    return order
