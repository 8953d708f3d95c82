"""Attribution: the ledger's consumer of the orders' outbox (DESIGN.md, "Money and attribution rules").

Each outbox event becomes exactly one ledger transaction (`outbox_event_id` is unique): the event rows are
locked, and an event already in the ledger is left alone, so replays, retries and concurrent deliveries post
nothing twice. Events of one order are applied in id order: an event whose order has earlier events not yet
in the ledger applies those first (a refund is never posted before its sale).

Events are applied in batches (`apply_events`; one event is a batch of one): the lines, allocations, lots,
contributions, dividend links and accounts of the whole batch are read in a few queries, the splits computed
with `rules.py`, and the transactions written together (`chain.post_many`).

Signs: the money a buyer paid is a negative posting on its source (`payments:<provider>` online,
`store_cash:<store>` for cash and `payments:terminal` for card counter sales); the parties it is
owed to get positive postings. A refund posts the exact difference of the rules (`rules.py`) for
each allocation it touched. Household postings also move the lot's `attributed_fen` (the trace
page's total) and the order's impact (`impact.py`), so neither the catalog nor the orders read the ledger.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import NamedTuple

from flask import current_app
from sqlalchemy import bindparam, or_, select, text, update

from catalog.models import Lot, LotContribution
from orders.ledger import chain
from orders.ledger.accounts import account_ids
from orders.ledger.impact import IMPACT_KINDS, push_order_impacts
from orders.ledger.models import LedgerTransaction
from orders.ledger.rules import Holder, Part, Rates, refund_difference, split_allocation
from orders.models import Allocation, Order, OrderLine, OutboxEvent, Payment
from shop.db import among, db, lock_on_sqlite
from suppliers.models import BenefitLink, Household

O2O_CHANNELS = ("pickup", "counter")
LINE_KINDS = ("line_paid", "line_refunded")


class AccountRef(NamedTuple):
    """An account a posting goes to, by code (created, if missing, when the postings are resolved)."""

    code: str
    kind: str
    party: tuple[tuple[str, int], ...] = ()


Posting = tuple[AccountRef, int, str, dict]
DividendLink = tuple[Holder, date, date | None]  # a holder weighted by one link's shares, valid from, valid until


class OrderFacts(NamedTuple):
    """What attribution needs of an order: its channel, how it was paid, its store and its payment provider."""

    channel: str
    payment_method: str
    store_id: int | None
    provider: str | None


class LineFacts(NamedTuple):
    """What attribution needs of an order line: its supplier, unit price and snapshotted rates."""

    id: int
    supplier_id: int
    unit_price_fen: int
    rates: Rates


class AllocationFacts(NamedTuple):
    """An allocation: its line, lot, units and the lot's supplier."""

    id: int
    order_line_id: int
    lot_id: int
    quantity: int
    lot_supplier_id: int


@dataclass
class Batch:
    """Everything the events of one batch need, read in a few queries."""

    orders: dict[int, OrderFacts]
    lines: dict[int, LineFacts] = field(default_factory=dict)
    allocations: dict[int, AllocationFacts] = field(default_factory=dict)
    contributors: dict[int, list[Holder]] = field(default_factory=dict)
    dividend_links: dict[int, list[DividendLink]] = field(default_factory=dict)
    refunded_before: dict[int, dict[int, int]] = field(default_factory=dict)
    _shareholders: dict[tuple[int, date], list[Holder]] = field(default_factory=dict)

    def shareholders(self, supplier_id: int, on: date) -> list[Holder]:
        """The supplier's dividend holders valid on the sale date, weighted by their summed shares."""
        key = (supplier_id, on)
        if key not in self._shareholders:
            weights: dict[int, int] = defaultdict(int)
            keys: dict[int, Holder] = {}
            for holder, valid_from, valid_until in self.dividend_links.get(supplier_id, []):
                if valid_from <= on and (valid_until is None or valid_until >= on):
                    weights[holder.household_id] += holder.weight
                    keys[holder.household_id] = holder
            self._shareholders[key] = [Holder(hid, weights[hid], holder.county_code, holder.code)
                                       for hid, holder in keys.items()]
        return self._shareholders[key]


