"""Stores and their staff scope, cash shifts with their report, stock transfers and stock adjustments.

Scope in one place: `_store_scope(actor)` is the store a caller is confined to (a store_staff user's
`store_id`), or None for everyone who may see every store. Outside its scope everything is "not
found", never "forbidden"; which roles may call at all is decided by the views' `require_role`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, select

from catalog import inventory
from catalog.errors import CatalogCode
from catalog.models import Location
from catalog.service import products_seen_by
from orders.errors import OrderCode
from orders.models import (
    LOST_IN_TRANSIT,
    MAX_TRANSFER_LOTS,
    Allocation,
    Order,
    Refund,
    Shift,
    StockAdjustment,
    StockTransfer,
    Store,
    StoreAccountChange,
    StoreClosure,
    TransferLine,
)
from shop.auth.models import User
from shop.changes import UNSET, Changes
from shop.db import db, lock_on_sqlite, lock_row, utcnow
from shop.errors import Conflict, Forbidden, NotFound, ValidationError
from shop.fields import name_key
from shop.idempotency import user_keys
from shop.pagination import paginate, paginate_committed, recorded_in
from shop.regions.models import Pairing
from shop.regions.service import region_named
from suppliers.errors import SupplierCode
from suppliers.identifiers import audit_mask_bank_account, normalise_bank_account

SEE_ALL = ("admin", "auditor")
REASON_SIGNS = {"spoiled": -1, "damaged": -1, "found": 1}


# --- stores -------------------------------------------------------------------------------------------

def _store_scope(actor: User) -> int | None:
    """The store a caller is confined to: a store_staff user's store (0 if it has none), else None."""
    return (actor.store_id or 0) if actor.role == "store_staff" else None


def location_scope(actor: User) -> int | None:
    """The stock location a caller is confined to: a store_staff user's store's location (0 if none), else None."""
    scope = _store_scope(actor)
    if scope is None:
        return None
    return db.session.scalar(select(Store.location_id).where(Store.id == scope)) or 0


def closed_store_locations() -> Select:
    """The stock locations of deactivated stores (a select of their ids): what is held there sells nowhere."""
    return select(Store.location_id).where(Store.active.is_(False))


def store_takes_staff(store_id: int) -> bool:
    """Whether a store with `store_id` exists (the user scope check of creating, moving or enabling a user); an
    inactive one takes no new staff (409 `store_inactive`). The store is held (`_hold_store`) and read afresh: a
    deactivation under way is waited for, and one begun after waits for the new clerk's commit."""
    store = _hold_store(store_id)
    if store is not None and not store.active:
        raise Conflict(f"Store {store_id} is inactive.", code=OrderCode.STORE_INACTIVE,
                       details={"store_id": ["The store is inactive: it takes no new staff."]})
    return store is not None


def _store(store_id: int) -> Store:
    """The store with `store_id`, or `NotFound` (store_not_found)."""
    store = db.session.get(Store, store_id)
    if store is None:
        raise NotFound(f"No store {store_id}.", code=OrderCode.STORE_NOT_FOUND)
    return store


def get_store_for(*, actor: User, store_id: int) -> Store:
    """A store the actor may work on: admins any, store staff only their own (404 otherwise)."""
    scope = _store_scope(actor)
    if scope is not None and scope != store_id:
        raise NotFound(f"No store {store_id}.", code=OrderCode.STORE_NOT_FOUND)
    return _store(store_id)


def refuse_closed_store_staff(actor: User) -> None:
    """A closed store's staff change nothing of it (409 `store_inactive`; call after the scope check); admins pass. The
    store is held until the change commits (`_hold_store`). Not called by closing a shift nor by handing over a paid
    pickup order."""
    store_id = _store_scope(actor)
    store = _hold_store(store_id) if store_id else None
    if store is not None and not store.active:
        raise Conflict(f"Store {store_id} is inactive: its staff change nothing of it; ask an admin.",
                       code=OrderCode.STORE_INACTIVE, details={"store_id": store_id})


def store_keys(*, actor: User, store_id: int) -> str:
    """The scope of the Idempotency-Keys of what is done at a store (counter sales, hand-overs, shifts, transfer
    receipts): the store, not the clerk, so a queued request resent by another clerk gets the first answer; the store
    is checked in the actor's scope first (404), so a key is never replayed to another store's staff."""
    get_store_for(actor=actor, store_id=store_id)
    return f"store:{store_id}"


def show_store(*, actor: User, store_id: int) -> Store:
    """A store as the actor may see it: admins and auditors any, staff their own, consumers active ones."""
    store = get_store_for(actor=actor, store_id=store_id)
    if actor.role == "consumer" and not store.active:
        raise NotFound(f"No store {store_id}.", code=OrderCode.STORE_NOT_FOUND)
    store.show_account = actor.role in SEE_ALL
    return store


def list_stores(*, actor: User, district_code: str | None, limit: int, cursor: str | None) -> dict:
    """A page of the stores the actor may see, by id (consumers: the active ones, to choose a pickup store)."""
    query = select(Store)
    scope = _store_scope(actor)
    if scope is not None:
        query = query.where(Store.id == scope)
    if actor.role == "consumer":
        query = query.where(Store.active.is_(True))
    if district_code:
        query = query.where(Store.district_code == district_code)
    page = paginate(query, keys=[Store.id], limit=limit, cursor=cursor)
    for store in page["items"]:
        store.show_account = actor.role in SEE_ALL
    return page


