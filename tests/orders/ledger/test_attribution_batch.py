"""Attribution in batches: events delivered together post exactly what they post one by one, and a batch costs
about the statements of a single event (what makes a backlog drain fast)."""
from __future__ import annotations

import sys
from collections import Counter
from datetime import date

import pytest
from sqlalchemy import func, select

from catalog.models import Location
from orders import outbox
from orders.ledger.models import LedgerAccount, LedgerTransaction, Posting
from orders.ledger.verify import verify_ledger
from orders.models import OrderLine, OutboxEvent
from orders.refunds.service import RefundRequest, create_refund, settle_refund
from shop.db import db, utcnow
from tests.catalog.factories import make_lot
from tests.factories import UserFactory
from tests.orders.factories import ShiftFactory, flushed
from tests.orders.ledger.test_attribution import make_world
from tests.orders.refunds.conftest import paid_order
from tests.statements import statements


def sell(world, *, channel: str, payment_method: str, quantities: list[int]) -> list[int]:
    """A paid order of the world's product, one line per quantity (lots FIFO), with its line_paid events."""
    store = world["store"]
    order = paid_order(location_id=store.location_id, channel=channel, store=store,
                       shift=ShiftFactory(store=store) if channel == "counter" else None,
                       payment_method=payment_method, lines=[(world["product"], q) for q in quantities], status="paid")
    lines = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.id)).all()
    return [flushed(outbox.record_line_paid(order=order, line=line, occurred_at=order.paid_at)).id for line in lines]


def trade(world) -> list[int]:
    """Three orders (pickup paid online, counter cash, counter card) across both lots, then a refund of two units
    of the first: the world's outbox event ids, in order (committed, not delivered)."""
    events = sell(world, channel="pickup", payment_method="stripe", quantities=[2, 1])
    events += sell(world, channel="counter", payment_method="cash", quantities=[1])
    events += sell(world, channel="counter", payment_method="card", quantities=[3])
    db.session.commit()
    first_line = db.session.get(OutboxEvent, events[0]).order_line_id
    refund = create_refund(actor=UserFactory(role="admin"), order_id=db.session.get(OutboxEvent, events[0]).order_id,
                           reason="退货", lines=[RefundRequest(line_id=first_line, quantity=2)])
    db.session.commit()  # a provider refund commits pending, then the provider is asked (the sandbox here)
    settle_refund(refund_id=refund.id)
    db.session.commit()
    return events + db.session.scalars(select(OutboxEvent.id).where(OutboxEvent.refund_id == refund.id)
                                       .order_by(OutboxEvent.id)).all()


def ledger_of(world, event_ids: list[int]) -> list[tuple]:
    """Per event in order: its transaction's kind and postings, accounts named by their role in the world."""
    roles = {f"supplier:{world['supplier'].id}": "supplier", f"store:{world['store'].id}": "store",
             f"store_cash:{world['store'].id}": "store cash"}
    roles.update({f"household:{h.id}@supplier:{world['supplier'].id}": f"h{n}" for n, h in world["h"].items()})
    result = []
    for event_id in event_ids:
        kind, transaction_id = db.session.execute(select(LedgerTransaction.kind, LedgerTransaction.id)
                                                  .where(LedgerTransaction.outbox_event_id == event_id)).one()
        postings = db.session.execute(select(LedgerAccount.code, Posting.component, Posting.amount_fen)
                                      .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
                                      .where(Posting.transaction_id == transaction_id))
        result.append((kind, sorted((roles.get(code, code), component, fen) for code, component, fen in postings)))
    return result


def test_events_delivered_in_one_batch_post_what_they_post_one_by_one(app, monkeypatch):
    monkeypatch.setattr(outbox, "wake_drain", lambda: None)  # delivered below, by hand
    today = outbox.sale_date_of(utcnow())
    together, alone = make_world(today=today, prefix="A"), make_world(today=today, prefix="B")
    together_events, alone_events = trade(together), trade(alone)

    assert outbox.deliver_all(together_events) == len(together_events)
    for event_id in alone_events:
        assert outbox.deliver_all([event_id]) == 1
    db.session.commit()

    assert ledger_of(together, together_events) == ledger_of(alone, alone_events)
    assert [kind for kind, _postings in ledger_of(together, together_events)] == ["line_paid"] * 4 + ["line_refunded"]
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 10
    assert verify_ledger()["ok"] is True
    again = outbox.deliver_all(together_events)
    assert again == 0 and db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 10


def test_a_batch_whose_event_fails_delivers_the_others(app, monkeypatch):
    monkeypatch.setattr(outbox, "wake_drain", lambda: None)
    world = make_world(today=outbox.sale_date_of(utcnow()))
    events = sell(world, channel="counter", payment_method="cash", quantities=[1])
    events += sell(world, channel="counter", payment_method="cash", quantities=[1])
    db.session.commit()
    broken = db.session.get(OutboxEvent, events[0])
    broken.payload = {**broken.payload, "allocations": [{"allocation_id": 10**6, "quantity": 1}]}  # names no row
    db.session.commit()

    assert outbox.deliver_all(events) == 1
    db.session.commit()

    assert db.session.scalars(select(LedgerTransaction.outbox_event_id)).all() == [events[1]]
    assert db.session.get(OutboxEvent, events[0]).delivered_at is None  # left for the sweeper
    assert verify_ledger()["ok"] is True


ONE_EVENT_BUDGET = 18  # deliver (lock, mark), the order's events locked and checked, orders, allocations with
# lines and lots, contributions, dividend links, accounts, ids, lots (lock, update), impact (read, update), the
# link (transactions, head, update, head) — and the COPY of its rows, which runs outside these counts


