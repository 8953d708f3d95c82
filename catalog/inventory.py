"""Locations, lots with household contributions, and the stock service the orders domain uses.

Every stock operation is safe under concurrency on both databases. Before anything is decided,
the stock rows it may change are locked: `FOR UPDATE` in primary-key order on PostgreSQL; on
SQLite, which has no row locks and whose reads outside a write transaction see no lock at all,
the transaction first takes the database's write lock, so a second writer waits until the first
commits and then reads what it wrote. Each change is then one conditional `UPDATE` by deltas
(`reserved = reserved + n WHERE on_hand - reserved >= n`), never an absolute value computed in
Python, so even a stale read cannot oversell. Selling or giving back a reservation held in a single
row decides nothing: its conditional `UPDATE` locks the row itself. Additions are atomic upserts.
Units that come back rather than move (`restock`: found, counted, refunded, received) are bounded by the
lot: its units everywhere never exceed its quantity. Callers commit.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, Row, bindparam, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.util import identity_key

from catalog.errors import CatalogCode
from catalog.models import Location, Lot, LotContribution, Product, Stock
from catalog.service import get_product
from shop.auth.models import User
from shop.clock import today
from shop.db import among, db, run_core
from shop.errors import Conflict, NotFound, ValidationError
from shop.fields import code_skeleton
from shop.idempotency import user_keys
from shop.pagination import paginate
from shop.regions.service import region_named
from suppliers import service as suppliers
from suppliers.errors import SupplierCode

TRACE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
TRACE_LENGTH = 10


@dataclass(frozen=True)
class StockRequest:
    """Units of a product wanted at a location; `lot_id` (e.g. scanned at the counter) is taken first."""

    product_id: int
    quantity: int
    lot_id: int | None = None


@dataclass(frozen=True)
class Portion:
    """Units of one lot at one location that a stock operation reserved, took or moved."""

    location_id: int
    lot_id: int
    product_id: int
    quantity: int


# --- locations --------------------------------------------------------------------------------------

def duplicate_location_code(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a location whose code, or a look-alike of it (the same `code_skeleton`), is taken: it names the
    taken code, whichever spelling was sent."""
    taken = db.session.scalar(select(Location.code).where(Location.skeleton == code_skeleton(row["code"])))
    taken = taken or row["code"]
    return Conflict(f"Location code {taken} is taken: codes that differ only by '.', '_' or '-' read as one.",
                    code=CatalogCode.LOCATION_CODE_TAKEN, details={"code": taken})


def create_location(*, code: str, name: str, kind: str, region_code: str) -> Location:
    """Add a stock location (warehouse or store back room) whose code reads as no other's (`find_location`)."""
    region_named(region_code, field="region_code")
    if find_location(code) is not None:
        raise duplicate_location_code({"code": code})
    location = Location(code=code, name=name, kind=kind, region_code=region_code)
    db.session.add(location)
    db.session.flush()
    return location


def get_location(location_id: int) -> Location:
    """The location with `location_id`, or `NotFound`."""
    location = db.session.get(Location, location_id)
    if location is None:
        raise NotFound(f"No location {location_id}.", code=CatalogCode.LOCATION_NOT_FOUND)
    return location


def find_location(code: str) -> Location | None:
    """The location with `code` or a look-alike of it (`FS_WH` for `FS-WH`: the same `code_skeleton`), if any."""
    return db.session.scalar(select(Location).where(Location.skeleton == code_skeleton(code)))


def list_locations(*, kind: str | None, limit: int, cursor: str | None) -> dict:
    """A page of locations, by id."""
    query = select(Location)
    if kind:
        query = query.where(Location.kind == kind)
    return paginate(query, keys=[Location.id], limit=limit, cursor=cursor)


def register_location_scope(app: Flask, scope: Callable[[User], int | None]) -> None:
    """Let a higher layer confine a user to one location (a store's staff: their store's back room), or None."""
    app.extensions["location_scope"] = scope


def location_in_scope(*, actor: User, location_id: int) -> Location:
    """The location, if the actor may see it: a user confined to one location (`register_location_scope`) sees only
    that one; any other is `location_not_found` 404, as one that does not exist."""
    scope = current_app.extensions.get("location_scope")
    confined = scope(actor) if scope is not None else None
    if confined is not None and confined != location_id:
        raise NotFound(f"No location {location_id}.", code=CatalogCode.LOCATION_NOT_FOUND)
    return get_location(location_id)


