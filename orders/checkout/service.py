"""Online orders: checkout with reservations, reads in scope, cancel, ship, deliver, expiry and payment.

Checkout reserves the stock and commits before any provider is called (the view commits between
`place_order` and `start_payment`), so no stock row is locked across a call to the provider. The
lots are chosen when the units are reserved (FIFO); a confirmed payment turns the reservation into
the allocation, or, for an order whose reservation expired, chooses afresh for the whole order.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import Row, Select, bindparam, func, literal, select, update
from sqlalchemy.exc import IntegrityError

from catalog import inventory
from catalog.errors import CatalogCode
from catalog.inventory import Portion, StockRequest
from catalog.models import Location, Product
from orders.errors import OrderCode
from orders.locking import lock_order
from orders.models import Allocation, Order, OrderLine, OrderTransition, Payment, PaymentEvent, Store
from orders.notify import notify
from orders.outbox import record_line_paid, sale_date_of
from orders.payments.provider import MAX_PAYMENT_FEN, AmountTooSmall, KeyRefused, get_provider, provider_key
from orders.state import record_created, transition
from orders.stores.service import SEE_ALL, hold_store_open
from shop.auth.models import User
from shop.db import after_commit, db, insert_new, lock_on_sqlite, run_core, utcnow
from shop.errors import AppError, Conflict, NotFound, ValidationError
from shop.idempotency import user_keys
from shop.pagination import paginate
from shop.regions.models import Region
from suppliers.models import Supplier

log = logging.getLogger(__name__)

PAID_OR_LATER = ("paid", "shipped", "delivered", "fulfilled", "refunded")
EXPIRY_BATCH = 200
MAX_UNPAID_ORDERS = 5  # a buyer's orders awaiting payment at once: their stock is held from every other buyer
NOT_PAID_YET = ("created", "failed")  # a payment still to be made: no attempt yet, or only declined ones


class PaymentNotStarted(AppError):
    """The payment of an order just placed could not be started: the caller cancels the order (`abandon_order`) with
    the `reason` its history keeps."""

    reason = "payment not started"


class PaymentProviderUnavailable(PaymentNotStarted):
    """The payment provider could not create the payment; the order was cancelled and its stock released."""

    status, code = 503, OrderCode.PAYMENT_PROVIDER_UNAVAILABLE
    reason = "payment provider unavailable"


class OrderTotalTooSmall(PaymentNotStarted):
    """The payment provider refused the order's total as below its minimum charge; the order was cancelled and its
    stock released."""

    status, code = 422, OrderCode.ORDER_TOTAL_TOO_SMALL
    reason = "total below the payment provider's minimum charge"


@dataclass
class OrderView:
    """An order as one caller sees it: `viewer` is owner, admin or staff; with its store, payment, history."""

    order: Order
    viewer: str
    store: Store | None = None
    payment: Payment | None = None
    history: list[OrderTransition] = field(default_factory=list)

    def __getattr__(self, name: str):
        """The order's own attributes."""
        return getattr(self.order, name)


# --- checkout ---------------------------------------------------------------------------------------

# Built once: a statement's construction costs about as much CPU as its execution.
_SNAPSHOT = (Product.id, Product.sku, Product.name, Product.status, Product.supplier_id, Product.county_code,
             Product.price_fen, Product.platform_fee_bp, Product.store_commission_bp, Product.household_premium_bp,
             Product.dividend_bp, Supplier.active.label("supplier_active"))  # what an order line copies (rows, not
# entities: a hot read), and whether the supplier still sells
_PRODUCTS = (select(*_SNAPSHOT, literal(True)).join(Supplier, Supplier.id == Product.supplier_id)
             .where(Product.sku.in_(bindparam("skus", expanding=True))))
_PRODUCTS_TO_DISTRICT = select(*_SNAPSHOT, select(Region.code).where(
    Region.code == bindparam("district"), Region.level == "county", Region.side == "donor").exists()).join(
    Supplier, Supplier.id == Product.supplier_id).where(Product.sku.in_(bindparam("skus", expanding=True)))


