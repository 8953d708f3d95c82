"""The payout batch build task."""
from __future__ import annotations

import logging

from celery import shared_task

from orders.ledger.payouts import service
from orders.ledger.payouts.models import PayoutBatch
from shop.db import db

log = logging.getLogger(__name__)


def run_build(batch_id: int, *, progress: service.Progress | None = None) -> PayoutBatch | None:
    """Build a batch as its own units of work — the claim committed first (status `building`, progress shown),
    then the whole build in a second transaction; None if it is built or being built elsewhere. The Celery
    task runs this."""
    claimed = service.claim_batch(batch_id)
    db.session.commit()
    if not claimed:
        return None
    try:
        batch = service.build_batch(batch_id, progress=progress)
        db.session.commit()
    except Exception:  # noqa: BLE001 - record the failure, then let the caller see the batch
        db.session.rollback()
        log.exception("payout batch %s failed unexpectedly", batch_id)
        service.fail_batch(batch_id, "The build failed unexpectedly; it has been logged. Request a new batch.")
        db.session.commit()
        batch = db.session.get(PayoutBatch, batch_id)
    return batch


@shared_task(name="ledger.build_payout_batch", acks_late=True)
def build_payout_batch(batch_id: int) -> str:
    """Build a payout batch (idempotent: a built batch is left alone)."""
    batch = run_build(batch_id)
    return "skipped" if batch is None else batch.status
