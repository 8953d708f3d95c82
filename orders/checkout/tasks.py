"""Checkout tasks: the periodic expiry of unpaid orders' reservations."""
from __future__ import annotations

from celery import shared_task

from orders.checkout import service
from shop.db import db


@shared_task(name="orders.expire_reservations", acks_late=True)
def expire_reservations() -> int:
    """Expire unpaid orders past their reservation and release their stock (idempotent); how many."""
    expired = service.expire_reservations()
    db.session.commit()
    return expired