def _payment_being_confirmed(order_id) -> Select:
    """A payment of the order (`order_id`: a value or a column) that the provider reported made and that is not
    processed yet: the order is about to be paid."""
    return (select(PaymentEvent.id).join(Payment, Payment.intent_id == PaymentEvent.intent_id)
            .where(Payment.order_id == order_id, PaymentEvent.status == "pending",
                   PaymentEvent.type == "payment_intent.succeeded"))


# a buyer's orders awaiting payment: not paid, and none of their payments being confirmed; and how many of them are
# past their reservation, which the expiry task has not reached yet
_UNPAID_ORDERS = select(func.count(Order.id), func.count(Order.id).filter(Order.expires_at < bindparam("now"))).where(
    Order.consumer_id == bindparam("id"), Order.status == "pending_payment",
    ~_payment_being_confirmed(Order.id).exists())
# NO KEY UPDATE: the buyer's checkouts queue on it, while the key share a foreign key to the row takes (their
# Idempotency-Key's row, their order) does not wait on it, so one checkout never deadlocks with another
_LOCK_BUYER = select(User.id).where(User.id == bindparam("id")).with_for_update(key_share=True)
_PAYMENT_BEING_CONFIRMED = _payment_being_confirmed(bindparam("id")).limit(1)


def _check_unpaid_orders(buyer: User) -> None:
    """`too_many_unpaid_orders` 409 when the buyer already has MAX_UNPAID_ORDERS orders awaiting payment; the
    buyer's orders past their reservation are expired first (their stock released), so they never block a checkout."""
    if db.session.get_bind().dialect.name == "sqlite":  # the buyer's checkouts queue here, so the count holds
        lock_on_sqlite("UPDATE users SET id = id WHERE id = :id", id=buyer.id)
    else:
        run_core(_LOCK_BUYER, {"id": buyer.id})
    now = utcnow()
    unpaid, past_due = run_core(_UNPAID_ORDERS, {"id": buyer.id, "now": now}).one()
    if past_due:  # one another worker holds (expiring or paying it) still counts
        unpaid -= expire_reservations(now=now, consumer_id=buyer.id)
    if unpaid >= MAX_UNPAID_ORDERS:
        raise Conflict(f"You have {unpaid} orders awaiting payment: pay or cancel one before ordering again.",
                       code=OrderCode.TOO_MANY_UNPAID_ORDERS, details={"limit": MAX_UNPAID_ORDERS})


def _why_not_on_sale(product: Row | None) -> str | None:
    """Why a line's product is not on sale, or None if it is."""
    if product is None or product.status != "active":
        return "No product on sale with this SKU."
    return None if product.supplier_active else "Its supplier is inactive: the product is not on sale."


def _products(lines: list[dict], *, delivery_to: str | None = None) -> list[Row]:
    """What an order line copies of the product on sale (active, of an active supplier) of each line, in line order
    (`product_unavailable` 422 naming the others); for a delivery to the district `delivery_to`, whether it is a
    district of a donor city is read in the same statement (`not_a_donor_district` 422)."""
    skus = [line["sku"] for line in lines]
    if delivery_to is None:
        rows = run_core(_PRODUCTS, {"skus": skus}).all()
    else:
        rows = run_core(_PRODUCTS_TO_DISTRICT, {"skus": skus, "district": delivery_to}).all()
    found = {product.sku: product for product in rows}
    errors = {str(i): {"sku": [problem]} for i, problem in enumerate(map(_why_not_on_sale, map(found.get, skus)))
              if problem}
    if errors:
        raise ValidationError("Some products are not on sale.", code=OrderCode.PRODUCT_UNAVAILABLE,
                              details={"lines": errors})
    if not rows[0][-1]:
        raise ValidationError("We deliver to the districts of the donor cities only.",
                              code=OrderCode.NOT_A_DONOR_DISTRICT,
                              details={"address": {"district_code": ["Not a district of a donor city."]}})
    return [found[sku] for sku in skus]


