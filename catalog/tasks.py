"""Catalog tasks: inventory imports and the nightly flagging of lapsed product certificates."""
from __future__ import annotations

import logging

from celery import shared_task

from catalog import service, uploads
from shop.db import db

log = logging.getLogger(__name__)


@shared_task(name="catalog.flag_lapsed_certificates", acks_late=True)
def flag_lapsed_certificates() -> int:
    """Flag certificates that lapsed by today (idempotent); how many were newly flagged."""
    return service.flag_lapsed_certificates(on=service.today())


@shared_task(name="catalog.import_inventory", acks_late=True)
def import_inventory(upload_id: int) -> str:
    """Import an uploaded inventory file all-or-nothing (idempotent: a finished upload is left alone)."""
    if not uploads.claim_upload(upload_id):
        return "skipped"
    try:
        upload = uploads.import_upload(upload_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("inventory upload %s failed unexpectedly", upload_id)
        uploads.fail_upload(upload_id, "The import failed unexpectedly; it has been logged. Try again later.")
        db.session.commit()
        return "failed"
    return upload.status
