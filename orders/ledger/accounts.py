"""Ledger accounts by code, created on first use (race-safe), and the codes DESIGN.md names.

Codes: `platform`, `payments:<provider>` (`stripe`, `sandbox`, `terminal` for a card
counter sale's money, which arrives through the store's terminal), `unallocated`, `store:<id>`,
`store_cash:<id>`, `supplier:<id>`, `household:<hid>@supplier:<sid>`, `payouts_clearing`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from orders.ledger.models import LedgerAccount
from shop.db import among, db, utcnow

_INSERTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}
_PARTIES = ("store_id", "supplier_id", "household_id")
_CODE = re.compile(r"(?P<kind>platform|platform_costs|unallocated|payouts_clearing)"
                   r"|(?P<payments>payments):[a-z]+"
                   r"|(?P<party>store|store_cash|supplier):(?P<party_id>[1-9][0-9]*)"
                   r"|(?P<household>household):(?P<household_id>[1-9][0-9]*)@supplier:(?P<supplier_id>[1-9][0-9]*)")
CODE_PATTERN = r"^[a-z0-9_:@]+$"  # every code's characters: ASCII, so no look-alike (`payments:ѕandbox`) is a code
CODE_RULE = "An account code: letters a-z, digits, '_', ':' and '@' (platform, store:3, household:7@supplier:2)."


def owner_of(code: str) -> tuple[str, dict[str, int | None]] | None:
    """The kind and the parties (store, supplier, household ids) an account code names, None for no such code:
    what an account's own columns must say (statements and payouts read those columns, the chain hashes the code)."""
    match = _CODE.fullmatch(code)
    if match is None:
        return None
    parties: dict[str, int | None] = dict.fromkeys(_PARTIES)
    if match["party"]:
        parties["supplier_id" if match["party"] == "supplier" else "store_id"] = int(match["party_id"])
    elif match["household"]:
        parties.update(household_id=int(match["household_id"]), supplier_id=int(match["supplier_id"]))
    return match["kind"] or match["payments"] or match["party"] or match["household"], parties


def account(code: str, kind: str, **party: int) -> LedgerAccount:
    """The account `code` (get-or-create: INSERT … ON CONFLICT DO NOTHING, then select, so racing creators agree)."""
    unknown = set(party) - set(_PARTIES)
    if unknown:
        raise TypeError(f"unknown account parties: {', '.join(sorted(unknown))}")
    found = db.session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    if found is not None:
        return found
    _create([{"code": code, "kind": kind, **party}])
    return db.session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))


def account_ids(wanted: Mapping[str, tuple[str, Mapping[str, int]]]) -> dict[str, int]:
    """Code → id of the accounts `wanted` (code → (kind, parties)): one query, the missing ones created together
    (in code order, as `account` creates one) and read back."""
    found = dict(db.session.execute(select(LedgerAccount.code, LedgerAccount.id)
                                    .where(among(LedgerAccount.code, wanted))).all())
    missing = sorted(code for code in wanted if code not in found)
    if missing:
        _create([{"code": code, "kind": wanted[code][0], **wanted[code][1]} for code in missing])
        found.update(db.session.execute(select(LedgerAccount.code, LedgerAccount.id)
                                        .where(among(LedgerAccount.code, missing))).all())
    return found


def _create(rows: list[dict]) -> None:
    """Insert the accounts unless they exist. On PostgreSQL in their own short transaction, committed at once, so
    parallel attributors never wait on (or deadlock over) an account another one created in its open transaction;
    in the caller's transaction if a party itself is not committed yet. (SQLite serialises writers anyway.)"""
    engine = db.session.get_bind()
    now = utcnow()
    rows = [{"store_id": None, "supplier_id": None, "household_id": None, **row, "created_at": now} for row in rows]
    statement = (_INSERTS[engine.dialect.name](LedgerAccount.__table__)
                 .on_conflict_do_nothing(index_elements=["code"]))
    if engine.dialect.name == "postgresql":
        try:
            with engine.begin() as connection:
                connection.execute(statement, rows)
            return
        except IntegrityError:  # a store, supplier or household was created in the caller's open transaction
            pass
    db.session.execute(statement, rows)


def platform() -> LedgerAccount:
    """The platform's account (fees, and the refund remainders it bears)."""
    return account("platform", "platform")


def payments(provider: str) -> LedgerAccount:
    """Money received through a provider (`stripe`, `sandbox`, `terminal`): a buyer's payment posts negative here."""
    return account(f"payments:{provider}", "payments")


def bank() -> LedgerAccount:
    """The platform's bank account: payout batches are paid from it, a store's remitted counter cash lands in it."""
    return payments("bank")


def unallocated() -> LedgerAccount:
    """Money received for an order that could not be allocated, until it is returned."""
    return account("unallocated", "unallocated")


def payouts_clearing() -> LedgerAccount:
    """Amounts in a payout batch, between the payee's balance and the bank."""
    return account("payouts_clearing", "payouts_clearing")


def store(store_id: int) -> LedgerAccount:
    """A store's commission account."""
    return account(f"store:{store_id}", "store", store_id=store_id)


def store_cash(store_id: int) -> LedgerAccount:
    """The counter cash a store holds (a cash sale's money source)."""
    return account(f"store_cash:{store_id}", "store_cash", store_id=store_id)


def supplier(supplier_id: int) -> LedgerAccount:
    """A supplier's account."""
    return account(f"supplier:{supplier_id}", "supplier", supplier_id=supplier_id)


def household(household_id: int, supplier_id: int) -> LedgerAccount:
    """A household's earnings held by one paying supplier (its lots and shares)."""
    return account(f"household:{household_id}@supplier:{supplier_id}", "household",
                   household_id=household_id, supplier_id=supplier_id)
