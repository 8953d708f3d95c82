"""The outbox of money events: written in the same transaction as the change it records, delivered after.

`record_event` adds a row (`line_paid`, `line_refunded`, `refund_remainder`, `payment_unallocated`,
`payment_returned`, DESIGN.md, and `processor_fee`: what the payment processor kept); once the transaction
commits, it wakes the drain (`orders.drain_outbox`, `shop.wakeups`: one queued run however many transactions
commit meanwhile), which delivers the oldest
undelivered events, up to `DELIVERY_BATCH` in one transaction, and wakes itself again while more are
left. Delivery runs the registered consumers on the whole batch at once (the ledger registers itself;
they must apply each event id at most once) and marks the rows delivered; if a batch fails, its events
are delivered one by one, so one bad event holds back no other (it stays undelivered: each drain and the
sweeper try it again). Nothing is lost when the broker is down or a worker dies: the `orders.outbox`
sweeper re-queues rows still undelivered after a grace period, `DELIVERY_BATCH` to a task
(`orders.deliver_outbox`), which is also how a backlog is drained in parallel.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import func, select, update

from orders.models import Allocation, Order, OrderLine, OutboxEvent, Refund
from shop import wakeups
from shop.clock import SHANGHAI
from shop.db import Base, after_commit, among, db, hold_sales, insert_new, utcnow

log = logging.getLogger(__name__)

REQUEUE_AFTER = timedelta(seconds=60)
SWEEP_LIMIT = 50_000  # events one sweep re-queues at most
DELIVERY_BATCH = 1000  # events per re-queued delivery task (one transaction)
GATHER = timedelta(milliseconds=250)  # a drain starts this long after the commit that woke it: later ones share it
Consumer = Callable[[list[OutboxEvent]], object]
_JOINED = "joined_writes"  # session.info: the writes `joined_writes` keeps for its caller's one statement


@contextmanager
def joined_writes(*, kept: bool) -> Iterator[None]:
    """While open, if `kept`: the new rows `insert_or_join` is given (transitions, outbox rows) and the sale dates
    `hold_or_join` holds are kept, not written, for the caller to write with its own changes in one statement
    (`take_joined`), a round trip each less; the caller does so before it closes (what is left is dropped)."""
    if not kept:
        yield
        return
    db.session.info[_JOINED] = {"rows": [], "suppliers": set(), "donors": set()}
    try:
        yield
    finally:
        db.session.info.pop(_JOINED, None)


def insert_or_join(obj: Base) -> None:
    """Write a new row now (`insert_new`: its id set), or keep it for `joined_writes`' caller (no id)."""
    joined = db.session.info.get(_JOINED)
    if joined is None:
        insert_new([obj])
    else:
        joined["rows"].append(obj)


def hold_or_join(*, supplier_ids: Iterable[int], donor_code: str | None) -> None:
    """Hold the sale dates of suppliers and a donor region (`hold_sales`, shared) now, or keep them for
    `joined_writes`' caller to hold in its statement."""
    joined = db.session.info.get(_JOINED)
    if joined is None:
        hold_sales(supplier_ids=supplier_ids, donor_code=donor_code)
    else:
        joined["suppliers"].update(supplier_ids)
        joined["donors"].update([donor_code] if donor_code is not None else [])


def take_joined() -> dict | None:
    """The writes `joined_writes` kept so far (`rows`, `suppliers`, `donors`), now the caller's to make; None when
    none is open."""
    joined = db.session.info.get(_JOINED)
    if joined is not None:
        db.session.info[_JOINED] = {"rows": [], "suppliers": set(), "donors": set()}
    return joined


def sale_date_of(moment: datetime) -> date:
    """The Asia/Shanghai date of a moment: the date every report and attribution uses."""
    return moment.astimezone(SHANGHAI).date()


def register_consumer(app: Flask, name: str, consumer: Consumer) -> None:
    """Let a higher layer (the ledger) consume delivered events, a batch at a time; it must be idempotent per
    event id."""
    app.extensions.setdefault("outbox_consumers", {})[name] = consumer


def record_event(*, kind: str, order: Order, occurred_at: datetime, line: OrderLine | None = None,
                 refund: Refund | None = None, amount_fen: int = 0, payload: dict | None = None) -> OutboxEvent:
    """Write a money event in the current transaction, now (or with `joined_writes`' caller's statement: no id), and
    deliver it after commit; the event as written."""
    event = OutboxEvent(kind=kind, order_id=order.id, order_line_id=line.id if line else None,
                        refund_id=refund.id if refund else None, amount_fen=amount_fen, payload=payload or {},
                        occurred_at=occurred_at, sale_date=order.sale_date or sale_date_of(occurred_at),
                        queued_at=utcnow())
    insert_or_join(event)
    after_commit(wake_drain)
    return event


