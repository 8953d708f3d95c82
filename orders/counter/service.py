"""Counter sales (online and offline), sale conflicts, receipts and pickups at a store.

A counter sale is paid and fulfilled at once from the store's own stock: the scanned lot first, then
FIFO (`catalog.inventory.take_lines`). A sale the till made offline names its shift, the unit prices
it showed and its own timestamp (`client_created_at`); DESIGN.md "Dates" decides whether it is taken:
not in the future (up to `CLOCK_SKEW` ahead of the server is tolerated: till clocks drift), not before
its shift opened nor after it closed, at most `OFFLINE_MAX_AGE` old, each unit price equal to the
product's price at that moment (price history), and stock there to sell. Otherwise the sale is
refused with `SaleRefused` (also for an item no longer on sale, or a sale stamped while its store was
closed, even one reopened since); the view records it as a `SaleConflict` in a transaction of its own. A
malformed sale (a card payment with tendered cash, cash short of the total or a needless note over it) is a 422
either way, recorded nowhere.
A closed shift takes an accepted offline sale as a late entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from catalog import inventory
from catalog.models import HISTORY_FIELDS, Lot, Product, ProductChange
from catalog.queries import on_sale
from orders import outbox, state
from orders.checkout.service import OrderView, get_order_for, view_order, within_one_payment
from orders.errors import OrderCode
from orders.locking import lock_order
from orders.models import Allocation, Order, OrderLine, Refund, SaleConflict, Shift, Store
from orders.stores.service import (
    closed_during,
    get_shift,
    get_store_for,
    hold_till,
    open_shift,
    refuse_closed_store_staff,
)
from shop.auth.models import User
from shop.db import among, db, lock_on_sqlite, utcnow
from shop.errors import AppError, Conflict, NotFound, ShopCode, ValidationError
from shop.fields import LARGEST_NOTE_FEN
from shop.pagination import paginate, paginate_committed
from suppliers.models import Supplier

CLOCK_SKEW = timedelta(minutes=2)
OFFLINE_MAX_AGE = timedelta(hours=72)


class SaleRefused(Conflict):
    """An offline sale the server will not take; the caller records it as a sale conflict (409)."""

    def __init__(self, cause: AppError):
        super().__init__(cause.message, code=cause.code, details=cause.details)


@dataclass(frozen=True)
class CounterSale:
    """A counter sale just made (or `replayed`: made before under the same key): its order (as its reader sees it),
    the change to give back and the receipt."""

    order: OrderView
    change_fen: int
    receipt: dict
    replayed: bool = False

    def __getattr__(self, name: str) -> Any:
        """The order's own attributes."""
        return getattr(self.order, name)


@dataclass(frozen=True)
class _Item:
    """A sale line resolved to its product, the scanned lot (if any), and the price and rates charged."""

    product: Product
    lot: Lot | None
    quantity: int
    terms: dict[str, int]


# --- counter sales ------------------------------------------------------------------------------------