def _total(products: list[Row], lines: list[dict]) -> int:
    """The order's total in fen (`within_one_payment`)."""
    return within_one_payment(sum(product.price_fen * line["quantity"]
                                  for product, line in zip(products, lines, strict=True)))


def within_one_payment(total: int) -> int:
    """An order's total in fen, online or at the counter, at most what one payment carries (`order_total_too_large`
    422)."""
    if total > MAX_PAYMENT_FEN:
        message = (f"The order's total of {total} fen exceeds {MAX_PAYMENT_FEN} fen, the most one payment can carry: "
                   "order fewer units, or split the order.")
        raise ValidationError(message, code=OrderCode.ORDER_TOTAL_TOO_LARGE,
                              details={"lines": [message]})
    return total


def _pickup_store(store_id: int) -> Store:
    """The active store a pickup order is collected at (`store_unavailable` 422 otherwise), held open until the order
    commits (a deactivation under way is waited for; one begun after waits and sees the order: `pickups_waiting`)."""
    store = hold_store_open(store_id)
    if store is None or not store.active:
        raise ValidationError(f"No open store {store_id}.", code=OrderCode.STORE_UNAVAILABLE,
                              details={"store_id": ["No open store with this id."]})
    return store


def _warehouse(warehouse_id: int) -> Location:
    """The warehouse a consumer chose (`warehouse_unavailable` 422 if it is not one)."""
    location = db.session.get(Location, warehouse_id)
    if location is None or location.kind != "warehouse":
        raise ValidationError(f"No warehouse {warehouse_id}.", code=OrderCode.WAREHOUSE_UNAVAILABLE,
                              details={"warehouse_id": ["No warehouse with this id."]})
    return location


def _short(products: list[Row], details: dict) -> Conflict:
    """`insufficient_stock` naming the short lines by SKU, from the inventory's details."""
    skus = {p.id: p.sku for p in products}
    short = [{"sku": skus[item["product_id"]], "requested": item["requested"], "available": item["available"]}
             for item in details.get("lines", [])]
    return Conflict("Not enough stock for these lines.", code=CatalogCode.INSUFFICIENT_STOCK, details={"lines": short})


def _reserve_at(location_id: int, products: list[Row], lines: list[dict]) -> list[list[Portion]]:
    """Reserve every line at one location, all or nothing (`insufficient_stock` 409 with the short lines)."""
    requests = [StockRequest(p.id, line["quantity"]) for p, line in zip(products, lines, strict=True)]
    try:
        return inventory.reserve_lines(location_id=location_id, lines=requests)
    except Conflict as exc:
        if exc.code != CatalogCode.INSUFFICIENT_STOCK:
            raise
        raise _short(products, exc.details) from exc


def _reserve_from_a_warehouse(products: list[Row], lines: list[dict]) -> tuple[int, list[list[Portion]]]:
    """Reserve the whole order at the first warehouse (by id) that can fill it; never split."""
    requests = [StockRequest(p.id, line["quantity"]) for p, line in zip(products, lines, strict=True)]
    try:
        return inventory.reserve_first_fit(kind="warehouse", lines=requests)
    except Conflict as exc:
        if exc.code != CatalogCode.INSUFFICIENT_STOCK:
            raise
        raise _short(products, exc.details) from exc


