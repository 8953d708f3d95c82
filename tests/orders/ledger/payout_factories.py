"""Helpers of the payout tests: earnings posted on a given day, balances, batches queued and built."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from unittest.mock import patch

from sqlalchemy import func, select

from orders.ledger import accounts, chain
from orders.ledger.models import LedgerAccount, Posting
from orders.ledger.payouts.models import PayoutBatch
from orders.ledger.payouts.tasks import run_build
from orders.outbox import sale_date_of
from shop.clock import SHANGHAI
from shop.db import db, utcnow
from tests.factories import UserFactory
from tests.suppliers.factories import HouseholdFactory, make_bank_account


def today() -> date:
    """Today in Asia/Shanghai."""
    return sale_date_of(utcnow())


def days_ago(n: int) -> date:
    """The Asia/Shanghai date `n` days before today."""
    return today() - timedelta(days=n)


def earn(account: LedgerAccount, amount: int, *, on: date | None = None) -> None:
    """Post `amount` fen to `account` against a sandbox payment (negative: taken back, as a refund does), at
    noon Asia/Shanghai of `on` (default: now, today), even before postings already linked; committed, linked into
    the chain."""
    chain.post(kind="line_paid" if amount > 0 else "line_refunded",
               postings=[(accounts.payments("sandbox"), -amount, "payment"), (account, amount, "premium")])
    if on is None:
        db.session.commit()
        return
    with patch.object(chain, "stamp", return_value=datetime.combine(on, time(12), tzinfo=SHANGHAI)):
        db.session.commit()


def balance(code: str) -> int:
    """The balance of the account `code` (0 if it has no postings)."""
    return int(db.session.scalar(select(func.coalesce(func.sum(Posting.amount_fen), 0))
                                 .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
                                 .where(LedgerAccount.code == code)))


def payee_household(supplier, *, bank_account: bool = True, **fields):
    """A household of `supplier`, with a synthetic bank account unless told otherwise (committed)."""
    household = HouseholdFactory(supplier=supplier, **fields)
    household.bank_account = make_bank_account() if bank_account else None
    db.session.commit()
    return household


def queued_batch(*, party: str, until: date, supplier_id: int | None = None) -> PayoutBatch:
    """A batch as a request leaves it, queued for its task (committed; no task sent)."""
    batch = PayoutBatch(party=party, supplier_id=supplier_id, until=until, status="queued",
                        created_by=UserFactory(role="admin").id, queued_at=utcnow())
    db.session.add(batch)
    db.session.commit()
    return batch


def built_batch(*, party: str, until: date, supplier_id: int | None = None) -> PayoutBatch:
    """A batch built as its task builds it (committed)."""
    batch_id = queued_batch(party=party, until=until, supplier_id=supplier_id).id
    run_build(batch_id)
    db.session.expire_all()
    return db.session.get(PayoutBatch, batch_id)
