"""The double-entry ledger: accounts, hash-chained transactions, signed postings and the chain head.

A posting's amount is signed: positive raises the account's balance (what the platform owes the
party, or holds), negative lowers it; each transaction's postings sum to zero. Transactions are
append-only and chained in commit order: `seq`, `prev_hash` and `hash` are set as the last step
before commit, under the one `ledger_chain_head` row's lock.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import CommitOrdered, UTCDateTime, db, utcnow

ACCOUNT_KINDS = ("payments", "platform", "platform_costs", "store", "store_cash", "supplier", "household",
                 "payouts_clearing", "unallocated")
TRANSACTION_KINDS = ("line_paid", "line_refunded", "refund_remainder", "payment_unallocated", "payment_returned",
                     "payout", "payout_failed", "processor_fee", "store_remittance")
HOUSEHOLD_POSTINGS = "household_id IS NOT NULL AND component IN ('premium', 'dividend')"  # the reports read these
VERIFICATION_STATUSES = ("queued", "running", "done", "failed")
COMPONENTS = ("payment", "platform_fee", "store_commission", "premium", "dividend", "supplier", "remainder",
              "unallocated", "payout", "fee")


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL for `column IN (values)`."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class LedgerAccount(db.Model):
    """An account: `platform`, `payments:<provider>`, `store:<id>`, `store_cash:<id>`, `supplier:<id>`,
    `household:<id>@supplier:<id>` (a household's earnings held per paying supplier), `payouts_clearing`…"""

    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), index=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(_in("kind", ACCOUNT_KINDS), name="kind"),
        CheckConstraint("kind <> 'household' OR (household_id IS NOT NULL AND supplier_id IS NOT NULL)",
                        name="household_per_supplier"),
    )


class LedgerTransaction(db.Model):
    """One balanced set of postings recording one money event; `outbox_event_id` is applied at most once."""

    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    outbox_event_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_events.id"), unique=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    order_line_id: Mapped[int | None] = mapped_column(ForeignKey("order_lines.id"), index=True)
    sale_date: Mapped[date | None] = mapped_column(Date, index=True)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    memo: Mapped[str] = mapped_column(String(200), default="")
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    postings: Mapped[list[Posting]] = relationship(
        primaryjoin="LedgerTransaction.id == foreign(Posting.transaction_id)", order_by="Posting.id", lazy="selectin")

    __table_args__ = (CheckConstraint(_in("kind", TRANSACTION_KINDS), name="kind"),)


class Posting(db.Model):
    """A signed amount on one account, with what it came from (order line, allocation, lot, household).

    The six ids are references without foreign keys: migration 0015's triggers check them once per INSERT
    statement (and refuse deleting a row a posting names), which costs a fraction of six per-row key checks.
    """

    __tablename__ = "ledger_postings"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(index=True)
    account_id: Mapped[int] = mapped_column()
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    component: Mapped[str] = mapped_column(String(16))
    order_line_id: Mapped[int | None] = mapped_column()
    allocation_id: Mapped[int | None] = mapped_column()
    lot_id: Mapped[int | None] = mapped_column(index=True)
    household_id: Mapped[int | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(_in("component", COMPONENTS), name="component"),
        CheckConstraint("amount_fen <> 0", name="amount_fen"),
        Index("ix_ledger_postings_account_transaction", "account_id", "transaction_id"),
        Index("ix_ledger_postings_household_lines", "order_line_id", "household_id", postgresql_include=["amount_fen"],
              postgresql_where=text(HOUSEHOLD_POSTINGS), sqlite_where=text(HOUSEHOLD_POSTINGS)),
    )


class ChainHead(db.Model):
    """The one row (id 1) naming the last linked transaction: its position and hash."""

    __tablename__ = "ledger_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    last_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class DisclosureNotice(db.Model):
    """A county's public disclosure (公示) of one month as published: computed once no sale can be dated in that
    month in the normal course, then shown unchanged (a later change shows beside it as a revision)."""

    __tablename__ = "disclosure_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    county_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    month: Mapped[date] = mapped_column(Date)  # its first day
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    figures: Mapped[dict] = mapped_column(JSON)  # villages, other_villages, total; ledger_seq: the chain it includes
    # the revisions shown since, oldest first: each its figures, computed_at, ledger_seq and members, as figures keep
    revisions: Mapped[list | None] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("county_code", "month", name="uq_disclosure_notices_county_month"),)


class LedgerVerification(db.Model):
    """A full verification of the ledger requested through the API: queued, run by a task (its live progress in
    the cache), then its result."""

    __tablename__ = "ledger_verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    transactions: Mapped[int | None] = mapped_column(Integer)
    balanced: Mapped[bool | None] = mapped_column(Boolean)
    chain_intact: Mapped[bool | None] = mapped_column(Boolean)
    first_bad_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: it may name a removed transaction
    accounts_intact: Mapped[bool | None] = mapped_column(Boolean)
    first_bad_account: Mapped[str | None] = mapped_column(String(64))
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_in("status", VERIFICATION_STATUSES), name="status"),
        CheckConstraint("progress_done >= 0 AND progress_total >= 0", name="counts"),
    )


class StoreRemittance(CommitOrdered, db.Model):
    """Counter cash a store handed over, received in the platform's bank account on `received_on` under the bank's
    `reference`: the amount, the commission the store kept out of the cash it held, who recorded it and its ledger
    transaction."""

    __tablename__ = "store_remittances"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    commission_kept_fen: Mapped[int] = mapped_column(BigInteger)
    received_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(64))
    # the reference as `shop.fields.bank_reference` spells it, once per store (a row recorded before that rule keeps
    # its reference as it was recorded, 0063)
    reference_key: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), unique=True)
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    __table_args__ = (CheckConstraint("amount_fen > 0 AND commission_kept_fen >= 0", name="amounts"),
                      UniqueConstraint("store_id", "reference_key", name="uq_store_remittances_store_reference_key"))