def stock_seen_by(*, actor: User, location_id: int, limit: int, cursor: str | None) -> dict:
    """A page of the stock rows at a location the actor may see (`location_in_scope`)."""
    location_in_scope(actor=actor, location_id=location_id)
    return location_stock(location_id=location_id, limit=limit, cursor=cursor)


def location_stock(*, location_id: int, limit: int, cursor: str | None) -> dict:
    """A page of the stock rows at a location (one per lot), live, each with its lot and product (one statement)."""
    get_location(location_id)
    query = (select(Stock).where(Stock.location_id == location_id)
             .options(joinedload(Stock.lot).joinedload(Lot.product)))
    return paginate(query, keys=[Stock.id], limit=limit, cursor=cursor)


# --- lots -------------------------------------------------------------------------------------------

def new_trace_code() -> str:
    """A short, unguessable, URL-safe trace code from an alphabet without look-alikes (≈ 49 bits)."""
    return new_trace_codes(1)[0]


def new_trace_codes(count: int) -> list[str]:
    """`count` different trace codes as `new_trace_code` makes them, none of them a lot's (checked in one query)."""
    codes: set[str] = set()
    while len(codes) < count:
        fresh = {"".join(secrets.choice(TRACE_ALPHABET) for _ in range(TRACE_LENGTH))
                 for _ in range(count - len(codes))}
        codes |= fresh - set(db.session.scalars(select(Lot.trace_code).where(among(Lot.trace_code, fresh))))
    return list(codes)


