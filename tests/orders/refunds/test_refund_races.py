"""Two refunds of the same units at once (3 of 5, twice): the order lock lets one through; the other then sees
only 2 units still sold (409)."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from catalog.models import Location
from orders.models import OrderLine, OutboxEvent, Refund
from orders.refunds import service
from orders.stores.service import close_shift, start_shift
from shop.auth.models import User
from shop.db import db, utcnow
from tests.catalog.factories import ProductFactory, make_lot
from tests.catalog.test_concurrency import race
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.orders.refunds.conftest import paid_order, user_with_token
from tests.parallel import post_together, second_while_first_uncommitted


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


def test_cash_refunds_at_once_never_take_more_than_the_till_holds(racing_app):
    store = StoreFactory()
    earlier = ShiftFactory(store=store, closed_at=utcnow())
    product = ProductFactory(price_fen=2000)
    make_lot(product, db.session.get(Location, store.location_id), quantity=10)
    admin, _ = user_with_token("admin")
    orders = [paid_order(location_id=store.location_id, store=store, shift=earlier, lines=[(product, 1)])
              for _ in range(2)]
    ShiftFactory(store=store, float_fen=3000)  # room for one ¥20 refund, not two
    db.session.commit()
    ids = (admin.id, [order.id for order in orders],
           [db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order.id)) for order in orders])

    outcomes = race(racing_app, 2, lambda i: service.create_refund(
        actor=db.session.get(User, ids[0]), order_id=ids[1][i], reason="two clerks, one drawer",
        lines=[service.RefundRequest(line_id=ids[2][i], quantity=1, resellable=True)]))

    assert outcomes == Counter({"ok": 1, "till_cash_short": 1})
    db.session.expire_all()
    assert db.session.scalar(select(func.sum(Refund.amount_fen))) == 2000


def _sold_at_a_store_with_two_clerks():
    """A store's paid order of 3 units at ¥20 within an open shift, and the tokens' headers of two of its clerks."""
    store = StoreFactory()
    shift = ShiftFactory(store=store)
    product = ProductFactory(price_fen=2000)
    make_lot(product, db.session.get(Location, store.location_id), quantity=10)
    order = paid_order(location_id=store.location_id, store=store, shift=shift, lines=[(product, 3)])
    clerks = [user_with_token("store_staff", store_id=store.id)[1] for _ in range(2)]
    db.session.commit()
    return order, clerks


def test_a_keyed_cash_refund_resent_at_once_by_two_clerks_of_the_store_is_made_once(racing_app):
    """The till's queue, resent after a hand-over while the first clerk's resend is still going: one key of the store,
    one refund, both clerks told of it."""
    order, clerks = _sold_at_a_store_with_two_clerks()
    body = {"lines": [{"line_id": db.session.scalar(select(OrderLine.id)), "quantity": 1, "resellable": True}],
            "reason": "顾客退货"}

    answers = post_together(racing_app, f"/api/v1/orders/{order.id}/refunds",
                            [({**clerk, "Idempotency-Key": "till-refund-race"}, body) for clerk in clerks])

    assert [status for status, _ in answers] == [201, 201], answers
    assert answers[0][1]["id"] == answers[1][1]["id"]
    db.session.expire_all()
    assert db.session.scalars(select(Refund.amount_fen)).all() == [2000]


def test_one_key_sent_at_once_by_two_clerks_for_other_units_is_one_refund_and_one_key_reused(racing_app):
    order, clerks = _sold_at_a_store_with_two_clerks()
    line_id = db.session.scalar(select(OrderLine.id))

    answers = post_together(racing_app, f"/api/v1/orders/{order.id}/refunds", [
        ({**clerk, "Idempotency-Key": "till-refund-two-bodies"},
         {"lines": [{"line_id": line_id, "quantity": units, "resellable": True}], "reason": "顾客退货"})
        for clerk, units in zip(clerks, (1, 2), strict=True)])

    assert sorted(status for status, _ in answers) == [201, 409], answers
    assert [body["error"]["code"] for status, body in answers if status == 409] == ["idempotency_key_reused"]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1


@pytest.mark.postgres
def test_a_clerks_refund_of_a_sale_whose_shift_closes_meanwhile_is_refused_not_paid_from_the_next_shift(pg_app):
    """A clerk refunds only a sale of a shift still open. The shift is judged under the till's hold: a close (and the
    next shift opened) under way makes the refund wait, then see the sale's shift closed: 403 refund_outside_shift,
    never a refund of the closed shift's sale paid out of the new shift's drawer."""
    store = StoreFactory()
    shift = ShiftFactory(store=store, float_fen=10_000)
    product = ProductFactory(price_fen=1500)
    make_lot(product, db.session.get(Location, store.location_id), quantity=10)
    clerk, _ = user_with_token("store_staff", store_id=store.id)
    order = paid_order(location_id=store.location_id, store=store, shift=shift, lines=[(product, 1)],
                       payment_method="cash")
    db.session.commit()
    ids = (clerk.id, store.id, shift.id, order.id, db.session.scalar(select(OrderLine.id)))

    def close_and_open_the_next():
        clerk_now = db.session.get(User, ids[0])
        close_shift(actor=clerk_now, shift_id=ids[2], counted_cash_fen=11_500)
        start_shift(actor=clerk_now, store_id=ids[1], float_fen=10_000)

    def refund():
        return service.create_refund(actor=db.session.get(User, ids[0]), order_id=ids[3], reason="顾客退货",
                                     lines=[service.RefundRequest(line_id=ids[4], quantity=1, resellable=True)])

    assert second_while_first_uncommitted(pg_app, close_and_open_the_next, refund) == "refund_outside_shift"
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