@pytest.mark.postgres
def test_one_event_and_a_batch_of_forty_cost_about_the_same_statements(pg_app, monkeypatch):
    monkeypatch.setattr(outbox, "wake_drain", lambda: None)
    world = make_world(today=outbox.sale_date_of(utcnow()))
    make_lot(world["product"], db.session.get(Location, world["store"].location_id), quantity=50,
             harvested_on=date(2026, 9, 3))
    events = [event_id for _ in range(42) for event_id in sell(world, channel="pickup", payment_method="stripe",
                                                               quantities=[1])]
    db.session.commit()
    outbox.deliver_all([events.pop(0)])  # the accounts exist from now on, as they do in a running shop
    db.session.commit()

    with statements() as one:
        outbox.deliver_all([events.pop(0)])
        db.session.commit()
    with statements() as forty:
        assert outbox.deliver_all(events) == 40
        db.session.commit()

    assert len(one) <= ONE_EVENT_BUDGET, one
    assert len(forty) <= len(one) + 2, forty  # a savepoint around the batch
    assert Counter(db.session.scalars(select(LedgerTransaction.kind))) == {"line_paid": 42}
    assert verify_ledger()["ok"] is True


def test_the_drain_delivers_the_oldest_batch_and_wakes_itself_while_more_are_left(app, monkeypatch):
    from orders.tasks import drain_outbox

    wakes = []
    monkeypatch.setattr(outbox, "wake_drain", lambda: wakes.append("drain"))
    monkeypatch.setattr(outbox, "DELIVERY_BATCH", 3)
    world = make_world(today=outbox.sale_date_of(utcnow()))
    events = sell(world, channel="counter", payment_method="cash", quantities=[1, 1, 1, 1, 1])
    db.session.commit()
    wakes.clear()  # the sale's own wake-up

    assert drain_outbox() == 3
    assert wakes == ["drain"]  # a full batch: there may be more
    assert db.session.scalars(select(LedgerTransaction.outbox_event_id).order_by(LedgerTransaction.seq)).all() \
        == events[:3]
    assert drain_outbox() == 2
    assert wakes == ["drain"]  # the rest fitted: no further run
    assert drain_outbox() == 0
    assert verify_ledger()["ok"] is True


def test_the_drain_does_not_wake_itself_on_a_full_batch_of_which_it_delivered_nothing(app, monkeypatch):
    """A full batch of events that all fail (a consumer's bug) woke the drain again at once, which took the same batch,
    failed it again and woke again: a loop without end, logging each failure (in the embedded default, each run nested
    in the last); now they are left to the sweeper's retries."""
    from orders.tasks import drain_outbox

    wakes = []
    monkeypatch.setattr(outbox, "wake_drain", lambda: wakes.append("drain"))
    monkeypatch.setattr(outbox, "DELIVERY_BATCH", 2)
    world = make_world(today=outbox.sale_date_of(utcnow()))
    events = sell(world, channel="counter", payment_method="cash", quantities=[1, 1, 1])
    db.session.commit()
    wakes.clear()  # the sale's own wake-up
    for event_id in events[:2]:
        broken = db.session.get(OutboxEvent, event_id)
        broken.payload = {**broken.payload, "allocations": [{"allocation_id": 10**6, "quantity": 1}]}  # names no row
    db.session.commit()

    assert drain_outbox() == 0
    db.session.commit()

    assert wakes == []
    assert db.session.scalars(select(LedgerTransaction.outbox_event_id)).all() == []


@pytest.mark.postgres
def test_the_drain_skips_the_events_another_worker_holds(pg_app, monkeypatch):
    from orders.tasks import drain_outbox

    monkeypatch.setattr(outbox, "wake_drain", lambda: None)
    world = make_world(today=outbox.sale_date_of(utcnow()))
    held, *others = [sell(world, channel="counter", payment_method="cash", quantities=[1])[0] for _ in range(3)]
    db.session.commit()
    with db.engine.connect() as other_worker:
        other_worker.execute(select(OutboxEvent.id).where(OutboxEvent.id == held).with_for_update())

        assert drain_outbox() == 2  # neither waits for nor delivers the held event

        other_worker.rollback()
    assert db.session.scalars(select(OutboxEvent.id).where(OutboxEvent.delivered_at.is_(None))).all() == [held]


def stack_depth() -> int:
    """How many frames the calling code runs under."""
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def test_the_embedded_drain_delivers_a_backlog_batch_after_batch_at_one_depth(app, monkeypatch):
    """Each embedded drain ran the next from its own after-commit hook, nested in it, so a backlog of tens of thousands
    of events reached the recursion limit; now one wake-up delivers batch after batch in a loop, each its own
    transaction."""
    depths = []
    outbox.register_consumer(app, "depth", lambda events: depths.append(stack_depth()))
    monkeypatch.setattr(outbox, "DELIVERY_BATCH", 1)
    world = make_world(today=outbox.sale_date_of(utcnow()))
    with monkeypatch.context() as backlog:
        backlog.setattr(outbox, "wake_drain", lambda: None)  # the events wait, as after an outage
        events = sell(world, channel="counter", payment_method="cash", quantities=[1] * 5)
        db.session.commit()

    outbox.wake_drain()  # the next commit's wake-up

    assert len(depths) == 5 and len(set(depths)) == 1, depths  # five batches, none nested in another
    assert db.session.scalars(select(LedgerTransaction.outbox_event_id).order_by(LedgerTransaction.seq)).all() == events
    assert verify_ledger()["ok"] is True
