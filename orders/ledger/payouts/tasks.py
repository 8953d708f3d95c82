"""The payout batch build task."""
from __future__ import annotations

from celery import shared_task

from orders.ledger.payouts import service
from orders.ledger.payouts.models import PayoutBatch
from shop.db import db
from shop.tasks import run_claimed


def run_build(batch_id: int, *, progress: service.Progress | None = None) -> PayoutBatch | None:
    """Build a batch as its own units of work — the claim committed first (status `building`, progress shown),
    then the whole build in a second transaction; None if it is built or being built elsewhere. The Celery
    task runs this."""
    return run_claimed(f"payout batch {batch_id}", claim=lambda: service.claim_batch(batch_id),
                       work=lambda: service.build_batch(batch_id, progress=progress),
                       fail=lambda: service.fail_batch(
                           batch_id, "The build failed unexpectedly; it has been logged. Request a new batch."),
                       reload=lambda: db.session.get(PayoutBatch, batch_id))


@shared_task(name="ledger.build_payout_batch", acks_late=True)
def build_payout_batch(batch_id: int) -> str:
    """Build a payout batch (idempotent: a built batch is left alone)."""
    batch = run_build(batch_id)
    return "skipped" if batch is None else batch.status
