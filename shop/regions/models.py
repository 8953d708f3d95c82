"""Regions (GB/T 2260 codes) and donor↔recipient pairings with validity dates."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, String, UniqueConstraint, func, literal_column
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import UTCDateTime, db

LEVELS = ("province", "prefecture", "county")
SIDES = ("donor", "recipient")
OVERLAP_CONSTRAINT = "ex_pairings_no_overlap"


class Region(db.Model):
    """An administrative unit: province, prefecture or county-level unit."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(12), index=True)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"), index=True)
    side: Mapped[str | None] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint("level IN ('province', 'prefecture', 'county')", name="level"),
        CheckConstraint("side IS NULL OR side IN ('donor', 'recipient')", name="side"),
    )


class Pairing(db.Model):
    """A donor district paired with a recipient county from `valid_from` to `valid_until` (inclusive); who last
    ended or reopened it and when (no one: the command line's reference data)."""

    __tablename__ = "pairings"

    id: Mapped[int] = mapped_column(primary_key=True)
    donor_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    recipient_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    program: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(String(200))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    donor: Mapped[Region] = relationship(foreign_keys=[donor_code], lazy="joined")
    recipient: Mapped[Region] = relationship(foreign_keys=[recipient_code], lazy="joined")

    __table_args__ = (
        UniqueConstraint("donor_code", "recipient_code", "valid_from", name="uq_pairings_period"),
        CheckConstraint("valid_until IS NULL OR valid_until >= valid_from", name="period"),
        # one donor, recipient and programme: periods never overlap (enforced by PostgreSQL)
        ExcludeConstraint(
            (literal_column("donor_code"), "="), (literal_column("recipient_code"), "="),
            (literal_column("program"), "="),
            (func.daterange(literal_column("valid_from"), literal_column("valid_until"), literal_column("'[]'")),
             "&&"),
            using="gist", name=OVERLAP_CONSTRAINT,
        ).ddl_if(dialect="postgresql"),
    )