def _is_donor_district(code: str) -> bool:
    """Whether `code` is the donor side of some pairing."""
    return bool(db.session.scalar(select(exists().where(Pairing.donor_code == code))))


def duplicate_store_location(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a store on a location that already belongs to a store."""
    location_code = inventory.get_location(row["location_id"]).code
    return Conflict(f"Location {location_code} already belongs to a store.", code=OrderCode.LOCATION_TAKEN,
                    details={"location_code": location_code})


def duplicate_store_name(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a store named like another (`name_key`): consumers choose a pickup store, and read receipts,
    by name. It names the store that has the name."""
    taken = db.session.scalar(select(Store.name).where(Store.name_key == name_key(row["name"]))) or row["name"]
    return Conflict(f"A store is already named {taken}.", code=OrderCode.STORE_NAME_TAKEN,
                    details={"name": [f"Another store is named {taken}, which reads alike."]})


def _refuse_taken_name(name: str, *, store_id: int | None = None) -> None:
    """Refuse a name that reads like another store's (`store_name_taken` 409)."""
    key = name_key(name)
    lock_on_sqlite("UPDATE stores SET id = id WHERE name_key = :key", key=key)
    if db.session.scalar(select(Store.id).where(Store.name_key == key, Store.id != store_id)) is not None:
        raise duplicate_store_name({"name": name})


def create_store(*, name: str, district_code: str, location_code: str, bank_account: str | None = None) -> Store:
    """Open a store, named like no other (409 `store_name_taken`), in a donor district on an unused store location in
    that district (422 `location_outside_district` otherwise: its sales are credited to the district); its payout
    account is encrypted."""
    region_named(district_code, field="district_code")
    if not _is_donor_district(district_code):
        raise ValidationError("The district is not a donor district.", code=OrderCode.DISTRICT_NOT_DONOR,
                              details={"district_code": ["Must be a donor district of some pairing."]})
    location = inventory.find_location(location_code)
    if location is None or location.kind != "store":
        raise ValidationError("The location is not a store location.", code=OrderCode.LOCATION_NOT_STORE,
                              details={"location_code": [f"No store location {location_code}."]})
    lock_on_sqlite("UPDATE locations SET id = id WHERE id = :id", id=location.id)
    if db.session.scalar(select(Store.id).where(Store.location_id == location.id)) is not None:
        raise duplicate_store_location({"location_id": location.id})
    if location.region_code != district_code:
        raise ValidationError(f"Location {location_code} is not in the store's district {district_code}: a store "
                              "sells from a back room in its own district.", code=OrderCode.LOCATION_OUTSIDE_DISTRICT,
                              details={"location_code": [f"The location is in region {location.region_code}, not "
                                                         f"in the store's district {district_code}."]})
    _refuse_taken_name(name)
    store = Store(name=name, district_code=district_code, location_id=location.id)
    store.bank_account = normalise_bank_account(bank_account) if bank_account else None
    db.session.add(store)
    db.session.flush()
    store.show_account = True
    return store


@dataclass(frozen=True, kw_only=True)
class StoreChanges(Changes):
    """What an admin may change on a store (its district and stock location stay)."""

    name: str = UNSET
    active: bool = UNSET
    bank_account: str | None = UNSET


def update_store(*, store_id: int, actor: User, changes: StoreChanges, reason: str | None = None) -> Store:
    """Rename (to a name no other store has), (de)activate (each closed period is kept: `closed_during`), or change
    the payout account of a store (a reason is required; audited)."""
    store = _store(store_id)
    values = changes.given()
    if "name" in values:
        _refuse_taken_name(values["name"], store_id=store.id)
    if "active" in values:
        _lock_store(store.id)  # read afresh: a close or reopening at once finds the other's outcome
        if values["active"] is False and store.active:
            _refuse_with_transfers_in_transit(store)
            _refuse_with_pickups_waiting(store)
            db.session.add(StoreClosure(store_id=store.id, closed_at=utcnow(), closed_by=actor.id))
        elif values["active"] is True and not store.active:
            _end_closure(store=store, actor=actor)
    if "bank_account" in values:
        _change_bank_account(store=store, account=values.pop("bank_account"), actor=actor, reason=reason)
    for field, value in values.items():
        setattr(store, field, value)
    db.session.flush()
    store.show_account = True
    return store


def _end_closure(*, store: Store, actor: User) -> None:
    """Stamp the reopening on the store's open closure, keeping the closed period (`closed_during`)."""
    closure = db.session.scalar(select(StoreClosure).where(StoreClosure.store_id == store.id,
                                                           StoreClosure.reopened_at.is_(None)))
    if closure is not None:
        closure.reopened_at, closure.reopened_by = max(utcnow(), closure.closed_at), actor.id


def closed_during(*, store_id: int, moment: datetime) -> StoreClosure | None:
    """The period the store was closed in at `moment` (after it closed, before it reopened), if any. Call with the
    store held (`hold_till`): a close or reopening under way is waited for."""
    return db.session.scalar(select(StoreClosure).where(
        StoreClosure.store_id == store_id, StoreClosure.closed_at < moment,
        StoreClosure.reopened_at.is_(None) | (StoreClosure.reopened_at > moment)).order_by(StoreClosure.id).limit(1))


def _refuse_with_transfers_in_transit(store: Store) -> None:
    """A store with stock transfers on their way to it stays active (409 `transfers_in_transit` naming them): they
    are received first. The store row is locked, so no transfer is dispatched to it meanwhile (`create_transfer`)."""
    _lock_store(store.id)
    waiting = db.session.scalars(select(StockTransfer.id).where(
        StockTransfer.to_location_id == store.location_id, StockTransfer.status == "dispatched")
        .order_by(StockTransfer.id)).all()
    if waiting:
        raise Conflict(f"Store {store.id} has stock transfers on their way: {', '.join(map(str, waiting))}; "
                       "they are received before it closes.", code=OrderCode.TRANSFERS_IN_TRANSIT,
                       details={"transfer_ids": list(waiting)})


def _refuse_with_pickups_waiting(store: Store) -> None:
    """A store with pickup orders waiting (paid and not collected, or awaiting payment) stays active (409
    `pickups_waiting` naming them): they are handed over, cancelled or refunded before it closes. Call with the store
    row locked: checkout holds it while placing a pickup order (`hold_store_open`)."""
    waiting = db.session.scalars(select(Order.id).where(
        Order.store_id == store.id, Order.channel == "pickup",
        Order.awaiting_pickup | (Order.status == "pending_payment")).order_by(Order.id)).all()
    if waiting:
        raise Conflict(f"Store {store.id} has pickup orders waiting: {', '.join(map(str, waiting))}; they are handed "
                       "over, cancelled or refunded before it closes.", code=OrderCode.PICKUPS_WAITING,
                       details={"order_ids": list(waiting)})


def _change_bank_account(*, store: Store, account: str | None, actor: User, reason: str | None) -> None:
    """Set the payout account and record who, when, why, old and new (masked); a reason is required. The store row is
    locked and read afresh first, so changes at once are made one on the other and their log chains."""
    new = normalise_bank_account(account) if account else None
    lock_row(Store, store.id)
    old = store.bank_account
    if new == old:
        return
    if not (reason or "").strip():
        raise ValidationError("State why the bank account changes.", code=SupplierCode.ACCOUNT_CHANGE_REASON_REQUIRED,
                              details={"reason": ["Required when bank_account changes."]})
    store.bank_account = new
    db.session.add(StoreAccountChange(store_id=store.id, user_id=actor.id, reason=reason.strip(),
                                      old_masked=audit_mask_bank_account(old) if old else None,
                                      new_masked=audit_mask_bank_account(new) if new else None))


def list_account_changes(*, store_id: int, from_date: date | None, to_date: date | None, limit: int,
                         cursor: str | None) -> dict:
    """A page of a store's payout account changes made in [from_date, to_date), oldest first."""
    _store(store_id)
    query = select(StoreAccountChange).where(StoreAccountChange.store_id == store_id, *recorded_in(
        StoreAccountChange.created_at, from_date=from_date, to_date=to_date))
    return paginate_committed(query, model=StoreAccountChange, limit=limit, cursor=cursor,
                    filters={"store_id": store_id, "from": from_date, "to": to_date})


# --- shifts -------------------------------------------------------------------------------------------

def _lock_store(store_id: int) -> Store:
    """Serialise changes to one store's shifts (PostgreSQL: the store row FOR UPDATE; SQLite: the write lock); the
    store read afresh."""
    return lock_row(Store, store_id)


def hold_till(*, store_id: int) -> None:
    """Keep the store's shift from closing until this transaction ends, so its cash-up counts the sale or refund
    being written. PostgreSQL: the store row FOR KEY SHARE (what an order's foreign key takes anyway; closing locks
    it FOR UPDATE first, so it waits for the sales and refunds under way, and they wait for a close under way;
    tills writing at once do not wait for each other). SQLite: the write lock."""
    _hold_store(store_id)


def hold_store_open(store_id: int) -> Store | None:
    """The store read afresh and kept from closing until this transaction ends (`_hold_store`), or None."""
    return _hold_store(store_id)


def _hold_store(store_id: int) -> Store | None:
    """The store read afresh and kept from being locked for a change (a deactivation, a shift's close: FOR UPDATE)
    until this transaction ends (PostgreSQL: FOR KEY SHARE; SQLite: the write lock); None if there is none."""
    lock_on_sqlite("UPDATE stores SET id = id WHERE id = :id", id=store_id)
    return db.session.scalar(select(Store).where(Store.id == store_id).with_for_update(read=True, key_share=True)
                             .execution_options(populate_existing=True))


def start_shift(*, actor: User, store_id: int, float_fen: int) -> Shift:
    """Open a cash shift with a float; a store has at most one open shift (`shift_already_open`), and a deactivated
    one opens none (`store_inactive`: it sells nothing new). The store is locked before it is read, so a deactivation
    under way is waited for."""
    get_store_for(actor=actor, store_id=store_id)
    if not _lock_store(store_id).active:
        raise Conflict(f"Store {store_id} is inactive.", code=OrderCode.STORE_INACTIVE)
    open_id = db.session.scalar(select(Shift.id).where(Shift.store_id == store_id, Shift.closed_at.is_(None)))
    if open_id is not None:
        raise Conflict("This store already has an open shift.", code=OrderCode.SHIFT_ALREADY_OPEN,
                       details={"shift_id": open_id})
    shift = Shift(store_id=store_id, opened_by=actor.id, float_fen=float_fen, opened_at=utcnow())
    db.session.add(shift)
    db.session.flush()
    return shift


def get_shift(*, store_id: int, shift_id: int) -> Shift:
    """A shift of this store, open or closed, or `NotFound` (shift_not_found)."""
    shift = db.session.get(Shift, shift_id)
    if shift is None or shift.store_id != store_id:
        raise NotFound(f"No shift {shift_id} at this store.", code=OrderCode.SHIFT_NOT_FOUND)
    return shift


def open_shift(*, store_id: int, shift_id: int) -> Shift:
    """The shift, which must belong to the store (404) and still be open (409 `shift_closed`)."""
    shift = get_shift(store_id=store_id, shift_id=shift_id)
    if shift.closed_at is not None:
        raise Conflict(f"Shift {shift_id} is closed.", code=OrderCode.SHIFT_CLOSED, details={"shift_id": shift_id})
    return shift


def _shift_for(*, actor: User, shift_id: int) -> Shift:
    """A shift of a store in the actor's scope, or `NotFound`."""
    shift = db.session.get(Shift, shift_id)
    scope = _store_scope(actor)
    if shift is None or (scope is not None and scope != shift.store_id):
        raise NotFound(f"No shift {shift_id}.", code=OrderCode.SHIFT_NOT_FOUND)
    return shift


def shift_keys(*, actor: User, shift_id: int) -> str:
    """The scope of a shift's Idempotency-Keys: its store's (`store_keys`); 404 outside the actor's scope."""
    return store_keys(actor=actor, store_id=_shift_for(actor=actor, shift_id=shift_id).store_id)


@dataclass(frozen=True)
class ShiftReport:
    """A shift's cash-up: per payment method expected, counted (cash only) and difference; late entries apart."""

    shift: Shift
    methods: list[dict[str, Any]]
    sales: int
    late_entries: list[dict[str, Any]]


def shift_report(*, actor: User, shift_id: int) -> ShiftReport:
    """The shift report (live while the shift is open)."""
    return _report(_shift_for(actor=actor, shift_id=shift_id))


def _report(shift: Shift) -> ShiftReport:
    """The shift's report (`_reports`)."""
    return _reports([shift])[0]


def _reports(shifts: Sequence[Shift]) -> list[ShiftReport]:
    """Each shift's report, in three statements for them all. Expected takings per method: cash = float + cash sales
    − cash refunds, card = card sales − card refunds, counting the shift's counter sales recorded on time, so the
    cash-up stays as it was closed; offline sales accepted after the close are listed apart, and their takings per
    method (made during the shift, their cash was in the drawer counted) explain that much of the difference: what
    they leave is `unexplained_fen`."""
    ids = [shift.id for shift in shifts]
    taken: dict[int, dict[str, tuple[int, int]]] = {shift_id: {} for shift_id in ids}
    for shift_id, method, count, total in db.session.execute(
            select(Order.shift_id, Order.payment_method, func.count(Order.id),
                   func.coalesce(func.sum(Order.total_fen), 0))
            .where(Order.shift_id.in_(ids), Order.paid_at.is_not(None), Order.late_entry.is_(False))
            .group_by(Order.shift_id, Order.payment_method)):
        taken[shift_id][method] = (int(count), int(total))
    refunded: dict[int, dict[str, int]] = {shift_id: {} for shift_id in ids}
    for shift_id, method, total in db.session.execute(
            select(Refund.shift_id, Refund.method, func.coalesce(func.sum(Refund.amount_fen), 0))
            .where(Refund.shift_id.in_(ids)).group_by(Refund.shift_id, Refund.method)):
        refunded[shift_id][method] = int(total)
    late: dict[int, list[dict[str, Any]]] = {shift_id: [] for shift_id in ids}
    for row in db.session.execute(
            select(Order.shift_id, Order.id, Order.payment_method, Order.total_fen, Order.client_created_at,
                   Order.created_at)
            .where(Order.shift_id.in_(ids), Order.late_entry.is_(True)).order_by(Order.id)):
        late[row.shift_id].append({"order_id": row.id, "payment_method": row.payment_method,
                                   "total_fen": row.total_fen, "sold_at": row.client_created_at,
                                   "recorded_at": row.created_at})
    reports = []
    for shift in shifts:
        methods = []
        for method in ("cash", "card"):
            sales, refunds = taken[shift.id].get(method, (0, 0))[1], refunded[shift.id].get(method, 0)
            expected = sales - refunds + (shift.float_fen if method == "cash" else 0)
            counted = shift.counted_cash_fen if method == "cash" else None
            late_fen = sum(entry["total_fen"] for entry in late[shift.id] if entry["payment_method"] == method)
            methods.append({"method": method, "sales_fen": sales, "refunds_fen": refunds, "expected_fen": expected,
                            "counted_fen": counted,
                            "difference_fen": None if counted is None else counted - expected,
                            "late_entries_fen": late_fen,
                            "unexplained_fen": None if counted is None else counted - expected - late_fen})
        reports.append(ShiftReport(shift=shift, methods=methods, late_entries=late[shift.id],
                                   sales=sum(count for count, _ in taken[shift.id].values())))
    return reports


def check_cash_in_till(*, shift_id: int, amount_fen: int) -> None:
    """Check that an open shift's drawer holds `amount_fen` of cash to give back (409 `till_cash_short`): its float,
    plus its cash sales, less its cash refunds. The shift stays locked until this transaction ends, so cash refunds
    at once are counted one after the other."""
    shift = lock_row(Shift, shift_id)
    in_till = next(method["expected_fen"] for method in _report(shift).methods if method["method"] == "cash")
    if amount_fen > in_till:
        raise Conflict(f"The till of shift {shift_id} holds {in_till} fen of cash: it cannot give back {amount_fen}.",
                       code=OrderCode.TILL_CASH_SHORT,
                       details={"shift_id": shift_id, "cash_in_till_fen": in_till, "amount_fen": amount_fen})


def list_shifts(*, actor: User, store_id: int, status: str | None, from_date: date | None, to_date: date | None,
                limit: int, cursor: str | None) -> dict:
    """A page of a store's shifts opened in [from_date, to_date), newest first, or those `open` or `closed`, each
    with its report (as `shift_report` gives it; live while open)."""
    get_store_for(actor=actor, store_id=store_id)
    query = select(Shift).where(Shift.store_id == store_id,
                                *recorded_in(Shift.opened_at, from_date=from_date, to_date=to_date))
    if status:
        query = query.where(Shift.closed_at.is_(None) if status == "open" else Shift.closed_at.is_not(None))
    page = paginate(query, keys=[Shift.id], limit=limit, cursor=cursor, newest_first=True)
    return {**page, "items": _reports(page["items"])}


def close_shift(*, actor: User, shift_id: int, counted_cash_fen: int) -> ShiftReport:
    """Close a shift with the cash counted in the drawer (409 `shift_closed` if it was closed already)."""
    shift = _shift_for(actor=actor, shift_id=shift_id)
    _lock_store(shift.store_id)
    db.session.refresh(shift)
    if shift.closed_at is not None:
        raise Conflict(f"Shift {shift_id} is closed.", code=OrderCode.SHIFT_CLOSED, details={"shift_id": shift_id})
    shift.closed_at, shift.closed_by, shift.counted_cash_fen = utcnow(), actor.id, counted_cash_fen
    db.session.flush()
    return _report(shift)


# --- transfers ----------------------------------------------------------------------------------------

LOCATION_NOT_OF_KIND = {"warehouse": CatalogCode.LOCATION_NOT_WAREHOUSE, "store": OrderCode.LOCATION_NOT_STORE}


def _location_by_code(code: str, *, kind: str, field: str):
    """The location with `code` of this kind, or a 422 naming the field."""
    location = inventory.find_location(code)
    if location is None or location.kind != kind:
        raise ValidationError(f"No {kind} location {code}.", code=LOCATION_NOT_OF_KIND[kind],
                              details={field: [f"No {kind} location {code}."]})
    return location


def _transfer_ends(*, from_location: str, to_location: str) -> tuple[Location, Location]:
    """A transfer's source and destination: a warehouse and an active store's location (409 `store_inactive`
    otherwise; its row is held FOR SHARE, so it does not close meanwhile: `_refuse_with_transfers_in_transit`), or for
    a return a store's location, open or closed, and a warehouse."""
    source = inventory.find_location(from_location)
    if source is not None and source.kind == "store":
        if db.session.scalar(select(Store.id).where(Store.location_id == source.id)) is None:
            raise ValidationError(f"No store sells from {from_location}.", code=OrderCode.LOCATION_NOT_STORE,
                                  details={"from_location": [f"No store sells from {from_location}."]})
        return source, _location_by_code(to_location, kind="warehouse", field="to_location")
    source = _location_by_code(from_location, kind="warehouse", field="from_location")
    destination = _location_by_code(to_location, kind="store", field="to_location")
    lock_on_sqlite("UPDATE stores SET id = id WHERE location_id = :id", id=destination.id)
    store = db.session.scalar(select(Store).where(Store.location_id == destination.id).with_for_update(read=True))
    if store is None:
        raise ValidationError(f"No store sells from {to_location}.", code=OrderCode.LOCATION_NOT_STORE,
                              details={"to_location": [f"No store sells from {to_location}."]})
    if not store.active:
        raise Conflict(f"Store {store.id} is inactive.", code=OrderCode.STORE_INACTIVE,
                       details={"to_location": [f"The store selling from {to_location} is inactive."]})
    return source, destination


def create_transfer(*, actor: User, from_location: str, to_location: str, lines: Sequence[dict]) -> StockTransfer:
    """Dispatch stock from a warehouse to an active store, or back from a store (also a closed one: its leftover
    stock) to a warehouse (`_transfer_ends`): the source's available lots are taken FIFO, never its reserved units, all
    or nothing (409 `insufficient_stock`), at most `MAX_TRANSFER_LOTS` of them, as many as a receipt names (422
    `transfer_too_many_lots`), and each lot sent is recorded on its own transfer line."""
    source, destination = _transfer_ends(from_location=from_location, to_location=to_location)
    found = products_seen_by(skus=[line["sku"] for line in lines], actor=actor)
    for index, line in enumerate(lines):
        if line["sku"] not in found:
            raise ValidationError(f"No product {line['sku']}.", code=CatalogCode.PRODUCT_NOT_FOUND,
                                  details={"lines": {str(index): {"sku": ["No such product."]}}})
    products = [found[line["sku"]] for line in lines]
    if len({product.id for product in products}) != len(products):
        raise ValidationError("A product is listed twice.", details={"lines": ["List each SKU once."]})
    portions = inventory.take_lines(location_id=source.id, lines=[
        inventory.StockRequest(product.id, line["quantity"]) for product, line in zip(products, lines, strict=True)])
    lots = len({portion.lot_id for line_portions in portions for portion in line_portions})
    if lots > MAX_TRANSFER_LOTS:
        raise ValidationError(f"A transfer sends at most {MAX_TRANSFER_LOTS} lots (its receipt names each): send "
                              "these units in several transfers.", code=OrderCode.TRANSFER_TOO_MANY_LOTS,
                              details={"lines": [f"These lines take {lots} lots; one transfer sends at most "
                                                 f"{MAX_TRANSFER_LOTS}."]})
    transfer = StockTransfer(from_location_id=source.id, to_location_id=destination.id, created_by=actor.id,
                             status="dispatched", created_at=utcnow())
    db.session.add(transfer)
    db.session.flush()
    sent: dict[int, TransferLine] = {}
    for portion in (p for line_portions in portions for p in line_portions):
        if portion.lot_id in sent:
            sent[portion.lot_id].sent += portion.quantity
            continue
        sent[portion.lot_id] = TransferLine(transfer_id=transfer.id, lot_id=portion.lot_id,
                                            product_id=portion.product_id, sent=portion.quantity)
        db.session.add(sent[portion.lot_id])
    db.session.flush()
    db.session.refresh(transfer)
    return transfer


def _transfer_for(*, actor: User, transfer_id: int) -> StockTransfer:
    """A transfer the actor may see (staff: only those coming to their store or going back from it), or `NotFound`."""
    transfer = db.session.get(StockTransfer, transfer_id)
    scope = _store_scope(actor)
    if transfer is not None and scope is not None:
        location_id = db.session.scalar(select(Store.location_id).where(Store.id == scope))
        if location_id not in (transfer.to_location_id, transfer.from_location_id):
            transfer = None
    if transfer is None:
        raise NotFound(f"No stock transfer {transfer_id}.", code=OrderCode.TRANSFER_NOT_FOUND)
    return transfer


def location_keys(*, actor: User, location_id: int) -> str:
    """The scope of the Idempotency-Keys of what is done to a stock location's stock: a store's location's are its
    store's (`store_keys`), a warehouse's the warehouse's, shared by the admins who alone work there (a request resent
    by another admin gets the first answer), anyone else's their own (the view refuses them); 404 outside the actor's
    scope, so a key is never replayed to who may not act there."""
    store_id = db.session.scalar(select(Store.id).where(Store.location_id == location_id))
    if store_id is not None:
        return store_keys(actor=actor, store_id=store_id)
    return f"location:{location_id}" if actor.role == "admin" else user_keys(actor)


def dispatch_keys(*, actor: User, from_location: str | None) -> str:
    """The scope of a new transfer's Idempotency-Keys: its source's (`location_keys`), the user's own for a body naming
    no known location (the view refuses it)."""
    source = None if from_location is None else inventory.find_location(from_location)
    return user_keys(actor) if source is None else location_keys(actor=actor, location_id=source.id)


def cancel_keys(*, actor: User, transfer_id: int) -> str:
    """The scope of a transfer cancel's Idempotency-Keys: its source's, where its units go back (`location_keys`)."""
    return location_keys(actor=actor, location_id=_transfer_for(actor=actor, transfer_id=transfer_id).from_location_id)


def receipt_keys(*, actor: User, transfer_id: int) -> str:
    """The scope of a transfer receipt's Idempotency-Keys: its destination's (`location_keys`: the receiving store's,
    or for a return the receiving warehouse's); 404 outside the actor's scope."""
    return location_keys(actor=actor, location_id=_transfer_for(actor=actor, transfer_id=transfer_id).to_location_id)


def get_transfer(*, actor: User, transfer_id: int) -> StockTransfer:
    """A stock transfer with its lines."""
    return _transfer_for(actor=actor, transfer_id=transfer_id)


def list_incoming_transfers(*, actor: User, store_id: int, status: str | None, limit: int,
                            cursor: str | None) -> dict:
    """A page of the transfers sent to a store, oldest first (by id, which never changes: a transfer received
    between pages keeps its place); `status=dispatched` lists those still to receive."""
    return _store_transfers(actor=actor, store_id=store_id, outgoing=False, status=status, limit=limit, cursor=cursor)


def list_returned_transfers(*, actor: User, store_id: int, status: str | None, limit: int,
                            cursor: str | None) -> dict:
    """A page of the transfers a store sent back to a warehouse, oldest first; `status=dispatched` lists those the
    warehouse has still to receive."""
    return _store_transfers(actor=actor, store_id=store_id, outgoing=True, status=status, limit=limit, cursor=cursor)


def _store_transfers(*, actor: User, store_id: int, outgoing: bool, status: str | None, limit: int,
                     cursor: str | None) -> dict:
    """A page of the transfers to a store (or from it, `outgoing`), by id, or those of one `status`."""
    store = get_store_for(actor=actor, store_id=store_id)
    end = StockTransfer.from_location_id if outgoing else StockTransfer.to_location_id
    query = select(StockTransfer).where(end == store.location_id)
    if status:
        query = query.where(StockTransfer.status == status)
    return paginate(query, keys=[StockTransfer.id], limit=limit, cursor=cursor)


def lot_units_outside_stock(lot_id: int) -> ColumnElement[int]:
    """A lot's units that left the stock rows without leaving the lot: sold and not refunded, or in transit (on a
    transfer dispatched, neither received nor cancelled)."""
    sold = select(func.coalesce(func.sum(Allocation.quantity - Allocation.refunded), 0)).where(
        Allocation.lot_id == lot_id, Allocation.state == "allocated")
    in_transit = select(func.coalesce(func.sum(TransferLine.sent), 0)).join(
        StockTransfer, StockTransfer.id == TransferLine.transfer_id).where(
        TransferLine.lot_id == lot_id, StockTransfer.status == "dispatched")
    return sold.scalar_subquery() + in_transit.scalar_subquery()


def _dispatched_transfer(*, actor: User, transfer_id: int) -> StockTransfer:
    """The transfer, its row locked, if still on its way (409 `transfer_already_received` or `transfer_cancelled`):
    a receipt and a cancel take turns, and the second finds the first's outcome."""
    transfer = _transfer_for(actor=actor, transfer_id=transfer_id)
    lock_on_sqlite("UPDATE stock_transfers SET id = id WHERE id = :id", id=transfer_id)
    db.session.execute(select(StockTransfer.id).where(StockTransfer.id == transfer_id).with_for_update())
    db.session.refresh(transfer)
    if transfer.status == "received":
        raise Conflict(f"Stock transfer {transfer_id} was received already.", code=OrderCode.TRANSFER_ALREADY_RECEIVED)
    if transfer.status == "cancelled":
        raise Conflict(f"Stock transfer {transfer_id} was cancelled.", code=OrderCode.TRANSFER_CANCELLED)
    return transfer


def receive_transfer(*, actor: User, transfer_id: int, lines: Sequence[dict], note: str | None = None) -> StockTransfer:
    """Confirm what arrived, per lot as sent (each lot exactly once, 0..sent units): what arrived is added
    to the destination's stock, the rest is the recorded discrepancy, with the `note` saying what happened to it
    (required then), written off there as a `lost_in_transit` adjustment per lot; a second receipt is
    `transfer_already_received`. The receiving store's staff receive at a store, an admin a return at a warehouse
    (`forbidden` 403 otherwise)."""
    transfer = _transfer_for(actor=actor, transfer_id=transfer_id)
    receiver = "admin" if inventory.get_location(transfer.to_location_id).kind == "warehouse" else "store_staff"
    if actor.role != receiver:
        raise Forbidden("A store's staff receive what is sent to their store; an admin what a store sends back to a "
                        "warehouse.")
    refuse_closed_store_staff(actor)
    transfer = _dispatched_transfer(actor=actor, transfer_id=transfer_id)
    by_lot = {line.lot_id: line for line in transfer.lines}
    given = [line["lot_id"] for line in lines]
    errors: dict[str, Any] = {}
    if sorted(given) != sorted(by_lot):
        errors["lines"] = [f"Give each lot sent exactly once: {sorted(by_lot)}."]
    for index, line in enumerate(lines):
        sent_line = by_lot.get(line["lot_id"])
        if sent_line is not None and line["received"] > sent_line.sent:
            errors.setdefault("received", {})[str(index)] = [f"At most {sent_line.sent} were sent."]
    if errors:
        raise ValidationError("The received lines do not match the lots sent.", code=OrderCode.TRANSFER_LINES_MISMATCH,
                              details=errors)
    if not note and any(line["received"] < by_lot[line["lot_id"]].sent for line in lines):
        raise ValidationError("Some units did not arrive: say what happened to them.", details={
            "note": ["Required when fewer units arrived than were sent: they are written off their lots."]})
    for line in lines:
        by_lot[line["lot_id"]].received = line["received"]
    transfer.status, transfer.received_by, transfer.received_at = "received", actor.id, utcnow()
    transfer.receipt_note = note
    db.session.flush()  # no longer in transit: what arrived goes on the shelf, the rest is missing from its lot
    for line in sorted(lines, key=lambda line: line["lot_id"]):
        if line["received"]:
            inventory.restock(location_id=transfer.to_location_id, lot_id=line["lot_id"], quantity=line["received"])
        else:  # written off here: what turns up later is found here
            inventory.hold_place(location_id=transfer.to_location_id, lot_id=line["lot_id"])
        if missing := by_lot[line["lot_id"]].sent - line["received"]:
            db.session.add(StockAdjustment(location_id=transfer.to_location_id, lot_id=line["lot_id"], delta=-missing,
                                           reason=LOST_IN_TRANSIT, note=note, transfer_id=transfer.id,
                                           created_by=actor.id, created_at=transfer.received_at))
    db.session.flush()
    return transfer


def cancel_transfer(*, actor: User, transfer_id: int, reason: str) -> StockTransfer:
    """Cancel a transfer still on its way (not yet received): each lot's units sent go back on that lot's stock at the
    source, and the transfer keeps who cancelled it, when and why."""
    transfer = _dispatched_transfer(actor=actor, transfer_id=transfer_id)
    transfer.status, transfer.cancelled_by, transfer.cancelled_at = "cancelled", actor.id, utcnow()
    transfer.cancel_reason = reason
    db.session.flush()  # no longer in transit: its units may come back on their lots
    for line in sorted(transfer.lines, key=lambda line: line.lot_id):
        inventory.restock(location_id=transfer.from_location_id, lot_id=line.lot_id, quantity=line.sent)
    db.session.flush()
    return transfer


# --- adjustments --------------------------------------------------------------------------------------

def _location_in_scope(*, actor: User, location_id: int) -> None:
    """The location exists and, for store staff, is their store's (404 `location_not_found` otherwise)."""
    inventory.location_in_scope(actor=actor, location_id=location_id)


def adjust_stock(*, actor: User, location_id: int, lot_id: int, delta: int, reason: str,
                 note: str | None = None) -> StockAdjustment:
    """Count, write off or find units of a lot at a location, never below what is reserved; the row is the audit.
    Spoiled and damaged stock goes down, found stock up (`adjustment_sign`); a stocktake either way. A deactivated
    store's staff change none of its stock (`store_inactive` 409, the store held against a deactivation under way); an
    admin still counts what was left there."""
    sign = REASON_SIGNS.get(reason)
    if sign is not None and delta * sign < 0:
        direction = "negative" if sign < 0 else "positive"
        raise ValidationError(f"A {reason} adjustment must be {direction}.", code=OrderCode.ADJUSTMENT_SIGN,
                              details={"delta": [f"Must be {direction} for {reason}."]})
    _location_in_scope(actor=actor, location_id=location_id)
    refuse_closed_store_staff(actor)
    inventory.adjust(location_id=location_id, lot_id=lot_id, delta=delta)
    adjustment = StockAdjustment(location_id=location_id, lot_id=lot_id, delta=delta, reason=reason, note=note,
                                 created_by=actor.id, created_at=utcnow())
    db.session.add(adjustment)
    db.session.flush()
    return adjustment


def adjustment_keys(*, actor: User, location_id: int | None) -> str:
    """The scope of a stock adjustment's Idempotency-Keys: its location's (`location_keys`: a count queued at a store
    and resent by another clerk or an admin, or a warehouse's resent by another admin, is written once), the user's
    own for a body naming no location; a location outside the actor's scope is `location_not_found` 404."""
    if location_id is None:
        return user_keys(actor)
    _location_in_scope(actor=actor, location_id=location_id)
    return location_keys(actor=actor, location_id=location_id)


def get_adjustment(*, actor: User, adjustment_id: int) -> StockAdjustment:
    """A stock adjustment (store staff: at their store's location), else `adjustment_not_found` 404."""
    adjustment = db.session.get(StockAdjustment, adjustment_id)
    scope = _store_scope(actor)
    if adjustment is None or (scope is not None and adjustment.location_id != db.session.scalar(
            select(Store.location_id).where(Store.id == scope))):
        raise NotFound(f"No stock adjustment {adjustment_id}.", code=OrderCode.ADJUSTMENT_NOT_FOUND)
    return adjustment


def list_adjustments(*, actor: User, location_id: int | None, lot_id: int | None, from_date: date | None,
                     to_date: date | None, limit: int, cursor: str | None) -> dict:
    """A page of the stock adjustments made in [from_date, to_date), oldest first (store staff: their store's location
    only)."""
    query = select(StockAdjustment).where(*recorded_in(StockAdjustment.created_at, from_date=from_date,
                                                       to_date=to_date))
    scope = _store_scope(actor)
    if scope is not None:
        own = db.session.scalar(select(Store.location_id).where(Store.id == scope))
        if location_id is not None and location_id != own:
            raise NotFound(f"No location {location_id}.", code=CatalogCode.LOCATION_NOT_FOUND)
        location_id = own
    if location_id is not None:
        query = query.where(StockAdjustment.location_id == location_id)
    if lot_id is not None:
        query = query.where(StockAdjustment.lot_id == lot_id)
    return paginate_committed(query, model=StockAdjustment, limit=limit, cursor=cursor,
                    filters={"location_id": location_id, "lot_id": lot_id, "from": from_date, "to": to_date})