def _ref(code: str, kind: str, **party: int) -> AccountRef:
    """The reference of the account `code`."""
    return AccountRef(code, kind, tuple(sorted(party.items())))


@lru_cache(maxsize=65_536)
def _household_ref(household_id: int, supplier_id: int) -> AccountRef:
    """A household's account at one supplier (a batch names each thousands of times: built once)."""
    return _ref(f"household:{household_id}@supplier:{supplier_id}", "household", household_id=household_id,
                supplier_id=supplier_id)


@lru_cache(maxsize=4_096)
def _supplier_ref(supplier_id: int) -> AccountRef:
    """A supplier's account."""
    return _ref(f"supplier:{supplier_id}", "supplier", supplier_id=supplier_id)


@lru_cache(maxsize=4_096)
def _store_ref(store_id: int) -> AccountRef:
    """A store's commission account."""
    return _ref(f"store:{store_id}", "store", store_id=store_id)


PLATFORM = _ref("platform", "platform")
UNALLOCATED = _ref("unallocated", "unallocated")
PLATFORM_COSTS = _ref("platform_costs", "platform_costs")


def apply_events(events: Sequence[OutboxEvent]) -> dict[int, int]:
    """Post the ledger transactions of `events` (and of their orders' earlier unapplied events, first) together;
    event id → transaction id for those posted now (events already in the ledger are left out). The caller
    commits."""
    pending = _lock_pending(events)
    if not pending:
        return {}
    batch = _load(pending)
    built = [(event, _BUILDERS[event.kind](event, batch)) for event in pending]
    refs = {posting[0] for _event, postings in built for posting in postings}
    ids = account_ids({ref.code: (ref.kind, dict(ref.party)) for ref in refs})
    posted = chain.post_many([
        chain.NewTransaction(kind=event.kind, outbox_event_id=event.id, order_id=event.order_id,
                             order_line_id=event.order_line_id, sale_date=event.sale_date,
                             memo=f"outbox event {event.id}: {event.kind}",
                             postings=[(ids[ref.code], ref.code, amount, component, refs)
                                       for ref, amount, component, refs in postings])
        for event, postings in built])
    _push_lot_totals(posting for _event, postings in built for posting in postings)
    push_order_impacts({event.order_id for event in pending if event.kind in IMPACT_KINDS})
    return {event.id: transaction_id for event, transaction_id in zip(pending, posted, strict=True)}


def _lock_pending(events: Sequence[OutboxEvent]) -> list[OutboxEvent]:
    """Lock the events and their orders' earlier events (in id order); those not yet in the ledger, in id order."""
    if not events:
        return []
    last: dict[int, int] = {}
    for event in events:
        last[event.order_id] = max(last.get(event.order_id, 0), event.id)
    lock_on_sqlite("UPDATE outbox_events SET id = id WHERE id = :id", id=events[0].id)
    locked = [event_id for event_id, order_id in db.session.execute(
        select(OutboxEvent.id, OutboxEvent.order_id)
        .where(among(OutboxEvent.order_id, last), OutboxEvent.id <= max(last.values()))
        .order_by(OutboxEvent.id).with_for_update()) if event_id <= last[order_id]]
    known = {event.id: event for event in events}
    earlier = [event_id for event_id in locked if event_id not in known]
    if earlier:  # their orders' events not in this batch: read them whole (the batch's own are read already)
        known.update((event.id, event) for event in db.session.scalars(
            select(OutboxEvent).where(among(OutboxEvent.id, earlier))))
    candidates = [known[event_id] for event_id in locked]
    applied = set(db.session.scalars(select(LedgerTransaction.outbox_event_id).where(
        among(LedgerTransaction.outbox_event_id, [event.id for event in candidates]))))
    return [event for event in candidates if event.id not in applied]


# --- reading a batch --------------------------------------------------------------------------------------

