"""Attribution: the ledger's consumer of the orders' outbox (DESIGN.md, "Money and attribution rules").

Each outbox event becomes exactly one ledger transaction (`outbox_event_id` is unique): the event row
is locked, and an event already in the ledger is left alone, so replays, retries and concurrent
deliveries post nothing twice. Events of one order are applied in id order: an event whose order has
earlier events not yet in the ledger applies those first (a refund is never posted before its sale).

Signs: the money a buyer paid is a negative posting on its source (`payments:<provider>` online,
`store_cash:<store>` for cash and `payments:terminal` for card counter sales); the parties it is
owed to get positive postings. A refund posts the exact difference of the rules (`rules.py`) for
each allocation it touched. Household postings also move the lot's `attributed_fen` (the trace
page's total) and the order's impact (`impact.py`), so neither the catalog nor the orders read the ledger.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import NamedTuple

from flask import current_app
from sqlalchemy import select, update

from catalog.models import Lot, LotContribution
from orders.ledger import chain
from orders.ledger.accounts import account
from orders.ledger.impact import IMPACT_KINDS, push_order_impact
from orders.ledger.models import LedgerAccount, LedgerTransaction
from orders.ledger.rules import Holder, Part, Rates, refund_difference, split_allocation
from orders.models import Allocation, Order, OrderLine, OutboxEvent, Payment
from shop.db import db, lock_on_sqlite
from suppliers.models import Household
from suppliers.service import dividend_shares

O2O_CHANNELS = ("pickup", "counter")


class AccountRef(NamedTuple):
    """An account a posting goes to, by code (created, if missing, when the postings are resolved)."""

    code: str
    kind: str
    party: tuple[tuple[str, int], ...] = ()


Posting = tuple[AccountRef, int, str, dict]


def _ref(code: str, kind: str, **party: int) -> AccountRef:
    """The reference of the account `code`."""
    return AccountRef(code, kind, tuple(sorted(party.items())))


def _source(order: Order) -> AccountRef:
    """Where the buyer's money arrived: the store's cash, the store's card terminal, or the online provider."""
    if order.channel == "counter" and order.payment_method == "cash":
        return _ref(f"store_cash:{order.store_id}", "store_cash", store_id=order.store_id)
    if order.channel == "counter":
        return _ref("payments:terminal", "payments")
    provider = db.session.scalar(
        select(Payment.provider).where(Payment.order_id == order.id, Payment.status.in_(("succeeded", "returned")))
        .order_by(Payment.id.desc()).limit(1)) or current_app.config["PAYMENTS"]
    return _ref(f"payments:{provider}", "payments")


def _party(component: str, household_id: int | None, *, order: Order, line: OrderLine,
           lot_supplier_id: int) -> AccountRef:
    """The account one part of a split goes to (premium: the lot's supplier; dividend and the rest: the line's)."""
    if component == "platform_fee":
        return _ref("platform", "platform")
    if component == "store_commission":
        return _ref(f"store:{order.store_id}", "store", store_id=order.store_id)
    supplier_id = lot_supplier_id if component == "premium" else line.supplier_id
    if household_id is None:
        return _ref(f"supplier:{supplier_id}", "supplier", supplier_id=supplier_id)
    return _ref(f"household:{household_id}@supplier:{supplier_id}", "household",
                household_id=household_id, supplier_id=supplier_id)


def apply_event(event: OutboxEvent) -> LedgerTransaction | None:
    """Post the ledger transaction of one outbox event (and of its order's earlier unapplied events, first);
    None if the event was already in the ledger. The caller commits."""
    earlier = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.order_id == event.order_id, OutboxEvent.id < event.id,
                                  ~select(LedgerTransaction.id)
                                  .where(LedgerTransaction.outbox_event_id == OutboxEvent.id).exists())
        .order_by(OutboxEvent.id)).all()
    pending = [(each, postings) for each in [*earlier, event] if (postings := _unapplied(each)) is not None]
    accounts = _resolve({ref for _event, postings in pending for ref, *_ in postings})
    transaction = None
    for each, postings in pending:
        transaction = chain.post(kind=each.kind, outbox_event_id=each.id, order_id=each.order_id,
                                 order_line_id=each.order_line_id, sale_date=each.sale_date,
                                 memo=f"outbox event {each.id}: {each.kind}",
                                 postings=[(accounts[ref], amount, component, refs)
                                           for ref, amount, component, refs in postings])
    if any(each.kind in IMPACT_KINDS for each, _postings in pending):
        push_order_impact(event.order_id)
    _push_lot_totals([posting for _event, postings in pending for posting in postings])
    return transaction if pending and pending[-1][0].id == event.id else None


