"""On PostgreSQL: a store closing while its clerk's counter sale or refund is in flight. Either the clerk's write
commits before the closure (which waits for it, and is dated after it) or it waits for the closure and is refused
(`store_inactive`): no sale or refund of a clerk is ever dated inside the store's closed period."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from orders.counter import service as counter_service
from orders.models import Order, Refund, Store, StoreClosure
from orders.refunds import service as refunds
from orders.stores import service as stores
from shop.auth.models import User
from shop.db import db
from tests.factories import UserFactory
from tests.orders.counter.conftest import make_counter
from tests.orders.refunds.conftest import paid_order
from tests.parallel import second_while_first_uncommitted

pytestmark = pytest.mark.postgres


def _closing(store_id: int, admin_id: int):
    """The admin's deactivation of the store, to be held uncommitted (or run second)."""
    def close() -> bool:
        return stores.update_store(store_id=store_id, actor=db.session.get(User, admin_id),
                                   changes=stores.StoreChanges(active=False)).active
    return close


def _world():
    """The counter world, a clerk of its store and an admin (ids)."""
    world = make_counter()
    clerk, admin = UserFactory(role="store_staff", store_id=world.store.id), UserFactory(role="admin")
    db.session.commit()
    return world, clerk.id, admin.id


def _sale(world, clerk_id: int):
    """A clerk's live cash sale of one bag of rice (the world's ids read here: its objects belong to the test's
    session, which another thread must not load through)."""
    store_id, shift_id, sku = world.store.id, world.shift.id, world.rice.sku

    def sell() -> int:
        return counter_service.sell(actor=db.session.get(User, clerk_id), store_id=store_id, shift_id=shift_id,
                                    lines=[{"sku": sku, "quantity": 1}],
                                    payment={"method": "cash", "tendered_fen": 2000}).id
    return sell


def test_a_counter_sale_made_while_its_store_closes_waits_for_the_closure_and_is_refused(pg_app):
    world, clerk_id, admin_id = _world()

    outcome = second_while_first_uncommitted(pg_app, _closing(world.store.id, admin_id), _sale(world, clerk_id))

    assert outcome == "store_inactive"
    db.session.expire_all()
    assert db.session.get(Store, world.store.id).active is False
    assert db.session.scalar(select(func.count(Order.id)).where(Order.store_id == world.store.id)) == 0


def test_a_store_closing_while_a_counter_sale_is_written_waits_for_it_and_closes_after_it(pg_app):
    world, clerk_id, admin_id = _world()

    outcome = second_while_first_uncommitted(pg_app, _sale(world, clerk_id), _closing(world.store.id, admin_id))

    assert outcome is False  # closed, once the sale had committed
    db.session.expire_all()
    [sale] = db.session.scalars(select(Order).where(Order.store_id == world.store.id)).all()
    closure = db.session.scalar(select(StoreClosure).where(StoreClosure.store_id == world.store.id))
    assert sale.paid_at < closure.closed_at
    assert stores.closed_during(store_id=world.store.id, moment=sale.paid_at) is None


def test_a_counter_refund_made_while_its_store_closes_waits_for_the_closure_and_is_refused(pg_app):
    world, clerk_id, admin_id = _world()
    order = paid_order(location_id=world.store.location_id, lines=[(world.rice, 2)], store=world.store,
                       shift=world.shift)
    db.session.commit()
    order_id, line_id = order.id, order.lines[0].id

    def refund() -> int:
        return refunds.create_refund(actor=db.session.get(User, clerk_id), order_id=order_id, reason="顾客退货",
                                     lines=[refunds.RefundRequest(line_id=line_id, quantity=1)]).id

    outcome = second_while_first_uncommitted(pg_app, _closing(world.store.id, admin_id), refund)

    assert outcome == "store_inactive"
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Refund.id)).where(Refund.order_id == order_id)) == 0
