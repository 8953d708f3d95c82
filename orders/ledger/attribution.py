"""Attribution: the ledger's consumer of the orders' outbox (DESIGN.md, "Money and attribution rules").

Each outbox event becomes exactly one ledger transaction (`outbox_event_id` is unique): the event row
is locked, and an event already in the ledger is left alone, so replays, retries and concurrent
deliveries post nothing twice. Events of one order are applied in id order: an event whose order has
earlier events not yet in the ledger applies those first (a refund is never posted before its sale).

Signs: the money a buyer paid is a negative posting on its source (`payments:<provider>` online,
`store_cash:<store>` for cash and `payments:terminal` for card counter sales); the parties it is
owed to get positive postings. A refund posts the exact difference of the rules (`rules.py`) for
each allocation it touched. Household postings also move the lot's `attributed_fen` (the trace
page's total), so the catalog never reads the ledger.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from flask import current_app
from sqlalchemy import select, update

from catalog.models import Lot, LotContribution
from orders.ledger import chain
from orders.ledger.accounts import account
from orders.ledger.models import LedgerAccount, LedgerTransaction
from orders.ledger.rules import Holder, Part, Rates, refund_difference, split_allocation
from orders.models import Allocation, Order, OrderLine, OutboxEvent, Payment
from shop.db import db, lock_on_sqlite
from suppliers.models import Household
from suppliers.service import dividend_shares

O2O_CHANNELS = ("pickup", "counter")
Posting = tuple[LedgerAccount, int, str, dict]


class _Accounts:
    """Get-or-create accounts by code, once per event."""

    def __init__(self) -> None:
        self._cache: dict[str, LedgerAccount] = {}

    def get(self, code: str, kind: str, **party: int) -> LedgerAccount:
        """The account `code` (created if missing)."""
        if code not in self._cache:
            self._cache[code] = account(code, kind, **party)
        return self._cache[code]

    def source(self, order: Order) -> LedgerAccount:
        """Where the buyer's money arrived: the store's cash, the store's card terminal, or the online provider."""
        if order.channel == "counter" and order.payment_method == "cash":
            return self.get(f"store_cash:{order.store_id}", "store_cash", store_id=order.store_id)
        if order.channel == "counter":
            return self.get("payments:terminal", "payments")
        provider = db.session.scalar(
            select(Payment.provider).where(Payment.order_id == order.id,
                                           Payment.status.in_(("succeeded", "returned")))
            .order_by(Payment.id.desc()).limit(1)) or current_app.config["PAYMENTS"]
        return self.get(f"payments:{provider}", "payments")

    def party(self, component: str, household_id: int | None, *, order: Order, line: OrderLine,
              lot_supplier_id: int) -> LedgerAccount:
        """The account one part of a split goes to."""
        if component == "platform_fee":
            return self.get("platform", "platform")
        if component == "store_commission":
            return self.get(f"store:{order.store_id}", "store", store_id=order.store_id)
        supplier_id = lot_supplier_id if component == "premium" else line.supplier_id
        if household_id is None:
            return self.get(f"supplier:{supplier_id}", "supplier", supplier_id=supplier_id)
        return self.get(f"household:{household_id}@supplier:{supplier_id}", "household",
                        household_id=household_id, supplier_id=supplier_id)


def apply_event(event: OutboxEvent) -> LedgerTransaction | None:
    """Post the ledger transaction of one outbox event (and of its order's earlier unapplied events, first);
    None if the event was already in the ledger. The caller commits."""
    earlier = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.order_id == event.order_id, OutboxEvent.id < event.id,
                                  ~select(LedgerTransaction.id)
                                  .where(LedgerTransaction.outbox_event_id == OutboxEvent.id).exists())
        .order_by(OutboxEvent.id)).all()
    posted: list[Posting] = []
    for previous in earlier:
        _apply_once(previous, posted)
    transaction = _apply_once(event, posted)
    _push_lot_totals(posted)
    return transaction


