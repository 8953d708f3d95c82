"""Orders tasks: outbox delivery (more are added by the checkout, payments and counter parts)."""
from __future__ import annotations

from celery import shared_task

from orders import outbox


@shared_task(name="orders.deliver_outbox", acks_late=True, ignore_result=True)  # nothing reads it
def deliver_outbox(event_id: int) -> bool:
    """Deliver one outbox event to its consumers (idempotent: a delivered event is left alone)."""
    return outbox.deliver(event_id)
