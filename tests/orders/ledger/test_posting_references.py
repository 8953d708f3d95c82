"""What a posting names exists and stays, on both databases: a posting naming a missing transaction, account,
order line, allocation, lot or household is refused, and a row a posting names cannot be deleted."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from orders import outbox
from orders.ledger.models import Posting
from orders.ledger.verify import verify_ledger
from shop.db import db, utcnow
from tests.orders.ledger.test_attribution import make_world, pay_pickup

REFERENCES = {"transaction_id": "ledger_transactions", "account_id": "ledger_accounts",
              "order_line_id": "order_lines", "allocation_id": "allocations", "lot_id": "lots",
              "household_id": "households"}
MISSING = 2_000_000_000
INSERT = text("INSERT INTO ledger_postings (transaction_id, account_id, amount_fen, component, order_line_id, "
              "allocation_id, lot_id, household_id) VALUES (:transaction_id, :account_id, 1, 'premium', "
              ":order_line_id, :allocation_id, :lot_id, :household_id)")


@pytest.fixture
def named(racing_app) -> dict:
    """A paid pickup order's household premium posting: the ids it names, its transaction replaced by a new
    transaction not yet linked (so it may take postings)."""
    pay_pickup(racing_app.test_client(), make_world(today=outbox.sale_date_of(utcnow())), 2)
    posting = db.session.scalars(select(Posting).where(Posting.component == "premium",
                                                       Posting.household_id.is_not(None))).first()
    ids = {column: getattr(posting, column) for column in REFERENCES}
    ids["transaction_id"] = db.session.scalar(text(
        "INSERT INTO ledger_transactions (kind, posted_at, memo) VALUES ('payment_unallocated', :now, '') "
        "RETURNING id"), {"now": utcnow()})
    return ids


def test_a_posting_naming_rows_that_exist_is_written(named):
    db.session.execute(INSERT, named)
    assert db.session.scalar(text("SELECT count(*) FROM ledger_postings WHERE transaction_id = :t"),
                             {"t": named["transaction_id"]}) == 1
    db.session.rollback()


@pytest.mark.parametrize("column", REFERENCES)
def test_a_posting_naming_a_missing_row_is_refused(named, column):
    with pytest.raises(DBAPIError, match="names a"):
        db.session.execute(INSERT, {**named, column: MISSING})
    db.session.rollback()
    assert verify_ledger()["ok"]


@pytest.mark.parametrize("column", [column for column in REFERENCES if column != "transaction_id"])
def test_a_row_a_posting_names_cannot_be_deleted(named, column):
    """Whichever guard answers first (another table's foreign key, the ledger's own check), the row stays."""
    db.session.rollback()  # drop the unlinked transaction: the row is named by the paid order's posting alone
    table, row_id = REFERENCES[column], named[column]
    with pytest.raises(DBAPIError):
        db.session.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": row_id})
    db.session.rollback()
    assert db.session.scalar(text(f"SELECT count(*) FROM {table} WHERE id = :id"), {"id": row_id}) == 1


def test_an_allocation_a_posting_names_is_kept_by_the_ledger_itself(named):
    """Nothing else refers to an allocation: the ledger's check is all that keeps a sold unit's lot traceable."""
    db.session.rollback()
    with pytest.raises(DBAPIError, match="ledger postings name the allocations"):
        db.session.execute(text("DELETE FROM allocations WHERE id = :id"), {"id": named["allocation_id"]})
    db.session.rollback()


def test_a_transaction_with_postings_cannot_be_deleted_before_it_is_linked(named):
    db.session.execute(INSERT, named)
    with pytest.raises(DBAPIError, match="ledger postings name the ledger_transactions"):
        db.session.execute(text("DELETE FROM ledger_transactions WHERE id = :id"), {"id": named["transaction_id"]})
    db.session.rollback()
