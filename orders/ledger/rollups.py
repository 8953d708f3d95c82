"""Daily and monthly rollups of the pairing report (issue 10), refreshed by a periodic task.

`pairing_rollup_sales` holds per sale date and (donor, county, paired) the orders, units and sales of the lines
sold that day, net of refunds (an order has one sale date, so summing days counts each order once).
`pairing_rollup_households` holds per sale date, (donor, county, paired) and household the net household
postings of those lines, and `pairing_rollup_months` the same per calendar month of sale dates, so a period's
households reached (distinct households whose net over the period is not zero) stays exact: the report sums
the months wholly inside the period and the days at its edges. Rows whose net is zero are not kept.

The refresh recomputes exactly the sale dates touched by ledger transactions linked since its watermark (the
chain's `seq`, assigned in commit order under the chain head's lock, so no transaction commits behind it): a
transaction's own sale date and the sale date of its line's `line_paid` transaction — a refund posted today
of a sale last month recomputes that sale date. A change to the pairings (their digest differs) recomputes
every date. The watermark row is locked for the refresh's transaction, so concurrent refreshes run one after
the other and the second finds nothing left to do; running it again changes nothing.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime

import click
from celery import shared_task
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Integer,
    String,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from orders.ledger.models import LedgerTransaction
from shop.db import UTCDateTime, db, lock_on_sqlite, utcnow
from shop.regions.models import Pairing

REFRESH_EVERY_SECONDS = 60.0
_INSERTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}


class PairingRollupSales(db.Model):
    """Per sale date and (donor district, recipient county, paired): orders, units still sold and their value."""

    __tablename__ = "pairing_rollup_sales"

    sale_date: Mapped[date] = mapped_column(Date, primary_key=True)
    donor_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    county_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    paired: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(BigInteger)
    sales_fen: Mapped[int] = mapped_column(BigInteger)


class PairingRollupHousehold(db.Model):
    """Per sale date, (donor, county, paired) and household: the net household postings of that day's lines."""

    __tablename__ = "pairing_rollup_households"

    sale_date: Mapped[date] = mapped_column(Date, primary_key=True)
    donor_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    county_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    paired: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    household_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    net_fen: Mapped[int] = mapped_column(BigInteger)


class PairingRollupMonth(db.Model):
    """Per month of sale dates (its first day), (donor, county, paired) and household: the net of its days."""

    __tablename__ = "pairing_rollup_months"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    donor_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    county_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    paired: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    household_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    net_fen: Mapped[int] = mapped_column(BigInteger)


class PairingRollupState(db.Model):
    """The one row (id 1): the last ledger `seq` and pairings digest the rollups include, and as of when."""

    __tablename__ = "pairing_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ledger_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    pairings_digest: Mapped[str] = mapped_column(String(64), default="")
    fresh_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


def next_month(month: date) -> date:
    """The first day of the month after `month`'s."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def read_state() -> PairingRollupState | None:
    """The watermark row as it is (None before the first refresh)."""
    return db.session.get(PairingRollupState, 1)


def is_stale(state: PairingRollupState | None) -> bool:
    """Whether ledger transactions were linked or the pairings changed since the refresh that wrote `state`."""
    return state is None or state.ledger_seq < ledger_head() or state.pairings_digest != _pairings_digest()


def refresh_rollups() -> dict:
    """Recompute the sale dates touched since the watermark (every date if the pairings changed), in the
    caller's transaction, holding the watermark row's lock; what it did."""
    state = _lock_state()
    fresh_as_of, head, digest = utcnow(), ledger_head(), _pairings_digest()
    dates = None if digest != state.pairings_digest else _dirty_dates(state.ledger_seq, head)
    if dates is None or dates:
        _recompute(dates)
    state.ledger_seq, state.pairings_digest, state.fresh_as_of = head, digest, fresh_as_of
    db.session.flush()
    return {"ledger_seq": head, "sale_dates": "all" if dates is None else len(dates),
            "fresh_as_of": fresh_as_of.isoformat()}


def _lock_state() -> PairingRollupState:
    """The watermark row, locked until commit (created first if missing: a new database, or tests empty it); on
    SQLite, the database's write lock taken first."""
    lock_on_sqlite("UPDATE pairing_rollup_state SET id = id WHERE id = 1")
    locked = select(PairingRollupState).where(PairingRollupState.id == 1).with_for_update().execution_options(
        populate_existing=True)
    state = db.session.scalar(locked)
    if state is None:
        insert_state = _INSERTS[db.session.get_bind().dialect.name](PairingRollupState)
        db.session.execute(insert_state.values(id=1, ledger_seq=0, pairings_digest="").on_conflict_do_nothing(
            index_elements=["id"]))
        state = db.session.scalar(locked)
    return state