def _apply_once(event: OutboxEvent, posted: list[Posting]) -> LedgerTransaction | None:
    """Lock the event row, and post its transaction unless the ledger already has it (its postings are
    added to `posted`)."""
    lock_on_sqlite("UPDATE outbox_events SET id = id WHERE id = :id", id=event.id)
    db.session.execute(select(OutboxEvent.id).where(OutboxEvent.id == event.id).with_for_update())
    if db.session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.outbox_event_id == event.id)):
        return None
    order = db.session.get(Order, event.order_id)
    postings = _BUILDERS[event.kind](event, order, _Accounts())
    transaction = chain.post(kind=event.kind, postings=postings, outbox_event_id=event.id, order_id=order.id,
                             order_line_id=event.order_line_id, sale_date=event.sale_date,
                             memo=f"outbox event {event.id}: {event.kind}")
    posted += postings
    return transaction


def _push_lot_totals(postings: list[Posting]) -> None:
    """Add the household postings of each lot to its `attributed_fen`, lots in id order (so that workers
    attributing in parallel lock shared lots in one order)."""
    totals: dict[int, int] = defaultdict(int)
    for ledger_account, amount, _component, refs in postings:
        if ledger_account.kind == "household" and refs.get("lot_id"):
            totals[refs["lot_id"]] += amount
    for lot_id in sorted(totals):
        if totals[lot_id]:
            db.session.execute(update(Lot).where(Lot.id == lot_id)
                               .values(attributed_fen=Lot.attributed_fen + totals[lot_id]))


# --- the holders of the pools -------------------------------------------------------------------------

def _contributors(lot_ids: set[int]) -> dict[int, list[Holder]]:
    """Lot id → the households that contributed to it, weighted by contributed quantity."""
    rows = db.session.execute(
        select(LotContribution.lot_id, LotContribution.household_id, LotContribution.quantity,
               Household.county_code, Household.code)
        .join(Household, Household.id == LotContribution.household_id)
        .where(LotContribution.lot_id.in_(lot_ids)))
    result: dict[int, list[Holder]] = defaultdict(list)
    for lot_id, household_id, quantity, county_code, code in rows:
        result[lot_id].append(Holder(household_id, quantity, county_code, code))
    return result


def _shareholders(supplier_id: int, on) -> list[Holder]:
    """The supplier's dividend holders valid on the sale date, weighted by their summed shares."""
    shares = dividend_shares(supplier_id=supplier_id, on=on)
    if not shares:
        return []
    keys = db.session.execute(select(Household.id, Household.county_code, Household.code)
                              .where(Household.id.in_(shares)))
    return [Holder(household_id, shares[household_id], county_code, code) for household_id, county_code, code in keys]


# --- events → postings ----------------------------------------------------------------------------------

def _line_context(event: OutboxEvent) -> tuple[OrderLine, dict[int, Allocation], dict[int, int], Rates]:
    """The event's line, the allocations its payload names, their lots' suppliers, and the line's rates."""
    line = db.session.get(OrderLine, event.order_line_id)
    ids = [item["allocation_id"] for item in event.payload.get("allocations", [])]
    allocations = {a.id: a for a in db.session.scalars(select(Allocation).where(Allocation.id.in_(ids)))}
    lot_suppliers = dict(db.session.execute(select(Lot.id, Lot.supplier_id)
                                            .where(Lot.id.in_({a.lot_id for a in allocations.values()}))).all())
    rates = Rates(line.platform_fee_bp, line.store_commission_bp, line.household_premium_bp, line.dividend_bp)
    return line, allocations, lot_suppliers, rates


def _part_postings(parts: dict[Part, int], sign: int, *, accounts: _Accounts, order: Order, line: OrderLine,
                   allocation: Allocation, lot_supplier_id: int) -> list[Posting]:
    """Postings of one allocation's split (or refund difference), signed."""
    return [(accounts.party(component, household_id, order=order, line=line, lot_supplier_id=lot_supplier_id),
             sign * fen, component,
             {"order_line_id": line.id, "allocation_id": allocation.id, "lot_id": allocation.lot_id,
              "household_id": household_id})
            for (component, household_id), fen in sorted(parts.items(), key=lambda item: (item[0][0], item[0][1] or 0))]


