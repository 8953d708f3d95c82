"""Payments tasks: processing a stored webhook event."""
from __future__ import annotations

from celery import shared_task

from orders.payments import service


@shared_task(name="orders.process_payment_event", acks_late=True, ignore_result=True)  # nothing reads it
def process_payment_event(event_id: int) -> str:
    """Apply a stored payment event to its order (idempotent: a processed event is left alone)."""
    return service.process_event(event_id=event_id)
