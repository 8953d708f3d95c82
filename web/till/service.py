"""What the till pages read beside the domain services: the clerk's store and open shift, the price list the
till sells from offline, and a shift's counter sales. Reads only; every change goes through the domain services."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select

from catalog.models import Lot, Product, Stock
from orders.checkout.service import get_order_for
from orders.counter.service import sold_here
from orders.models import Order, OrderTransition, Shift, Store
from orders.stores.service import get_store_for
from shop.auth.models import User
from shop.db import db
from shop.errors import NotFound

SHIFT_SALES_SHOWN = 100
YUAN = re.compile(r"^(\d{1,10})(?:[.．](\d{1,2}))?$")


def fen_from_yuan(text: str) -> int | None:
    """An amount typed in yuan (`120`, `120.5`, `120.50`) as fen; None if it is not one."""
    match = YUAN.match(text.strip().replace(",", "").replace("，", ""))
    if match is None:
        return None
    return int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))


def store_of(user: User) -> Store:
    """The clerk's own store (the till never takes the store from the URL or a form); 404 without one."""
    return get_store_for(actor=user, store_id=user.store_id or 0)


def current_shift(store: Store) -> Shift | None:
    """The store's open cash shift, if any."""
    return db.session.scalar(select(Shift).where(Shift.store_id == store.id, Shift.closed_at.is_(None)))


def price_list(store: Store) -> list[dict]:
    """The products the counter sells (`sold_here`) with units at the store: SKU, name, today's price, units free
    and the trace codes of the lots there (what the till needs to take sales while offline)."""
    rows = db.session.execute(
        sold_here(select(Product.sku, Product.name, Product.price_fen, Lot.trace_code,
                         Stock.on_hand - Stock.reserved))
        .join(Stock, Stock.product_id == Product.id).join(Lot, Lot.id == Stock.lot_id)
        .where(Stock.location_id == store.location_id, Stock.on_hand > Stock.reserved)
        .order_by(Product.sku, Lot.id)).all()
    products: dict[str, dict] = {}
    for sku, name, price_fen, trace_code, free in rows:
        product = products.setdefault(sku, {"sku": sku, "name": name, "price_fen": price_fen, "available": 0,
                                            "trace_codes": []})
        product["available"] += free
        product["trace_codes"].append(trace_code)
    return list(products.values())


def shift_sales(shift: Shift) -> list[Order]:
    """The shift's counter sales, newest first."""
    return list(db.session.scalars(select(Order).where(Order.shift_id == shift.id)
                                   .order_by(Order.id.desc()).limit(SHIFT_SALES_SHOWN)))


def handed_over_at(store: Store, pickup_code: str) -> tuple[int, datetime] | None:
    """The pickup order at `store` with `pickup_code` that was already handed over (the latest), and when."""
    row = db.session.execute(
        select(Order.id, OrderTransition.created_at).join(OrderTransition, OrderTransition.order_id == Order.id)
        .where(Order.store_id == store.id, Order.channel == "pickup", Order.pickup_code == pickup_code,
               Order.status == "fulfilled", OrderTransition.to_status == "fulfilled")
        .order_by(OrderTransition.id.desc()).limit(1)).first()
    return None if row is None else (row[0], row[1])


def handed_order(user: User, order_id: int) -> Order | None:
    """The clerk's store's pickup order `order_id` if it has been handed over (what the page shows after one)."""
    try:
        order = get_order_for(actor=user, order_id=order_id)
    except NotFound:
        return None
    return order if order.channel == "pickup" and order.status == "fulfilled" else None
