"""Suppliers, households and benefit links: registration, scoped access, reveals and look-ups.

`supplier_scope` is the supplier a caller is confined to (a co-op user's `supplier_id`), or
None for admins: outside its scope everything is "not found", never "forbidden".
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import current_app, g
from sqlalchemy import exists, func, or_, select, text, true, tuple_
from sqlalchemy.exc import IntegrityError

from shop import clock, crypto
from shop.attempts import claim, give_back
from shop.auth.models import User
from shop.caching import invalidate_after_commit
from shop.changes import UNSET, Changes
from shop.config import ConfigError
from shop.db import after_commit, db, hold_sales, lock_on_sqlite, lock_row, utcnow, violates
from shop.errors import AppError, Conflict, Forbidden, NotFound, ShopCode, ValidationError
from shop.extensions import limiter
from shop.fields import name_key, normalise_identifier
from shop.pagination import paginate, paginate_committed, recorded_in
from shop.regions.service import is_recipient_county, region_named
from suppliers.errors import SupplierCode
from suppliers.identifiers import audit_mask_bank_account, normalise_bank_account, normalise_id_number, normalise_uscc
from suppliers.models import (
    AGREEMENT_RATES,
    OVERLAP_CONSTRAINT,
    BankAccountChange,
    BenefitLink,
    Household,
    HouseholdChange,
    KeyFingerprint,
    RevealAudit,
    Revealed,
    Supplier,
    SupplierChange,
    SupplierHousehold,
)

LOOKUP_HASH_KEY = "lookup_hash"

# --- suppliers -------------------------------------------------------------------------


def get_supplier(supplier_id: int) -> Supplier:
    """The supplier with `supplier_id`, or `NotFound` (supplier_not_found)."""
    supplier = db.session.get(Supplier, supplier_id)
    if supplier is None:
        raise NotFound(f"No supplier {supplier_id}.", code=SupplierCode.SUPPLIER_NOT_FOUND)
    return supplier


def supplier_takes_users(supplier_id: int) -> bool:
    """Whether a supplier with `supplier_id` exists (the user scope check of creating, moving or enabling a user); an
    inactive one takes no new co-op users (409 `supplier_inactive`), as an inactive store takes no new staff. The
    supplier is locked and read afresh (`lock_row`): a deactivation under way is waited for, and one begun after
    waits for the new user."""
    supplier = lock_row(Supplier, supplier_id)
    if supplier is not None and not supplier.active:
        raise Conflict(f"Supplier {supplier_id} is inactive.", code=SupplierCode.SUPPLIER_INACTIVE,
                       details={"supplier_id": ["The supplier is inactive: it takes no new users."]})
    return supplier is not None


def _scoped_supplier(supplier_id: int, supplier_scope: int | None) -> Supplier:
    """The supplier, or `NotFound` when it lies outside the caller's scope."""
    if supplier_scope is not None and supplier_scope != supplier_id:
        raise NotFound(f"No supplier {supplier_id}.", code=SupplierCode.SUPPLIER_NOT_FOUND)
    return get_supplier(supplier_id)


def supplier_seen_by(actor: User | None, supplier_id: int) -> Supplier:
    """A supplier `actor` may name (a co-op its own; anyone else, signed in or not, any), else `NotFound`."""
    return _scoped_supplier(supplier_id, actor.supplier_id if actor is not None else None)


def active_supplier(supplier_id: int, supplier_scope: int | None = None) -> Supplier:
    """The supplier in scope, which must be active to take on households, products, lots or uploads
    (`supplier_inactive`)."""
    supplier = _scoped_supplier(supplier_id, supplier_scope)
    if not supplier.active:
        raise _inactive(supplier_id)
    return supplier


def held_active_supplier(supplier_id: int) -> Supplier:
    """The supplier, which must be active to take on a product, a lot or an upload (`supplier_inactive`), read afresh
    under a share lock held to the transaction's end (PostgreSQL: FOR SHARE; SQLite: the write lock): a deactivation
    under way is waited for, and one begun after waits for the creation. Not for what later holds the supplier's
    codes (`_hold_codes`, FOR NO KEY UPDATE): two such holders of the share lock would deadlock."""
    lock_on_sqlite("UPDATE suppliers SET id = id WHERE id = :id", id=supplier_id)
    supplier = db.session.scalar(select(Supplier).where(Supplier.id == supplier_id).with_for_update(read=True)
                                 .execution_options(populate_existing=True))
    if supplier is None:
        raise NotFound(f"No supplier {supplier_id}.", code=SupplierCode.SUPPLIER_NOT_FOUND)
    if not supplier.active:
        raise _inactive(supplier_id)
    return supplier


def changes_scope(user: User) -> int | None:
    """The supplier whose data `user` may change: a co-op user's own while it is active (`supplier_inactive` once an
    admin deactivated it: its co-op still reads its households, links, lots and statements, but changes none of them,
    bank accounts included), or None for an admin (any supplier's). The supplier is read afresh under a share lock
    (PostgreSQL: FOR SHARE; SQLite: the write lock), so a deactivation under way is waited for, and one begun after
    waits for the change."""
    if user.supplier_id is not None:
        lock_on_sqlite("UPDATE suppliers SET id = id WHERE id = :id", id=user.supplier_id)
        if not db.session.scalar(select(Supplier.active).where(Supplier.id == user.supplier_id)
                                 .with_for_update(read=True)):
            raise _inactive(user.supplier_id)
    return user.supplier_id


def _inactive(supplier_id: int) -> Conflict:
    """The conflict of an inactive supplier asked to take something on."""
    return Conflict(f"Supplier {supplier_id} is inactive.", code=SupplierCode.SUPPLIER_INACTIVE)


def _recipient_county(code: str, *, field: str) -> str:
    """`code` if it names a recipient county (`county_not_recipient` otherwise)."""
    region_named(code, field=field)
    if not is_recipient_county(code):
        raise ValidationError("The county is not a recipient county.", code=SupplierCode.COUNTY_NOT_RECIPIENT,
                              details={field: ["Must be a recipient county."]})
    return code