def sell(*, actor: User, store_id: int, shift_id: int, lines: list[dict], payment: dict,
         client_created_at: datetime | None = None, idempotency_key: str | None = None,
         fingerprint: str | None = None) -> CounterSale:
    """Sell at the counter, paid and fulfilled at once; an offline sale that breaks a rule raises `SaleRefused`. A
    resend of a key whose sale exists (its key perhaps long forgotten by the idempotency layer) answers that sale if it
    is the same request (`fingerprint`), else `idempotency_key_reused` 409; likewise a resend of a key whose offline
    sale was refused gets that refusal again, and any other sale under it (live or offline) `idempotency_key_reused`."""
    store = get_store_for(actor=actor, store_id=store_id)
    made = _sale_for_key(store_id=store.id, idempotency_key=idempotency_key)
    if made is not None:
        if made.idempotency_hash != fingerprint:
            raise Conflict("This Idempotency-Key was used for a different request.",
                           code=ShopCode.IDEMPOTENCY_KEY_REUSED)
        return _counter_sale(actor, made, replayed=True)
    known = _conflict_for_key(store_id=store.id, idempotency_key=idempotency_key)
    if known is not None:  # the same offline sale is refused again; any other sale under its key is not made
        raise conflict_error(known, sale={"lines": lines, "payment": payment, "shift_id": shift_id,
                                          "client_created_at": client_created_at})
    _hold_shift(store_id=store.id, shift_id=shift_id)
    if client_created_at is None:
        if not store.active:  # a closed store sells nothing new; its till's queued offline sales still arrive
            raise Conflict(f"Store {store.id} is inactive.", code=OrderCode.STORE_INACTIVE)
        shift = open_shift(store_id=store.id, shift_id=shift_id)
        return _make_sale(actor=actor, store=store, shift=shift, lines=lines, payment=payment, moment=None,
                          key=(idempotency_key, fingerprint))
    shift = get_shift(store_id=store.id, shift_id=shift_id)
    try:
        moment = _accepted_moment(store=store, shift=shift, client_created_at=client_created_at)
        return _make_sale(actor=actor, store=store, shift=shift, lines=lines, payment=payment, moment=moment,
                          offline_at=client_created_at, key=(idempotency_key, fingerprint))
    except Conflict as exc:
        raise SaleRefused(exc) from exc
    except ValidationError as exc:
        if exc.code != OrderCode.UNKNOWN_ITEM:  # a malformed sale (its payment) is the till's to fix: 422
            raise
        raise SaleRefused(exc) from exc  # an item taken off sale since the till cached it: the manager decides


def _hold_shift(*, store_id: int, shift_id: int) -> None:
    """Keep the shift from closing while this sale is written (`hold_till`), and read it fresh (FOR SHARE)."""
    hold_till(store_id=store_id)
    db.session.execute(select(Shift).where(Shift.id == shift_id).with_for_update(read=True)
                       .execution_options(populate_existing=True))


def _accepted_moment(*, store: Store, shift: Shift, client_created_at: datetime) -> datetime:
    """When an offline sale happened, if its till timestamp may be accepted (DESIGN.md "Dates") and its store was not
    closed then (`store_inactive`: a sale queued before a deactivation, or after a reopening, is taken; one stamped
    inside any closed period is not)."""
    now = utcnow()
    details = {"client_created_at": client_created_at.isoformat()}
    if (closure := closed_during(store_id=store.id, moment=client_created_at)) is not None:
        reopened = closure.reopened_at.isoformat() if closure.reopened_at else None
        raise Conflict(f"Store {store.id} was closed (deactivated) at the sale's timestamp.",
                       code=OrderCode.STORE_INACTIVE, details={**details, "closed_at": closure.closed_at.isoformat(),
                                                               "reopened_at": reopened})
    if client_created_at > now + CLOCK_SKEW:
        raise Conflict("The sale's timestamp is in the future.", code=OrderCode.SALE_IN_FUTURE, details=details)
    if client_created_at < now - OFFLINE_MAX_AGE:
        raise Conflict("The sale is more than 72 hours old.", code=OrderCode.SALE_TOO_OLD, details=details)
    if client_created_at < shift.opened_at:
        raise Conflict("The sale's timestamp is before its shift opened.", code=OrderCode.SALE_BEFORE_SHIFT,
                       details={**details, "opened_at": shift.opened_at.isoformat()})
    if shift.closed_at is not None and client_created_at > shift.closed_at:
        raise Conflict("The sale's timestamp is after its shift closed.", code=OrderCode.SALE_AFTER_SHIFT,
                       details={**details, "closed_at": shift.closed_at.isoformat()})
    return min(client_created_at, now)


def _value_at(product: Product, field: str, moment: datetime) -> int | None:
    """A product's price or rate at `moment`, from its history (None if the product had none then)."""
    later = db.session.scalar(select(ProductChange).where(
        ProductChange.product_id == product.id, ProductChange.field == field, ProductChange.changed_at > moment)
        .order_by(ProductChange.changed_at, ProductChange.id).limit(1))
    return getattr(product, field) if later is None else later.old_value