def place_order(*, actor: User, channel: str, lines: list[dict], store_id: int | None = None,
                warehouse_id: int | None = None, address: dict | None = None) -> OrderView:
    """Create a pending order with its prices and rates snapshotted and its stock reserved until `expires_at`;
    its buyer's view (no payment yet), built from what was written (the objects are not in the session). A buyer
    holds at most MAX_UNPAID_ORDERS orders awaiting payment, and an order's total is at most MAX_PAYMENT_FEN."""
    _check_unpaid_orders(actor)
    products = _products(lines, delivery_to=address["district_code"] if channel == "delivery" else None)
    store = None
    if channel == "pickup":
        store = _pickup_store(store_id)
        donor_code = store.district_code
        location_id, portions = store.location_id, _reserve_at(store.location_id, products, lines)
    else:
        donor_code = address["district_code"]
        if warehouse_id is not None:
            location_id = _warehouse(warehouse_id).id
            portions = _reserve_at(location_id, products, lines)
        else:
            location_id, portions = _reserve_from_a_warehouse(products, lines)
    total_fen = _total(products, lines)  # after the stock, whose shortage says more; the caller rolls back
    now, seconds = utcnow(), current_app.config.get("ORDER_RESERVATION_SECONDS", 900)
    order = Order(created_at=now, channel=channel, status="pending_payment", consumer_id=actor.id,
                  store_id=store.id if store else None, location_id=location_id, donor_code=donor_code,
                  total_fen=total_fen,
                  expires_at=now + timedelta(seconds=seconds), payment_method="stripe", created_by=actor.id)
    order.address = address
    insert_new([order])
    order.lines = [OrderLine(
        order_id=order.id, product_id=product.id, sku=product.sku, name=product.name, supplier_id=product.supplier_id,
        county_code=product.county_code, quantity=line["quantity"], unit_price_fen=product.price_fen,
        platform_fee_bp=product.platform_fee_bp, store_commission_bp=product.store_commission_bp,
        household_premium_bp=product.household_premium_bp, dividend_bp=product.dividend_bp)
        for product, line in zip(products, lines, strict=True)]
    insert_new(order.lines)
    for line, reserved in zip(order.lines, portions, strict=True):
        line.allocations = [Allocation(order_line_id=line.id, location_id=p.location_id, lot_id=p.lot_id,
                                       quantity=p.quantity, state="reserved") for p in reserved]
    insert_new([allocation for line in order.lines for allocation in line.allocations])
    created = record_created(order, actor_id=actor.id)
    return OrderView(order=order, viewer="owner", store=store, history=[created])


def start_payment(*, order: Order) -> Payment:
    """Create the PaymentIntent of an order just placed (as `place_order` returned it; the provider's idempotency
    key is the order's `provider_key`, so a retried call gets the same intent, whose unique id then refuses a second
    row) and record it; call once the reservation has committed. `OrderTotalTooSmall` if the provider refuses the
    total as below its minimum charge, `PaymentProviderUnavailable` if it fails otherwise (a refused API key logged
    as an error, for an operator to fix; either way the caller abandons the order); the payment as written (not in
    the session)."""
    order_id, total_fen = order.id, order.total_fen
    provider = get_provider()
    try:
        intent = provider.create_intent(order_id=order_id, amount_fen=total_fen,
                                        idempotency_key=provider_key(f"order-{order_id}-intent", order.created_at))
    except AmountTooSmall as exc:
        message = (f"The order's total of {total_fen} fen is below the least the payment provider charges; nothing "
                   "was charged and the order was cancelled: add to the order and place it again.")
        raise OrderTotalTooSmall(message, details={"lines": [message]}) from exc
    except KeyRefused as exc:  # a configuration problem, not an outage: the buyer is told as for one
        log.error("payment provider %s refused the shop's API key (%s) for order %s: nothing was charged; fix the key",
                  provider.name, exc, order_id)
        raise PaymentProviderUnavailable("The payment provider is unavailable; nothing was charged. "
                                         "Please try again.") from exc
    except Exception as exc:  # noqa: BLE001 - any provider failure: the caller cancels the order
        log.warning("payment provider %s failed for order %s: %s", provider.name, order_id, type(exc).__name__)
        raise PaymentProviderUnavailable("The payment provider is unavailable; nothing was charged. "
                                         "Please try again.") from exc
    payment = Payment(order_id=order_id, provider=provider.name, intent_id=intent.id,
                      client_secret=intent.client_secret, amount_fen=intent.amount_fen, status="created")
    insert_new([payment])
    return payment


