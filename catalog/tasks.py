"""Catalog tasks: the nightly flagging of lapsed product certificates."""
from __future__ import annotations

from celery import shared_task

from catalog import service


@shared_task(name="catalog.flag_lapsed_certificates", acks_late=True)
def flag_lapsed_certificates() -> int:
    """Flag certificates that lapsed by today (idempotent); how many were newly flagged."""
    return service.flag_lapsed_certificates(on=service.today())
