"""Races: two payout batches built at once for the same payees never pay a balance twice, and a line settled
concurrently (paid, or failed by a bank return sent again) is posted once (SQLite and PostgreSQL); building a batch
does not hold up attribution's postings to the payees' accounts (PostgreSQL)."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from orders.ledger import accounts
from orders.ledger.models import LedgerTransaction
from orders.ledger.payouts import service
from orders.ledger.payouts.models import PayoutBatch, PayoutLine
from orders.ledger.payouts.tasks import run_build
from orders.ledger.verify import verify_ledger
from shop.db import db, utcnow
from tests.catalog.test_concurrency import race
from tests.factories import UserFactory
from tests.orders.ledger.payout_factories import balance, days_ago, earn, payee_household, queued_batch, today
from tests.suppliers.factories import SupplierFactory


def test_two_batches_built_at_once_pay_each_payee_once(racing_app):
    supplier = SupplierFactory()
    households = [payee_household(supplier) for _ in range(12)]
    for n, household in enumerate(households, start=1):
        earn(accounts.household(household.id, supplier.id), 100 * n, on=days_ago(1))
    batches = [queued_batch(party="household", supplier_id=supplier.id, until=today()).id for _ in range(4)]

    outcomes = race(racing_app, 4, lambda i: run_build(batches[i]))

    assert outcomes == {"ok": 4}
    statuses = sorted(status for (status,) in db.session.execute(select(PayoutBatch.status)))
    assert statuses == ["failed", "failed", "failed", "ready"]       # the others found nothing left to pay
    paid = db.session.execute(select(PayoutLine.household_id, func.count(), func.sum(PayoutLine.amount_fen))
                              .group_by(PayoutLine.household_id)).all()
    assert sorted((household_id, count, int(total)) for household_id, count, total in paid) == [
        (household.id, 1, 100 * n) for n, household in enumerate(households, start=1)]
    assert balance("payouts_clearing") == 100 * sum(range(1, 13))
    assert all(balance(f"household:{h.id}@supplier:{supplier.id}") == 0 for h in households)
    assert verify_ledger()["ok"] is True


def test_parallel_requests_for_the_same_payees_make_one_batch(racing_app):
    supplier = SupplierFactory()
    households = [payee_household(supplier) for _ in range(3)]
    for household in households:
        earn(accounts.household(household.id, supplier.id), 400, on=days_ago(1))
    admin = UserFactory(role="admin")
    db.session.commit()
    db.session.refresh(admin)
    db.session.expunge(admin)  # loaded, detached: the racing threads read its id, never through this session

    outcomes = race(racing_app, 4, lambda i: service.request_batch(
        actor=admin, party="household", supplier_id=supplier.id, until=today()))

    assert outcomes["ok"] == 1 and sum(outcomes.values()) == 4
    assert set(outcomes) - {"ok"} <= {"nothing_to_pay", "payout_batch_in_progress"}
    (batch,) = db.session.scalars(select(PayoutBatch)).all()
    assert (batch.status, batch.total_fen) == ("ready", 1200)
    assert balance("payouts_clearing") == 1200
    assert verify_ledger()["ok"] is True


@pytest.mark.postgres
def test_attribution_posts_to_a_payee_while_its_batch_is_being_built(pg_app):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    account = accounts.household(household.id, supplier.id)
    earn(account, 500, on=days_ago(1))
    batch = queued_batch(party="household", supplier_id=supplier.id, until=today())
    building, posted = threading.Event(), threading.Event()

    def hold(done, total):
        """Mid-build (the payee's account locked): let a posting to it through, then finish."""
        if done == total:
            building.set()
            assert posted.wait(timeout=20), "a posting to a payee waited for the batch"

    def attribute():
        with pg_app.app_context():
            assert building.wait(timeout=20)
            earn(accounts.household(household.id, supplier.id), 70)
            posted.set()
            db.session.remove()

    thread = threading.Thread(target=attribute)
    thread.start()
    with pg_app.app_context():
        run_build(batch.id, progress=hold)
        db.session.remove()
    thread.join(timeout=30)

    db.session.expire_all()
    assert posted.is_set()
    assert [line.amount_fen for line in db.session.get(PayoutBatch, batch.id).lines] == [500]
    assert balance(account.code) == 70 and balance("payouts_clearing") == 500
    assert verify_ledger()["ok"] is True


def test_progress_is_reported_every_so_many_payees(app, monkeypatch):
    monkeypatch.setattr(service, "PROGRESS_EVERY", 3)
    supplier = SupplierFactory()
    for _ in range(7):
        earn(accounts.household(payee_household(supplier).id, supplier.id), 10, on=days_ago(1))
    batch = queued_batch(party="household", supplier_id=supplier.id, until=today())
    reports = []

    run_build(batch.id, progress=lambda done, total: reports.append((done, total)))

    assert reports == [(0, 7), (3, 7), (6, 7), (7, 7)]


def test_concurrent_settlements_of_a_line_post_it_once(racing_app):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 900, on=days_ago(1))
    batch = queued_batch(party="household", supplier_id=supplier.id, until=today())
    run_build(batch.id)
    line_id = db.session.scalar(select(PayoutLine.id).where(PayoutLine.batch_id == batch.id))
    settlement = [service.Settlement(line_id=line_id, status="paid")]
    admin = UserFactory(role="admin")
    db.session.commit()
    admin_id = admin.id
    db.session.expunge(admin)  # loaded, detached: the racing threads read its id, never through this session

    outcomes = race(racing_app, 4, lambda i: service.settle_lines(batch_id=batch.id, settlements=settlement,
                                                                  actor=admin))

    assert outcomes == {"ok": 4}
    db.session.expire_all()
    line = db.session.get(PayoutLine, line_id)
    assert (line.status, line.paid_by) == ("paid", admin_id)
    assert balance("payments:bank") == 900 and balance("payouts_clearing") == 0
    assert verify_ledger()["ok"] is True