def _portions(order: Order, state: str) -> list[tuple[Allocation, Portion]]:
    """The order's allocations in `state`, each with its stock portion."""
    return [(a, Portion(a.location_id, a.lot_id, line.product_id, a.quantity))
            for line in order.lines for a in line.allocations if a.state == state]


def _release(order: Order) -> None:
    """Give the order's reserved units back to the stock."""
    held = _portions(order, "reserved")
    if held:
        inventory.release(portions=[p for _, p in held])
    for allocation, _ in held:
        allocation.state = "released"
    db.session.flush()


def abandon_order(*, order_id: int, reason: str) -> Order:
    """Cancel a pending order whose payment could not be started, releasing its stock."""
    order = lock_order(order_id)
    if order.status == "pending_payment":
        _release(order)
        transition(order, "cancelled", actor_id=None, reason=reason)
    return order


# --- reading ----------------------------------------------------------------------------------------

def _viewer(actor: User, order: Order) -> str:
    """How `actor` relates to `order`: owner, admin or staff."""
    if order.consumer_id == actor.id:
        return "owner"
    return "admin" if actor.role == "admin" else "staff"


def may_see_order(actor: User, order: Order | None) -> bool:
    """The orders domain's one scope rule: admins and auditors see every order, store staff their store's, consumers
    their own (outside it an order is "not found"; which roles may call at all is each view's `require_role`)."""
    if order is None:
        return False
    if actor.role in SEE_ALL:
        return True
    if actor.role == "store_staff":
        return actor.store_id is not None and order.store_id == actor.store_id
    return actor.role == "consumer" and order.consumer_id == actor.id


def _views(orders: list[Order], actor: User) -> list[OrderView]:
    """Views of `orders` for `actor`, with their stores, latest payments and histories (three queries)."""
    ids = [o.id for o in orders]
    store_ids = {o.store_id for o in orders if o.store_id}
    stores = {s.id: s for s in db.session.scalars(select(Store).where(Store.id.in_(store_ids)))} if store_ids else {}
    payments = {p.order_id: p for p in db.session.scalars(
        select(Payment).where(Payment.order_id.in_(ids)).order_by(Payment.id))} if ids else {}
    history: dict[int, list[OrderTransition]] = {}
    for row in (db.session.scalars(select(OrderTransition).where(OrderTransition.order_id.in_(ids))
                                   .order_by(OrderTransition.id)) if ids else []):
        history.setdefault(row.order_id, []).append(row)
    return [OrderView(order=o, viewer=_viewer(actor, o), store=stores.get(o.store_id), payment=payments.get(o.id),
                      history=history.get(o.id, [])) for o in orders]


def view_order(*, actor: User, order: Order) -> OrderView:
    """The view of one order for `actor`."""
    return _views([order], actor)[0]


def get_order_for(*, actor: User, order_id: int) -> Order:
    """The order if `actor` may see it (`order_not_found` 404 otherwise)."""
    order = db.session.get(Order, order_id)
    if not may_see_order(actor, order):
        raise NotFound(f"No order {order_id}.", code=OrderCode.ORDER_NOT_FOUND)
    return order


def order_keys(*, actor: User, order_id: int) -> str:
    """The scope of the Idempotency-Keys of a change to an order: an admin's are the order's, shared by the admins
    (a change resent by another admin after a hand-over gets the first answer), a buyer's their own (`user_keys`);
    `order_not_found` 404 outside the actor's scope."""
    get_order_for(actor=actor, order_id=order_id)
    return f"order:{order_id}" if actor.role == "admin" else user_keys(actor)


def read_order(*, actor: User, order_id: int) -> OrderView:
    """One order as `actor` may see it."""
    return view_order(actor=actor, order=get_order_for(actor=actor, order_id=order_id))


