"""Orders tasks: outbox delivery (more are added by the checkout, payments and counter parts)."""
from __future__ import annotations

from celery import shared_task

from orders import outbox
from shop import wakeups


@shared_task(name="orders.deliver_outbox", acks_late=True, pauses_collector=True)
def deliver_outbox(event_ids: list[int]) -> int:
    """Deliver the outbox events the sweeper re-queued to their consumers (idempotent: a delivered event is left
    alone); how many were delivered now."""
    return outbox.deliver_all(event_ids)


@shared_task(name="orders.drain_outbox", acks_late=True, pauses_collector=True)
def drain_outbox() -> int:
    """Deliver the oldest undelivered outbox events (a batch; the drain wakes itself while more are left); how
    many were delivered now."""
    wakeups.started("orders.drain_outbox")
    return outbox.deliver_pending()