def _unapplied(event: OutboxEvent) -> list[Posting] | None:
    """Lock the event row; its postings unless the ledger already has it (then None)."""
    lock_on_sqlite("UPDATE outbox_events SET id = id WHERE id = :id", id=event.id)
    db.session.execute(select(OutboxEvent.id).where(OutboxEvent.id == event.id).with_for_update())
    if db.session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.outbox_event_id == event.id)):
        return None
    return _BUILDERS[event.kind](event, db.session.get(Order, event.order_id))


def _resolve(refs: set[AccountRef]) -> dict[AccountRef, LedgerAccount]:
    """The accounts of `refs` (one query), the missing ones created in code order (racing creators never wait
    on each other in a cycle)."""
    found = {row.code: row for row in db.session.scalars(
        select(LedgerAccount).where(LedgerAccount.code.in_({ref.code for ref in refs})))}
    return {ref: found.get(ref.code) or account(ref.code, ref.kind, **dict(ref.party)) for ref in sorted(refs)}


def _push_lot_totals(postings: list[Posting]) -> None:
    """Add the household postings of each lot to its `attributed_fen`, lots in id order (so that workers
    attributing in parallel lock shared lots in one order)."""
    totals: dict[int, int] = defaultdict(int)
    for ref, amount, _component, refs in postings:
        if ref.kind == "household" and refs.get("lot_id"):
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


def _shareholders(supplier_id: int, on: date) -> list[Holder]:
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
    ids = {item["allocation_id"] for item in event.payload.get("allocations", [])}
    allocations = {a.id: a for a in line.allocations if a.id in ids}
    lot_suppliers = dict(db.session.execute(select(Lot.id, Lot.supplier_id)
                                            .where(Lot.id.in_({a.lot_id for a in allocations.values()}))).all())
    rates = Rates(line.platform_fee_bp, line.store_commission_bp, line.household_premium_bp, line.dividend_bp)
    return line, allocations, lot_suppliers, rates


def _part_postings(parts: dict[Part, int], sign: int, *, order: Order, line: OrderLine,
                   allocation: Allocation, lot_supplier_id: int) -> list[Posting]:
    """Postings of one allocation's split (or refund difference), signed."""
    return [(_party(component, household_id, order=order, line=line, lot_supplier_id=lot_supplier_id),
             sign * fen, component,
             {"order_line_id": line.id, "allocation_id": allocation.id, "lot_id": allocation.lot_id,
              "household_id": household_id})
            for (component, household_id), fen in sorted(parts.items(), key=lambda item: (item[0][0], item[0][1] or 0))]


def _line_paid(event: OutboxEvent, order: Order) -> list[Posting]:
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
        postings += _part_postings(parts, 1, order=order, line=line, allocation=allocation,
                                   lot_supplier_id=lot_suppliers[allocation.lot_id])
    total = sum(amount for _account, amount, _component, _refs in postings)
    if total:
        postings.insert(0, (_source(order), -total, "payment", {"order_line_id": line.id}))
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


def _line_refunded(event: OutboxEvent, order: Order) -> list[Posting]:
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
        postings += _part_postings(parts, -1, order=order, line=line, allocation=allocation,
                                   lot_supplier_id=lot_suppliers[allocation.lot_id])
    total = -sum(amount for _account, amount, _component, _refs in postings)
    if total:
        postings.insert(0, (_source(order), total, "payment", {"order_line_id": line.id}))
    return postings


def _refund_remainder(event: OutboxEvent, order: Order) -> list[Posting]:
    """The part of an amount refund below one unit's price: borne by the platform, back on the source."""
    if not event.amount_fen:
        return []
    return [(_ref("platform", "platform"), -event.amount_fen, "remainder", {}),
            (_source(order), event.amount_fen, "payment", {})]


def _payment_unallocated(event: OutboxEvent, order: Order) -> list[Posting]:
    """A payment that could not be allocated: received on the source, held as unallocated."""
    if not event.amount_fen:
        return []
    return [(_source(order), -event.amount_fen, "payment", {}),
            (_ref("unallocated", "unallocated"), event.amount_fen, "unallocated", {})]


def _payment_returned(event: OutboxEvent, order: Order) -> list[Posting]:
    """The automatic refund of an unallocated payment: off unallocated, back on the source."""
    if not event.amount_fen:
        return []
    return [(_ref("unallocated", "unallocated"), -event.amount_fen, "unallocated", {}),
            (_source(order), event.amount_fen, "payment", {})]


_BUILDERS: dict[str, Callable[[OutboxEvent, Order], list[Posting]]] = {
    "line_paid": _line_paid,
    "line_refunded": _line_refunded,
    "refund_remainder": _refund_remainder,
    "payment_unallocated": _payment_unallocated,
    "payment_returned": _payment_returned,
}