def pickup_code(*, actor: User, order_id: int) -> str:
    """The code the buyer shows to collect a paid pickup order (`pickup_code_not_found` 404 once collected,
    before payment, or for anyone but the buyer)."""
    order = get_order_for(actor=actor, order_id=order_id)
    if order.consumer_id != actor.id or not order.awaiting_pickup:
        raise NotFound(f"Order {order_id} has no pickup code to show.", code=OrderCode.PICKUP_CODE_NOT_FOUND)
    return order.pickup_code


def list_orders(*, actor: User, limit: int, cursor: str | None, store_id: int | None = None,
                status: str | None = None, channel: str | None = None) -> dict:
    """A page of the orders `actor` may see, newest first: a consumer's own, a store's (staff: their own store's,
    by default; another store is `store_not_found` 404), or any (admins, with filters)."""
    query = select(Order)
    if actor.role == "consumer":
        query = query.where(Order.consumer_id == actor.id)
    elif actor.role == "store_staff":
        store_id = actor.store_id if store_id is None else store_id
        if store_id != actor.store_id:
            raise NotFound(f"No store {store_id}.", code=OrderCode.STORE_NOT_FOUND)
    if store_id is not None:
        query = query.where(Order.store_id == store_id)
    if status:
        query = query.where(Order.status == status)
    if channel:
        query = query.where(Order.channel == channel)
    page = paginate(query, keys=[Order.id], limit=limit, cursor=cursor, newest_first=True)
    return {**page, "items": _views(page["items"], actor)}


# --- changes ----------------------------------------------------------------------------------------

def _locked_in_scope(actor: User, order_id: int) -> Order:
    """The order locked for a change, if `actor` may see it (`order_not_found` 404 otherwise)."""
    get_order_for(actor=actor, order_id=order_id)
    return lock_order(order_id)


def payment_being_confirmed(*, order_id: int) -> bool:
    """Whether a payment of the order succeeded at the provider (its event received) and is not processed yet: the
    order is still unpaid, but its buyer has paid."""
    return db.session.execute(_PAYMENT_BEING_CONFIRMED, {"id": order_id}).first() is not None


def cancel_order(*, actor: User, order_id: int) -> OrderView:
    """Cancel an unpaid order (its owner or an admin), releasing its reservation (`invalid_transition` 409), and,
    once that has committed, its PaymentIntent at the provider. A payment the provider already reported as made and
    not yet processed is `payment_being_confirmed` 409: the buyer paid, so the order is about to be paid."""
    order = _locked_in_scope(actor, order_id)
    if order.status == "pending_payment" and payment_being_confirmed(order_id=order.id):
        raise Conflict(f"Order {order.id} has a payment being confirmed: it cannot be cancelled.",
                       code=OrderCode.PAYMENT_BEING_CONFIRMED)
    transition(order, "cancelled", actor_id=actor.id,
               reason="cancelled by the buyer" if order.consumer_id == actor.id else "cancelled by an admin")
    _release(order)
    intent_ids = db.session.scalars(select(Payment.intent_id).where(Payment.order_id == order.id,
                                                                    Payment.intent_id.is_not(None))).all()
    after_commit(lambda: _cancel_intents(order_id, intent_ids))
    return view_order(actor=actor, order=order)


