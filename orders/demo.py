"""The orders demo world: one store per Foshan district, each with its staff user and stock sent in.

Stock reaches the stores through the transfer service, dispatched from the catalog demo's Foshan
warehouse and received by each store's staff. The enterprise lots are in that warehouse as soon as
the catalog seeder has run; the co-ops' uploaded lots are imported only after `seed-demo` commits
(by the upload task, queued after commit). So the seeder also queues, after those imports, a second
pass in its own transaction that sends what arrived: with eager tasks (the embedded default) the
stores hold every product when `seed-demo` returns; with a real worker the imports may still be
running, and the next `seed-demo` sends the rest (a store is sent each product once).

Once the stores are stocked, the demo consumer buys through the checkout service (a delivery order
and two pickup orders at the 顺德 store), each paid through the sandbox's own path (a signed
Stripe-format event handed to the webhook's handler), the first pickup is handed over with its code
and the 顺德 clerk sells at the counter for cash in an open shift. Each is made once: a later
`seed-demo` recognises the consumer's orders by channel and the clerk's counter sale, and finishes
what a real worker had not yet processed (a hand-over waits for the payments to be applied).
"""
from __future__ import annotations

import secrets

import click
from flask import current_app
from sqlalchemy import select

from catalog import inventory
from catalog.service import get_product
from orders.checkout import service as checkout
from orders.counter import service as counter
from orders.models import Order, Shift, StockTransfer, Store, TransferLine
from orders.payments import service as payments
from orders.stores import service
from shop.auth.models import User
from shop.auth.service import create_user, find_user
from shop.db import after_commit, db
from shop.errors import AppError

WAREHOUSE = "FS-WH"
UNITS_PER_PRODUCT = 4
STORES = (  # district code, store name, location code, staff username
    ("440604", "大凉山体验店（禅城）", "FS-CC-ST", "staff-chancheng"),
    ("440605", "大凉山体验店（南海）", "FS-NH-ST", "staff-nanhai"),
    ("440606", "大凉山体验店（顺德）", "FS-SD-ST", "staff-shunde"),
    ("440607", "大凉山体验店（三水）", "FS-SS-ST", "staff-sanshui"),
    ("440608", "大凉山体验店（高明）", "FS-GM-ST", "staff-gaoming"),
)
CONSUMER = "13800000000"
PICKUP_STORE, PICKUP_CLERK = "FS-SD-ST", "staff-shunde"  # the 顺德 store and its clerk
DELIVERY_SKU, PICKUP_SKUS, COUNTER_SKU = "LB-QC-5KG", ("ZJ-KQM-1KG", "ZJ-KQC-250G"), "LB-QC-GIFT"
ADDRESS = {"district_code": "440606", "detail": "大良街道演示路 1 号", "recipient": "演示顾客", "phone": "13800000000"}
FLOAT_FEN = 50000


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
    """After the seed (and, with eager tasks, the co-op imports) committed: send the stores what arrived,
    then make the demo orders that are missing."""
    received = _stock_stores()
    db.session.commit()
    if received:
        click.echo(f"orders: {received} more lots received by the stores after the co-op imports")
    for line in _seed_orders():
        click.echo(f"orders: {line}")


def _pay(order: Order, consumer: User) -> None:
    """Pay an order as the sandbox confirm route does (a signed event to the webhook's handler); each step
    commits, and with eager tasks the event is applied when the last commit returns."""
    db.session.commit()  # the reservation is durable before the provider is called
    payment = checkout.start_payment(order=order)
    db.session.commit()
    payments.sandbox_confirm(actor=consumer, intent_id=payment.intent_id, outcome="succeeded")
    db.session.commit()
    db.session.expire_all()


def _attempt(what: str, step) -> str | None:
    """Run one demo step; on a refusal roll it back and say why (e.g. the stock has not arrived yet)."""
    try:
        step()
    except AppError as exc:
        db.session.rollback()
        return f"{what} not made now ({exc.code}); the next seed-demo tries again"
    return None


