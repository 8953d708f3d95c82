"""PostgreSQL itself keeps the ledger append-only and balanced, whatever client writes to it."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from orders.ledger import accounts, chain
from orders.ledger.payouts.models import PayoutBatch, PayoutDownload
from orders.models import StoreAccountChange
from shop.auth.models import UserChange
from shop.db import db, violates
from suppliers.models import BankAccountChange, RevealAudit
from tests.factories import UserFactory
from tests.orders.factories import StoreFactory
from tests.suppliers.factories import HouseholdFactory

pytestmark = pytest.mark.postgres


def _linked_payment(amount: int = 100) -> int:
    """A committed, linked transaction: sandbox −amount, unallocated +amount; its id."""
    transaction = chain.post(kind="payment_unallocated",
                             postings=[(accounts.payments("sandbox"), -amount, "payment"),
                                       (accounts.unallocated(), amount, "unallocated")])
    db.session.commit()
    return transaction.id


def _raw_transaction(*amounts: int) -> int:
    """A transaction written with raw SQL (no code checks), postings of `amounts` on the platform account; its id."""
    account_id = accounts.platform().id
    transaction_id = db.session.scalar(text("INSERT INTO ledger_transactions (kind, posted_at, memo) "
                                            "VALUES ('payment_unallocated', now(), '') RETURNING id"))
    for amount in amounts:
        db.session.execute(text("INSERT INTO ledger_postings (transaction_id, account_id, amount_fen, component) "
                                "VALUES (:t, :a, :m, 'payment')"), {"t": transaction_id, "a": account_id, "m": amount})
    return transaction_id


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_postings SET amount_fen = amount_fen + 1 WHERE transaction_id = :t",
    "DELETE FROM ledger_postings WHERE transaction_id = :t"])
def test_postings_cannot_be_updated_or_deleted(pg_app, statement):
    transaction_id = _linked_payment()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(statement), {"t": transaction_id})
    db.session.rollback()
    assert db.session.scalar(text("SELECT sum(amount_fen) FROM ledger_postings WHERE transaction_id = :t"),
                             {"t": transaction_id}) == 0


@pytest.mark.parametrize("statement", ["UPDATE ledger_transactions SET memo = 'edited' WHERE id = :t",
                                       "UPDATE ledger_transactions SET hash = NULL, seq = NULL, prev_hash = NULL "
                                       "WHERE id = :t",
                                       "DELETE FROM ledger_transactions WHERE id = :t"])
def test_a_linked_transaction_cannot_be_updated_or_deleted(pg_app, statement):
    transaction_id = _linked_payment()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(statement), {"t": transaction_id})
    db.session.rollback()


def test_a_linked_transaction_takes_no_further_postings(pg_app):
    transaction_id = _linked_payment()
    with pytest.raises(DBAPIError, match="no further postings"):
        db.session.execute(text("INSERT INTO ledger_postings (transaction_id, account_id, amount_fen, component) "
                                "SELECT :t, account_id, amount_fen, component FROM ledger_postings "
                                "WHERE transaction_id = :t"), {"t": transaction_id})
    db.session.rollback()


def test_an_unbalanced_transaction_is_refused_by_the_deferred_trigger(pg_app):
    transaction_id = _raw_transaction(-100, 99)
    db.session.flush()  # the trigger is deferred: nothing is checked yet
    with pytest.raises(DBAPIError, match=f"ledger transaction {transaction_id} is unbalanced") as refused:
        db.session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
    assert violates(refused.value, "ledger_transaction_balanced")
    db.session.rollback()


def test_an_unbalanced_transaction_fails_its_commit(pg_app):
    transaction_id = _raw_transaction(-100)
    with pytest.raises(DBAPIError, match=f"ledger transaction {transaction_id} is unbalanced"):
        db.session.commit()
    db.session.rollback()
    assert db.session.scalar(text("SELECT count(*) FROM ledger_transactions")) == 0


def test_a_balanced_transaction_never_linked_fails_its_commit(pg_app):
    _raw_transaction(-100, 100)
    with pytest.raises(DBAPIError, match="not linked") as refused:
        db.session.commit()
    assert violates(refused.value, "ledger_transaction_linked")
    db.session.rollback()


def test_a_balanced_transaction_written_by_another_client_commits_once_linked(pg_app):
    transaction_id = _raw_transaction(-100, 60, 40)
    chain.link(db.session, [transaction_id])
    db.session.commit()
    assert db.session.scalar(text("SELECT seq FROM ledger_transactions WHERE id = :t"), {"t": transaction_id}) == 1


@pytest.mark.parametrize("statement", ["UPDATE ledger_accounts SET household_id = :other WHERE id = :a",
                                       "UPDATE ledger_accounts SET code = 'platform_moved' WHERE id = :a",
                                       "DELETE FROM ledger_accounts WHERE id = :a"])
def test_a_ledger_accounts_code_and_owners_never_change(pg_app, statement):
    household, other = HouseholdFactory(), HouseholdFactory()
    account_id = accounts.household(household.id, household.registered_by_id).id
    db.session.commit()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(statement), {"a": account_id, "other": other.id})
    db.session.rollback()


def _one_row_each() -> None:
    """One committed row in every audit table."""
    admin, household, store = UserFactory(role="admin"), HouseholdFactory(), StoreFactory()
    batch = PayoutBatch(party="household", supplier_id=household.registered_by_id, until=date(2026, 11, 1),
                        created_by=admin.id)
    db.session.add(batch)
    db.session.flush()
    db.session.add_all([
        RevealAudit(user_id=admin.id, household_id=household.id, fields="id_number", reason="核对身份"),
        BankAccountChange(user_id=admin.id, household_id=household.id, new_masked="****0002", reason="开户"),
        StoreAccountChange(store_id=store.id, user_id=admin.id, new_masked="****0003", reason="开户"),
        PayoutDownload(batch_id=batch.id, user_id=admin.id, lines=0, total_fen=0, reason="转账"),
        UserChange(user_id=admin.id, actor_id=admin.id, action="created", new_role="admin")])
    db.session.commit()


@pytest.mark.parametrize("table", ["reveal_audits", "payout_downloads", "bank_account_changes",
                                   "store_account_changes", "user_changes"])
@pytest.mark.parametrize("statement", ["UPDATE {table} SET created_at = created_at - interval '1 day'",
                                       "DELETE FROM {table}"])
def test_audit_tables_are_append_only(pg_app, table, statement):
    _one_row_each()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(statement.format(table=table)))
    db.session.rollback()
    assert db.session.scalar(text(f"SELECT count(*) FROM {table}")) >= 1
