"""Fixtures of the checkout tests: a stocked warehouse and store, consumers, and order bodies."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from orders.checkout.service import confirm_locked_payment
from orders.locking import lock_order
from shop.auth.models import User
from shop.db import db, utcnow
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.orders.factories import StoreFactory

ADDRESS = {"district_code": "440604", "detail": "测试路 1 号", "recipient": "测试收件人", "phone": "13800000000"}


@pytest.fixture
def world(app):
    """A warehouse with 10 units each of two products, a store with 5 units of the first."""
    return make_world()


def make_world(*, stock: int = 10) -> dict:
    """A warehouse with `stock` units of products A and B, and a store with 5 units of A (committed)."""
    warehouse = LocationFactory()
    store = StoreFactory()
    a, b = ProductFactory(price_fen=1250), ProductFactory(price_fen=800)
    make_lot(a, warehouse, quantity=stock)
    make_lot(b, warehouse, quantity=stock)
    make_lot(a, db.session.get(type(warehouse), store.location_id), quantity=5)
    db.session.commit()
    return {"warehouse": warehouse, "store": store, "a": a, "b": b}


def delivery_body(*lines: tuple[str, int], **overrides) -> dict:
    """A delivery order of `(sku, quantity)` lines to a 禅城区 address."""
    return {"channel": "delivery", "address": dict(ADDRESS),
            "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines], **overrides}


def pickup_body(store_id: int, *lines: tuple[str, int]) -> dict:
    """A pickup order of `(sku, quantity)` lines at a store."""
    return {"channel": "pickup", "store_id": store_id, "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines]}


def last_user() -> User:
    """The most recently created user (the one `login` just made)."""
    return db.session.scalar(select(User).order_by(User.id.desc()))


def confirm(order_id: int, *, amount_fen: int, intent_id: str = "pi_1", paid_at: datetime | None = None) -> str:
    """The payment worker's step for a confirmed payment of `amount_fen`: the order locked, then confirmed."""
    return confirm_locked_payment(order=lock_order(order_id), intent_id=intent_id, amount_fen=amount_fen,
                                  paid_at=paid_at or utcnow())
