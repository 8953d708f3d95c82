"""Statements of households, suppliers and stores (DESIGN.md: by posting time, so a printed one never changes).

A statement lists an account's postings posted in [from, to) (Asia/Shanghai dates), in chain (commit) order, each
with its date, product (the order line's SKU and name), lot code, amount, component (a payout's with its payout line,
`PB<batch>-L<line>`) and running balance, after the opening balance (everything posted before `from`, one
aggregate). The period is bounded: without `from` it is the month of its last day (this month when `to` is missing
too), without `to` it runs to today inclusive, and it spans at most 366 days (a statement since opening would be
every posting of years, built in memory).
A co-op sees a household's account at itself (`household:<hid>@supplier:<its id>`: what its own lots and shares
earned the household); an admin sees the sum of all the household's accounts. A store's statement shows its
commission account and the counter cash it holds (`store_cash:<id>`, shown as cash held: the ledger's sign
reversed) and what it must remit: the cash held net of the commission it is owed; and the remittances (the cash it
handed over, the commission it kept out of it) recorded in the period.
"""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import and_, exists, func, select, union_all

from catalog.models import Lot
from orders.errors import OrderCode
from orders.ledger.chain import wait_for_linking
from orders.ledger.models import LedgerAccount, LedgerTransaction, Posting
from orders.ledger.payouts.bank_file import reference
from orders.ledger.payouts.models import PayoutBatch, PayoutLine
from orders.ledger.remittances import remittances_recorded
from orders.models import OrderLine, Store
from orders.outbox import sale_date_of
from shop.auth.models import User
from shop.clock import shanghai_midnight, today
from shop.db import db
from shop.errors import NotFound, ValidationError
from shop.pagination import recorded_in
from shop.regions.models import Region
from suppliers.errors import SupplierCode
from suppliers.identifiers import mask_id_number
from suppliers.models import Household, Supplier, SupplierHousehold

MAX_PERIOD_DAYS = 366
SETTLEMENT_KINDS = ("payout", "store_remittance")  # the balance leaving the account to be paid or handed over
RETURNED_KIND = "payout_failed"  # a payout the bank returned: the balance back, no income


def statement_period(*, from_date: date | None, to_date: date | None) -> tuple[date, date]:
    """The period a statement covers, `[from, to)`: without `from` the month of its last day (this month when `to`
    is missing too), without `to` up to today inclusive; a 422 naming `to` if it spans more than 366 days."""
    if to_date is None and from_date is None:
        to_date = (today().replace(day=1) + timedelta(days=31)).replace(day=1)
    elif to_date is None:
        if (today() - from_date).days >= MAX_PERIOD_DAYS:
            raise ValidationError("The period is too long.", details={"to": [
                f"Required when `from` lies {MAX_PERIOD_DAYS} days or more back: a statement covers "
                f"{MAX_PERIOD_DAYS} days at most."]})
        to_date = max(today(), from_date) + timedelta(days=1)
    if from_date is None:
        from_date = (to_date - timedelta(days=1)).replace(day=1)
    if (to_date - from_date).days > MAX_PERIOD_DAYS:
        raise ValidationError("The period is too long.", details={"to": [
            f"At most {MAX_PERIOD_DAYS} days after `from`: a statement covers {MAX_PERIOD_DAYS} days at most."]})
    return from_date, to_date


def _account_ids(*conditions) -> list[int]:
    """The ids of the ledger accounts matching `conditions`."""
    return list(db.session.scalars(select(LedgerAccount.id).where(*conditions).order_by(LedgerAccount.id)))