def sold_here(query: Select) -> Select:
    """`query` over products kept to those the counter sells: on sale (active, of an active supplier; an inactive
    supplier's products sell nowhere). The till offers what this keeps, and nothing else."""
    return query.join(Supplier, Supplier.id == Product.supplier_id).where(on_sale())


def _held_products(lines: list[dict]) -> tuple[dict[str, Lot], dict[str | int, Product]]:
    """The lots the lines scan, by trace code, and the products on sale they name (active, of an active supplier), by
    SKU and by id, each read in one statement; the products are held (FOR SHARE) until the sale commits, so every line
    is charged the prices of one instant: a price change waits for the sale, or the sale for it."""
    codes = [line["trace_code"] for line in lines if "trace_code" in line]
    lots = {lot.trace_code: lot for lot in db.session.scalars(select(Lot).where(among(Lot.trace_code, codes)))
            } if codes else {}
    skus = [line["sku"] for line in lines if "sku" in line]
    named = or_(among(Product.sku, skus), among(Product.id, [lot.product_id for lot in lots.values()]))
    products = db.session.scalars(sold_here(select(Product)).where(named).order_by(Product.id)
                                  .with_for_update(read=True, of=Product)).all()
    return lots, {key: product for product in products for key in (product.sku, product.id)}


def _resolve(lines: list[dict], *, at: datetime | None) -> list[_Item]:
    """Each line's product (by SKU, or the lot of a scanned trace code) with the price and rates charged:
    today's, or for an offline sale those at its timestamp, which must equal the price the till showed."""
    items, unknown, mismatched = [], {}, []
    lots, products = _held_products(lines)
    for index, line in enumerate(lines):
        lot = lots.get(line["trace_code"]) if "trace_code" in line else None
        product = products.get(lot.product_id if lot else line.get("sku", ""))
        if product is None or ("trace_code" in line and lot is None):
            field = "trace_code" if "trace_code" in line else "sku"
            unknown[str(index)] = {field: [f"No product on sale with this {field.replace('_', ' ')}."]}
            continue
        terms = {name: (getattr(product, name) if at is None else _value_at(product, name, at))
                 for name in HISTORY_FIELDS}
        shown = line.get("unit_price_fen")
        if terms["price_fen"] is None or (shown is not None and shown != terms["price_fen"]):
            mismatched.append({"line": index, "sku": product.sku, "unit_price_fen": shown,
                               "price_fen": terms["price_fen"]})
        items.append(_Item(product, lot, line["quantity"], terms))
    if unknown:
        raise ValidationError("Some lines name no product on sale.", code=OrderCode.UNKNOWN_ITEM,
                              details={"lines": unknown})
    if mismatched:
        raise Conflict("The unit price shown is not the product's price at the time of the sale.",
                       code=OrderCode.PRICE_MISMATCH, details={"lines": mismatched})
    return items


def _change_due(*, payment: dict, total_fen: int) -> int:
    """The change to give back: cash needs at least the total tendered, and less than a ¥100 note more (more change
    means a note was not needed); card takes no tendered amount."""
    tendered = payment.get("tendered_fen")
    if payment["method"] == "card":
        if tendered is not None:
            raise ValidationError("A card payment has no tendered cash.",
                                  details={"payment": {"tendered_fen": ["Only for cash payments."]}})
        return 0
    if tendered is None:
        raise ValidationError("A cash payment needs the tendered amount.",
                              details={"payment": {"tendered_fen": ["Missing data for required field."]}})
    if tendered < total_fen:
        raise ValidationError("The cash tendered is less than the total.", code=OrderCode.TENDERED_BELOW_TOTAL,
                              details={"payment": {"tendered_fen": [f"Less than the total of {total_fen} fen."]}})
    if tendered - total_fen >= LARGEST_NOTE_FEN:
        most = f"At most {total_fen + LARGEST_NOTE_FEN - 1} fen for a total of {total_fen} fen."
        raise ValidationError("The cash tendered exceeds the total by ¥100 or more: a note was not needed.",
                              code=OrderCode.TENDERED_TOO_MUCH, details={"payment": {"tendered_fen": [most]}})
    return tendered - total_fen