def duplicate_lot_code(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a lot whose code, or a look-alike of it (the same `code_skeleton`), its supplier already used:
    it names the code as the supplier's lot has it."""
    taken = taken_lot_code(supplier_id=row["supplier_id"], lot_code=row["lot_code"]) or row["lot_code"]
    return Conflict(f"Lot code {taken} is already used by this supplier: codes that differ only by '.', '_' or '-' "
                    "read as one.", code=CatalogCode.LOT_CODE_TAKEN, details={"lot_code": taken})


def taken_lot_code(*, supplier_id: int, lot_code: str) -> str | None:
    """The code of the supplier's lot whose code is `lot_code` or a look-alike of it, if any."""
    return db.session.scalar(select(Lot.lot_code).where(Lot.supplier_id == supplier_id,
                                                        Lot.skeleton == code_skeleton(lot_code)))


def _check_dates(harvested_on: date, packed_on: date | None) -> None:
    """Harvest and packing lie in the past, packing not before harvest."""
    errors = {}
    if harvested_on > today():
        errors["harvested_on"] = ["Must not be in the future."]
    if packed_on is not None and packed_on < harvested_on:
        errors["packed_on"] = ["Must not be before harvested_on."]
    elif packed_on is not None and packed_on > today():
        errors["packed_on"] = ["Must not be in the future."]
    if errors:
        raise ValidationError("The lot's dates are not valid.", details=errors)


def _each_household_once(contributions: Sequence[dict]) -> None:
    """A lot's contributions name each household once (as an upload's rows must): a repeat is refused, not summed."""
    first, errors = {}, {}
    for index, item in enumerate(contributions):
        code = item["household_code"]
        if code in first:
            problem = f"Household {code} is listed twice (also contribution {first[code]})."
            errors[str(index)] = {"household_code": [problem]}
        first.setdefault(code, index)
    if errors:
        codes = sorted({contributions[int(i)]["household_code"] for i in errors})
        raise ValidationError(f"Household(s) {', '.join(codes)} listed twice in the lot's contributions.",
                              code=CatalogCode.HOUSEHOLD_TWICE_IN_LOT, details={"contributions": errors})


def _resolve_contributions(*, supplier_id: int, harvested_on: date,
                           contributions: Sequence[dict]) -> list[tuple[int, str, int]]:
    """(household id, village, quantity) per contribution; each household must be active and hold the
    supplier's purchase link on the harvest date (checked in bulk, as uploads do)."""
    _each_household_once(contributions)
    households = suppliers.purchase_periods(supplier_id=supplier_id) if contributions else {}
    resolved, errors = [], {}
    for index, item in enumerate(contributions):
        code = item["household_code"]
        household = households.get(code)
        if household is None or not household.linked_on(harvested_on):
            problem = f"Household {code} has no purchase link with this supplier on {harvested_on.isoformat()}."
        elif not household.active:
            problem = f"Household {code} is deactivated."
        else:
            resolved.append((household.id, household.village, item["quantity"]))
            continue
        errors[str(index)] = {"household_code": [problem]}
    if errors:
        codes = sorted({contributions[int(i)]["household_code"] for i in errors})
        raise ValidationError(f"Contributions not accepted for household(s) {', '.join(codes)}.",
                              code=CatalogCode.HOUSEHOLD_NOT_LINKED, details={"contributions": errors})
    return resolved


def add_lot(*, product: Product, location: Location, lot_code: str, harvested_on: date,
            packed_on: date | None, village: str, contributions: Sequence[dict] = (),
            quantity: int | None = None, created_by: int | None = None) -> Lot:
    """Create a lot of `product` at `location`: its quantity is the sum of the household
    contributions, or an explicit `quantity` with no contributions (callers decide who may)."""
    if bool(contributions) == (quantity is not None):
        raise ValidationError("Give either household contributions or a quantity.",
                              details={"contributions": ["Give contributions, or a quantity without them."]})
    _check_dates(harvested_on, packed_on)
    if taken_lot_code(supplier_id=product.supplier_id, lot_code=lot_code) is not None:
        raise duplicate_lot_code({"supplier_id": product.supplier_id, "lot_code": lot_code})
    resolved = _resolve_contributions(supplier_id=product.supplier_id, harvested_on=harvested_on,
                                      contributions=contributions)
    lot = Lot(supplier_id=product.supplier_id, product_id=product.id, lot_code=lot_code,
              trace_code=new_trace_code(), harvested_on=harvested_on, packed_on=packed_on, village=village,
              quantity=quantity if quantity is not None else sum(qty for _, _, qty in resolved),
              created_by=created_by)
    db.session.add(lot)
    db.session.flush()
    if resolved:
        db.session.execute(insert(LotContribution), [
            {"lot_id": lot.id, "household_id": household_id, "quantity": qty, "village": village}
            for household_id, village, qty in resolved])
    receive(location_id=location.id, lot_id=lot.id, quantity=lot.quantity)
    return lot


def last_delivery_date(supplier_id: int, household_id: int) -> date | None:
    """The latest harvest date of the supplier's lots the household delivered to, if any."""
    return db.session.scalar(select(func.max(Lot.harvested_on)).join(LotContribution, LotContribution.lot_id == Lot.id)
                             .where(Lot.supplier_id == supplier_id, LotContribution.household_id == household_id))


def create_lot(*, actor: User, product_sku: str, location_code: str, lot_code: str, harvested_on: date,
               packed_on: date | None, village: str, contributions: Sequence[dict] = (),
               quantity: int | None = None) -> Lot:
    """Create a lot from the API: co-ops for their own products, admins also with an explicit quantity."""
    product = get_product(sku=product_sku, actor=actor)
    if not actor.acts_for_supplier(product.supplier_id):
        raise NotFound(f"No product {product_sku}.", code=CatalogCode.PRODUCT_NOT_FOUND)
    suppliers.held_active_supplier(product.supplier_id)
    if quantity is not None and actor.role != "admin":
        raise ValidationError("Only an admin may give a quantity without contributions.",
                              details={"quantity": ["Unknown field."]})
    location = find_location(location_code)
    if location is None:
        raise ValidationError("Unknown location.", details={"location_code": [f"No location {location_code}."]})
    if location.kind != "warehouse":  # what its staff did not receive is not on a store's shelf
        raise ValidationError("A lot comes in at a warehouse; a store receives it by a transfer.",
                              code=CatalogCode.LOCATION_NOT_WAREHOUSE,
                              details={"location_code": [f"{location_code} is a store, not a warehouse."]})
    return add_lot(product=product, location=location, lot_code=lot_code, harvested_on=harvested_on,
                   packed_on=packed_on, village=village, contributions=contributions, quantity=quantity,
                   created_by=actor.id)


def lot_keys(*, actor: User, product_sku: str | None) -> str:
    """The scope of a new lot's Idempotency-Keys: its supplier's, shared by the co-op's users and the admins acting for
    it (as `store_keys` are a store's), so a lot resent by another admin gets the first answer; a product outside the
    actor's scope is `product_not_found` 404 first, so a key is never replayed to another co-op; the user's own for a
    body naming no product (the view refuses it)."""
    if product_sku is None:
        return user_keys(actor)
    product = get_product(sku=product_sku, actor=actor)
    if not actor.acts_for_supplier(product.supplier_id):
        raise NotFound(f"No product {product_sku}.", code=CatalogCode.PRODUCT_NOT_FOUND)
    return f"supplier:{product.supplier_id}"


def _lot_in_scope(lot: Lot | None, actor: User) -> bool:
    """Admins see every lot; co-ops their own supplier's."""
    return lot is not None and actor.acts_for_supplier(lot.supplier_id)


def get_lot(*, lot_id: int, actor: User) -> Lot:
    """A lot the actor may see, or `NotFound`."""
    lot = db.session.get(Lot, lot_id)
    if not _lot_in_scope(lot, actor):
        raise NotFound(f"No lot {lot_id}.", code=CatalogCode.LOT_NOT_FOUND)
    return lot


def list_supplier_lots(*, actor: User, supplier_id: int, limit: int, cursor: str | None) -> dict:
    """A page of a supplier's lots, newest first (by id), with their live stock per location."""
    if not actor.acts_for_supplier(supplier_id):
        raise NotFound(f"No supplier {supplier_id}.", code=SupplierCode.SUPPLIER_NOT_FOUND)
    suppliers.get_supplier(supplier_id)
    query = (select(Lot).where(Lot.supplier_id == supplier_id)
             .options(selectinload(Lot.contributions), selectinload(Lot.stock_rows), joinedload(Lot.product)))
    return paginate(query, keys=[Lot.id], limit=limit, cursor=cursor, newest_first=True)


# --- stock operations -------------------------------------------------------------------------------

def receive(*, location_id: int, lot_id: int, quantity: int) -> None:
    """Add `quantity` units of a lot to a location's on-hand stock (an atomic upsert)."""
    if quantity <= 0:
        raise ValidationError("The quantity must be positive.", details={"quantity": ["Must be positive."]})
    _put(location_id=location_id, lot_id=lot_id, quantity=quantity)


def hold_place(*, location_id: int, lot_id: int) -> None:
    """Give a lot a stock row at a location, at 0 units, if it has none there: units of it written off there (lost on
    their way to it) may then be found there (`adjust`), as units of a lot stocked there may."""
    _put(location_id=location_id, lot_id=lot_id, quantity=0)


def _put(*, location_id: int, lot_id: int, quantity: int) -> None:
    """Add `quantity` (0 or more) units of a lot to its stock row at a location, made if it has none."""
    product_id = db.session.scalar(select(Lot.product_id).where(Lot.id == lot_id))
    if product_id is None:
        raise NotFound(f"No lot {lot_id}.", code=CatalogCode.LOT_NOT_FOUND)
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(Stock).values(location_id=location_id, lot_id=lot_id, product_id=product_id,
                                     on_hand=quantity, reserved=0)
    stock_id = db.session.scalar(statement.on_conflict_do_update(
        index_elements=[Stock.location_id, Stock.lot_id],
        set_={"on_hand": Stock.on_hand + statement.excluded.on_hand}).returning(Stock.id))
    _expire_loaded(stock_id)


def _expire_loaded(stock_id: int) -> None:
    """Expire the stock row `stock_id` if the session holds it (it was just changed by a Core statement)."""
    loaded = db.session.identity_map.get(identity_key(Stock, stock_id))
    if loaded is not None:
        db.session.expire(loaded)


def available(*, location_id: int, product_id: int) -> int:
    """Units of a product at a location not yet reserved (a live, unlocked read)."""
    return int(db.session.scalar(select(func.coalesce(func.sum(Stock.on_hand - Stock.reserved), 0)).where(
        Stock.location_id == location_id, Stock.product_id == product_id)))


# Built once: a statement's construction costs about as much CPU as its execution.
_CHANGE = (update(Stock)
           .where(Stock.id == bindparam("stock_id"), Stock.reserved + bindparam("d_reserved") >= 0,
                  Stock.on_hand + bindparam("d_on_hand") >= Stock.reserved + bindparam("d_reserved"))
           .values(on_hand=Stock.on_hand + bindparam("d_on_hand"), reserved=Stock.reserved + bindparam("d_reserved"))
           .execution_options(synchronize_session=False))
_LOCKED_ROWS = (select(Stock.id, Stock.location_id, Stock.lot_id, Stock.product_id, Stock.on_hand, Stock.reserved,
                       (Stock.on_hand - Stock.reserved).label("available"), Lot.harvested_on)
                .join(Lot, Lot.id == Stock.lot_id).order_by(Stock.id).with_for_update(of=Stock))
_AVAILABLE_AT_KIND = _LOCKED_ROWS.where(
    Stock.location_id.in_(select(Location.id).where(Location.kind == bindparam("kind"))),
    Stock.product_id.in_(bindparam("product_ids", expanding=True)), Stock.on_hand > Stock.reserved)
_UNRESERVE_ONE = (update(Stock)
                  .where(Stock.location_id == bindparam("at_location"), Stock.lot_id == bindparam("of_lot"),
                         Stock.reserved >= bindparam("qty"))
                  .values(on_hand=Stock.on_hand - bindparam("sold_qty"), reserved=Stock.reserved - bindparam("qty"))
                  .returning(Stock.id).execution_options(synchronize_session=False))


def _run(statement, params: dict | None = None):
    """Run a stock statement of columns on the session's connection (`run_core`: the ORM's execution layer cost each
    of a checkout's two stock statements more Python than the statement), the session's pending changes flushed first
    as that layer's autoflush would."""
    session = db.session()
    if session.autoflush:
        session.flush()
    return run_core(statement, params)


def _take_write_lock() -> None:
    """On SQLite, start this transaction's write lock now (a write that changes nothing takes it)."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE stock SET id = id WHERE 0"))


def _lock(condition) -> list[tuple[Row, date]]:
    """Lock the matching stock rows in primary-key order; each with its lot's harvest date."""
    return _locked(_LOCKED_ROWS.where(condition))


def _locked(statement, params: dict | None = None) -> list[tuple[Row, date]]:
    """Lock the stock rows a `_LOCKED_ROWS` statement selects (as rows: id, location, lot, product, on hand,
    reserved, available); each with its lot's harvest date."""
    _take_write_lock()
    return [(row, row.harvested_on) for row in _run(statement, params)]


def _change(row: Row, *, on_hand: int = 0, reserved: int = 0) -> None:
    """Apply deltas to a locked stock row in one conditional UPDATE that can never overdraw it."""
    changed = _run(_CHANGE, {"stock_id": row.id, "d_on_hand": on_hand, "d_reserved": reserved}).rowcount
    _expire_loaded(row.id)
    if changed != 1:
        raise Conflict("Not enough stock at this location.", code=CatalogCode.INSUFFICIENT_STOCK,
                       details={"location_id": row.location_id, "lot_id": row.lot_id})


def _check_quantities(lines: Sequence[StockRequest]) -> None:
    """Every requested quantity is positive."""
    for line in lines:
        if line.quantity <= 0:
            raise ValidationError("Quantities must be positive.", details={"quantity": ["Must be positive."]})


def _requested(lines: Sequence[StockRequest]) -> dict[int, int]:
    """The units the lines request of each product, in the order the lines first name them."""
    requested: dict[int, int] = {}
    for line in lines:
        requested[line.product_id] = requested.get(line.product_id, 0) + line.quantity
    return requested


def _choose(rows: list[tuple[Row, date]], lines: Sequence[StockRequest]) -> tuple[list[list[tuple[Row, int]]],
                                                                                      list[dict]]:
    """Pick lots for each line from locked rows of one location: the named lot first, then FIFO by (harvest date,
    lot id), the lines that name a lot planned before the others (a line typed by SKU must not take the units of
    a lot scanned on a later line); the plans and the short products, each with its lines' total requested and what
    is available of it here (a line takes any lot of its product, so a product is short just when its total is), in
    the order the lines first name them."""
    left = {row.id: row.available for row, _ in rows}
    plans: list[list[tuple[Row, int]]] = [[] for _ in lines]
    short_products: set[int] = set()
    for index in sorted(range(len(lines)), key=lambda index: lines[index].lot_id is None):
        line = lines[index]
        candidates = sorted((pair for pair in rows if pair[0].product_id == line.product_id),
                            key=lambda pair: (pair[0].lot_id != line.lot_id, pair[1], pair[0].lot_id))
        wanted = line.quantity
        for row, _ in candidates:
            take = min(wanted, left[row.id])
            if take:
                plans[index].append((row, take))
                left[row.id] -= take
                wanted -= take
        if wanted:
            short_products.add(line.product_id)
    requested = _requested(lines)
    return plans, [{"product_id": product_id, "requested": quantity,
                    "available": sum(row.available for row, _ in rows if row.product_id == product_id)}
                   for product_id, quantity in requested.items() if product_id in short_products]


def _by_sku(short: list[dict]) -> list[dict]:
    """The short lines of an `insufficient_stock`, each named by the SKU the client sent (with the product's id):
    every route answers `lines: [{sku, requested, available}]`."""
    skus = dict(db.session.execute(select(Product.id, Product.sku).where(
        Product.id.in_({line["product_id"] for line in short}))).all())
    return [{"sku": skus[line["product_id"]], **line} for line in short]


def _plan(*, location_id: int, lines: Sequence[StockRequest]) -> list[list[tuple[Row, int]]]:
    """Lock the lines' available stock and pick lots for each line (`_choose`). Raises `insufficient_stock`
    naming every short product (or a named lot whose units here are all reserved), or `lot_not_held_here` for a named
    lot with no unit here at all (the unit in hand is not from this location's stock, and selling another lot in
    its place would pay the wrong households), changing nothing."""
    _check_quantities(lines)
    product_ids = sorted({line.product_id for line in lines})
    rows = _lock((Stock.location_id == location_id) & Stock.product_id.in_(product_ids)
                 & (Stock.on_hand > Stock.reserved))
    available_lots = {row.lot_id for row, _ in rows}
    absent = sorted({line.lot_id for line in lines if line.lot_id is not None} - available_lots)
    if absent:
        reserved = db.session.scalar(select(Stock.reserved).where(Stock.location_id == location_id,
                                                                  Stock.lot_id == absent[0], Stock.on_hand > 0))
        details = {"lot_id": absent[0], "location_id": location_id}
        if reserved:
            scanned = _requested([line for line in lines if line.lot_id == absent[0]])
            short = [{"product_id": product_id, "lot_id": absent[0], "requested": quantity, "available": 0}
                     for product_id, quantity in scanned.items()]
            raise Conflict(f"Every unit of lot {absent[0]} here is reserved for orders.",
                           code=CatalogCode.INSUFFICIENT_STOCK, details={**details, "available": 0,
                                                                         "reserved": reserved, "lines": _by_sku(short)})
        raise Conflict(f"Lot {absent[0]} has no unit at location {location_id}.", code=CatalogCode.LOT_NOT_HELD_HERE,
                       details=details)
    plans, short = _choose(rows, lines)
    if short:
        raise Conflict("Not enough stock at this location.", code=CatalogCode.INSUFFICIENT_STOCK,
                       details={"location_id": location_id, "lines": _by_sku(short)})
    return plans


def _portions(plan: list[tuple[Row, int]]) -> list[Portion]:
    """The portions a plan touches."""
    return [Portion(row.location_id, row.lot_id, row.product_id, qty) for row, qty in plan]


def reserve_lines(*, location_id: int, lines: Sequence[StockRequest]) -> list[list[Portion]]:
    """Reserve every line at a location, all or nothing; per line the lot portions reserved."""
    plans = _plan(location_id=location_id, lines=lines)
    portions = [_portions(plan) for plan in plans]
    for plan in plans:
        for row, qty in plan:
            _change(row, reserved=qty)
    return portions


def reserve_first_fit(*, kind: str, lines: Sequence[StockRequest]) -> tuple[int, list[list[Portion]]]:
    """Reserve every line at the first location of `kind` (by id) that can fill them all, never splitting the
    lines between locations; that location and per line the portions. The available rows of these products at
    every such location are locked at once (one statement, primary-key order), so the choice is made on what
    is really there. `insufficient_stock` names the short products of the location that comes closest (fewest short
    products, then fewest units short)."""
    _check_quantities(lines)
    product_ids = sorted({line.product_id for line in lines})
    rows = _locked(_AVAILABLE_AT_KIND, {"kind": kind, "product_ids": product_ids})
    by_location: dict[int, list[tuple[Row, date]]] = {}
    for pair in rows:
        by_location.setdefault(pair[0].location_id, []).append(pair)
    requested = _requested(lines)
    closest = [{"product_id": product_id, "requested": quantity, "available": 0}
               for product_id, quantity in requested.items()]
    nearest = (len(requested), sum(requested.values()))  # short products, then units short
    for location_id in sorted(by_location):
        plans, short = _choose(by_location[location_id], lines)
        if not short:
            portions = [_portions(plan) for plan in plans]
            for plan in plans:
                for row, qty in plan:
                    _change(row, reserved=qty)
            return location_id, portions
        distance = (len(short), sum(item["requested"] - item["available"] for item in short))
        if distance < nearest:
            closest, nearest = short, distance
    raise Conflict(f"No {kind} can fill every line.", code=CatalogCode.INSUFFICIENT_STOCK,
                   details={"lines": _by_sku(closest)})


def reserve(*, location_id: int, product_id: int, quantity: int, lot_id: int | None = None) -> list[Portion]:
    """Reserve units of one product at a location (FIFO, `lot_id` first)."""
    return reserve_lines(location_id=location_id, lines=[StockRequest(product_id, quantity, lot_id)])[0]


def take_lines(*, location_id: int, lines: Sequence[StockRequest]) -> list[list[Portion]]:
    """Remove available units at once (counter sales, transfer dispatch), all or nothing."""
    plans = _plan(location_id=location_id, lines=lines)
    portions = [_portions(plan) for plan in plans]
    for plan in plans:
        for row, qty in plan:
            _change(row, on_hand=-qty)
    return portions


def take(*, location_id: int, product_id: int, quantity: int, lot_id: int | None = None) -> list[Portion]:
    """Remove available units of one product at a location (FIFO, `lot_id` first)."""
    return take_lines(location_id=location_id, lines=[StockRequest(product_id, quantity, lot_id)])[0]


def _needed(portions: Sequence[Portion]) -> dict[tuple[int, int], int]:
    """The reserved units `portions` take off each stock row, by (location id, lot id), in key order."""
    needed: dict[tuple[int, int], int] = {}
    for portion in sorted(portions, key=lambda p: (p.location_id, p.lot_id)):
        key = (portion.location_id, portion.lot_id)
        needed[key] = needed.get(key, 0) + portion.quantity
    return needed


def _not_held(missing: dict[tuple[int, int], int]) -> Conflict:
    """`reservation_not_held` naming the portions whose units are not reserved."""
    return Conflict("These units are not reserved.", code=CatalogCode.RESERVATION_NOT_HELD,
                    details={"portions": [{"location_id": location_id, "lot_id": lot_id, "quantity": qty}
                                          for (location_id, lot_id), qty in missing.items()]})


def _unreserve(portions: Sequence[Portion], *, sold: bool) -> None:
    """Take reserved units off their stock rows: sold (on hand goes down with them) or given back. One row is
    changed by one conditional UPDATE, which locks it itself; several are locked first, in primary-key order,
    so that two transactions cannot deadlock over them."""
    needed = _needed(portions)
    if len(needed) == 1:
        [((location_id, lot_id), qty)] = needed.items()
        stock_id = db.session.scalar(_UNRESERVE_ONE, {"at_location": location_id, "of_lot": lot_id, "qty": qty,
                                                      "sold_qty": qty if sold else 0})
        if stock_id is None:
            raise _not_held(needed)
        _expire_loaded(stock_id)
        return
    rows = {(row.location_id, row.lot_id): row
            for row, _ in _lock(tuple_(Stock.location_id, Stock.lot_id).in_(list(needed)))}
    missing = {key: qty for key, qty in needed.items() if key not in rows or rows[key].reserved < qty}
    if missing:
        raise _not_held(missing)
    for key, qty in needed.items():
        _change(rows[key], on_hand=-qty if sold else 0, reserved=-qty)


def release(*, portions: Sequence[Portion]) -> None:
    """Give reserved units back to the available stock (cancelled or expired reservations)."""
    _unreserve(portions, sold=False)


def allocate(*, portions: Sequence[Portion]) -> list[Portion]:
    """Turn reserved units into sold ones (on hand and reserved both go down); the allocations made."""
    _unreserve(portions, sold=True)
    return list(portions)


def register_units_outside_stock(app: Flask, name: str, units: Callable[[int], ColumnElement[int]]) -> None:
    """Let a higher layer count a lot's units it holds outside the stock rows (sold, in transit) for `restock`."""
    app.extensions.setdefault("lot_units_outside_stock", {})[name] = units


def restock(*, location_id: int, lot_id: int, quantity: int) -> None:
    """Put units of a lot on a location's stock that come back rather than move (found, counted up, refunded as
    resellable, arrived in a transfer): at most as many as the lot is missing (written off, lost on the way), so its
    units on hand, sold and in transit never exceed its quantity (`lot_quantity_exceeded` 409). The lot row is
    locked (FOR NO KEY UPDATE, which leaves rows referring to the lot free to be written) so that restocks of one
    lot take turns, and its units are counted in one statement, which sees a sale or a dispatch whole or not."""
    _take_write_lock()
    lot_quantity = db.session.scalar(select(Lot.quantity).where(Lot.id == lot_id).with_for_update(key_share=True))
    if lot_quantity is None:
        raise NotFound(f"No lot {lot_id}.", code=CatalogCode.LOT_NOT_FOUND)
    on_hand = select(func.coalesce(func.sum(Stock.on_hand), 0)).where(Stock.lot_id == lot_id).scalar_subquery()
    outside = [units(lot_id) for units in current_app.extensions.get("lot_units_outside_stock", {}).values()]
    restorable = lot_quantity - int(db.session.scalar(select(sum(outside, on_hand))))
    if quantity > restorable:
        raise Conflict(f"Lot {lot_id} can take at most {max(restorable, 0)} more units: its quantity is "
                       f"{lot_quantity} and the rest are on hand, sold or in transit.",
                       code=CatalogCode.LOT_QUANTITY_EXCEEDED,
                       details={"lot_id": lot_id, "lot_quantity": lot_quantity, "requested": quantity,
                                "restorable": max(restorable, 0)})
    receive(location_id=location_id, lot_id=lot_id, quantity=quantity)


def adjust(*, location_id: int, lot_id: int, delta: int) -> None:
    """Change a lot's on-hand units at a location by `delta` (a count, a write-off, a find); never below
    what is reserved (`below_reserved` 409) nor below zero, never above what the lot is missing (`restock`), and only
    where the lot is or was stocked (`lot_not_held_here` 409: units lost elsewhere cannot turn up here, and a lot
    never here cannot be written off here)."""
    if delta > 0:
        held = select(Stock.lot_id).where(Stock.location_id == location_id, Stock.lot_id == lot_id)
        if db.session.scalar(held) is None and db.session.get(Lot, lot_id) is not None:
            raise _not_held_here(location_id=location_id, lot_id=lot_id)
        restock(location_id=location_id, lot_id=lot_id, quantity=delta)
        return
    rows = _lock((Stock.location_id == location_id) & (Stock.lot_id == lot_id))
    if not rows:
        if db.session.get(Lot, lot_id) is None:
            raise NotFound(f"No lot {lot_id}.", code=CatalogCode.LOT_NOT_FOUND)
        raise _not_held_here(location_id=location_id, lot_id=lot_id)
    held = rows[0][0]
    if held.available < -delta:
        raise Conflict("The adjustment would take stock below what is reserved.", code=CatalogCode.BELOW_RESERVED,
                       details={"on_hand": held.on_hand, "reserved": held.reserved, "delta": delta})
    _change(held, on_hand=delta)


def _not_held_here(*, location_id: int, lot_id: int) -> Conflict:
    """The conflict of an adjustment of a lot never stocked at the location."""
    return Conflict(f"Lot {lot_id} was never stocked at location {location_id}: its units cannot be counted, "
                    "written off or found here.", code=CatalogCode.LOT_NOT_HELD_HERE,
                    details={"lot_id": lot_id, "location_id": location_id})


def move(*, from_location_id: int, to_location_id: int, product_id: int, quantity: int) -> list[Portion]:
    """Move available units of a product between locations lot by lot (FIFO); the portions moved."""
    if from_location_id == to_location_id:
        raise ValidationError("Source and destination are the same.",
                              details={"to_location_id": ["Must differ from the source."]})
    get_location(to_location_id)
    # Lock both ends' rows of this product together, in primary-key order, so opposite moves cannot deadlock.
    _lock(Stock.location_id.in_([from_location_id, to_location_id]) & (Stock.product_id == product_id))
    portions = take(location_id=from_location_id, product_id=product_id, quantity=quantity)
    for portion in portions:
        receive(location_id=to_location_id, lot_id=portion.lot_id, quantity=portion.quantity)
    return [Portion(to_location_id, p.lot_id, p.product_id, p.quantity) for p in portions]