def _load(events: list[OutboxEvent]) -> Batch:
    """Read what the events need: their orders (with the payment provider), the allocations their payloads name
    with lines and lots, the lots' contributors, the line suppliers' dividend links and earlier refunds."""
    provider = (select(Payment.provider).where(Payment.order_id == Order.id,
                                               Payment.status.in_(("succeeded", "returned")))
                .order_by(Payment.id.desc()).limit(1).scalar_subquery())
    orders = {row[0]: OrderFacts(*row[1:]) for row in db.session.execute(
        select(Order.id, Order.channel, Order.payment_method, Order.store_id, provider)
        .where(among(Order.id, {event.order_id for event in events})))}
    batch = Batch(orders=orders)
    line_events = [event for event in events if event.kind in LINE_KINDS]
    allocation_ids = {item["allocation_id"] for event in line_events for item in event.payload.get("allocations", [])}
    if not allocation_ids:
        return batch
    for row in db.session.execute(
            select(Allocation.id, Allocation.order_line_id, Allocation.lot_id, Allocation.quantity, Lot.supplier_id,
                   OrderLine.supplier_id, OrderLine.unit_price_fen, OrderLine.platform_fee_bp,
                   OrderLine.store_commission_bp, OrderLine.household_premium_bp, OrderLine.dividend_bp)
            .join(Lot, Lot.id == Allocation.lot_id).join(OrderLine, OrderLine.id == Allocation.order_line_id)
            .where(among(Allocation.id, allocation_ids))):
        batch.allocations[row[0]] = AllocationFacts(*row[:5])
        batch.lines[row[1]] = LineFacts(row[1], row[5], row[6], Rates(*row[7:]))
    batch.contributors = _contributors({a.lot_id for a in batch.allocations.values()})
    dates = [event.sale_date for event in line_events]
    batch.dividend_links = _dividend_links({line.supplier_id for line in batch.lines.values()}, min(dates), max(dates))
    refunds = [event for event in line_events if event.kind == "line_refunded"]
    if refunds:
        batch.refunded_before = _refunded_before(refunds)
    return batch


def _contributors(lot_ids: set[int]) -> dict[int, list[Holder]]:
    """Lot id → the households that contributed to it, weighted by contributed quantity."""
    rows = db.session.execute(
        select(LotContribution.lot_id, LotContribution.household_id, LotContribution.quantity,
               Household.county_code, Household.code)
        .join(Household, Household.id == LotContribution.household_id)
        .where(among(LotContribution.lot_id, lot_ids)))
    result: dict[int, list[Holder]] = defaultdict(list)
    for lot_id, household_id, quantity, county_code, code in rows:
        result[lot_id].append(Holder(household_id, quantity, county_code, code))
    return result


def _dividend_links(supplier_ids: set[int], first: date, last: date) -> dict[int, list[DividendLink]]:
    """Supplier id → its dividend links valid on some day between `first` and `last`: (holder weighted by the
    link's shares, valid_from, valid_until)."""
    rows = db.session.execute(
        select(BenefitLink.supplier_id, BenefitLink.household_id, BenefitLink.shares, BenefitLink.valid_from,
               BenefitLink.valid_until, Household.county_code, Household.code)
        .join(Household, Household.id == BenefitLink.household_id)
        .where(among(BenefitLink.supplier_id, supplier_ids), BenefitLink.kind == "dividend",
               BenefitLink.valid_from <= last, or_(BenefitLink.valid_until.is_(None), BenefitLink.valid_until >= first))
        .order_by(BenefitLink.id))
    result: dict[int, list[DividendLink]] = defaultdict(list)
    for supplier_id, household_id, shares, valid_from, valid_until, county_code, code in rows:
        result[supplier_id].append((Holder(household_id, shares or 0, county_code, code), valid_from, valid_until))
    return result


