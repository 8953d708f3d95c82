"""Payments tasks: the drain of new webhook events, the sweeper's retry of one event, and of one pending refund."""
from __future__ import annotations

import logging

from celery import shared_task

from orders.payments import service
from orders.payments.provider import KeyRefused, api_key_mode
from orders.refunds.service import settle_refund
from shop import wakeups
from shop.db import db

log = logging.getLogger(__name__)

DRAIN_LIMIT = 500  # events one drain run processes before it hands over to the next run


def _log_key_refused(event_id: int, exc: KeyRefused) -> None:
    """Log, as an error for an operator, that the provider refused the shop's API key while processing an event."""
    log.error("processing payment event %s: the payment provider refused the shop's %s-mode API key (%s: it lacks a "
              "permission, or is not valid); the sweeper retries it a bounded number of times: fix the key (then "
              "`flask payments requeue-failed` queues again the events it gave up)", event_id, api_key_mode(), exc)


@shared_task(name="orders.process_payment_event", acks_late=True)
def process_payment_event(event_id: int) -> str:
    """Apply a stored payment event to its order (idempotent: a processed event is left alone): the sweeper's
    retry of an event whose drain failed or was lost (the provider refusing the shop's key: logged, left pending)."""
    try:
        return service.process_event(event_id=event_id)
    except KeyRefused as exc:
        db.session.rollback()
        _log_key_refused(event_id, exc)
        return "pending"


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
        except KeyRefused as exc:  # a configuration problem: no traceback, retried by the sweeper as any failure
            db.session.rollback()
            _log_key_refused(event_id, exc)
            service.count_failed_attempt(event_id)
            db.session.commit()
        except Exception:  # noqa: BLE001 - one bad event must not hold back the others; the sweeper retries it
            db.session.rollback()
            log.exception("processing payment event %s failed; the sweeper will retry it", event_id)
            service.count_failed_attempt(event_id)
            db.session.commit()
    service.wake()
    return tried
