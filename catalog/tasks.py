"""Catalog tasks: inventory imports and the nightly flagging of lapsed product certificates."""
from __future__ import annotations

from celery import shared_task

from catalog import service, uploads
from catalog.models import InventoryUpload
from shop.db import db
from shop.tasks import run_claimed


@shared_task(name="catalog.flag_lapsed_certificates", acks_late=True)
def flag_lapsed_certificates() -> int:
    """Flag certificates that lapsed by today (idempotent); how many were newly flagged."""
    return service.flag_lapsed_certificates(on=service.today())


def run_import(upload_id: int, *, progress: uploads.Progress | None = None) -> InventoryUpload | None:
    """Import an upload as its own units of work — the claim committed first, then the whole import (or
    its errors) in a second transaction; None if it is done or being done elsewhere. The Celery task, the
    `import-inventory` command and the demo all run this."""
    return run_claimed(f"inventory upload {upload_id}", claim=lambda: uploads.claim_upload(upload_id),
                       work=lambda: uploads.import_upload(upload_id, progress=progress),
                       fail=lambda: uploads.fail_upload(upload_id),
                       reload=lambda: db.session.get(InventoryUpload, upload_id))


@shared_task(name="catalog.import_inventory", acks_late=True)
def import_inventory(upload_id: int) -> str:
    """Import an uploaded inventory file all-or-nothing (idempotent: a finished upload is left alone)."""
    upload = run_import(upload_id)
    return "skipped" if upload is None else upload.status