def _sale_for_key(*, store_id: int, idempotency_key: str | None) -> Order | None:
    """The counter sale this store's till already made under `idempotency_key`, if any."""
    if idempotency_key is None:
        return None
    return db.session.scalar(select(Order).where(Order.store_id == store_id,
                                                 Order.idempotency_key == idempotency_key))


def _counter_sale(actor: User, order: Order, *, replayed: bool = False) -> CounterSale:
    """A counter sale as it is answered: its order, the change given and its receipt."""
    change = order.tendered_fen - order.total_fen if order.tendered_fen is not None else 0
    return CounterSale(order=view_order(actor=actor, order=order), change_fen=change, receipt=receipt_of(order),
                       replayed=replayed)


def _make_sale(*, actor: User, store: Store, shift: Shift, lines: list[dict], payment: dict, moment: datetime | None,
               offline_at: datetime | None = None, key: tuple[str | None, str | None] = (None, None)) -> CounterSale:
    """Take the units from the store's stock and write the paid, fulfilled order with its allocations,
    transitions and one `line_paid` outbox event per line, keeping the till's `key` (its Idempotency-Key and the
    request's fingerprint); a sale made now (`moment` None) is dated once its products' prices are held."""
    items = _resolve(lines, at=offline_at)
    moment = moment or utcnow()
    total = within_one_payment(sum(item.quantity * item.terms["price_fen"] for item in items))
    _change_due(payment=payment, total_fen=total)  # a malformed payment is refused before any stock is taken
    portions = inventory.take_lines(location_id=store.location_id, lines=[
        inventory.StockRequest(item.product.id, item.quantity, item.lot.id if item.lot else None) for item in items])
    order = Order(channel="counter", status="paid", store_id=store.id, location_id=store.location_id,
                  donor_code=store.district_code, total_fen=total, paid_at=moment,
                  sale_date=outbox.sale_date_of(moment), shift_id=shift.id, payment_method=payment["method"],
                  tendered_fen=payment.get("tendered_fen"), client_created_at=offline_at,
                  late_entry=offline_at is not None and shift.closed_at is not None, created_by=actor.id,
                  idempotency_key=key[0], idempotency_hash=key[1])
    for item, taken in zip(items, portions, strict=True):
        product = item.product
        line = OrderLine(product_id=product.id, sku=product.sku, name=product.name, supplier_id=product.supplier_id,
                         county_code=product.county_code, quantity=item.quantity,
                         unit_price_fen=item.terms["price_fen"],
                         **{name: value for name, value in item.terms.items() if name != "price_fen"},
                         scanned_lot_id=item.lot.id if item.lot else None)
        line.allocations = [Allocation(location_id=p.location_id, lot_id=p.lot_id, quantity=p.quantity,
                                       state="allocated") for p in taken]
        order.lines.append(line)
    db.session.add(order)
    db.session.flush()
    state.record_created(order, actor_id=actor.id)
    state.transition(order, "fulfilled", actor_id=actor.id, reason="counter sale")
    for line in order.lines:
        outbox.record_line_paid(order=order, line=line, occurred_at=moment)
    return _counter_sale(actor, order)


# --- sale conflicts -----------------------------------------------------------------------------------

def _conflict_for_key(*, store_id: int, idempotency_key: str | None) -> SaleConflict | None:
    """The conflict already recorded for this store's Idempotency-Key, if any."""
    if idempotency_key is None:
        return None
    return db.session.scalar(select(SaleConflict).where(SaleConflict.store_id == store_id,
                                                        SaleConflict.idempotency_key == idempotency_key))


