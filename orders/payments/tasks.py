"""Payments tasks: the drain of new webhook events, the sweeper's retry of one event, and of one pending refund."""
from __future__ import annotations

import logging

from celery import shared_task

from orders.payments import service
from orders.refunds.service import settle_refund
from shop import wakeups
from shop.db import db

log = logging.getLogger(__name__)

DRAIN_LIMIT = 500  # events one drain run processes before it hands over to the next run


@shared_task(name="orders.process_payment_event", acks_late=True)
def process_payment_event(event_id: int) -> str:
    """Apply a stored payment event to its order (idempotent: a processed event is left alone): the sweeper's
    retry of an event whose drain failed or was lost."""
    return service.process_event(event_id=event_id)


@shared_task(name="orders.settle_refund", acks_late=True)
def settle_refund_task(refund_id: int) -> str:
    """Ask the provider again, with the same key, for a refund still pending (the `orders.pending_refunds`
    sweeper's); its status afterwards."""
    refund = settle_refund(refund_id=refund_id)
    return refund.status if refund is not None else "missing"


@shared_task(name="orders.drain_payment_events", acks_late=True, pauses_collector=True)
def drain_payment_events() -> int:
    """Process the new payment events, oldest first, each its own unit of work: one that fails is rolled back
    alone and left to the sweeper with its attempt counted, so it holds back no other. How many were tried; after
    DRAIN_LIMIT the next run is woken."""
    wakeups.started("orders.drain_payment_events")
    tried = 0
    while tried < DRAIN_LIMIT:
        claimed = service.claim_new_event()
        if claimed is None:
            return tried
        tried, event_id = tried + 1, claimed.PaymentEvent.id
        try:
            service.process_claimed(claimed)
            db.session.commit()
        except Exception:  # noqa: BLE001 - one bad event must not hold back the others; the sweeper retries it
            db.session.rollback()
            log.exception("processing payment event %s failed; the sweeper will retry it", event_id)
            service.count_failed_attempt(event_id)
            db.session.commit()
    service.wake()
    return tried