def _refunded_before(refunds: list[OutboxEvent]) -> dict[int, dict[int, int]]:
    """Refund event id → (allocation id → units taken off it by its line's refund events before it)."""
    rows = db.session.execute(select(OutboxEvent.id, OutboxEvent.order_line_id, OutboxEvent.payload).where(
        among(OutboxEvent.order_line_id, {event.order_line_id for event in refunds}),
        OutboxEvent.kind == "line_refunded"))
    by_line: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    for event_id, line_id, payload in rows:
        by_line[line_id].append((event_id, payload))
    result: dict[int, dict[int, int]] = {}
    for event in refunds:
        taken: dict[int, int] = defaultdict(int)
        for event_id, payload in by_line[event.order_line_id]:
            if event_id < event.id:
                for item in payload.get("allocations", []):
                    taken[item["allocation_id"]] += item["quantity"]
        result[event.id] = taken
    return result


# --- events → postings ----------------------------------------------------------------------------------

def _source(order: OrderFacts) -> AccountRef:
    """Where the buyer's money arrived: the store's cash, the store's card terminal, or the online provider."""
    if order.channel == "counter" and order.payment_method == "cash":
        return _ref(f"store_cash:{order.store_id}", "store_cash", store_id=order.store_id)
    if order.channel == "counter":
        return _ref("payments:terminal", "payments")
    return _ref(f"payments:{order.provider or current_app.config['PAYMENTS']}", "payments")


def _party(component: str, household_id: int | None, *, order: OrderFacts, line: LineFacts,
           lot_supplier_id: int) -> AccountRef:
    """The account one part of a split goes to (premium: the lot's supplier; dividend and the rest: the line's)."""
    if component == "platform_fee":
        return PLATFORM
    if component == "store_commission":
        return _store_ref(order.store_id)
    supplier_id = lot_supplier_id if component == "premium" else line.supplier_id
    if household_id is None:
        return _supplier_ref(supplier_id)
    return _household_ref(household_id, supplier_id)


def _part_postings(parts: dict[Part, int], sign: int, *, order: OrderFacts, line: LineFacts,
                   allocation: AllocationFacts) -> list[Posting]:
    """Postings of one allocation's split (or refund difference), signed."""
    return [(_party(component, household_id, order=order, line=line, lot_supplier_id=allocation.lot_supplier_id),
             sign * fen, component,
             {"order_line_id": line.id, "allocation_id": allocation.id, "lot_id": allocation.lot_id,
              "household_id": household_id})
            for (component, household_id), fen in sorted(parts.items(), key=lambda item: (item[0][0], item[0][1] or 0))]


def _line_paid(event: OutboxEvent, batch: Batch) -> list[Posting]:
    """The buyer's money off the source, each allocation's split to its parties."""
    order = batch.orders[event.order_id]
    postings: list[Posting] = []
    for item in event.payload["allocations"]:
        allocation = batch.allocations[item["allocation_id"]]
        line = batch.lines[allocation.order_line_id]
        parts = split_allocation(amount=item["quantity"] * line.unit_price_fen, rates=line.rates,
                                 o2o=order.channel in O2O_CHANNELS,
                                 contributors=batch.contributors.get(allocation.lot_id, []),
                                 shareholders=batch.shareholders(line.supplier_id, event.sale_date))
        postings += _part_postings(parts, 1, order=order, line=line, allocation=allocation)
    total = sum(amount for _account, amount, _component, _refs in postings)
    if total:
        postings.insert(0, (_source(order), -total, "payment", {"order_line_id": event.order_line_id}))
    return postings


def _line_refunded(event: OutboxEvent, batch: Batch) -> list[Posting]:
    """Per allocation touched, the attribution of its old remaining units minus that of its new remaining
    units, taken back from the parties; the refunded money back on the source."""
    order = batch.orders[event.order_id]
    before = batch.refunded_before[event.id]
    postings: list[Posting] = []
    for item in event.payload["allocations"]:
        allocation = batch.allocations[item["allocation_id"]]
        line = batch.lines[allocation.order_line_id]
        old_units = allocation.quantity - before[allocation.id]
        parts = refund_difference(old_units=old_units, new_units=old_units - item["quantity"],
                                  unit_price=line.unit_price_fen, rates=line.rates, o2o=order.channel in O2O_CHANNELS,
                                  contributors=batch.contributors.get(allocation.lot_id, []),
                                  shareholders=batch.shareholders(line.supplier_id, event.sale_date))
        postings += _part_postings(parts, -1, order=order, line=line, allocation=allocation)
    total = -sum(amount for _account, amount, _component, _refs in postings)
    if total:
        postings.insert(0, (_source(order), total, "payment", {"order_line_id": event.order_line_id}))
    return postings