def conflict_error(conflict: SaleConflict, *, sale: dict) -> Conflict:
    """The 409 a refused `sale` is answered with: its reason, and the recorded conflict's id; another sale under the
    key of a recorded one is `idempotency_key_reused` (it was recorded nowhere: the till must not count it kept)."""
    if conflict.sale != _sale_record(sale):
        return Conflict("This Idempotency-Key was used for a different request.", code=ShopCode.IDEMPOTENCY_KEY_REUSED)
    return Conflict(conflict.message, code=conflict.code, details={**conflict.details, "conflict_id": conflict.id})


def _sale_record(sale: dict) -> dict:
    """The refused sale as the till sent it (after parsing), JSON-ready."""
    moment = sale.get("client_created_at")
    return {**sale, "client_created_at": moment.isoformat() if moment else None}


def record_conflict(*, actor: User, store_id: int, idempotency_key: str | None, refused: SaleRefused,
                    sale: dict) -> SaleConflict:
    """Keep a refused offline sale for the manager (once per store and key: a resend gets the first record)."""
    conflict = SaleConflict(store_id=store_id, shift_id=sale["shift_id"], idempotency_key=idempotency_key,
                            code=refused.code, message=refused.message[:500], details=refused.details,
                            sale=_sale_record(sale), client_created_at=sale.get("client_created_at"),
                            created_by=actor.id)
    try:
        with db.session.begin_nested():
            db.session.add(conflict)
    except IntegrityError:
        known = _conflict_for_key(store_id=store_id, idempotency_key=idempotency_key)
        if known is None:
            raise
        return known
    return conflict


def list_conflicts(*, actor: User, store_id: int, limit: int, cursor: str | None,
                   resolved: bool | None = None) -> dict:
    """A page of a store's sale conflicts, oldest first; `resolved` picks the resolved ones or those still open."""
    store = get_store_for(actor=actor, store_id=store_id)
    query = select(SaleConflict).where(SaleConflict.store_id == store.id)
    if resolved is not None:
        query = query.where(SaleConflict.resolved_at.isnot(None) if resolved else SaleConflict.resolved_at.is_(None))
    return paginate_committed(query, model=SaleConflict, limit=limit, cursor=cursor)


def resolve_conflict(*, actor: User, store_id: int, conflict_id: int, note: str) -> SaleConflict:
    """Close a store's sale conflict with what was done about it (who and when are recorded): its store's staff or
    an admin; a conflict of another store is `sale_conflict_not_found` 404, one resolved before
    `sale_conflict_resolved` 409."""
    store = get_store_for(actor=actor, store_id=store_id)
    refuse_closed_store_staff(actor)
    lock_on_sqlite("UPDATE sale_conflicts SET id = id WHERE id = :id", id=conflict_id)
    conflict = db.session.scalar(select(SaleConflict).where(SaleConflict.id == conflict_id).with_for_update()
                                 .execution_options(populate_existing=True))
    if conflict is None or conflict.store_id != store.id:
        raise NotFound(f"No sale conflict {conflict_id} at store {store_id}.", code=OrderCode.SALE_CONFLICT_NOT_FOUND)
    if conflict.resolved_at is not None:
        raise Conflict(f"Sale conflict {conflict_id} was resolved before.", code=OrderCode.SALE_CONFLICT_RESOLVED,
                       details={"resolved_at": conflict.resolved_at.isoformat(), "resolved_by": conflict.resolved_by})
    conflict.resolved_at, conflict.resolved_by, conflict.resolution_note = utcnow(), actor.id, note
    db.session.flush()
    return conflict


# --- receipts -----------------------------------------------------------------------------------------

