"""Two refunds of the same units at once (3 of 5, twice): the order lock lets one through; the other then sees
only 2 units still sold (409)."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from catalog.models import Location
from orders.models import OrderLine, OutboxEvent, Refund
from orders.refunds import service
from shop.auth.models import User
from shop.db import db
from tests.catalog.factories import ProductFactory, make_lot
from tests.catalog.test_concurrency import race
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.orders.refunds.conftest import paid_order, user_with_token


def test_a_double_refund_of_the_same_units_refunds_them_once(racing_app):
    store = StoreFactory()
    shift = ShiftFactory(store=store)
    product = ProductFactory()
    make_lot(product, db.session.get(Location, store.location_id), quantity=10)
    admin, _ = user_with_token("admin")
    order = paid_order(location_id=store.location_id, store=store, shift=shift, lines=[(product, 5)])
    db.session.commit()
    ids = (admin.id, order.id, db.session.scalar(select(OrderLine.id)))

    outcomes = race(racing_app, 2, lambda i: service.create_refund(
        actor=db.session.get(User, ids[0]), order_id=ids[1], reason="double click",
        lines=[service.RefundRequest(line_id=ids[2], quantity=3, resellable=True)]))

    assert outcomes == Counter({"ok": 1, "refund_exceeds_sold": 1})
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    assert db.session.scalar(select(OrderLine.refunded_quantity)) == 3
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == 1