def test_a_bank_return_sent_several_times_at_once_gives_the_amount_back_once(racing_app):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 900, on=days_ago(1))
    batch_id = queued_batch(party="household", supplier_id=supplier.id, until=today()).id
    run_build(batch_id)
    line_id = db.session.scalar(select(PayoutLine.id).where(PayoutLine.batch_id == batch_id))
    admin = UserFactory(role="admin")
    db.session.commit()
    db.session.refresh(admin)
    db.session.expunge(admin)  # loaded, detached: the racing threads read its id, never through this session
    service.settle_lines(batch_id=batch_id, settlements=[service.Settlement(line_id=line_id, status="paid")],
                         actor=admin)
    db.session.commit()
    returned = [service.Settlement(line_id=line_id, status="failed", reason="账户已销户")]

    outcomes = race(racing_app, 4, lambda i: service.settle_lines(batch_id=batch_id, settlements=returned,
                                                                  actor=admin))

    assert outcomes == {"ok": 4}
    db.session.expire_all()
    line = db.session.get(PayoutLine, line_id)
    assert line.status == "failed" and line.failed_transaction_id is not None
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)
                             .where(LedgerTransaction.kind == "payout_failed")) == 1
    assert balance(f"household:{household.id}@supplier:{supplier.id}") == 900   # back once, not four times
    assert balance("payments:bank") == 0 and balance("payouts_clearing") == 0
    assert verify_ledger()["ok"] is True


@pytest.mark.postgres
def test_a_build_taken_over_while_the_first_still_runs_leaves_the_batch_built_by_the_first(pg_app):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 800, on=days_ago(1))
    batch_id = queued_batch(party="household", supplier_id=supplier.id, until=today()).id
    assert service.claim_batch(batch_id)
    db.session.execute(update(PayoutBatch).where(PayoutBatch.id == batch_id)  # the first build runs past the
                       .values(claimed_at=utcnow() - service.STALE_CLAIM - timedelta(minutes=1)))  # stale claim
    db.session.commit()
    holding, second_started = threading.Event(), threading.Event()

    def hold(done, total):
        """Mid-build, the payees locked: let the sweeper's second task start, give it time to reach the locks."""
        if done == total:
            holding.set()
            assert second_started.wait(timeout=20)
            time.sleep(1)

    def second():
        with pg_app.app_context():
            assert holding.wait(timeout=20)
            second_started.set()
            run_build(batch_id)
            db.session.remove()

    thread = threading.Thread(target=second)
    thread.start()
    with pg_app.app_context():
        service.build_batch(batch_id, progress=hold)
        db.session.commit()
        db.session.remove()
    thread.join(timeout=30)

    db.session.expire_all()
    batch = db.session.get(PayoutBatch, batch_id)
    assert (batch.status, batch.total_fen, batch.failure_reason) == ("ready", 800, None)
    assert [(line.status, line.amount_fen) for line in batch.lines] == [("pending", 800)]
    assert balance("payouts_clearing") == 800
    assert verify_ledger()["ok"] is True
