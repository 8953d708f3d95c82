"""Full verifications of the ledger requested through the API: queued, run by a task that reports its progress,
then shown with their result (what `GET /ledger/verify` answers, without holding a request for the length of it)."""
from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from sqlalchemy import select, text, update

from orders.ledger.errors import LedgerCode
from orders.ledger.models import LedgerVerification
from orders.ledger.verify import VerificationRunning, verify_ledger
from shop.auth.models import User
from shop.caching import cache_delete, cache_get, cache_set
from shop.db import after_commit, db, lock_on_sqlite, utcnow
from shop.errors import NotFound
from shop.tasks import run_claimed

ACTIVE = ("queued", "running")
ABANDONED_AFTER = timedelta(hours=1)  # a verification queued or running this long lost its task
REQUEUE_AFTER = timedelta(minutes=1)  # a verification still queued this long is sent to a worker again
ABANDONED_REASON = "Its worker stopped before it finished. Request a new one."
REQUEST_LOCK_KEY = 0x6C6564676572 + 1  # requests of verifications, one at a time (the check-then-insert)
RESULT_FIELDS = ("ok", "transactions", "balanced", "chain_intact", "first_bad_id", "accounts_intact",
                 "first_bad_account")


def _progress_key(verification_id: int) -> str:
    """The cache key holding a running verification's live progress."""
    return f"ledger-verification-progress:{verification_id}"


def request_verification(*, actor: User) -> LedgerVerification:
    """Queue a full verification; its task runs it after commit. `VerificationRunning` (naming it) while another
    requested in the last hour is still queued or running."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REQUEST_LOCK_KEY})
    lock_on_sqlite("UPDATE ledger_verifications SET id = id WHERE status = 'queued'")
    active = db.session.scalar(
        select(LedgerVerification.id).where(LedgerVerification.status.in_(ACTIVE),
                                            LedgerVerification.created_at > utcnow() - ABANDONED_AFTER)
        .order_by(LedgerVerification.id).limit(1))
    if active is not None:
        raise VerificationRunning(verification_id=active)
    verification = LedgerVerification(status="queued", requested_by=actor.id)
    db.session.add(verification)
    db.session.flush()
    after_commit(lambda verification_id=verification.id: run_ledger_verification.delay(verification_id))
    return verification


def sweep_verifications() -> int:
    """Sweeper: re-queue verifications still queued a minute after they were requested (their task was lost; running
    one again is harmless: only a queued one is claimed), and fail those running past ABANDONED_AFTER (their worker
    died), so a new one may be requested; how many. The caller commits."""
    now = utcnow()
    queued = db.session.scalars(select(LedgerVerification.id).where(
        LedgerVerification.status == "queued", LedgerVerification.created_at < now - REQUEUE_AFTER)
        .order_by(LedgerVerification.id)).all()
    for verification_id in queued:
        after_commit(lambda verification_id=verification_id: run_ledger_verification.delay(verification_id))
    dead = db.session.execute(
        update(LedgerVerification).where(LedgerVerification.status == "running",
                                         LedgerVerification.started_at < now - ABANDONED_AFTER)
        .values(status="failed", finished_at=now, failure_reason=ABANDONED_REASON)).rowcount
    return len(queued) + dead


def _claim(verification_id: int) -> bool:
    """Mark a queued verification running; False if it ran or is running. The caller commits the claim."""
    return bool(db.session.execute(
        update(LedgerVerification).where(LedgerVerification.id == verification_id,
                                         LedgerVerification.status == "queued")
        .values(status="running", started_at=utcnow())).rowcount)


def _run(verification_id: int) -> LedgerVerification:
    """Verify the ledger (after any verification running now), reporting progress; record the result."""
    def report(done: int, total: int) -> None:
        cache_set(_progress_key(verification_id), (done, total), timeout=24 * 3600)

    result = verify_ledger(progress=report)
    progress = cache_get(_progress_key(verification_id)) or (result["transactions"], result["transactions"])
    verification = db.session.get(LedgerVerification, verification_id)
    for name in RESULT_FIELDS:
        setattr(verification, name, result[name])
    verification.progress_done, verification.progress_total = progress
    verification.status, verification.finished_at = "done", utcnow()
    cache_delete(_progress_key(verification_id))
    return verification


def _fail(verification_id: int) -> None:
    """Mark a verification failed after an unexpected error (in a fresh transaction)."""
    verification = db.session.get(LedgerVerification, verification_id)
    if verification is not None and verification.status in ACTIVE:
        verification.status, verification.finished_at = "failed", utcnow()
        verification.failure_reason = "The verification failed unexpectedly; it has been logged. Request a new one."
    cache_delete(_progress_key(verification_id))


@shared_task(name="ledger.run_ledger_verification", acks_late=True)
def run_ledger_verification(verification_id: int) -> str:
    """Run a requested verification (idempotent: one that ran or is running is left alone)."""
    verification = run_claimed(f"ledger verification {verification_id}", claim=lambda: _claim(verification_id),
                               work=lambda: _run(verification_id), fail=lambda: _fail(verification_id),
                               reload=lambda: db.session.get(LedgerVerification, verification_id))
    return "skipped" if verification is None else verification.status


def show_verification(*, verification_id: int) -> dict:
    """A verification: its status, progress (live while it runs) and, once done, its result."""
    verification = db.session.get(LedgerVerification, verification_id)
    if verification is None:
        raise NotFound(f"No ledger verification {verification_id}.", code=LedgerCode.VERIFICATION_NOT_FOUND)
    done, total = verification.progress_done, verification.progress_total
    if verification.status == "running":
        done, total = cache_get(_progress_key(verification_id)) or (done, total)
    shown = {name: getattr(verification, name) for name in (
        "id", "status", "failure_reason", "created_at", "started_at", "finished_at", *RESULT_FIELDS)}
    shown["progress"] = {"done": done, "total": total}
    return shown