def _entries(account_ids: list[int], *, from_date: date, to_date: date, sign: int = 1) -> dict:
    """Opening balance, entries with running balance, and totals of `account_ids` in [from, to) by posting time
    (amounts multiplied by `sign`): credits and debits, and apart the income (what was earned, net of refunds), what
    was paid out and what came back, so that opening + income − paid out + returned = closing."""
    opening = 0
    entries: list[dict] = []
    if account_ids:
        wait_for_linking()
        opening = sign * int(db.session.scalar(
            select(func.coalesce(func.sum(Posting.amount_fen), 0))
            .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
            .where(Posting.account_id.in_(account_ids), LedgerTransaction.posted_at < shanghai_midnight(from_date))))
        query = (select(Posting.id, Posting.account_id, Posting.amount_fen, Posting.component,
                        LedgerTransaction.id.label("transaction_id"),
                        LedgerTransaction.kind, LedgerTransaction.posted_at, LedgerTransaction.order_id,
                        LedgerTransaction.sale_date, OrderLine.sku, OrderLine.name, Lot.lot_code)
                 .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                 .outerjoin(OrderLine, OrderLine.id == Posting.order_line_id)
                 .outerjoin(Lot, Lot.id == Posting.lot_id)
                 .where(Posting.account_id.in_(account_ids),
                        *recorded_in(LedgerTransaction.posted_at, from_date=from_date, to_date=to_date))
                 .order_by(LedgerTransaction.seq, LedgerTransaction.id, Posting.id))
        balance = opening
        for row in db.session.execute(query):
            amount = sign * row.amount_fen
            balance += amount
            entries.append({"posting_id": row.id, "account_id": row.account_id,
                            "transaction_id": row.transaction_id, "kind": row.kind,
                            "date": sale_date_of(row.posted_at), "posted_at": row.posted_at,
                            "order_id": row.order_id, "sale_date": row.sale_date, "sku": row.sku,
                            "product": row.name, "lot_code": row.lot_code, "component": row.component,
                            "payout_reference": None, "amount_fen": amount, "balance_fen": balance})
    _name_payout_lines(entries)
    credits = sum(e["amount_fen"] for e in entries if e["amount_fen"] > 0)
    debits = sum(e["amount_fen"] for e in entries if e["amount_fen"] < 0)
    paid_out = -sum(e["amount_fen"] for e in entries if e["kind"] in SETTLEMENT_KINDS)
    returned = sum(e["amount_fen"] for e in entries if e["kind"] == RETURNED_KIND)
    return {"opening_balance_fen": opening, "entries": entries,
            "totals": {"credits_fen": credits, "debits_fen": debits, "net_fen": credits + debits,
                       "income_fen": credits + debits + paid_out - returned, "paid_out_fen": paid_out,
                       "returned_fen": returned, "closing_balance_fen": opening + credits + debits}}


def _name_payout_lines(entries: list[dict]) -> None:
    """Give each payout entry the reference of its payout line (`PB<batch>-L<line>`, as on the bank transfer): a
    batch's build moves the balance to payable (`payout`), a failed line brings it back (`payout_failed`); a store's
    line may also move its cash account (cash it paid out of its own, reimbursed)."""
    payouts = [e for e in entries if e["kind"] in ("payout", "payout_failed")]
    if not payouts:
        return
    transaction_ids = {e["transaction_id"] for e in payouts}
    built = (select(PayoutBatch.transaction_id, PayoutLine.account_id, PayoutLine.batch_id, PayoutLine.id)
             .join(PayoutBatch, PayoutBatch.id == PayoutLine.batch_id)
             .where(PayoutBatch.transaction_id.in_(transaction_ids)))
    failed = (select(PayoutLine.failed_transaction_id, PayoutLine.account_id, PayoutLine.batch_id, PayoutLine.id)
              .where(PayoutLine.failed_transaction_id.in_(transaction_ids)))
    cash = and_(LedgerAccount.store_id == PayoutLine.store_id, LedgerAccount.kind == "store_cash")
    built_cash = (select(PayoutBatch.transaction_id, LedgerAccount.id, PayoutLine.batch_id, PayoutLine.id)
                  .join(PayoutBatch, PayoutBatch.id == PayoutLine.batch_id).join(LedgerAccount, cash)
                  .where(PayoutBatch.transaction_id.in_(transaction_ids)))
    failed_cash = (select(PayoutLine.failed_transaction_id, LedgerAccount.id, PayoutLine.batch_id, PayoutLine.id)
                   .join(LedgerAccount, cash).where(PayoutLine.failed_transaction_id.in_(transaction_ids)))
    lines = {(transaction_id, account_id): reference(batch_id, line_id)
             for transaction_id, account_id, batch_id, line_id in db.session.execute(
                 union_all(built, failed, built_cash, failed_cash))}
    for entry in payouts:
        entry["payout_reference"] = lines.get((entry["transaction_id"], entry["account_id"]))