def wake_drain() -> None:
    """Queue the drain unless a run is queued and not yet started (after the events' transaction committed)."""
    from orders.tasks import drain_outbox

    wakeups.wake(drain_outbox, gather=GATHER)


def allocation_payload(allocations: list[Allocation], *, quantities: dict[int, int] | None = None) -> list[dict]:
    """The lot portions an event concerns: allocation id, lot, location and units (all, or `quantities`)."""
    return [{"allocation_id": a.id, "lot_id": a.lot_id, "location_id": a.location_id,
             "quantity": quantities[a.id] if quantities else a.quantity}
            for a in allocations if quantities is None or quantities.get(a.id)]


def record_line_paid(*, order: Order, line: OrderLine, occurred_at: datetime) -> OutboxEvent:
    """The `line_paid` event of a line whose units are now allocated to lots."""
    allocated = [a for a in line.allocations if a.state == "allocated"]
    return record_event(kind="line_paid", order=order, line=line, occurred_at=occurred_at,
                        amount_fen=line.amount_fen,
                        payload={"channel": order.channel, "donor_code": order.donor_code,
                                 "unit_price_fen": line.unit_price_fen, "quantity": line.quantity,
                                 "allocations": allocation_payload(allocated)})


def _queue(event_ids: list[int]) -> None:
    """Send one delivery task for `event_ids` (after their transaction committed)."""
    from orders.tasks import deliver_outbox

    deliver_outbox.delay(event_ids)


def deliver_pending() -> int:
    """Deliver the oldest undelivered events, up to `DELIVERY_BATCH` (rows another worker holds are skipped), and
    wake the drain again after commit if there may be more and this run got on (a full batch none of which could be
    delivered is left to the sweeper's retries, not taken again at once); how many were delivered. The caller
    commits."""
    events = db.session.scalars(select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
                                .order_by(OutboxEvent.id).limit(DELIVERY_BATCH)
                                .with_for_update(skip_locked=True)).all()
    delivered = _deliver_locked(events)
    if len(events) == DELIVERY_BATCH and delivered:
        after_commit(wake_drain)
    return delivered


def deliver_all(event_ids: list[int]) -> int:
    """Deliver those of `event_ids` not yet delivered, as one batch (rows locked in id order); how many were
    delivered. The caller commits."""
    return _deliver_locked(db.session.scalars(select(OutboxEvent).where(among(OutboxEvent.id, event_ids),
                                                                        OutboxEvent.delivered_at.is_(None))
                                              .order_by(OutboxEvent.id).with_for_update()).all())


def _deliver_locked(events: list[OutboxEvent]) -> int:
    """Deliver locked undelivered events as one batch; if the batch fails, each event on its own (a failing one
    is logged and left for the sweeper). How many were delivered."""
    if len(events) <= 1:
        _consume(events)
        return len(events)
    try:
        with db.session.begin_nested():
            _consume(events)
        return len(events)
    except Exception:  # noqa: BLE001 - retried one by one below
        log.exception("delivering outbox events %s..%s together failed; delivering them one by one",
                      events[0].id, events[-1].id)
    delivered = 0
    for event in events:
        try:
            with db.session.begin_nested():
                _consume([event])
            delivered += 1
        except Exception:  # noqa: BLE001 - one bad event must not hold back the others; the sweeper retries it
            log.exception("delivering outbox event %s failed", event.id)
    return delivered


def _consume(events: list[OutboxEvent]) -> None:
    """Run the consumers on locked undelivered events and mark them delivered."""
    if not events:
        return
    for consumer in current_app.extensions.get("outbox_consumers", {}).values():
        consumer(events)
    db.session.execute(update(OutboxEvent).where(among(OutboxEvent.id, [event.id for event in events]))
                       .values(delivered_at=utcnow()).execution_options(synchronize_session=False))


def requeue_undelivered() -> int:
    """Sweeper: re-queue events still undelivered a grace period after they were last queued (rows another
    worker holds are skipped), `DELIVERY_BATCH` to a task; how many."""
    now = utcnow()
    stale = db.session.scalars(
        select(OutboxEvent.id).where(OutboxEvent.delivered_at.is_(None),
                                     func.coalesce(OutboxEvent.queued_at, OutboxEvent.created_at) < now - REQUEUE_AFTER)
        .order_by(OutboxEvent.id).limit(SWEEP_LIMIT).with_for_update(skip_locked=True)).all()
    for start in range(0, len(stale), DELIVERY_BATCH):
        chunk = stale[start:start + DELIVERY_BATCH]
        db.session.execute(update(OutboxEvent).where(among(OutboxEvent.id, chunk)).values(queued_at=now)
                           .execution_options(synchronize_session=False))
        after_commit(lambda chunk=chunk: _queue(chunk))
    return len(stale)
