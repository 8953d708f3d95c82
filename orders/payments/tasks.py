"""Payments tasks: processing a stored webhook event."""
from __future__ import annotations

from celery import shared_task

from orders.payments import service
from shop import wakeups


@shared_task(name="orders.process_payment_event", acks_late=True, ignore_result=True)  # nothing reads it
def process_payment_event(event_id: int) -> str:
    """Apply a stored payment event to its order (idempotent: a processed event is left alone): the sweeper's
    retry of an event whose drain failed or was lost."""
    return service.process_event(event_id=event_id)


@shared_task(name="orders.drain_payment_events", acks_late=True, ignore_result=True)  # nothing reads it
def drain_payment_events() -> int:
    """Process the new payment events, oldest first, each in its own transaction (see `service.drain_events`);
    how many were tried."""
    wakeups.started("orders.drain_payment_events")
    return service.drain_events()
