"""Payout batches, their lines (one per payee), and the audited downloads of their bank files."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop import crypto
from shop.auth.models import User
from shop.db import CommitOrdered, UTCDateTime, db, utcnow

PARTIES = ("household", "supplier", "store")
BATCH_STATUSES = ("queued", "building", "ready", "failed")
LINE_STATUSES = ("pending", "paid", "failed", "unpayable")
BANK_ACCOUNT_FIELD = "payout_lines.bank_account"


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL for `column IN (values)`."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class PayoutBatch(CommitOrdered, db.Model):
    """A batch paying one party kind (households of one supplier, suppliers or stores) up to a cut-off date."""

    __tablename__ = "payout_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    party: Mapped[str] = mapped_column(String(16))
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), index=True)
    until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    built_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    lines: Mapped[list[PayoutLine]] = relationship(order_by="PayoutLine.id", back_populates="batch")

    __table_args__ = (
        CheckConstraint(_in("party", PARTIES), name="party"),
        CheckConstraint(_in("status", BATCH_STATUSES), name="status"),
        CheckConstraint("(party = 'household') = (supplier_id IS NOT NULL)", name="household_per_supplier"),
        CheckConstraint("progress_done >= 0 AND progress_total >= 0 AND total_fen >= 0", name="counts"),
    )


class PayoutLine(db.Model):
    """One payee's amount in a batch: moved to payouts clearing (pending), then paid or failed; or listed as
    unpayable (nothing moved) with the reason. The payee's name and bank account are kept as exported; who paid and
    who returned (failed) it, when, and why it failed."""

    __tablename__ = "payout_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batches.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    payee_name: Mapped[str] = mapped_column(String(128))
    bank_account_enc: Mapped[str | None] = mapped_column(String(255))
    bank_account_masked: Mapped[str | None] = mapped_column(String(40))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    paid_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    failed_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the latest settlement (paid, or returned)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # kept when the bank later returns the transfer
    paid_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    batch: Mapped[PayoutBatch] = relationship(back_populates="lines")
    account_changed = False  # not a column: whether the payee's account changed since the build, set when shown

    __table_args__ = (
        UniqueConstraint("batch_id", "account_id", name="uq_payout_lines_batch_account"),
        CheckConstraint(_in("status", LINE_STATUSES), name="status"),
        CheckConstraint("amount_fen > 0", name="amount_fen"),
        CheckConstraint("(CASE WHEN household_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN supplier_id IS NULL THEN 0 "
                        "ELSE 1 END) + (CASE WHEN store_id IS NULL THEN 0 ELSE 1 END) = 1", name="one_payee"),
        CheckConstraint("(status = 'unpayable') = (bank_account_enc IS NULL)", name="unpayable_without_account"),
        CheckConstraint("status <> 'unpayable' OR reason IS NOT NULL", name="unpayable_reason"),
        CheckConstraint("status <> 'paid' OR paid_transaction_id IS NOT NULL", name="paid_posted"),
        CheckConstraint("status <> 'failed' OR failed_transaction_id IS NOT NULL", name="failed_posted"),
    )

    @property
    def bank_account(self) -> str | None:
        """The decrypted account number the line is paid to."""
        return crypto.decrypt(self.bank_account_enc, field=BANK_ACCOUNT_FIELD) if self.bank_account_enc else None

    @bank_account.setter
    def bank_account(self, value: str | None) -> None:
        self.bank_account_enc = crypto.encrypt(value, field=BANK_ACCOUNT_FIELD) if value else None


class PayoutDownload(CommitOrdered, db.Model):
    """Someone downloaded a batch's bank file (full account numbers): who, when, why, how many lines."""

    __tablename__ = "payout_downloads"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batches.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    lines: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    user: Mapped[User] = relationship(lazy="joined")

    @property
    def username(self) -> str:
        """The name of the user who downloaded the file (masked as every audit shows it)."""
        return self.user.masked_username
