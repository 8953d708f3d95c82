"""The auditor's view of the ledger: transactions by account and posting period, and one transaction with
everything needed to recompute its attribution by hand (the order line and its snapshotted rates, the
allocations with the units this transaction moved on each and those refunded before it, the lots and their
contributions, the dividend shares valid on the sale date). Refunded units are those the ledger reversed: of the
line's `line_refunded` events it applied, which a refund writes only once it succeeded (a refund still pending at the
provider holds units the ledger has not reversed, so it counts nowhere here; nor does one the outbox has not yet
delivered)."""
from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import exists, select

from catalog.models import Lot, LotContribution
from orders.ledger.chain import wait_for_linking
from orders.ledger.errors import LedgerCode
from orders.ledger.models import LedgerAccount, LedgerTransaction, Posting
from orders.models import Allocation, Order, OrderLine, OutboxEvent
from shop.db import db
from shop.errors import NotFound
from shop.pagination import paginate, recorded_in
from suppliers.models import Household
from suppliers.service import dividend_shares


def list_transactions(*, account: str | None = None, from_date: date | None = None, to_date: date | None = None,
                      limit: int, cursor: str | None) -> dict:
    """A page of transactions (with postings) in chain order (`seq`: commit order, so a transaction committed while
    a reader pages never lands behind a page already read, as one with a smaller id could), posted in [from, to)
    (Asia/Shanghai dates), touching `account`."""
    wait_for_linking()
    query = select(LedgerTransaction).where(LedgerTransaction.seq.is_not(None), *recorded_in(
        LedgerTransaction.posted_at, from_date=from_date, to_date=to_date))
    if account is not None:
        account_id = db.session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == account))
        if account_id is None:
            raise NotFound("No such ledger account.", code=LedgerCode.ACCOUNT_NOT_FOUND)
        query = query.where(exists().where(Posting.transaction_id == LedgerTransaction.id,
                                           Posting.account_id == account_id))
    page = paginate(query, keys=[LedgerTransaction.seq], limit=limit, cursor=cursor,
                    filters={"account": account, "from": from_date, "to": to_date})
    codes = _account_codes(p.account_id for t in page["items"] for p in t.postings)
    return {"items": [_transaction_out(t, codes) for t in page["items"]], "next_cursor": page["next_cursor"]}


def show_transaction(*, transaction_id: int) -> dict:
    """One transaction with its postings and, for an attribution, its line, allocations, lots and shareholders."""
    transaction = db.session.get(LedgerTransaction, transaction_id)
    if transaction is None:
        raise NotFound("No such ledger transaction.", code=LedgerCode.LEDGER_TRANSACTION_NOT_FOUND)
    out = _transaction_out(transaction, _account_codes(p.account_id for p in transaction.postings))
    out["attribution"] = _attribution(transaction) if transaction.order_line_id else None
    return out


def _account_codes(account_ids) -> dict[int, tuple[str, str]]:
    """Account id → (code, kind) for the given ids."""
    ids = set(account_ids)
    if not ids:
        return {}
    rows = db.session.execute(select(LedgerAccount.id, LedgerAccount.code, LedgerAccount.kind)
                              .where(LedgerAccount.id.in_(ids)))
    return {row.id: (row.code, row.kind) for row in rows}


def _transaction_out(transaction: LedgerTransaction, codes: dict[int, tuple[str, str]]) -> dict:
    """A transaction and its postings as the API shows them."""
    fields = ("id", "seq", "kind", "outbox_event_id", "order_id", "order_line_id", "sale_date", "posted_at", "memo",
              "prev_hash", "hash")
    return {**{name: getattr(transaction, name) for name in fields},
            "postings": [{"id": p.id, "account": codes[p.account_id][0], "account_kind": codes[p.account_id][1],
                          "amount_fen": p.amount_fen, "component": p.component, "order_line_id": p.order_line_id,
                          "allocation_id": p.allocation_id, "lot_id": p.lot_id, "household_id": p.household_id}
                         for p in transaction.postings]}


