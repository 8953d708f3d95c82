"""The orders demo world: one store per Foshan district, each with its staff user and stock sent in.

Stock reaches the stores through the transfer service, dispatched from the catalog demo's Foshan
warehouse and received by each store's staff. The enterprise lots are in that warehouse as soon as
the catalog seeder has run; the co-ops' uploaded lots are imported only after `seed-demo` commits
(by the upload task, queued after commit). So the seeder also queues, after those imports, a second
pass in its own transaction that sends what arrived: with eager tasks (the embedded default) the
stores hold every product when `seed-demo` returns; with a real worker the imports may still be
running, and the next `seed-demo` sends the rest (a store is sent each product once).
"""
from __future__ import annotations

import secrets

import click
from sqlalchemy import select

from catalog import inventory
from orders.models import StockTransfer, Store, TransferLine
from orders.stores import service
from shop.auth.models import User
from shop.auth.service import create_user, find_user
from shop.db import after_commit, db

WAREHOUSE = "FS-WH"
UNITS_PER_PRODUCT = 4
STORES = (  # district code, store name, location code, staff username
    ("440604", "大凉山体验店（禅城）", "FS-CC-ST", "staff-chancheng"),
    ("440605", "大凉山体验店（南海）", "FS-NH-ST", "staff-nanhai"),
    ("440606", "大凉山体验店（顺德）", "FS-SD-ST", "staff-shunde"),
    ("440607", "大凉山体验店（三水）", "FS-SS-ST", "staff-sanshui"),
    ("440608", "大凉山体验店（高明）", "FS-GM-ST", "staff-gaoming"),
)


def _store(district_code: str, name: str, location_code: str) -> tuple[Store, bool]:
    """The demo store with its location, created if missing; and whether it was created."""
    location = inventory.find_location(location_code)
    if location is None:
        location = inventory.create_location(code=location_code, name=f"{name}后仓", kind="store",
                                             region_code=district_code)
    store = db.session.scalar(select(Store).where(Store.location_id == location.id))
    if store is not None:
        return store, False
    return service.create_store(name=name, district_code=district_code, location_code=location_code), True


def _staff(username: str, store: Store) -> tuple[User, str | None]:
    """The store's demo clerk, created if missing; and its new password (None if it existed)."""
    user = find_user(username=username)
    if user is not None:
        return user, None
    password = secrets.token_urlsafe(9)
    return create_user(username=username, password=password, role="store_staff", store_id=store.id), password


def _warehouse_stock(warehouse_id: int) -> dict[int, tuple[str, int]]:
    """Product id → (SKU, units available) at the warehouse."""
    stock: dict[int, tuple[str, int]] = {}
    cursor = None
    while True:
        page = inventory.location_stock(location_id=warehouse_id, limit=100, cursor=cursor)
        for row in page["items"]:
            stock[row.product_id] = (row.lot.product.sku, stock.get(row.product_id, ("", 0))[1] + row.available)
        cursor = page["next_cursor"]
        if cursor is None:
            return stock


def _sent_products(store: Store) -> set[int]:
    """The ids of the products ever sent to the store."""
    return set(db.session.scalars(
        select(TransferLine.product_id).join(StockTransfer, StockTransfer.id == TransferLine.transfer_id)
        .where(StockTransfer.to_location_id == store.location_id)))


def _stock_store(admin: User, clerk: User, store: Store, location_code: str) -> int:
    """Send the store the warehouse's products it never had (dispatched, then received in full); lots sent."""
    warehouse = inventory.find_location(WAREHOUSE)
    if warehouse is None:
        return 0
    already = _sent_products(store)
    lines = [{"sku": sku, "quantity": UNITS_PER_PRODUCT}
             for product_id, (sku, units) in sorted(_warehouse_stock(warehouse.id).items())
             if product_id not in already and units >= UNITS_PER_PRODUCT]
    if not lines:
        return 0
    transfer = service.create_transfer(actor=admin, from_location=WAREHOUSE, to_location=location_code, lines=lines)
    service.receive_transfer(actor=clerk, transfer_id=transfer.id,
                             lines=[{"lot_id": line.lot_id, "received": line.sent} for line in transfer.lines])
    return len(transfer.lines)


def _stock_stores() -> int:
    """Send every demo store the warehouse's products it never had; the lots received."""
    admin = find_user(username="admin")
    received = 0
    for _, _, location_code, username in STORES:
        location = inventory.find_location(location_code)
        store = db.session.scalar(select(Store).where(Store.location_id == location.id))
        received += _stock_store(admin, find_user(username=username), store, location_code)
    return received


def _stock_stores_after_imports() -> None:
    """After the seed (and, with eager tasks, the co-op imports) committed: send the stores what arrived."""
    received = _stock_stores()
    db.session.commit()
    if received:
        click.echo(f"orders: {received} more lots received by the stores after the co-op imports")


def seed_demo() -> list[str]:
    """Create the demo stores, their clerks and their stock that are missing."""
    lines = []
    for district_code, name, location_code, username in STORES:
        store, created = _store(district_code, name, location_code)
        _, password = _staff(username, store)
        login = f"password: {password}" if password else "password unchanged"
        lines.append(f"store {store.id} {name} ({'created' if created else 'exists'}); clerk {username} {login}")
    lines.append(f"{_stock_stores()} lots received by the stores from {WAREHOUSE}")
    after_commit(_stock_stores_after_imports)
    return lines