def household_statement(*, household_id: int, user: User, from_date: date | None = None,
                        to_date: date | None = None, page: bool = False) -> dict:
    """A household's statement: a co-op's account of it (404 if the co-op does not work with it), or for an
    admin the sum of all its accounts, in the bounded period (`statement_period`); with `page`, also what the
    printable page shows of the household."""
    from_date, to_date = statement_period(from_date=from_date, to_date=to_date)
    household = db.session.get(Household, household_id)
    scope = user.supplier_id
    if household is not None and scope is not None:
        code = f"household:{household_id}@supplier:{scope}"
        works_with = db.session.scalar(select(
            exists().where(SupplierHousehold.supplier_id == scope, SupplierHousehold.household_id == household_id)
            | exists().where(LedgerAccount.code == code)))
        household = household if works_with else None
    if household is None:
        raise NotFound(f"No household {household_id}.", code=SupplierCode.HOUSEHOLD_NOT_FOUND)
    if scope is not None:
        account_ids = _account_ids(LedgerAccount.code == f"household:{household_id}@supplier:{scope}")
    else:
        account_ids = _account_ids(LedgerAccount.kind == "household", LedgerAccount.household_id == household_id)
    supplier = db.session.get(Supplier, scope) if scope is not None else None
    shown = {"page": _page(household, supplier)} if page else {}
    return {**shown, "party": "household", "party_id": household_id, "from": from_date, "to": to_date,
            "household": {"id": household.id, "code": household.code, "county_code": household.county_code,
                          "village": household.village},
            "supplier_id": scope, "supplier_name": supplier.name if supplier else None,
            "accounts": list(db.session.scalars(select(LedgerAccount.code).where(LedgerAccount.id.in_(account_ids))
                                                .order_by(LedgerAccount.id))) if account_ids else [],
            **_entries(account_ids, from_date=from_date, to_date=to_date)}


def _page(household: Household, supplier: Supplier | None) -> dict:
    """What the printable page shows of the household: code, village, head's name and masked ID number."""
    return {"code": household.code, "village": household.village, "head_name": household.head_name,
            "id_number": mask_id_number(household.id_number), "supplier_name": supplier.name if supplier else None}


def supplier_statement(*, supplier_id: int, user: User, from_date: date | None = None,
                       to_date: date | None = None, page: bool = False) -> dict:
    """A supplier's statement (its own co-op, or an admin); with `page`, also what the printable page shows of the
    supplier (name, USCC, county). The period is bounded (`statement_period`)."""
    from_date, to_date = statement_period(from_date=from_date, to_date=to_date)
    supplier = db.session.get(Supplier, supplier_id)
    if (user.supplier_id is not None and user.supplier_id != supplier_id) or supplier is None:
        raise NotFound(f"No supplier {supplier_id}.", code=SupplierCode.SUPPLIER_NOT_FOUND)
    code = f"supplier:{supplier_id}"
    shown = {"page": {"name": supplier.name, "uscc": supplier.uscc,
                      "county": db.session.get(Region, supplier.county_code).name}} if page else {}
    return {**shown, "party": "supplier", "party_id": supplier_id, "from": from_date, "to": to_date,
            "accounts": [code], **_entries(_account_ids(LedgerAccount.code == code),
                                           from_date=from_date, to_date=to_date)}


def store_statement(*, store_id: int, user: User, from_date: date | None = None, to_date: date | None = None,
                    page: bool = False) -> dict:
    """A store's statement (its own staff, or an admin): its commission, the counter cash it holds, and what it
    must remit (cash held net of commission, if positive) or else what the platform owes it (paid by a store payout
    batch, which nets the two accounts) at the period's end, and the remittances recorded in the period; with
    `page`, also what the printable page shows of the store (name, district). The period is bounded
    (`statement_period`)."""
    from_date, to_date = statement_period(from_date=from_date, to_date=to_date)
    store = db.session.get(Store, store_id)
    if (user.store_id is not None and user.store_id != store_id) or store is None:
        raise NotFound(f"No store {store_id}.", code=OrderCode.STORE_NOT_FOUND)
    commission = _entries(_account_ids(LedgerAccount.code == f"store:{store_id}"),
                          from_date=from_date, to_date=to_date)
    cash = _entries(_account_ids(LedgerAccount.code == f"store_cash:{store_id}"),
                    from_date=from_date, to_date=to_date, sign=-1)
    cash_held, earned = cash["totals"]["closing_balance_fen"], commission["totals"]["closing_balance_fen"]
    remitted = remittances_recorded(store_id=store_id, from_date=from_date, to_date=to_date)
    shown = {"page": {"name": store.name, "district": db.session.get(Region, store.district_code).name}} if page else {}
    return {**shown, "party": "store", "party_id": store_id, "from": from_date, "to": to_date,
            "accounts": [f"store:{store_id}", f"store_cash:{store_id}"], **commission, "cash": cash,
            "cash_held_fen": cash_held, "commission_fen": earned, "to_remit_fen": max(cash_held - earned, 0),
            "owed_to_store_fen": max(earned - cash_held, 0),
            "remittances": remitted, "remitted_fen": sum(remittance.amount_fen for remittance in remitted)}
