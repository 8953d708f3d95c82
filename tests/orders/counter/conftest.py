"""Fixtures of the counter tests: a store with an open shift and stock in two lots, clerks, pickup orders."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from catalog.models import Location, Lot, Product
from orders.models import Allocation, Order, OrderLine, Shift, Store
from orders.refunds import service as refunds
from shop.auth.models import User
from shop.auth.security import issue_token
from shop.db import db, utcnow
from tests.catalog.factories import ProductFactory, make_lot
from tests.factories import UserFactory
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.orders.refunds.conftest import paid_order


@dataclass
class Counter:
    """A store whose shift opened 10 hours ago; rice (¥20) in an older lot of 5 and a newer lot of 8, tea (¥35)."""

    store: Store
    shift: Shift
    rice: Product
    tea: Product
    old_lot: Lot
    new_lot: Lot
    tea_lot: Lot


def make_counter() -> Counter:
    """Build the counter world in the current app's database and commit it."""
    store = StoreFactory()
    shift = ShiftFactory(store=store, opened_at=utcnow() - timedelta(hours=10))
    rice, tea = ProductFactory(price_fen=2000), ProductFactory(price_fen=3500)
    location = db.session.get(Location, store.location_id)
    old_lot = make_lot(rice, location, quantity=5, harvested_on=date(2026, 8, 1))
    new_lot = make_lot(rice, location, quantity=8, harvested_on=date(2026, 9, 1))
    tea_lot = make_lot(tea, location, quantity=4)
    db.session.commit()
    return Counter(store, shift, rice, tea, old_lot, new_lot, tea_lot)


def bearer(user: User) -> dict:
    """Authorization headers for `user` (without the SQLite `login` fixture, e.g. on PostgreSQL)."""
    token, _ = issue_token(user)
    return {"Authorization": f"Bearer {token}"}


def clerk(store: Store) -> dict:
    """Headers of a new clerk of `store` (committed)."""
    user = UserFactory(role="store_staff", store_id=store.id)
    db.session.commit()
    return bearer(user)


def paid_pickup_order(store: Store, product: Product, *, pickup_code: str, status: str = "paid") -> Order:
    """A consumer's pickup order at `store` (one unit of `product`, of its first lot: reserved while unpaid, else
    allocated), as checkout leaves it once paid."""
    consumer = UserFactory(role="consumer")
    order = Order(channel="pickup", status=status, consumer_id=consumer.id, store_id=store.id,
                  location_id=store.location_id, donor_code=store.district_code, total_fen=product.price_fen,
                  pickup_code=pickup_code, paid_at=utcnow() if status != "pending_payment" else None,
                  payment_method="stripe")
    order.lines.append(OrderLine(product_id=product.id, sku=product.sku, name=product.name,
                                 supplier_id=product.supplier_id, county_code=product.county_code, quantity=1,
                                 unit_price_fen=product.price_fen, platform_fee_bp=product.platform_fee_bp,
                                 store_commission_bp=product.store_commission_bp,
                                 household_premium_bp=product.household_premium_bp, dividend_bp=product.dividend_bp))
    lot_id = db.session.scalar(select(Lot.id).where(Lot.product_id == product.id).order_by(Lot.id))
    order.lines[0].allocations.append(Allocation(location_id=store.location_id, lot_id=lot_id, quantity=1,
                                                 state="reserved" if status == "pending_payment" else "allocated"))
    db.session.add(order)
    db.session.commit()
    return order


def partly_refunded_pickup_order(counter: Counter, *, pickup_code: str) -> Order:
    """A paid pickup order at the counter's store of 3 bags of rice and 1 tea (¥95.00), of which an admin refunded 1
    bag and the tea (back on the shelf) before collection, the refund settled: ¥40.00 of rice still to hand over."""
    order = paid_order(location_id=counter.store.location_id, lines=[(counter.rice, 3), (counter.tea, 1)],
                       channel="pickup", store=counter.store, payment_method="stripe", status="paid")
    order.pickup_code = pickup_code
    admin = UserFactory(role="admin")
    db.session.commit()
    refund = refunds.create_refund(actor=admin, order_id=order.id, reason="顾客不要了", lines=[
        refunds.RefundRequest(line_id=order.lines[0].id, quantity=1, resellable=True),
        refunds.RefundRequest(line_id=order.lines[1].id, quantity=1, resellable=True)])
    db.session.commit()
    refunds.settle_refund(refund_id=refund.id)
    db.session.commit()
    return order


@pytest.fixture
def counter(app) -> Counter:
    """The counter world on SQLite."""
    return make_counter()


@pytest.fixture
def staff(counter) -> dict:
    """Headers of a clerk of the counter's store."""
    return clerk(counter.store)


def sale_body(counter: Counter, **overrides) -> dict:
    """A cash sale of 3 bags of rice (¥60) with ¥100 tendered, in the counter's shift."""
    body = {"lines": [{"sku": counter.rice.sku, "quantity": 3}],
            "payment": {"method": "cash", "tendered_fen": 10000}, "shift_id": counter.shift.id}
    return {**body, **overrides}