def _cancel_intents(order_id: int, intent_ids: list[str]) -> None:
    """Cancel a cancelled order's PaymentIntents at the provider (after its commit), each payment the provider
    cancelled then `canceled` (not one still to make, also after a declined attempt); one the provider will not
    cancel, or an unanswered call, is logged (a refused API key as an error) and stays as it was: a payment made all the
    same is returned when its event comes."""
    provider, canceled = get_provider(), []
    for intent_id in intent_ids:
        try:
            provider.cancel_intent(intent_id=intent_id)
        except KeyRefused as exc:
            log.error("payment provider %s refused the shop's API key (%s) to cancel intent %s of cancelled order %s: "
                      "fix the key; a payment of it is returned when its event comes", provider.name, exc, intent_id,
                      order_id)
            continue
        except Exception as exc:  # noqa: BLE001 - the order stays cancelled; a late payment of it is returned
            log.warning("payment provider %s did not cancel intent %s of cancelled order %s: %s", provider.name,
                        intent_id, order_id, type(exc).__name__)
            continue
        canceled.append(intent_id)
    if canceled:  # a unit of work of its own: the cancellation's has committed before the provider was asked
        db.session.execute(update(Payment).where(Payment.intent_id.in_(canceled), Payment.status.in_(NOT_PAID_YET))
                           .values(status="canceled"))
        db.session.commit()


def ship_order(*, actor: User, order_id: int, carrier: str, tracking_number: str) -> OrderView:
    """Mark a paid delivery order shipped with its carrier and tracking number, and tell the buyer (`nothing_to_ship`
    409 while a refund, even one still pending at the payment provider, takes back every unit)."""
    order = _locked_in_scope(actor, order_id)
    if order.channel != "delivery":
        raise Conflict(f"Order {order_id} is collected at a store, not shipped.", code=OrderCode.NOT_A_DELIVERY_ORDER,
                       details={"channel": order.channel})
    if order.status == "paid" and not order.has_units_sold:
        raise Conflict(f"Order {order_id} has no unit left to ship: a refund takes every unit back.",
                       code=OrderCode.NOTHING_TO_SHIP)
    transition(order, "shipped", actor_id=actor.id)
    order.carrier, order.tracking_number = carrier, tracking_number
    db.session.flush()
    notify(kind="shipped", order_id=order.id)
    return view_order(actor=actor, order=order)


def deliver_order(*, actor: User, order_id: int) -> OrderView:
    """Mark a shipped delivery order delivered."""
    order = _locked_in_scope(actor, order_id)
    transition(order, "delivered", actor_id=actor.id)
    return view_order(actor=actor, order=order)


def expire_reservations(*, now: datetime | None = None, batch: int = EXPIRY_BATCH,
                        consumer_id: int | None = None) -> int:
    """Expire unpaid orders past `expires_at` (a batch; rows another worker holds are skipped), releasing
    their stock; how many expired; with `consumer_id`, that buyer's only. An order with a payment being confirmed is
    not unpaid: its buyer paid, so it keeps its reservation until the payment is processed (as a cancel is refused)."""
    now = now or utcnow()
    due = select(Order.id).where(Order.status == "pending_payment", Order.expires_at < now,
                                 ~_payment_being_confirmed(Order.id).exists())
    if consumer_id is not None:
        due = due.where(Order.consumer_id == consumer_id)
    ids = db.session.scalars(due.order_by(Order.id).limit(batch).with_for_update(skip_locked=True)).all()
    expired = 0
    for order_id in ids:
        order = lock_order(order_id)
        if order.status != "pending_payment" or order.expires_at >= now:
            continue
        _release(order)
        transition(order, "expired", actor_id=None, reason="reservation expired")
        expired += 1
    return expired


# --- payment ----------------------------------------------------------------------------------------

def _give_pickup_code(order: Order) -> None:
    """Give a paid pickup order a 6-digit code no other order waiting at its store holds: one taken meanwhile by a
    payment not yet committed is refused by the unique index of waiting codes, and another is drawn."""
    taken = select(Order.id).where(Order.store_id == order.store_id, Order.pickup_code == bindparam("code"),
                                   Order.status == "paid", Order.channel == "pickup")
    while True:
        code = f"{secrets.randbelow(10**6):06d}"
        if db.session.scalar(taken, {"code": code}) is not None:
            continue
        try:
            with db.session.begin_nested():
                order.pickup_code = code
            return
        except IntegrityError:
            continue