def _orders_of(consumer: User, channel: str) -> list[Order]:
    """The consumer's orders of one channel, oldest first."""
    return list(db.session.scalars(select(Order).where(Order.consumer_id == consumer.id, Order.channel == channel)
                                   .order_by(Order.id)))


def _buy(consumer: User, *, sku: str, **where) -> None:
    """Place a one-unit order of `sku` as the consumer and pay it through the sandbox."""
    order = checkout.place_order(actor=consumer, lines=[{"sku": sku, "quantity": 1}], **where)
    _pay(order.order, consumer)


def _hand_over_first(clerk: User, store: Store, pickups: list[Order]) -> None:
    """Hand the oldest paid pickup at the store over with its code, once two are paid and none was handed over."""
    pickups = [order for order in pickups if order.store_id == store.id]
    paid = [order for order in pickups if order.status == "paid"]
    if len(paid) >= 2 and not any(order.status == "fulfilled" for order in pickups):
        counter.hand_over(actor=clerk, store_id=store.id, pickup_code=paid[0].pickup_code)
        db.session.commit()


def _counter_sale(clerk: User, store: Store) -> None:
    """A cash sale by the clerk in the store's open shift (opened now if none is open), paying with a 100-yuan note."""
    shift = db.session.scalar(select(Shift).where(Shift.store_id == store.id, Shift.closed_at.is_(None)))
    if shift is None:
        shift = service.start_shift(actor=clerk, store_id=store.id, float_fen=FLOAT_FEN)
    tendered = -(-get_product(sku=COUNTER_SKU).price_fen // 10000) * 10000
    counter.sell(actor=clerk, store_id=store.id, shift_id=shift.id, lines=[{"sku": COUNTER_SKU, "quantity": 1}],
                 payment={"method": "cash", "tendered_fen": tendered})
    db.session.commit()


def _line(order: Order) -> str:
    """One demo order as the seeder prints it: id, channel, status, and a waiting pickup's code."""
    code = f", pickup code {order.pickup_code}" if order.channel == "pickup" and order.status == "paid" else ""
    return f"demo order {order.id} {order.channel} {order.status}{code}"


def _seed_orders() -> list[str]:
    """The demo orders, made if missing (sandbox payments only): a delivery order, two pickup orders at the
    顺德 store (the first handed over), a counter sale there; a line per order."""
    consumer, clerk = find_user(username=CONSUMER), find_user(username=PICKUP_CLERK)
    location = inventory.find_location(PICKUP_STORE)
    store = db.session.scalar(select(Store).where(Store.location_id == location.id)) if location else None
    if not payments.sandbox_enabled(current_app.config):
        return ["no demo orders: they are paid through the sandbox, which this configuration does not enable"]
    if consumer is None or clerk is None or store is None:
        return []
    notes = []
    if not _orders_of(consumer, "delivery"):
        notes.append(_attempt("the delivery order", lambda: _buy(consumer, sku=DELIVERY_SKU, channel="delivery",
                                                                 address=dict(ADDRESS))))
    for sku in PICKUP_SKUS[len(_orders_of(consumer, "pickup")):]:
        notes.append(_attempt("a pickup order", lambda sku=sku: _buy(consumer, sku=sku, channel="pickup",
                                                                     store_id=store.id)))
    notes.append(_attempt("the pickup hand-over", lambda: _hand_over_first(clerk, store,
                                                                           _orders_of(consumer, "pickup"))))
    sales = select(Order).where(Order.store_id == store.id, Order.channel == "counter", Order.created_by == clerk.id)
    if db.session.scalar(sales.limit(1)) is None:
        notes.append(_attempt("the counter sale", lambda: _counter_sale(clerk, store)))
    db.session.expire_all()
    shown = (_orders_of(consumer, "delivery")[:1] + _orders_of(consumer, "pickup")[:len(PICKUP_SKUS)]
             + list(db.session.scalars(sales.order_by(Order.id).limit(1))))
    return [_line(order) for order in shown] + [note for note in notes if note]


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
