"""The outbox of money events: written in the same transaction as the change it records, delivered after.

`record_event` adds a row (`line_paid`, `line_refunded`, `refund_remainder`, `payment_unallocated`,
`payment_returned`, DESIGN.md); once the transaction commits, one task delivers all the events it
wrote. Delivery runs the registered consumers (the ledger registers itself; they must apply each
event id at most once) and marks each row delivered. Nothing is lost when the broker is down or a
worker dies: the `orders.outbox` sweeper re-queues rows still undelivered after a grace period,
each in its own task.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import func, select

from orders.models import Allocation, Order, OrderLine, OutboxEvent, Refund
from shop.db import after_commit, db, utcnow

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
REQUEUE_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 500
Consumer = Callable[[OutboxEvent], None]


def sale_date_of(moment: datetime) -> date:
    """The Asia/Shanghai date of a moment: the date every report and attribution uses."""
    return moment.astimezone(SHANGHAI).date()


def register_consumer(app: Flask, name: str, consumer: Consumer) -> None:
    """Let a higher layer (the ledger) consume delivered events; it must be idempotent per event id."""
    app.extensions.setdefault("outbox_consumers", {})[name] = consumer


def record_event(*, kind: str, order: Order, occurred_at: datetime, line: OrderLine | None = None,
                 refund: Refund | None = None, amount_fen: int = 0, payload: dict | None = None) -> OutboxEvent:
    """Write a money event in the current transaction and deliver it after commit."""
    event = OutboxEvent(kind=kind, order_id=order.id, order_line_id=line.id if line else None,
                        refund_id=refund.id if refund else None, amount_fen=amount_fen, payload=payload or {},
                        occurred_at=occurred_at, sale_date=order.sale_date or sale_date_of(occurred_at),
                        queued_at=utcnow())
    db.session.add(event)
    db.session.flush()
    _delivery().event_ids.append(event.id)
    return event


class _Delivery:
    """The after-commit callback queueing one delivery task for all the events of one transaction."""

    def __init__(self):
        self.event_ids: list[int] = []

    def __call__(self) -> None:
        """Send the delivery task of this transaction's events."""
        _queue(self.event_ids)


def _delivery() -> _Delivery:
    """The current transaction's pending delivery (one after-commit callback, however many events)."""
    pending = next((c for c in db.session.info.get("after_commit", []) if isinstance(c, _Delivery)), None)
    if pending is None:
        pending = _Delivery()
        after_commit(pending)
    return pending


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


def deliver_all(event_ids: list[int]) -> int:
    """Deliver each of `event_ids` not yet delivered, in id order; how many were. The caller commits."""
    return sum(deliver(event_id) for event_id in sorted(event_ids))


def deliver(event_id: int) -> bool:
    """Run the consumers on an undelivered event and mark it delivered; False if it was already. The caller commits."""
    event = db.session.scalar(select(OutboxEvent).where(OutboxEvent.id == event_id,
                                                        OutboxEvent.delivered_at.is_(None)).with_for_update())
    if event is None:
        return False
    for consumer in current_app.extensions.get("outbox_consumers", {}).values():
        consumer(event)
    event.delivered_at = utcnow()
    db.session.flush()
    return True


def requeue_undelivered() -> int:
    """Sweeper: re-queue events still undelivered a grace period after they were last queued; how many."""
    now = utcnow()
    stale = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None),
                                  func.coalesce(OutboxEvent.queued_at, OutboxEvent.created_at) < now - REQUEUE_AFTER)
        .order_by(OutboxEvent.id).limit(SWEEP_BATCH).with_for_update(skip_locked=True)).all()
    for event in stale:  # one task each: an event that keeps failing does not hold the others back
        event.queued_at = now
        event_id = event.id
        after_commit(lambda event_id=event_id: _queue([event_id]))
    db.session.flush()
    return len(stale)