_LINE_FIELDS = ("id", "sku", "name", "supplier_id", "quantity", "unit_price_fen", "platform_fee_bp",
                "store_commission_bp", "household_premium_bp", "dividend_bp")


def _attribution(transaction: LedgerTransaction) -> dict:
    """What an attribution was computed from: the line (rates as snapshotted), its order's channel and store,
    the allocations, their lots' contributions and the supplier's dividend shares on the sale date."""
    line = db.session.get(OrderLine, transaction.order_line_id)
    order = db.session.get(Order, line.order_id)
    allocations = db.session.scalars(select(Allocation).where(Allocation.order_line_id == line.id)
                                     .order_by(Allocation.id)).all()
    lot_ids = sorted({a.lot_id for a in allocations})
    lots = db.session.scalars(select(Lot).where(Lot.id.in_(lot_ids)).order_by(Lot.id)).all() if lot_ids else []
    contributions = db.session.execute(
        select(LotContribution.lot_id, LotContribution.household_id, LotContribution.quantity, Household.code,
               Household.county_code)
        .join(Household, Household.id == LotContribution.household_id)
        .where(LotContribution.lot_id.in_(lot_ids)).order_by(LotContribution.id)).all() if lot_ids else []
    own, before, refunded = _allocation_units(transaction)
    sale_date = transaction.sale_date or order.sale_date
    shares = dividend_shares(supplier_id=line.supplier_id, on=sale_date) if sale_date else {}
    holders = {h.id: h for h in db.session.scalars(select(Household).where(Household.id.in_(shares)))} if shares else {}
    return {
        "order": {"id": order.id, "channel": order.channel, "store_id": order.store_id, "sale_date": order.sale_date},
        "line": {**{name: getattr(line, name) for name in _LINE_FIELDS}, "refunded_quantity": sum(refunded.values())},
        "allocations": [{"id": a.id, "lot_id": a.lot_id, "location_id": a.location_id, "quantity": a.quantity,
                         "refunded": refunded[a.id], "state": a.state, "units": own[a.id],
                         "refunded_before": before[a.id]} for a in allocations],
        "lots": [{"id": lot.id, "lot_code": lot.lot_code, "supplier_id": lot.supplier_id,
                  "harvested_on": lot.harvested_on,
                  "contributions": [{"household_id": c.household_id, "household_code": c.code,
                                     "county_code": c.county_code, "quantity": c.quantity}
                                    for c in contributions if c.lot_id == lot.id]} for lot in lots],
        "dividend_shares": [{"household_id": hid, "household_code": holders[hid].code,
                             "county_code": holders[hid].county_code, "shares": shares[hid]}
                            for hid in sorted(shares)],
    }


def _allocation_units(transaction: LedgerTransaction) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """Allocation id → the units this transaction paid or reversed on it (its event's payload), → the units the line's
    refunds reversed before it, and → all units the ledger reversed (the `line_refunded` events it applied)."""
    own: dict[int, int] = defaultdict(int)
    before: dict[int, int] = defaultdict(int)
    refunded: dict[int, int] = defaultdict(int)
    event = db.session.get(OutboxEvent, transaction.outbox_event_id) if transaction.outbox_event_id else None
    for item in event.payload.get("allocations", []) if event else []:
        own[item["allocation_id"]] += item["quantity"]
    refunds = db.session.execute(
        select(OutboxEvent.id, OutboxEvent.payload, LedgerTransaction.id.is_not(None))
        .outerjoin(LedgerTransaction, LedgerTransaction.outbox_event_id == OutboxEvent.id)
        .where(OutboxEvent.order_line_id == transaction.order_line_id, OutboxEvent.kind == "line_refunded"))
    for event_id, payload, applied in refunds:
        earlier = event is not None and event.kind == "line_refunded" and event_id < event.id
        for item in payload.get("allocations", []):
            if applied:
                refunded[item["allocation_id"]] += item["quantity"]
            if earlier:  # as the ledger computed this reversal: after every earlier refund event of the line
                before[item["allocation_id"]] += item["quantity"]
    return own, before, refunded
