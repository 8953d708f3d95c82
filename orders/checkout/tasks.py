"""Checkout tasks: the periodic expiry of unpaid orders' reservations."""
from __future__ import annotations

from celery import shared_task

from orders.checkout import service
from shop.db import db


@shared_task(name="orders.expire_reservations", acks_late=True)
def expire_reservations() -> int:
    """Expire every unpaid order past its reservation, releasing its stock, a batch per transaction (idempotent); how
    many."""
    expired = 0
    while True:
        done = service.expire_reservations()
        db.session.commit()
        expired += done
        if done < service.EXPIRY_BATCH:
            return expired