def _allocate_afresh(order: Order) -> bool:
    """Reserve and allocate the whole order again at its location, FIFO now (an expired reservation);
    False, with nothing changed, if the stock no longer allows it or a pickup's store has closed since (it is held
    open until this commits, so a deactivation under way is waited for and one begun after sees the order paid)."""
    if order.store_id is not None and not getattr(hold_store_open(order.store_id), "active", False):
        return False
    requests = [StockRequest(line.product_id, line.quantity) for line in order.lines]
    try:
        with db.session.begin_nested():
            portions = inventory.reserve_lines(location_id=order.location_id, lines=requests)
            inventory.allocate(portions=[p for line in portions for p in line])
    except Conflict as exc:
        if exc.code != CatalogCode.INSUFFICIENT_STOCK:
            raise
        return False
    for line, taken in zip(order.lines, portions, strict=True):
        for portion in taken:
            line.allocations.append(Allocation(location_id=portion.location_id, lot_id=portion.lot_id,
                                               quantity=portion.quantity, state="allocated"))
    db.session.flush()  # the new allocations' ids, which their line_paid events name
    return True


def confirm_locked_payment(*, order: Order, intent_id: str, amount_fen: int, paid_at: datetime,
                           payment: Payment | None = None) -> str:
    """Record a provider's confirmed payment of an order the caller has locked (`lock_order`), inside the event
    processor's transaction, with the intent's payment row if the caller has it: "paid" (units allocated, outbox
    rows written), "already_paid", or "unallocatable" (nothing changed: a wrong amount, a cancelled order, or an
    expired one whose stock is gone or whose pickup store has closed — the caller refunds it)."""
    if order.status in PAID_OR_LATER:
        return "already_paid"
    if amount_fen != order.total_fen:
        log.warning("payment %s for order %s is %s fen, the order is %s fen: not allocated",
                    intent_id, order.id, amount_fen, order.total_fen)
        return "unallocatable"
    if order.status == "pending_payment":
        held = _portions(order, "reserved")
        inventory.allocate(portions=[p for _, p in held])
        for allocation, _ in held:
            allocation.state = "allocated"
    elif order.status != "expired" or not _allocate_afresh(order):
        return "unallocatable"
    order.paid_at, order.sale_date = paid_at, sale_date_of(paid_at)
    with db.session.no_autoflush:  # the changes of the order, its allocations and payment: one flush, the caller's
        transition(order, "paid", actor_id=None, reason=f"payment {intent_id}")
        if payment is None or payment.intent_id != intent_id:
            payment = db.session.scalar(select(Payment).where(Payment.intent_id == intent_id))
        if payment is not None and payment.order_id == order.id:
            payment.status, payment.succeeded_at = "succeeded", paid_at
        if order.channel == "pickup":
            _give_pickup_code(order)
        for line in order.lines:
            record_line_paid(order=order, line=line, occurred_at=paid_at)
    if order.channel == "pickup":
        notify(kind="pickup_ready", order_id=order.id)
    return "paid"


def paired_sale_dates(*, donor_code: str, recipient_code: str, from_date: date,
                      until: date | None) -> tuple[date, date] | None:
    """The first and the last sale date from `from_date` to `until` (inclusive; None: open) of the orders credited to
    donor `donor_code` with a line of county `recipient_code`'s produce (paid or since refunded), if any."""
    first, last = db.session.execute(
        select(func.min(Order.sale_date), func.max(Order.sale_date)).join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.donor_code == donor_code, OrderLine.county_code == recipient_code, Order.sale_date >= from_date,
               *([Order.sale_date <= until] if until else []))).one()
    return None if first is None else (first, last)


def last_sale_date(supplier_id: int) -> date | None:
    """The latest sale date of the orders holding a product of the supplier (paid or since refunded), if any."""
    return db.session.scalar(select(func.max(Order.sale_date)).join(OrderLine, OrderLine.order_id == Order.id)
                             .join(Product, Product.id == OrderLine.product_id)
                             .where(Product.supplier_id == supplier_id))