def _refund_remainder(event: OutboxEvent, batch: Batch) -> list[Posting]:
    """The part of an amount refund below one unit's price: borne by the platform, back on the source."""
    if not event.amount_fen:
        return []
    return [(PLATFORM, -event.amount_fen, "remainder", {}),
            (_source(batch.orders[event.order_id]), event.amount_fen, "payment", {})]


def _payment_unallocated(event: OutboxEvent, batch: Batch) -> list[Posting]:
    """A payment that could not be allocated: received on the source, held as unallocated."""
    if not event.amount_fen:
        return []
    return [(_source(batch.orders[event.order_id]), -event.amount_fen, "payment", {}),
            (UNALLOCATED, event.amount_fen, "unallocated", {})]


def _payment_returned(event: OutboxEvent, batch: Batch) -> list[Posting]:
    """The automatic refund of an unallocated payment: off unallocated, back on the source."""
    if not event.amount_fen:
        return []
    return [(UNALLOCATED, -event.amount_fen, "unallocated", {}),
            (_source(batch.orders[event.order_id]), event.amount_fen, "payment", {})]


def _processor_fee(event: OutboxEvent, batch: Batch) -> list[Posting]:
    """What the payment processor kept of the order's money (negative: a fee it gave back): the platform's cost,
    off the source, never attributed."""
    if not event.amount_fen:
        return []
    return [(PLATFORM_COSTS, -event.amount_fen, "fee", {}),
            (_source(batch.orders[event.order_id]), event.amount_fen, "payment", {})]


_BUILDERS: dict[str, Callable[[OutboxEvent, Batch], list[Posting]]] = {
    "line_paid": _line_paid,
    "line_refunded": _line_refunded,
    "refund_remainder": _refund_remainder,
    "payment_unallocated": _payment_unallocated,
    "payment_returned": _payment_returned,
    "processor_fee": _processor_fee,
}


# --- pushed totals ----------------------------------------------------------------------------------------

def _push_lot_totals(postings) -> None:
    """Add the household postings of each lot to its `attributed_fen`, lots locked in id order (so that workers
    attributing in parallel lock shared lots in one order)."""
    totals: dict[int, int] = defaultdict(int)
    for ref, amount, _component, refs in postings:
        if ref.kind == "household" and refs.get("lot_id"):
            totals[refs["lot_id"]] += amount
    changes = [(lot_id, totals[lot_id]) for lot_id in sorted(totals) if totals[lot_id]]
    if not changes:
        return
    if db.session.get_bind().dialect.name == "postgresql":  # lock them in id order, then one UPDATE from arrays
        # (FOR NO KEY UPDATE, as the UPDATE itself locks: checkouts' allocations and stock rows hold KEY SHARE
        # locks on their lots through their foreign keys)
        db.session.execute(select(Lot.id).where(among(Lot.id, [lot_id for lot_id, _fen in changes]))
                           .order_by(Lot.id).with_for_update(key_share=True))
        db.session.execute(text(
            "UPDATE lots SET attributed_fen = lots.attributed_fen + c.fen "
            "FROM unnest(CAST(:lots AS integer[]), CAST(:fens AS bigint[])) AS c (lot_id, fen) "
            "WHERE lots.id = c.lot_id"),
            {"lots": [lot_id for lot_id, _fen in changes], "fens": [fen for _lot_id, fen in changes]})
        return
    lots = Lot.__table__
    db.session.execute(update(lots).where(lots.c.id == bindparam("lot"))
                       .values(attributed_fen=lots.c.attributed_fen + bindparam("fen")),
                       [{"lot": lot_id, "fen": fen} for lot_id, fen in changes])