def ledger_head() -> int:
    """The last linked ledger transaction's `seq` (0 for an empty ledger)."""
    return db.session.scalar(select(func.max(LedgerTransaction.seq))) or 0


def _pairings_digest() -> str:
    """A digest of every pairing's donor, county and validity: the rollups' `paired` flags depend on nothing else."""
    rows = db.session.execute(select(Pairing.donor_code, Pairing.recipient_code, Pairing.valid_from,
                                     Pairing.valid_until).order_by(Pairing.id)).all()
    return hashlib.sha256(repr([tuple(map(str, row)) for row in rows]).encode()).hexdigest()


def _dirty_dates(after_seq: int, head: int) -> set[date]:
    """The sale dates of the transactions linked in (after_seq, head] and of their lines' `line_paid` ones."""
    changed = (LedgerTransaction.seq > after_seq, LedgerTransaction.seq <= head)
    own = select(LedgerTransaction.sale_date).where(*changed, LedgerTransaction.sale_date.is_not(None))
    lines = select(LedgerTransaction.order_line_id).where(*changed, LedgerTransaction.order_line_id.is_not(None))
    paid = select(LedgerTransaction.sale_date).where(LedgerTransaction.kind == "line_paid",
                                                     LedgerTransaction.order_line_id.in_(lines))
    return set(db.session.scalars(own.union(paid)))


def _recompute(dates: set[date] | None) -> None:
    """Replace the daily rows of `dates` (None: all) from the ledger and the order lines, then their months."""
    from orders.ledger.reports import household_totals, sold_lines

    if db.session.get_bind().dialect.name == "postgresql":  # group the postings by hash in memory, no JIT
        db.session.execute(text("SET LOCAL work_mem = '256MB'"))
        db.session.execute(text("SET LOCAL jit = off"))

    def on_dates(column):
        """The condition restricting `column` to `dates` (none for all)."""
        return [] if dates is None else [column.in_(sorted(dates))]

    for model in (PairingRollupSales, PairingRollupHousehold):
        db.session.execute(delete(model).where(*on_dates(model.sale_date)))
    lines = sold_lines(*on_dates(LedgerTransaction.sale_date))
    keys = (lines.c.sale_date, lines.c.donor, lines.c.county, lines.c.paired)
    db.session.execute(insert(PairingRollupSales).from_select(
        ["sale_date", "donor_code", "county_code", "paired", "orders", "units", "sales_fen"],
        select(*keys, func.count(func.distinct(case((lines.c.units > 0, lines.c.order_id)))),
               func.sum(lines.c.units), func.sum(lines.c.sales_fen)).group_by(*keys)))
    nets = household_totals(lines, *keys)
    columns = (nets.c.sale_date, nets.c.donor, nets.c.county, nets.c.paired, nets.c.household_id)
    db.session.execute(insert(PairingRollupHousehold).from_select(
        ["sale_date", "donor_code", "county_code", "paired", "household_id", "net_fen"],
        select(*columns, nets.c.net).where(nets.c.net != 0)))
    months = ({day.replace(day=1) for day in dates} if dates is not None else
              {day.replace(day=1) for day in db.session.scalars(select(PairingRollupSales.sale_date).distinct())})
    db.session.execute(delete(PairingRollupMonth).where(*([] if dates is None else [
        PairingRollupMonth.month.in_(sorted(months))])))
    daily = PairingRollupHousehold
    month_keys = (daily.donor_code, daily.county_code, daily.paired, daily.household_id)
    for month in sorted(months):
        db.session.execute(insert(PairingRollupMonth).from_select(
            ["month", "donor_code", "county_code", "paired", "household_id", "net_fen"],
            select(literal(month, Date), *month_keys, func.sum(daily.net_fen))
            .where(daily.sale_date >= month, daily.sale_date < next_month(month))
            .group_by(*month_keys).having(func.sum(daily.net_fen) != 0)))


@shared_task(name="ledger.refresh_pairing_rollups", acks_late=True)
def refresh_pairing_rollups() -> dict:
    """Bring the pairing report's rollups up to the ledger (on the beat schedule; one transaction)."""
    return refresh_rollups()


@click.command("refresh-rollups")
def refresh_rollups_command() -> None:
    """Bring the pairing report's rollups up to the ledger now, as the periodic task does."""
    done = refresh_rollups()
    db.session.commit()
    click.echo(f"pairing rollups: {done['sale_dates']} sale dates recomputed, ledger seq {done['ledger_seq']}, "
               f"fresh as of {done['fresh_as_of']}")
