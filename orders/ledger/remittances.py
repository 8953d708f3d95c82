"""A store's remittances (DESIGN.md, "Counter cash"): the counter cash it hands over to the platform.

A cash sale's money is held by the store (`store_cash:<id>`, negative while it holds cash) and the store is owed its
commission (`store:<id>`). The store keeps its commission out of the cash it holds and remits the rest, so a
remittance of `amount` fen posts one `store_remittance` transaction: the cash into the platform's bank account
(`payments:bank`, where the deposit lands: money received is negative there) out of `store_cash`, and the
commission kept (the commission owed, at most the cash the store still holds after the remittance) from the
commission account to `store_cash`. A remittance of the statement's "to remit" leaves both accounts at zero; a store
that remits more keeps less commission, and a store payout batch (which nets the two accounts) pays it the rest.
The amount is at most the cash held (409 `remittance_exceeds_cash_held`): the store's two accounts are locked (FOR NO
KEY UPDATE, as a payout build locks them) before their balances are read, so concurrent remittances never remit more.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import func, select

from orders.errors import OrderCode
from orders.ledger import accounts, chain
from orders.ledger.errors import LedgerCode
from orders.ledger.models import LedgerAccount, Posting, StoreRemittance
from orders.models import Store
from shop.auth.models import User
from shop.clock import SHANGHAI, today
from shop.db import db, lock_on_sqlite
from shop.errors import Conflict, NotFound, ValidationError
from shop.fields import bank_reference
from shop.pagination import paginate_committed, recorded_in


def _store_in_scope(store_id: int, actor: User) -> Store:
    """The store, if the actor may see it (its own staff, admins, auditors); else not found."""
    store = db.session.get(Store, store_id)
    if store is None or (actor.store_id is not None and actor.store_id != store_id):
        raise NotFound(f"No store {store_id}.", code=OrderCode.STORE_NOT_FOUND)
    return store


def _received_while_open(store: Store, received_on: date) -> None:
    """The deposit was received from the day the store opened to today (Asia/Shanghai), or 422
    `remittance_date_out_of_range`: no counter cash was held before the store opened, and none is received later
    than today."""
    opened, last = store.created_at.astimezone(SHANGHAI).date(), today()
    if not opened <= received_on <= last:
        raise ValidationError(f"A remittance to store {store.id} is received from {opened} to {last}.",
                              code=LedgerCode.REMITTANCE_DATE_OUT_OF_RANGE, details={"received_on": [
                                  f"Must be from {opened} (the day store {store.id} opened) to {last} (today, "
                                  "Asia/Shanghai)."]})


def _locked_balances(store_id: int) -> tuple[int, int]:
    """(cash held, commission owed) of the store, its two ledger accounts locked first (FOR NO KEY UPDATE)."""
    lock_on_sqlite("UPDATE stores SET id = id WHERE id = :id", id=store_id)
    codes = (f"store_cash:{store_id}", f"store:{store_id}")
    db.session.execute(select(LedgerAccount.id).where(LedgerAccount.code.in_(codes)).order_by(LedgerAccount.id)
                       .with_for_update(key_share=True)).all()
    balances = dict(db.session.execute(
        select(LedgerAccount.code, func.sum(Posting.amount_fen))
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .where(LedgerAccount.code.in_(codes)).group_by(LedgerAccount.code)).all())
    return -int(balances.get(codes[0]) or 0), int(balances.get(codes[1]) or 0)


def duplicate_remittance(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a deposit whose bank reference the store's remittances already hold (one deposit, one
    remittance)."""
    first = db.session.scalar(select(StoreRemittance.id).where(StoreRemittance.store_id == row["store_id"],
                                                               StoreRemittance.reference_key == row["reference_key"]))
    return Conflict(f"Store {row['store_id']}'s deposit {row['reference_key']} is already recorded.",
                    code=LedgerCode.REMITTANCE_REFERENCE_USED,
                    details={"reference": row["reference_key"], "remittance_id": first})


def record_remittance(*, store_id: int, actor: User, amount_fen: int, received_on: date,
                      reference: str) -> StoreRemittance:
    """Record that the store handed over `amount_fen` of its counter cash (received on `received_on`, under the
    bank's `reference`, once) and post it (the module's docstring); 409 if it holds less cash than that, or if that
    deposit is already recorded (its reference compared as one spelling: `bank_reference`); 422 if it was received
    before the store opened or after today (`_received_while_open`)."""
    reference = bank_reference(reference)
    _received_while_open(_store_in_scope(store_id, actor), received_on)
    cash_held, commission = _locked_balances(store_id)
    if db.session.scalar(select(StoreRemittance.id).where(StoreRemittance.store_id == store_id,
                                                          StoreRemittance.reference_key == reference)) is not None:
        raise duplicate_remittance({"store_id": store_id, "reference_key": reference})
    if amount_fen > cash_held:
        held = max(cash_held, 0)
        raise Conflict(f"The store holds {held} fen of counter cash: it cannot remit {amount_fen}.",
                       code=LedgerCode.REMITTANCE_EXCEEDS_CASH_HELD, details={"cash_held_fen": held})
    kept = max(min(commission, cash_held - amount_fen), 0)
    cash = accounts.store_cash(store_id)
    postings = [(accounts.bank(), -amount_fen, "payment"), (cash, amount_fen, "payment")]
    if kept:
        postings += [(accounts.store(store_id), -kept, "store_commission"), (cash, kept, "store_commission")]
    transaction = chain.post(kind="store_remittance", postings=postings, memo=(
        f"store {store_id} remitted {amount_fen} fen received {received_on.isoformat()}, kept {kept} fen commission"))
    remittance = StoreRemittance(store_id=store_id, amount_fen=amount_fen, commission_kept_fen=kept,
                                 received_on=received_on, reference=reference, reference_key=reference,
                                 transaction_id=transaction.id,
                                 recorded_by=actor.id)
    db.session.add(remittance)
    db.session.flush()
    return remittance


def show_remittance(*, store_id: int, remittance_id: int, actor: User) -> StoreRemittance:
    """A remittance of a store in the actor's scope."""
    _store_in_scope(store_id, actor)
    remittance = db.session.get(StoreRemittance, remittance_id)
    if remittance is None or remittance.store_id != store_id:
        raise NotFound(f"No remittance {remittance_id} of store {store_id}.", code=LedgerCode.REMITTANCE_NOT_FOUND)
    return remittance


def list_remittances(*, store_id: int, actor: User, from_date: date | None = None, to_date: date | None = None,
                     limit: int, cursor: str | None) -> dict:
    """A page of a store's remittances recorded in [from, to), newest first."""
    _store_in_scope(store_id, actor)
    query = select(StoreRemittance).where(StoreRemittance.store_id == store_id,
                                          *recorded_in(StoreRemittance.created_at, from_date=from_date,
                                                       to_date=to_date))
    return paginate_committed(query, model=StoreRemittance, limit=limit, cursor=cursor, newest_first=True,
                    filters={"store_id": store_id, "from": from_date, "to": to_date})


def remittances_recorded(*, store_id: int, from_date: date, to_date: date) -> list[StoreRemittance]:
    """The store's remittances recorded in [from, to), oldest first (a statement's)."""
    return list(db.session.scalars(select(StoreRemittance).where(
        StoreRemittance.store_id == store_id,
        *recorded_in(StoreRemittance.created_at, from_date=from_date, to_date=to_date)).order_by(StoreRemittance.id)))