def duplicate_uscc(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a supplier whose USCC is registered."""
    return Conflict("A supplier with this USCC exists.", code=SupplierCode.USCC_TAKEN, details={"uscc": [row["uscc"]]})


def duplicate_supplier_name(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a supplier named like another (`name_key`): product and trace pages, statements and payout
    lists show a supplier by its name. It names the supplier that has the name."""
    taken = db.session.scalar(select(Supplier.name).where(Supplier.name_key == name_key(row["name"]))) or row["name"]
    return Conflict(f"A supplier is already named {taken}.", code=SupplierCode.SUPPLIER_NAME_TAKEN,
                    details={"name": [f"Another supplier is named {taken}, which reads alike."]})


def _refuse_taken_name(name: str, *, supplier_id: int | None = None) -> None:
    """Refuse a name that reads like another supplier's (`supplier_name_taken` 409)."""
    key = name_key(name)
    lock_on_sqlite("UPDATE suppliers SET id = id WHERE name_key = :key", key=key)
    if db.session.scalar(select(Supplier.id).where(Supplier.name_key == key, Supplier.id != supplier_id)) is not None:
        raise duplicate_supplier_name({"name": name})


def create_supplier(*, name: str, kind: str, uscc: str, county_code: str, contact: str | None = None,
                    bank_account: str | None = None, agreement: dict[str, int] | None = None) -> Supplier:
    """Register a supplier in a recipient county, with a valid and unused USCC, a name reading like no other supplier's
    (409 `supplier_name_taken`) and its default agreement."""
    uscc = normalise_uscc(uscc)
    _recipient_county(county_code, field="county_code")
    account = normalise_bank_account(bank_account) if bank_account else None
    if db.session.scalar(select(Supplier.id).where(Supplier.uscc == uscc)) is not None:
        raise duplicate_uscc({"uscc": uscc})
    _refuse_taken_name(name)
    supplier = Supplier(name=name, kind=kind, uscc=uscc, county_code=county_code, contact=contact,
                        **(agreement or {}))
    supplier.bank_account = account
    db.session.add(supplier)
    db.session.flush()
    return supplier


def _change_bank_account(*, row: Household | Supplier, account: str | None, user: User, reason: str | None) -> None:
    """Set a payout account and record the change (who, when, why, old and new masked); a reason is required. The row
    is locked and read afresh first, so changes at once are made one on the other and their log chains."""
    new = normalise_bank_account(account) if account else None
    lock_row(type(row), row.id)
    old = row.bank_account
    if new == old:
        return
    if not (reason or "").strip():
        raise ValidationError("State why the bank account changes.", code=SupplierCode.ACCOUNT_CHANGE_REASON_REQUIRED,
                              details={"reason": ["Required when bank_account changes."]})
    row.bank_account = new
    subject = {"household_id": row.id} if isinstance(row, Household) else {"supplier_id": row.id}
    db.session.add(BankAccountChange(user_id=user.id, reason=reason.strip(),
                                     old_masked=audit_mask_bank_account(old) if old else None,
                                     new_masked=audit_mask_bank_account(new) if new else None, **subject))


@dataclass(frozen=True, kw_only=True)
class SupplierChanges(Changes):
    """What an admin may change on a supplier (its USCC and county stay)."""

    name: str = UNSET
    kind: str = UNSET
    contact: str | None = UNSET
    bank_account: str | None = UNSET
    agreement: dict[str, int] = UNSET
    active: bool = UNSET


def _change_agreement(*, supplier: Supplier, rates: dict[str, int], user: User, reason: str | None) -> None:
    """Set a supplier's default agreement and record each rate that changes (who, when, old and new, the reason
    if one was given): these rates seed every new co-op product."""
    for field in AGREEMENT_RATES:
        old = getattr(supplier, field)
        if field in rates and rates[field] != old:
            db.session.add(SupplierChange(supplier_id=supplier.id, field=field, old_value=old, new_value=rates[field],
                                          changed_by=user.id, reason=(reason or "").strip() or None))
            setattr(supplier, field, rates[field])


def update_supplier(*, supplier_id: int, user: User, changes: SupplierChanges, reason: str | None = None) -> Supplier:
    """Edit a supplier's name (to one no other supplier's reads like), kind, contact, default agreement, bank account
    (audited) or active flag; each field or rate that changes is kept in its history (`supplier_history`: who, when,
    old and new, the reason if given)."""
    supplier = lock_row(Supplier, supplier_id)  # changes at once are made, and recorded, one after the other
    if supplier is None:
        raise NotFound(f"No supplier {supplier_id}.", code=SupplierCode.SUPPLIER_NOT_FOUND)
    values = changes.given()
    if "name" in values:
        _refuse_taken_name(values["name"], supplier_id=supplier.id)
    if "bank_account" in values:
        _change_bank_account(row=supplier, account=values.pop("bank_account"), user=user, reason=reason)
    if "agreement" in values:
        _change_agreement(supplier=supplier, rates=values.pop("agreement"), user=user, reason=reason)
    for field, value in values.items():
        old = getattr(supplier, field)
        if value != old:
            db.session.add(SupplierChange(supplier_id=supplier.id, field=field, old_text=_as_text(old),
                                          new_text=_as_text(value), changed_by=user.id,
                                          reason=(reason or "").strip() or None))
            setattr(supplier, field, value)
    db.session.flush()
    invalidate_after_commit("suppliers")  # product pages show the supplier's name
    return supplier


def supplier_history(*, supplier_id: int, supplier_scope: int | None, from_date: date | None, to_date: date | None,
                     limit: int, cursor: str | None) -> dict:
    """A page of the changes of a supplier in scope (its fields and default agreement rates; its bank account's apart)
    made in [from_date, to_date), oldest first."""
    _scoped_supplier(supplier_id, supplier_scope)
    period = recorded_in(SupplierChange.changed_at, from_date=from_date, to_date=to_date)
    query = select(SupplierChange).where(SupplierChange.supplier_id == supplier_id, *period)
    return paginate_committed(query, model=SupplierChange, limit=limit, cursor=cursor,
                    filters={"supplier_id": supplier_id, "from": from_date, "to": to_date})


def default_agreement(*, supplier_id: int) -> dict[str, int]:
    """The rates (basis points) a co-op's new product starts with: the supplier's default agreement."""
    return get_supplier(supplier_id).agreement


def list_suppliers(*, kind: str | None, county_code: str | None, active: bool | None,
                   limit: int, cursor: str | None) -> dict:
    """A page of suppliers, filtered by kind, county and active flag."""
    query = select(Supplier)
    if kind:
        query = query.where(Supplier.kind == kind)
    if county_code:
        query = query.where(Supplier.county_code == county_code)
    if active is not None:
        query = query.where(Supplier.active == active)
    return paginate(query, keys=[Supplier.id], limit=limit, cursor=cursor)


def show_supplier(*, supplier_id: int, user: User, reveal: bool = False,
                  reason: str | None = None) -> Supplier | Revealed:
    """A supplier in the user's scope, masked; an admin's reveal of its bank account is audited."""
    if reveal:
        _check_reveal(user=user, reason=reason)
    supplier = _scoped_supplier(supplier_id, user.supplier_id)
    if not reveal:
        return supplier
    if supplier.bank_account_enc:
        db.session.add(RevealAudit(user_id=user.id, supplier_id=supplier.id, fields="bank_account",
                                   reason=reason.strip()))
        db.session.flush()
    return Revealed(supplier)


# --- households ------------------------------------------------------------------------


def _linked(supplier_id: int):
    """The SQL condition: the household works with `supplier_id`."""
    return exists().where(SupplierHousehold.household_id == Household.id,
                          SupplierHousehold.supplier_id == supplier_id)


def household_seen_by(actor: User | None, household_id: int) -> Household:
    """A household `actor` may name (a co-op one it works with; admins and auditors any), else `NotFound`."""
    return _household_in_scope(household_id, actor.supplier_id if actor is not None else None)


def _household_in_scope(household_id: int, supplier_scope: int | None) -> Household:
    """The household, or `NotFound` when it is missing or not linked to the caller's supplier."""
    query = select(Household).where(Household.id == household_id)
    if supplier_scope is not None:
        query = query.where(_linked(supplier_scope))
    household = db.session.scalar(query)
    if household is None:
        raise NotFound(f"No household {household_id}.", code=SupplierCode.HOUSEHOLD_NOT_FOUND)
    return household


ID_NUMBER_PROBES_PER_HOUR = 10  # answers that tell a non-admin whether an ID number it typed is registered

log = logging.getLogger(__name__)


def _probe_key() -> str | None:
    """The key of this hour's ID-number look-ups of the requesting user; None for admins, the CLI and the demo."""
    user = g.get("user")
    return None if user is None or user.role == "admin" else f"id-number-probes:{user.id}:{int(time.time() // 3600)}"


@contextmanager
def id_number_probe() -> Iterator[None]:
    """Around a comparison of a typed ID number with the registered ones: each answer tells whether a guessed number
    is registered (a masked `513431********0039` leaves a few thousand candidates), so a user other than an admin may
    get only ID_NUMBER_PROBES_PER_HOUR answers that register or link nothing. The attempt is counted before comparing
    (parallel requests cannot overrun the budget) and given back once the request that registers or links the
    household commits (a check failing after the comparison rolls the request back, and the answer stays counted);
    `id_number_lookups_exhausted` 429 beyond it."""
    key = _probe_key()
    if key is None:
        yield
        return
    if claim(key, seconds=3600) > ID_NUMBER_PROBES_PER_HOUR:
        log.warning("user %s used up its ID-number look-ups for this hour", g.user.id)
        raise AppError("Too many ID numbers that match no household you may link, or one already registered: try "
                       "again in an hour, or ask an admin.", code=SupplierCode.ID_NUMBER_LOOKUPS_EXHAUSTED, status=429)
    yield
    after_commit(functools.partial(give_back, key, seconds=3600))


def _forgive_earlier_probe() -> None:
    """A household linked by its code and ID number: the `household_exists` answer that led there (register, then
    link, as that answer says) is given back too once the link commits, so onboarding households of other co-ops
    costs nothing."""
    key = _probe_key()
    if key is not None and (limiter.storage.get(key) or 0) > 1:  # called within this link's own probe: one is its
        after_commit(functools.partial(give_back, key, seconds=3600))


def _household_by_hash(id_hash: str) -> Household | None:
    """The household whose ID number has the keyed hash `id_hash`."""
    return db.session.scalar(select(Household).where(Household.id_number_hash == id_hash))


def _code_taken(*, county_code: str, code: str) -> Conflict | None:
    """The conflict of a registry code already used in the county, if it is."""
    taken = select(Household.id).where(Household.county_code == county_code, Household.code == code)
    return None if db.session.scalar(taken) is None else duplicate_household_code({"county_code": county_code,
                                                                                   "code": code})


def duplicate_household_code(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a household whose registry code is already used in its county."""
    return Conflict("This registry code is already used in the county.", code=SupplierCode.HOUSEHOLD_CODE_TAKEN,
                    details={"code": [row["code"]], "county_code": [row["county_code"]]})


def _duplicate_error(*, id_hash: str, county_code: str, code: str) -> Conflict | None:
    """The conflict a new household would cause: its registry code is taken, or else its person is (checked last,
    so that a taken code never tells whether an ID number is registered)."""
    return _code_taken(county_code=county_code, code=code) or _person_registered(id_hash)


def _person_registered(id_hash: str) -> Conflict | None:
    """The conflict of a person already registered as a household (by the keyed hash of its ID number), if it is."""
    return None if _household_by_hash(id_hash) is None else duplicate_person({})


def duplicate_person(_row: Mapping[str, Any]) -> Conflict:
    """The conflict of a household whose person (ID number) is registered already; it names no value."""
    return Conflict("A household with this ID number is already registered. Link it to your "
                    "supplier with POST /api/v1/suppliers/<id>/benefit-links, giving its registry "
                    "code and ID number.", code=SupplierCode.HOUSEHOLD_EXISTS)


def _code_in_use(*, supplier_id: int, code: str, other_than: int | None = None) -> Conflict | None:
    """The conflict of a registry code the supplier already uses for a household (other than `other_than`), if it
    does: a supplier's codes must stay unambiguous for it, whatever county they come from."""
    clash = select(Household.id).where(Household.code == code, _linked(supplier_id))
    if other_than is not None:
        clash = clash.where(Household.id != other_than)
    if db.session.scalar(clash) is None:
        return None
    return Conflict("This supplier already works with another household with this registry code.",
                    code=SupplierCode.HOUSEHOLD_CODE_TAKEN, details={"household_code": [code]})


def _hold_codes(supplier_id: int) -> None:
    """Lock the supplier's row against another household being given it until this transaction ends (PostgreSQL:
    FOR NO KEY UPDATE, which rows referring to the supplier do not wait for; SQLite: the write lock), taken before
    anything is written: of two households given it at once the second waits for the first, then checks. The
    supplier, read afresh under the lock, must still be active (a deactivation under way is waited for:
    `supplier_inactive`)."""
    lock_on_sqlite("UPDATE suppliers SET id = id WHERE id = :id", id=supplier_id)
    active = db.session.scalar(select(Supplier.active).where(Supplier.id == supplier_id)
                               .with_for_update(key_share=True))
    if not active:
        raise _inactive(supplier_id)


BANK_ACCOUNTS = 0x62616E6B  # the advisory lock space ("bank") of households' accounts, keyed by hashtext(hash)


def _refuse_shared_account(*, account_hash: str, household_id: int | None = None) -> None:
    """`bank_account_in_use` if another active household, of any co-op, holds the account (by keyed hash): payouts
    would pay two households into one account. The other household is not named. Checks of one account at once are
    made one after the other (PostgreSQL: an advisory lock on the hash until the transaction ends; SQLite: the write
    lock)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:hash))"),
                           {"space": BANK_ACCOUNTS, "hash": account_hash})
    lock_on_sqlite("UPDATE households SET id = id WHERE bank_account_hash = :hash", hash=account_hash)
    held = db.session.scalar(select(Household.id).where(
        Household.bank_account_hash == account_hash, Household.active, Household.id != (household_id or 0)).limit(1))
    if held is not None:
        raise Conflict("This bank account is already registered for another active household; each household is "
                       "paid into an account of its own. Check the account number with the household.",
                       code=SupplierCode.BANK_ACCOUNT_IN_USE,
                       details={"bank_account": ["Already registered for another active household."]})


def _link_supplier(*, supplier_id: int, household: Household) -> None:
    """Let the supplier work with the household; its codes must stay unambiguous for it. Under `_hold_codes`, of two
    households given it at once under one code (registered in two counties, or linked) the second finds its code in
    use, and of two links of one household at once the second finds it linked."""
    _hold_codes(supplier_id)
    if db.session.get(SupplierHousehold, (supplier_id, household.id), populate_existing=True) is not None:
        return  # a request of the same co-op linked it meanwhile
    clash = _code_in_use(supplier_id=supplier_id, code=household.code, other_than=household.id)
    if clash:
        raise clash
    db.session.add(SupplierHousehold(supplier_id=supplier_id, household_id=household.id))
    db.session.flush()


def register_household(*, supplier_id: int, supplier_scope: int | None, code: str, head_name: str,
                       id_number: str, village: str, members: int, consent_on: date, consent_basis: str,
                       county_code: str | None = None, bank_account: str | None = None,
                       created_by: int | None = None) -> Household:
    """Register a household under a supplier, which may then see it and link it, recording who did (`created_by`, a
    user id).

    A person is registered once: a known ID number (by keyed hash) is `household_exists`, and the
    co-op links that household instead. Registering creates no benefit link; those are explicit.
    """
    supplier = active_supplier(supplier_id, supplier_scope)
    _hold_codes(supplier.id)
    county_code = _recipient_county(county_code or supplier.county_code, field="county_code")
    code = normalise_identifier(code)
    number = normalise_id_number(id_number, today=clock.today())
    account = normalise_bank_account(bank_account) if bank_account else None
    id_hash = crypto.lookup_hash(number)
    taken = _code_taken(county_code=county_code, code=code) or _code_in_use(supplier_id=supplier.id, code=code)
    if taken:  # decided before the person is looked at: it tells nothing about the ID number, and costs nothing
        raise taken
    if account:
        _refuse_shared_account(account_hash=crypto.lookup_hash(account))
    with id_number_probe():
        household = _new_household(supplier=supplier, id_hash=id_hash, county_code=county_code, code=code,
                                   number=number, account=account, head_name=head_name, village=village,
                                   members=members, consent_on=consent_on, consent_basis=consent_basis,
                                   created_by=created_by)
    _link_supplier(supplier_id=supplier.id, household=household)
    return household


def _new_household(*, supplier: Supplier, id_hash: str, county_code: str, code: str, number: str,
                   account: str | None, head_name: str, village: str, members: int, consent_on: date,
                   consent_basis: str, created_by: int | None) -> Household:
    """A new household whose registry code was found free, unless its person is registered already (or a concurrent
    registration took the code or the person meanwhile: the conflict says which)."""
    registered = _person_registered(id_hash)
    if registered:
        raise registered
    household = Household(code=code, county_code=county_code, head_name=head_name.strip(), village=village,
                          members=members, consent_on=consent_on, consent_basis=consent_basis,
                          registered_by_id=supplier.id, created_by=created_by)
    household.id_number = number
    household.bank_account = account
    try:
        with db.session.begin_nested():
            db.session.add(household)
            db.session.flush()
    except IntegrityError:
        # A concurrent registration won the race; say which rule it broke, without the values.
        raise (_duplicate_error(id_hash=id_hash, county_code=county_code, code=code)
               or Conflict("The household conflicts with existing data.", code=ShopCode.CONFLICT)) from None
    return household


def list_households(*, supplier_id: int, supplier_scope: int | None, code: str | None, village: str | None,
                    active: bool | None, limit: int, cursor: str | None, head_name: str | None = None) -> dict:
    """A page of the households a supplier works with; `head_name` is a part of the head's name (ASCII letters in any
    case, as both databases lower them)."""
    _scoped_supplier(supplier_id, supplier_scope)
    query = select(Household).where(_linked(supplier_id))
    if code:
        query = query.where(Household.code == code)
    if head_name:
        query = query.where(func.lower(Household.head_name).contains(head_name.lower(), autoescape=True))
    if village:
        query = query.where(Household.village == village)
    if active is not None:
        query = query.where(Household.active == active)
    return paginate(query, keys=[Household.id], limit=limit, cursor=cursor)


def _check_reveal(*, user: User, reason: str | None) -> None:
    """Only admins reveal personal data, and only with a stated reason."""
    if user.role != "admin":
        raise Forbidden("Only admins may reveal personal data.", code=SupplierCode.REVEAL_FORBIDDEN)
    if not (reason or "").strip():
        raise ValidationError("State why the full values are needed.", code=SupplierCode.REVEAL_REASON_REQUIRED,
                              details={"reason": ["Required with reveal=true."]})


def show_household(*, household_id: int, user: User, reveal: bool = False,
                   reason: str | None = None) -> Household | Revealed:
    """A household in the user's scope, masked; an admin's reveal (with a reason) is audited."""
    if reveal:
        _check_reveal(user=user, reason=reason)
    household = _household_in_scope(household_id, user.supplier_id)
    if not reveal:
        return household
    revealed = ["id_number"] + (["bank_account"] if household.bank_account_enc else [])
    db.session.add(RevealAudit(user_id=user.id, household_id=household.id, fields=",".join(revealed),
                               reason=reason.strip()))
    db.session.flush()
    return Revealed(household)


@dataclass(frozen=True, kw_only=True)
class HouseholdChanges(Changes):
    """What a household's registering co-op or an admin may change (its code, county and ID number stay)."""

    head_name: str = UNSET
    village: str = UNSET
    members: int = UNSET
    bank_account: str | None = UNSET
    consent_on: date = UNSET
    consent_basis: str = UNSET
    active: bool = UNSET


def update_household(*, household_id: int, user: User, changes: HouseholdChanges,
                     reason: str | None = None) -> Household:
    """Edit a household's name, village, members, account (audited) or consent, or (de)activate it; each field that
    changes is kept in its history (`household_history`: who, when, old and new).

    Only the co-op that registered the household, or an admin, may change it: another co-op that
    linked it reads it (`household_read_only`), any other gets `household_not_found`.
    """
    household = _household_in_scope(household_id, changes_scope(user))
    if user.supplier_id is not None and household.registered_by_id != user.supplier_id:
        raise Forbidden("Only the co-op that registered this household, or an admin, may change it.",
                        code=SupplierCode.HOUSEHOLD_READ_ONLY)
    household = lock_row(Household, household.id)  # changes at once are made, and recorded, one after the other
    values = changes.given()
    if values.get("active") and not household.active and user.supplier_id is not None:
        _not_deactivated_by_admin(household.id)
    paid_into = "bank_account" in values or values.get("active") is True  # an account named, or taken up again
    if "bank_account" in values:
        _change_bank_account(row=household, account=values.pop("bank_account"), user=user, reason=reason)
    for field, value in values.items():
        old = getattr(household, field)
        if value != old:
            db.session.add(HouseholdChange(household_id=household.id, field=field, old_value=_as_text(old),
                                           new_value=_as_text(value), changed_by=user.id))
            setattr(household, field, value)
    if paid_into and household.active and household.bank_account_hash:
        _refuse_shared_account(account_hash=household.bank_account_hash, household_id=household.id)
    db.session.flush()
    return household


def _not_deactivated_by_admin(household_id: int) -> None:
    """A co-op may not undo an admin's deactivation (a compliance act): `household_deactivated_by_admin` 409 if the
    household's last deactivation was an admin's."""
    deactivated_by = db.session.scalar(
        select(User.role).join(HouseholdChange, HouseholdChange.changed_by == User.id)
        .where(HouseholdChange.household_id == household_id, HouseholdChange.field == "active",
               HouseholdChange.new_value == _as_text(False))
        .order_by(HouseholdChange.id.desc()).limit(1))
    if deactivated_by == "admin":
        raise Conflict("An admin deactivated this household; only an admin may reactivate it.",
                       code=SupplierCode.HOUSEHOLD_DEACTIVATED_BY_ADMIN, details={"active": ["Ask an admin."]})


def _as_text(value: object) -> str | None:
    """A field's value as a history keeps it: a date in ISO form, a flag `true`/`false`, None as None (no contact)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, date) else str(value)


def household_history(*, household_id: int, supplier_scope: int | None, from_date: date | None,
                      to_date: date | None, limit: int, cursor: str | None) -> dict:
    """A page of the changes of a household in scope (its bank account's apart) made in [from_date, to_date), oldest
    first."""
    _household_in_scope(household_id, supplier_scope)
    period = recorded_in(HouseholdChange.changed_at, from_date=from_date, to_date=to_date)
    query = select(HouseholdChange).where(HouseholdChange.household_id == household_id, *period)
    return paginate_committed(query, model=HouseholdChange, limit=limit, cursor=cursor,
                    filters={"household_id": household_id, "from": from_date, "to": to_date})


def find_household(*, supplier_id: int, code: str) -> Household | None:
    """The household with registry code `code` that works with the supplier, if any."""
    code = normalise_identifier(code)
    return db.session.scalar(select(Household).where(Household.code == code, _linked(supplier_id)))


# --- benefit links ---------------------------------------------------------------------


def _valid_on(on: date):
    """The SQL condition: the link is valid on `on` (both ends inclusive)."""
    return (BenefitLink.valid_from <= on) & or_(BenefitLink.valid_until.is_(None), BenefitLink.valid_until >= on)


def _household_to_link(*, supplier_id: int, household_code: str, id_number: str | None) -> Household:
    """The household a link names: one of the supplier's by code, or any by code plus ID number."""
    household = find_household(supplier_id=supplier_id, code=household_code)
    if id_number is not None:
        id_hash = crypto.lookup_hash(normalise_id_number(id_number, today=clock.today()))
        with id_number_probe():
            if household is None or household.id_number_hash != id_hash:
                candidate = _household_by_hash(id_hash)
                household = None
                if candidate is not None and candidate.code == normalise_identifier(household_code):
                    _link_supplier(supplier_id=supplier_id, household=candidate)
                    _forgive_earlier_probe()
                    household = candidate
            if household is None:
                raise _no_household_to_link()
    if household is None:
        raise _no_household_to_link()
    return household


def _no_household_to_link() -> NotFound:
    """The error of a link naming no household the supplier may link."""
    return NotFound("No household with this registry code (and ID number) to link.",
                    code=SupplierCode.HOUSEHOLD_NOT_FOUND,
                    details={"household_code": ["Give the ID number to link a household another "
                                                "supplier registered."]})


def _not_before_attributed_sales(supplier_id: int, field: str, first_date: date) -> None:
    """A dividend link may change the shares of no date whose sales were already attributed (DESIGN.md: a refund's
    reversal is recomputed from the links valid on the sale date, and auditors recompute the same): `first_date`, the
    first date the change touches, must come after the supplier's last sale. `benefit_link_backdated` 409 if not. The
    supplier's sale dates are held (exclusive) first, until the link is committed: a sale being paid meanwhile is
    waited for and seen, and one paid after waits for the link, so it is attributed with it (`hold_sales`;
    taken after the supplier's row lock and before the household's, the order every link change keeps)."""
    hold_sales(supplier_ids=[supplier_id], exclusive=True)
    last_sale = current_app.extensions["supplier_last_sale_date"](supplier_id)
    if last_sale is not None and first_date <= last_sale:
        raise Conflict(f"Sales of this supplier were attributed up to {last_sale.isoformat()}: a dividend link can "
                       f"change the shares from {(last_sale + timedelta(days=1)).isoformat()} on.",
                       code=SupplierCode.BENEFIT_LINK_BACKDATED,
                       details={field: [f"Must be after {last_sale.isoformat()}." if field == "valid_from" else
                                        f"Must not be before {last_sale.isoformat()}."],
                                "last_sale_date": last_sale.isoformat()})


def create_benefit_link(*, supplier_id: int, supplier_scope: int | None, household_code: str, kind: str,
                        valid_from: date, id_number: str | None = None, shares: int | None = None,
                        valid_until: date | None = None, created_by: int | None = None) -> BenefitLink:
    """Link a household to a supplier, recording who did (`created_by`, a user id); another supplier's household is
    matched by code and ID number.

    Purchase and employment links of one household may not overlap in time; dividend links may
    (their shares add up). The check cannot race: on PostgreSQL an exclusion constraint backs it,
    on SQLite the household row's write lock is taken before it. The supplier's row is held (`_hold_codes`) and the
    household's locked and read afresh before either is found active, so a deactivation under way is waited for.
    """
    active_supplier(supplier_id, supplier_scope)
    _hold_codes(supplier_id)
    if kind == "dividend":  # decided before an ID number is compared: it tells nothing about one, and costs nothing
        _not_before_attributed_sales(supplier_id, "valid_from", valid_from)
    household = _household_to_link(supplier_id=supplier_id, household_code=household_code, id_number=id_number)
    household = lock_row(Household, household.id)
    if not household.active:
        raise Conflict(f"Household {household.code} is inactive.", code=SupplierCode.HOUSEHOLD_INACTIVE)
    if kind != "dividend":
        overlapping = db.session.scalar(select(BenefitLink.id).where(
            BenefitLink.supplier_id == supplier_id, BenefitLink.household_id == household.id,
            BenefitLink.kind == kind,
            or_(BenefitLink.valid_until.is_(None), BenefitLink.valid_until >= valid_from),
            *([BenefitLink.valid_from <= valid_until] if valid_until else [])))
        if overlapping is not None:
            raise _overlap(kind, overlapping)
    link = BenefitLink(supplier_id=supplier_id, household_id=household.id, household=household, kind=kind,
                       shares=shares, valid_from=valid_from, valid_until=valid_until, created_by=created_by)
    try:
        with db.session.begin_nested():
            db.session.add(link)
            db.session.flush()
    except IntegrityError as error:
        if not violates(error, OVERLAP_CONSTRAINT):
            raise
        raise _overlap(kind, None) from None
    return link


def _overlap(kind: str, link_id: int | None) -> Conflict:
    """The conflict of a link overlapping another of its kind (the other's id when known)."""
    return Conflict(f"An overlapping {kind} link of this household exists.", code=SupplierCode.BENEFIT_LINK_OVERLAPS,
                    details={"benefit_link_id": link_id} if link_id is not None else {})



def list_benefit_links(*, supplier_id: int, supplier_scope: int | None, kind: str | None,
                       household_id: int | None, on: date | None, limit: int, cursor: str | None) -> dict:
    """A page of a supplier's benefit links, ended ones included, filtered by kind, household and date."""
    _scoped_supplier(supplier_id, supplier_scope)
    query = select(BenefitLink).where(BenefitLink.supplier_id == supplier_id)
    if kind:
        query = query.where(BenefitLink.kind == kind)
    if household_id is not None:
        query = query.where(BenefitLink.household_id == household_id)
    if on is not None:
        query = query.where(_valid_on(on))
    return paginate(query, keys=[BenefitLink.id], limit=limit, cursor=cursor)


def get_benefit_link(*, link_id: int, supplier_scope: int | None) -> BenefitLink:
    """A benefit link of the supplier in scope (any, without one), else `benefit_link_not_found` 404."""
    query = select(BenefitLink).where(BenefitLink.id == link_id)
    if supplier_scope is not None:
        query = query.where(BenefitLink.supplier_id == supplier_scope)
    link = db.session.scalar(query)
    if link is None:
        raise NotFound(f"No benefit link {link_id}.", code=SupplierCode.BENEFIT_LINK_NOT_FOUND)
    return link


def _not_before_deliveries(link: BenefitLink, valid_until: date) -> None:
    """A purchase link may not end before a harvest its household already delivered into one of the supplier's lots
    (the lot records that delivery under this link): `benefit_link_backdated` 409 if it would."""
    delivered = current_app.extensions["household_last_delivery_date"](link.supplier_id, link.household_id)
    if delivered is not None and valid_until < delivered:
        raise Conflict(f"Household {link.household_code} delivered into this supplier's lots harvested up to "
                       f"{delivered.isoformat()}: its purchase link can end from that day on.",
                       code=SupplierCode.BENEFIT_LINK_BACKDATED,
                       details={"valid_until": [f"Must not be before {delivered.isoformat()}."],
                                "last_delivery_date": delivered.isoformat()})


def end_benefit_link(*, link_id: int, user: User, valid_until: date) -> BenefitLink:
    """End an open benefit link on `valid_until` (inclusive), recording who ended it and when; the link stays as
    history. The row is locked and read afresh first, so of two ends at once the second finds the link ended."""
    link = lock_row(BenefitLink, get_benefit_link(link_id=link_id, supplier_scope=changes_scope(user)).id)
    if link.valid_until is not None:
        raise Conflict(f"Benefit link {link_id} has already ended.", code=SupplierCode.BENEFIT_LINK_ENDED)
    if valid_until < link.valid_from:
        raise ValidationError("A link cannot end before it starts.",
                              details={"valid_until": ["Must not be before valid_from."]})
    if link.kind == "dividend":  # it stops covering the days after valid_until
        _not_before_attributed_sales(link.supplier_id, "valid_until", valid_until + timedelta(days=1))
    if link.kind == "purchase":
        _not_before_deliveries(link, valid_until)
    link.valid_until, link.ended_at, link.ended_by = valid_until, utcnow(), user.id
    db.session.flush()
    return link


@dataclass(frozen=True)
class PurchasePeriods:
    """A household a supplier works with, and the periods of its purchase links with that supplier."""

    id: int
    code: str
    village: str
    active: bool
    periods: tuple[tuple[date, date | None], ...]

    def linked_on(self, on: date) -> bool:
        """Whether one of the purchase links is valid on `on` (both ends inclusive)."""
        return any(start <= on and (end is None or on <= end) for start, end in self.periods)


def purchase_periods(*, supplier_id: int) -> dict[str, PurchasePeriods]:
    """Registry code → household and purchase-link periods, for all the supplier's households (bulk checks of
    deliveries). The links and the households are held until the transaction ends (PostgreSQL: FOR SHARE; SQLite: the
    write lock), and ending a link or deactivating a household locks its row first: no link a delivery is checked
    against ends, and no household that delivers is deactivated, before the delivery is committed."""
    periods: dict[int, list[tuple[date, date | None]]] = {}
    lock_on_sqlite("UPDATE suppliers SET id = id WHERE id = :id", id=supplier_id)
    links = select(BenefitLink.household_id, BenefitLink.valid_from, BenefitLink.valid_until).where(
        BenefitLink.supplier_id == supplier_id, BenefitLink.kind == "purchase").with_for_update(read=True)
    for household_id, start, end in db.session.execute(links):
        periods.setdefault(household_id, []).append((start, end))
    households = db.session.execute(select(Household.id, Household.code, Household.village, Household.active)
                                    .where(_linked(supplier_id)).with_for_update(read=True, of=Household))
    return {code: PurchasePeriods(id=id_, code=code, village=village, active=active,
                                  periods=tuple(sorted(periods.get(id_, []))))
            for id_, code, village, active in households}


def dividend_shares(*, supplier_id: int, on: date) -> dict[int, int]:
    """Household id → summed shares of the supplier's dividend links valid on `on`."""
    rows = db.session.execute(
        select(BenefitLink.household_id, func.sum(BenefitLink.shares))
        .where(BenefitLink.supplier_id == supplier_id, BenefitLink.kind == "dividend", _valid_on(on))
        .group_by(BenefitLink.household_id))
    return {household_id: int(shares) for household_id, shares in rows}


# --- audit and key rotation ------------------------------------------------------------


def list_reveals(*, household_id: int | None, supplier_id: int | None, store_id: int | None, user_id: int | None,
                 from_date: date | None, to_date: date | None, limit: int, cursor: str | None) -> dict:
    """A page of reveal audit rows recorded in [from_date, to_date), oldest first."""
    query = select(RevealAudit).where(*recorded_in(RevealAudit.created_at, from_date=from_date, to_date=to_date))
    if household_id is not None:
        query = query.where(RevealAudit.household_id == household_id)
    if supplier_id is not None:
        query = query.where(RevealAudit.supplier_id == supplier_id)
    if store_id is not None:
        query = query.where(RevealAudit.store_id == store_id)
    if user_id is not None:
        query = query.where(RevealAudit.user_id == user_id)
    return paginate_committed(query, model=RevealAudit, limit=limit, cursor=cursor, filters={
        "household_id": household_id, "supplier_id": supplier_id, "store_id": store_id, "user_id": user_id,
        "from": from_date, "to": to_date})


def list_account_changes(*, household_id: int | None, supplier_id: int | None, user_id: int | None,
                         from_date: date | None, to_date: date | None, limit: int, cursor: str | None) -> dict:
    """A page of the bank account changes recorded in [from_date, to_date), oldest first."""
    query = select(BankAccountChange).where(*recorded_in(BankAccountChange.created_at, from_date=from_date,
                                                         to_date=to_date))
    if household_id is not None:
        query = query.where(BankAccountChange.household_id == household_id)
    if supplier_id is not None:
        query = query.where(BankAccountChange.supplier_id == supplier_id)
    if user_id is not None:
        query = query.where(BankAccountChange.user_id == user_id)
    return paginate_committed(query, model=BankAccountChange, limit=limit, cursor=cursor, filters={
        "household_id": household_id, "supplier_id": supplier_id, "user_id": user_id, "from": from_date,
        "to": to_date})


def _encrypted_columns() -> list[tuple[type, list[str]]]:
    """Every mapped class with encrypted columns (`<name>_enc`, read and written through its `<name>` property), in
    every domain: ID numbers and accounts, stores' accounts, payees' accounts, delivery addresses, stored responses."""
    found = [(mapper.class_, [attr.key.removesuffix("_enc") for attr in mapper.column_attrs
                              if attr.key.endswith("_enc")]) for mapper in db.Model.registry.mappers]
    return sorted(((model, names) for model, names in found if names), key=lambda pair: pair[0].__name__)


REENCRYPT_BATCH = 500
REHASHING = "re-hashing"  # the fingerprint stored while ID numbers are re-hashed: the key of no hash made so far


@dataclass(frozen=True)
class ReencryptStep:
    """One committed-by-the-caller batch of `reencrypt_fields`: the table, what was done (`re-encrypted` or
    `re-hashed`), the rows changed in this batch, and the rows of the table gone through so far out of `total`."""

    table: str
    action: str
    changed: int
    done: int
    total: int


def reencrypt_fields(*, batch: int = REENCRYPT_BATCH) -> Iterator[ReencryptStep]:
    """Re-encrypt every encrypted field not under the current key and re-hash every ID number with `FIELD_HASH_KEY`,
    then record that key's fingerprint: `batch` rows at a time, each batch flushed and yielded for the caller to
    commit (the session holds committed rows weakly: memory stays flat however many rows there are). A run stopped
    half-way resumes where it was: rows already under the current key are not read again, hashes already current
    are not written. While hashes are re-made with another key the fingerprint stored is `REHASHING`, so that no
    key matches (the service refuses to serve) until a run finishes."""
    current = crypto.keyring().current
    for model, names in _encrypted_columns():
        columns = [getattr(model, f"{name}_enc") for name in names]
        stale = or_(*(column.is_not(None) & ~column.startswith(f"{current}:", autoescape=True) for column in columns))
        yield from _in_batches(model, stale, batch, "re-encrypted",
                               lambda row, names=names: _reencrypt_row(row, names, current))
    stored = db.session.get(KeyFingerprint, LOOKUP_HASH_KEY)
    if stored is None:
        stored = KeyFingerprint(name=LOOKUP_HASH_KEY, fingerprint=REHASHING)
        db.session.add(stored)
    elif stored.fingerprint != crypto.hash_key_fingerprint():  # committed with the first batch re-hashed
        stored.fingerprint = REHASHING
    yield from _in_batches(Household, true(), batch, "re-hashed", _rehash)
    stored.fingerprint = crypto.hash_key_fingerprint()
    db.session.flush()


def _reencrypt_row(row, names: list[str], current: str) -> bool:
    """Re-encrypt a row's fields not under the `current` key; whether any was."""
    stale = [name for name in names
             if getattr(row, f"{name}_enc") and crypto.key_id(getattr(row, f"{name}_enc")) != current]
    for name in stale:
        setattr(row, name, getattr(row, name))
    return bool(stale)


def _rehash(household: Household) -> bool:
    """Re-hash a household's ID number and bank account with `FIELD_HASH_KEY`; whether a hash changed."""
    id_hash = crypto.lookup_hash(household.id_number)
    account = household.bank_account
    account_hash = crypto.lookup_hash(account) if account else None
    if (id_hash, account_hash) == (household.id_number_hash, household.bank_account_hash):
        return False
    household.id_number_hash, household.bank_account_hash = id_hash, account_hash
    return True


def _in_batches(model, condition, batch: int, action: str, work) -> Iterator[ReencryptStep]:
    """Apply `work` to the rows of `model` matching `condition`, `batch` at a time in primary-key order, yielding a
    step after each flushed batch (the caller commits it). Each batch is locked as it is read, and read afresh (the
    service runs meanwhile): a value changed by a request in between is the one re-encrypted, never overwritten by
    the value read before it."""
    keys = list(model.__mapper__.primary_key)
    names = [model.__mapper__.get_property_by_column(key).key for key in keys]
    total = db.session.scalar(select(func.count()).select_from(model).where(condition))
    done, after = 0, None
    while True:
        lock_on_sqlite(f"UPDATE {model.__tablename__} SET {keys[0].name} = {keys[0].name} WHERE 1 = 0")
        query = (select(model).where(condition).order_by(*keys).limit(batch).with_for_update(of=model)
                 .execution_options(populate_existing=True))
        if after is not None:
            query = query.where(tuple_(*keys) > tuple_(*after))
        rows = db.session.scalars(query).all()
        if not rows:
            return
        changed = sum(work(row) for row in rows)
        db.session.flush()
        after, done = [getattr(rows[-1], name) for name in names], done + len(rows)
        yield ReencryptStep(table=model.__tablename__, action=action, changed=changed, done=done, total=total)


def check_hash_key() -> None:
    """`ConfigError` unless `FIELD_HASH_KEY` is the key the stored look-up hashes were made with.

    With no fingerprint stored yet (a fresh or emptied database), the current key's is recorded in
    its own transaction. Before the schema exists (during `flask db upgrade`) nothing is checked.
    """
    fingerprint = crypto.hash_key_fingerprint()
    table = KeyFingerprint.__table__
    try:
        with db.engine.begin() as conn:
            if not db.inspect(conn).has_table(table.name):
                return
            stored = conn.scalar(select(table.c.fingerprint).where(table.c.name == LOOKUP_HASH_KEY))
            if stored is None:
                conn.execute(table.insert().values(name=LOOKUP_HASH_KEY, fingerprint=fingerprint,
                                                   updated_at=func.now()))
                return
    except IntegrityError:  # a concurrent first request recorded it: compare with that one
        return check_hash_key()
    if stored == REHASHING:
        raise ConfigError("the ID-number hashes are half re-made with a new FIELD_HASH_KEY: set that key and run "
                          "`flask --app shop suppliers reencrypt` again to finish.")
    if stored != fingerprint:
        raise ConfigError("FIELD_HASH_KEY does not match the key the stored ID-number hashes were made with; "
                          "restore it, or re-hash with `flask --app shop suppliers reencrypt` "
                          "(see shop/crypto.py).")