def _line_paid(event: OutboxEvent, order: Order, accounts: _Accounts) -> list[Posting]:
    """The buyer's money off the source, each allocation's split to its parties."""
    line, allocations, lot_suppliers, rates = _line_context(event)
    contributors = _contributors(set(lot_suppliers))
    shareholders = _shareholders(line.supplier_id, event.sale_date)
    postings: list[Posting] = []
    for item in event.payload["allocations"]:
        allocation = allocations[item["allocation_id"]]
        parts = split_allocation(amount=item["quantity"] * line.unit_price_fen, rates=rates,
                                 o2o=order.channel in O2O_CHANNELS,
                                 contributors=contributors.get(allocation.lot_id, []), shareholders=shareholders)
        postings += _part_postings(parts, 1, accounts=accounts, order=order, line=line, allocation=allocation,
                                   lot_supplier_id=lot_suppliers[allocation.lot_id])
    total = sum(amount for _account, amount, _component, _refs in postings)
    if total:
        postings.insert(0, (accounts.source(order), -total, "payment", {"order_line_id": line.id}))
    return postings


def _refunded_before(event: OutboxEvent) -> dict[int, int]:
    """Allocation id → units taken off it by the line's refund events before this one."""
    taken: dict[int, int] = defaultdict(int)
    payloads = db.session.scalars(select(OutboxEvent.payload).where(
        OutboxEvent.order_line_id == event.order_line_id, OutboxEvent.kind == "line_refunded",
        OutboxEvent.id < event.id))
    for payload in payloads:
        for item in payload.get("allocations", []):
            taken[item["allocation_id"]] += item["quantity"]
    return taken


def _line_refunded(event: OutboxEvent, order: Order, accounts: _Accounts) -> list[Posting]:
    """Per allocation touched, the attribution of its old remaining units minus that of its new remaining
    units, taken back from the parties; the refunded money back on the source."""
    line, allocations, lot_suppliers, rates = _line_context(event)
    contributors = _contributors(set(lot_suppliers))
    shareholders = _shareholders(line.supplier_id, event.sale_date)
    before = _refunded_before(event)
    postings: list[Posting] = []
    for item in event.payload["allocations"]:
        allocation = allocations[item["allocation_id"]]
        old_units = allocation.quantity - before[allocation.id]
        parts = refund_difference(old_units=old_units, new_units=old_units - item["quantity"],
                                  unit_price=line.unit_price_fen, rates=rates, o2o=order.channel in O2O_CHANNELS,
                                  contributors=contributors.get(allocation.lot_id, []), shareholders=shareholders)
        postings += _part_postings(parts, -1, accounts=accounts, order=order, line=line, allocation=allocation,
                                   lot_supplier_id=lot_suppliers[allocation.lot_id])
    total = -sum(amount for _account, amount, _component, _refs in postings)
    if total:
        postings.insert(0, (accounts.source(order), total, "payment", {"order_line_id": line.id}))
    return postings


def _refund_remainder(event: OutboxEvent, order: Order, accounts: _Accounts) -> list[Posting]:
    """The part of an amount refund below one unit's price: borne by the platform, back on the source."""
    if not event.amount_fen:
        return []
    return [(accounts.get("platform", "platform"), -event.amount_fen, "remainder", {}),
            (accounts.source(order), event.amount_fen, "payment", {})]


def _payment_unallocated(event: OutboxEvent, order: Order, accounts: _Accounts) -> list[Posting]:
    """A payment that could not be allocated: received on the source, held as unallocated."""
    if not event.amount_fen:
        return []
    return [(accounts.source(order), -event.amount_fen, "payment", {}),
            (accounts.get("unallocated", "unallocated"), event.amount_fen, "unallocated", {})]


def _payment_returned(event: OutboxEvent, order: Order, accounts: _Accounts) -> list[Posting]:
    """The automatic refund of an unallocated payment: off unallocated, back on the source."""
    if not event.amount_fen:
        return []
    return [(accounts.get("unallocated", "unallocated"), -event.amount_fen, "unallocated", {}),
            (accounts.source(order), event.amount_fen, "payment", {})]


_BUILDERS: dict[str, Callable[[OutboxEvent, Order, _Accounts], list[Posting]]] = {
    "line_paid": _line_paid,
    "line_refunded": _line_refunded,
    "refund_remainder": _refund_remainder,
    "payment_unallocated": _payment_unallocated,
    "payment_returned": _payment_returned,
}