def receipt_of(order: Order) -> dict:
    """An order's receipt: store, time, lines with the trace codes of the lots sold, total, paid, change, the money
    refunded since (by succeeded refunds: one pending or refused gave nothing back), and the order (whose impact
    line is read when the receipt is written out: after the view's commit)."""
    lot_ids = {a.lot_id for line in order.lines for a in line.allocations if a.state == "allocated"}
    codes = dict(db.session.execute(select(Lot.id, Lot.trace_code).where(Lot.id.in_(lot_ids))).all())
    store = db.session.get(Store, order.store_id) if order.store_id else None
    paid = order.tendered_fen if order.tendered_fen is not None else order.total_fen
    refunded = db.session.scalar(select(func.coalesce(func.sum(Refund.amount_fen), 0))
                                 .where(Refund.order_id == order.id, Refund.status == "succeeded"))
    lines = [{"sku": line.sku, "name": line.name, "quantity": line.quantity, "unit_price_fen": line.unit_price_fen,
              "amount_fen": line.amount_fen, "refunded_quantity": line.refunded_quantity,
              "trace_codes": list(dict.fromkeys(codes[a.lot_id] for a in line.allocations
                                                if a.state == "allocated"))}
             for line in order.lines]
    return {"order_id": order.id, "store": {"id": store.id, "name": store.name} if store else None,
            "time": order.paid_at, "sale_date": order.sale_date, "channel": order.channel,
            "payment_method": order.payment_method, "lines": lines, "total_fen": order.total_fen,
            "paid_fen": paid, "change_fen": paid - order.total_fen, "refunded_fen": refunded,
            "late_entry": order.late_entry, "prints": order.receipt_prints, "reprint": order.receipt_prints > 0,
            "order": order}


def get_receipt(*, actor: User, order_id: int) -> dict:
    """Reprint a paid order's receipt (`order_not_found` 404 outside scope, `order_not_paid` 409 before payment); it
    is a `reprint` once the till has printed it."""
    order = get_order_for(actor=actor, order_id=order_id)
    if order.paid_at is None:
        raise Conflict("The order has not been paid: it has no receipt.", code=OrderCode.ORDER_NOT_PAID,
                       details={"status": order.status})
    return receipt_of(order)


def print_receipt(*, actor: User, order_id: int) -> dict:
    """Count one more print of a paid order's receipt (in scope as `get_receipt`), atomically: the receipt as printed
    now, its number (`prints`) and time; any print after the first is a `reprint`."""
    order = get_order_for(actor=actor, order_id=order_id)
    if order.paid_at is None:
        raise Conflict("The order has not been paid: it has no receipt.", code=OrderCode.ORDER_NOT_PAID,
                       details={"status": order.status})
    number = db.session.execute(update(Order).where(Order.id == order.id)
                                .values(receipt_prints=Order.receipt_prints + 1)
                                .returning(Order.receipt_prints)).scalar_one()
    db.session.refresh(order, ["receipt_prints"])
    return {**receipt_of(order), "reprint": number > 1, "printed_at": utcnow()}


# --- pickups ------------------------------------------------------------------------------------------

def list_pickups(*, actor: User, store_id: int, limit: int, cursor: str | None) -> dict:
    """A page of the paid pickup orders waiting at a store, oldest first."""
    store = get_store_for(actor=actor, store_id=store_id)
    query = select(Order).where(Order.store_id == store.id, Order.awaiting_pickup)
    return paginate(query, keys=[Order.id], limit=limit, cursor=cursor)


def hand_over(*, actor: User, store_id: int, pickup_code: str) -> OrderView:
    """Hand a paid pickup order over to the customer showing its code: the order becomes fulfilled
    (`pickup_code_invalid` 409 when no order waiting at this store has that code)."""
    store = get_store_for(actor=actor, store_id=store_id)
    waiting = select(Order.id).where(Order.store_id == store.id, Order.awaiting_pickup,
                                     Order.pickup_code == pickup_code)
    order_id = db.session.scalar(waiting.order_by(Order.id).limit(1))
    order = lock_order(order_id) if order_id is not None else None
    if order is None or not order.awaiting_pickup or order.pickup_code != pickup_code:
        raise Conflict("No order waiting at this store has this pickup code.", code=OrderCode.PICKUP_CODE_INVALID)
    state.transition(order, "fulfilled", actor_id=actor.id, reason="picked up")
    return view_order(actor=actor, order=order)
