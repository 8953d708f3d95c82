"""Refunds and after-sales requests.

Every refund takes the order lock first, gives units back off each line's allocations in reverse
allocation order, puts units marked resellable back on the shelf (the allocation's location and
lot), writes one `line_refunded` outbox event per line (and a `refund_remainder` for what an
amount refund leaves below one unit's price), and moves a fully refunded order to `refunded`, all
in the caller's transaction.

Online orders are refunded at the payment provider as checkout pays: `create_refund` commits the refund
`pending` (its units taken off the lines, its `line_refunded` events held on the row), then `settle_refund` calls
the provider outside any lock with the key `refund_key` and, under the order lock again, records the outcome: the
provider's refund id, the stock put back and the held events written (succeeded), or the units given back (the
provider refused: failed). An answer lost or late leaves the refund pending: the same request again or the
`orders.pending_refunds` sweeper asks again with the same key, so Stripe refunds once (each failed attempt in a row
doubles the pause before the next: `retry_pause`). A refund the provider made but
has not finished (Stripe's `pending` or `requires_action`) stays pending, known by the provider's id, with no money
event: its `succeeded` completes it, `failed` or `canceled` gives its units back, and the sweeper asks the provider how
it stands when those events are lost. A refund made at the provider (its dashboard) is held the same way until it
succeeds. A provider event naming the refund (by id, or by its metadata's key while it is pending) finds it known and
is never reversed twice; refunds of one order are serialised by its lock, and another refund of an order with one
pending is `refund_pending` 409.

Who may refund: admins any paid order; store staff only their own store's sales made in a shift
that is still open (`refund_outside_shift` 403 otherwise: after the shift closes, an admin
refunds). After-sales requests: the consumer who owns a delivered or collected order, within
7 days of that transition; admins, or the staff of the order's store, approve or reject them.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Integer, func, literal_column, or_, select, update

from catalog import inventory
from catalog.errors import CatalogCode
from orders.checkout.service import may_see_order
from orders.errors import OrderCode
from orders.locking import lock_order
from orders.models import (
    AfterSalesRequest,
    Allocation,
    Order,
    OrderLine,
    OrderTransition,
    OutboxEvent,
    Payment,
    Refund,
    RefundLine,
    Shift,
)
from orders.notify import notify
from orders.outbox import allocation_payload, record_event
from orders.payments.provider import (
    KeyRefused,
    ProviderRefund,
    RefundRefused,
    api_key_mode,
    from_timestamp,
    get_provider,
    not_before,
    provider_key,
)
from orders.state import can_transition, transition
from orders.stores.service import check_cash_in_till, hold_till, refuse_closed_store_staff, store_keys
from shop.auth.models import User
from shop.db import after_commit, db, utcnow
from shop.errors import AppError, Conflict, Forbidden, NotFound, ShopCode
from shop.fields import REMARK_MAX, clip
from shop.idempotency import user_keys
from shop.pagination import paginate

log = logging.getLogger(__name__)

REFUNDABLE = ("paid", "shipped", "delivered", "fulfilled")
AFTER_SALES_STATUSES = ("delivered", "fulfilled")
AFTER_SALES_WINDOW = timedelta(days=7)
PROVIDER_METHODS = ("stripe",)  # payment methods whose money goes back through the payment provider
PROVIDER_REASON = "Refunded at the payment provider."
RETURNED_AT_PROVIDER = "Refunded at the payment provider before the shop returned it: part of its return."
RETURNED_AGAIN = "A refund at the payment provider that was part of this payment's return failed: its part returned."
PROVIDER_FAILED = ("failed", "canceled")  # a provider refund in these states gave no money back
PROVIDER_SUCCEEDED = (None, "succeeded")  # the money went back (a refund's older shapes carried no status)
# Stripe's refusal of a refund for more than the charge has left unrefunded: a return refused so, because its dashboard
# refunded part of the payment meanwhile, is asked again for what is left, at most RETURN_ATTEMPTS times in all (each
# return its own attempts, though a payment's returns number their attempts in one sequence: `_first_attempt`)
MORE_THAN_LEFT = "amount_too_large"
RETURN_ATTEMPTS = 5
RESETTLE_AFTER = timedelta(seconds=60)  # a pending refund older than this is the sweeper's to settle
# a refund whose attempt failed (no answer, an error, the shop's key refused) waits RESETTLE_AFTER, doubled at each
# failed attempt in a row, up to this
RETRY_MAX_PAUSE = timedelta(hours=1)
SWEEP_BATCH = 50
ADMIN_KEYS = "admins"  # the Idempotency-Key scope of online orders' refunds, shared by the admins who make them


@dataclass(frozen=True)
class RefundRequest:
    """Units of one order line to give back, and whether they can go back on the shelf."""

    line_id: int
    quantity: int
    resellable: bool = False


class ProviderRefused(AppError):
    """The payment provider refused the refund: nothing was refunded and its units are sold again."""

    status, code = 409, OrderCode.REFUND_REFUSED


# --- scope ------------------------------------------------------------------------------------------

def _order_for(actor: User, order_id: int, *, lock: bool) -> Order:
    """The order if `actor` may see it (locked if asked), else `order_not_found` 404."""
    order = lock_order(order_id) if lock else db.session.get(Order, order_id)
    if order is None or not may_see_order(actor, order):
        raise NotFound(f"No order {order_id}.", code=OrderCode.ORDER_NOT_FOUND)
    return order


def in_open_shift(order: Order) -> bool:
    """Whether the order is a sale of a shift that is still open: what store staff may refund."""
    shift = db.session.get(Shift, order.shift_id) if order.shift_id else None
    return shift is not None and shift.closed_at is None


def _check_staff_shift(order: Order) -> None:
    """Store staff refund only sales of a shift that is still open (`refund_outside_shift` 403)."""
    if not in_open_shift(order):
        raise Forbidden("Store staff refund only sales of a shift that is still open; ask an admin.",
                        code=OrderCode.REFUND_OUTSIDE_SHIFT, details={"shift_id": order.shift_id})


# --- units ------------------------------------------------------------------------------------------

def _fresh_lines(order: Order) -> list[OrderLine]:
    """The order's lines and their allocations as committed now (read after the order lock)."""
    lines = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.id)
                               .execution_options(populate_existing=True)).all()
    db.session.scalars(select(Allocation).where(Allocation.order_line_id.in_([line.id for line in lines]))
                       .execution_options(populate_existing=True)).all()
    return list(lines)


def _checked(order: Order, requests: Sequence[RefundRequest]) -> dict[int, OrderLine]:
    """The order's lines by id, once every request names one of them and at most its units still sold."""
    lines = {line.id: line for line in _fresh_lines(order)}
    for request in requests:
        line = lines.get(request.line_id)
        if line is None:
            raise NotFound(f"Order {order.id} has no line {request.line_id}.", code=OrderCode.ORDER_LINE_NOT_FOUND,
                           details={"line_id": request.line_id})
        if request.quantity > line.units_still_sold:
            raise Conflict(f"Line {line.id} has only {line.units_still_sold} units still sold.",
                           code=OrderCode.REFUND_EXCEEDS_SOLD,
                           details={"line_id": line.id, "requested": request.quantity,
                                    "refundable": line.units_still_sold})
    return lines


def _refund_amount(order: Order, requests: Sequence[RefundRequest]) -> int:
    """What refunding `requests` gives back, once each is of units still sold (`_checked`) and their worth is still
    refundable (`refund_exceeds_paid` 409: amount refunds at the provider took money but fewer units than it is
    worth): what a refund and an after-sales request are both held to."""
    lines = _checked(order, requests)
    amount = sum(request.quantity * lines[request.line_id].unit_price_fen for request in requests)
    refundable = refundable_fen(order)
    if amount > refundable:
        raise Conflict(f"Only {refundable} fen of order {order.id} is still refundable.",
                       code=OrderCode.REFUND_EXCEEDS_PAID, details={"amount_fen": amount, "refundable_fen": refundable})
    return amount


def refund_units(*, order: Order, refund: Refund, requests: Sequence[RefundRequest],
                 occurred_at: datetime) -> list[OutboxEvent]:
    """Give back units of the locked order's lines for `refund`: allocations in reverse order, stock for
    resellable units, a refund line and a `line_refunded` event per line; the events."""
    return _release_units(order=order, refund=refund, held=_take_units(order, refund, requests),
                          occurred_at=occurred_at)


def _take_units(order: Order, refund: Refund, requests: Sequence[RefundRequest]) -> list[dict]:
    """Take units of the locked order's lines off their allocations (reverse order) for `refund`, with a refund line
    each; the `line_refunded` events still to write (line id, amount, payload)."""
    lines = _checked(order, requests)
    held = []
    for request in requests:
        line, left = lines[request.line_id], request.quantity
        taken: dict[int, int] = {}
        touched = []
        for allocation in sorted(line.allocations, key=lambda a: a.id, reverse=True):
            if left == 0:
                break
            if allocation.state != "allocated" or allocation.refunded == allocation.quantity:
                continue
            units = min(allocation.quantity - allocation.refunded, left)
            allocation.refunded += units
            taken[allocation.id] = units
            touched.append(allocation)
            left -= units
        if left:
            raise Conflict(f"Line {line.id} has fewer allocated units than it sold.",
                           code=OrderCode.REFUND_EXCEEDS_SOLD,
                           details={"line_id": line.id, "requested": request.quantity,
                                    "refundable": request.quantity - left})
        line.refunded_quantity += request.quantity
        amount = request.quantity * line.unit_price_fen
        db.session.add(RefundLine(refund_id=refund.id, order_line_id=line.id, quantity=request.quantity,
                                  amount_fen=amount, resellable=request.resellable))
        held.append({"line_id": line.id, "amount_fen": amount,
                     "payload": {"unit_price_fen": line.unit_price_fen, "quantity": request.quantity,
                                 "resellable": request.resellable,
                                 "allocations": allocation_payload(touched, quantities=taken)}})
    db.session.flush()
    return held


def _release_units(*, order: Order, refund: Refund, held: list[dict], occurred_at: datetime) -> list[OutboxEvent]:
    """Once the money went back: resellable units back on the shelf and the held `line_refunded` events (and an
    amount refund's `refund_remainder`) written."""
    events = []
    for item in held:
        if "remainder_fen" in item:
            events.append(record_event(kind="refund_remainder", order=order, refund=refund,
                                       amount_fen=item["remainder_fen"], occurred_at=occurred_at,
                                       payload={"refund_amount_fen": refund.amount_fen}))
            continue
        if item["payload"]["resellable"]:
            for portion in item["payload"]["allocations"]:
                _put_back(order, portion)
        events.append(record_event(kind="line_refunded", order=order, line=db.session.get(OrderLine, item["line_id"]),
                                   refund=refund, amount_fen=item["amount_fen"], occurred_at=occurred_at,
                                   payload=item["payload"]))
    return events


# the units of a lot that pending refunds hold (their `held_events` name each allocation's units), per dialect
_HELD_UNITS = {
    "postgresql": "(SELECT COALESCE(SUM((p ->> 'quantity')::int), 0) FROM refunds r "
                  "CROSS JOIN LATERAL json_array_elements(CASE WHEN json_typeof(r.held_events) = 'array' "
                  "THEN r.held_events ELSE '[]'::json END) e "
                  "CROSS JOIN LATERAL json_array_elements(CASE WHEN json_typeof(e -> 'payload' -> 'allocations') "
                  "= 'array' THEN e -> 'payload' -> 'allocations' ELSE '[]'::json END) p "
                  "WHERE r.status = 'pending' AND (p ->> 'lot_id')::int = {lot_id})",
    "sqlite": "(SELECT COALESCE(SUM(json_extract(p.value, '$.quantity')), 0) FROM refunds r, "
              "json_each(r.held_events) e, json_each(e.value, '$.payload.allocations') p "
              "WHERE r.status = 'pending' AND json_extract(p.value, '$.lot_id') = {lot_id})",
}


def units_held_by_pending_refunds(lot_id: int) -> ColumnElement[int]:
    """A lot's units that refunds pending at the provider took off their lines: no longer sold, not yet back on the
    shelf, and sold again if the refund fails, so no stocktake may find them meanwhile (`inventory.restock`)."""
    return literal_column(_HELD_UNITS[db.session.get_bind().dialect.name].format(lot_id=int(lot_id)), Integer)


def _put_back(order: Order, portion: dict) -> None:
    """Resellable units of a refund back on their allocation's shelf, but those a stocktake found there while the
    refund was pending at the provider (before `units_held_by_pending_refunds` counted them, `found` could): the lot
    never holds more than its quantity, and a refund the provider made still completes."""
    try:
        inventory.restock(location_id=portion["location_id"], lot_id=portion["lot_id"], quantity=portion["quantity"])
    except Conflict as exc:
        if exc.code != CatalogCode.LOT_QUANTITY_EXCEEDED:
            raise
        if exc.details["restorable"]:
            inventory.restock(location_id=portion["location_id"], lot_id=portion["lot_id"],
                              quantity=exc.details["restorable"])
        log.warning("refund of order %s: %s of %s resellable units of lot %s were on hand already (found meanwhile)",
                    order.id, portion["quantity"] - exc.details["restorable"], portion["quantity"], portion["lot_id"])


def _give_back_units(refund: Refund) -> None:
    """Undo `_take_units` of a refund the provider refused: its units are sold (and allocated) again."""
    for item in refund.held_events or []:
        if "line_id" not in item:  # an amount refund's remainder: no units
            continue
        line = db.session.get(OrderLine, item["line_id"])
        line.refunded_quantity -= item["payload"]["quantity"]
        for portion in item["payload"]["allocations"]:
            db.session.get(Allocation, portion["allocation_id"]).refunded -= portion["quantity"]
    refund.held_events = None
    db.session.flush()


def _close_if_fully_refunded(order: Order, *, actor_id: int | None, reason: str) -> None:
    """Move the order to `refunded` once no line has units still sold, or once its whole payment was refunded (amount
    refunds below a unit's price leave units sold in the ledger, DESIGN.md, but the buyer has had all the money
    back: nothing more is handed over, shipped or refunded)."""
    fully = all(line.units_still_sold == 0 for line in order.lines) or refundable_fen(order) == 0
    if fully and can_transition(order, "refunded"):
        transition(order, "refunded", actor_id=actor_id, reason=clip(reason, REMARK_MAX))


def _decide_open_request(order: Order, refund: Refund | None, *, actor_id: int | None) -> None:
    """The order's open after-sales request, once refunds made otherwise (staff, an admin, the provider's dashboard)
    left none of the units it asks for sold, or gave the whole payment back (amount refunds whose remainders leave
    units sold, DESIGN.md): approved with the refund that did (`refund`; None: the order's last one that succeeded,
    once a refund pending meanwhile failed), so its consumer sees the outcome on the order. A request with units
    still to refund, and money to refund them with, stays open; its approval refunds those (`_left_of`)."""
    request = db.session.scalar(select(AfterSalesRequest).where(AfterSalesRequest.order_id == order.id,
                                                                AfterSalesRequest.status == "open"))
    if request is None:
        return
    units_left = any(_left_of(request, order.lines).values())  # the lines the refund just changed
    if units_left and refundable_fen(order) > 0:
        return
    refund = refund or db.session.scalar(select(Refund).where(Refund.order_id == order.id,
                                                              Refund.status == "succeeded",
                                                              Refund.source != "unallocated")
                                         .order_by(Refund.id.desc()).limit(1))
    request.status, request.refund_id = "approved", refund.id
    request.decision_reason = (f"已由退款 #{refund.id} 退回全部货款。" if units_left  # shown to its consumer
                               else f"已由退款 #{refund.id} 退回所申请的商品。")
    request.decided_by, request.decided_at = actor_id, utcnow()


def _till_shift_id(order: Order, amount_fen: int) -> int:
    """The open shift a counter refund (cash or card) is paid out of: the store's (the sale's own while it is open),
    held open until this refund commits (409 `no_open_shift`: money leaving a till outside any shift would be in no
    cash-up); a cash refund only if its drawer holds the amount (409 `till_cash_short`)."""
    hold_till(store_id=order.store_id)
    shift_id = db.session.scalar(select(Shift.id).where(Shift.store_id == order.store_id,  # one at most
                                                        Shift.closed_at.is_(None)))
    if shift_id is None:
        raise Conflict(f"Store {order.store_id} has no open shift: open one to pay this refund out of its till.",
                       code=OrderCode.NO_OPEN_SHIFT, details={"store_id": order.store_id})
    if order.payment_method == "cash":
        check_cash_in_till(shift_id=shift_id, amount_fen=amount_fen)
    return shift_id


def _intent_of(order_id: int) -> str:
    """The PaymentIntent of the order's succeeded payment (`payment_not_found` 409 if it has none)."""
    intent_id = db.session.scalar(select(Payment.intent_id).where(Payment.order_id == order_id,
                                                                  Payment.status == "succeeded")
                                  .order_by(Payment.id.desc()).limit(1))
    if intent_id is None:
        raise Conflict(f"Order {order_id} has no succeeded payment to refund.", code=OrderCode.PAYMENT_NOT_FOUND)
    return intent_id


def refund_key(refund: Refund) -> str:
    """The provider idempotency key of a refund, `refund-<id>@…` (`provider_key`: the same on every attempt, so Stripe
    refunds it once, and no other database's refund of that id)."""
    return provider_key(f"refund-{refund.id}", refund.created_at)


def _refund_pending(order: Order) -> bool:
    """Whether a refund of the order's units is still pending at the provider: the units it holds may yet be sold
    again (it fails), so no refund that ends meanwhile decides from them."""
    return db.session.scalar(select(Refund.id).where(Refund.order_id == order.id, Refund.status == "pending",
                                                     Refund.source != "unallocated").limit(1)) is not None


def _refunded(order: Order, refund: Refund, events: list[OutboxEvent], *, actor_id: int | None) -> None:
    """A refund whose money went back, its events written: unless another refund of the order is still pending (its
    own end decides then), an open after-sales request it covers decided and the order closed if nothing is left
    sold; the buyer told (a consumer's: a counter sale's customer has no account)."""
    refund.outbox_event_ids = [event.id for event in events]
    db.session.flush()
    if not _refund_pending(order):
        if refund.source != "after_sales":
            _decide_open_request(order, refund, actor_id=actor_id)
        _close_if_fully_refunded(order, actor_id=actor_id, reason=refund.reason)
    if order.consumer_id is not None:
        notify(kind="refund_made", order_id=order.id)


def _complete(order: Order, refund: Refund, provider_refund_id: str) -> None:
    """A pending refund the provider made: its id stored, its units' stock and events released."""
    refund.status, refund.provider_refund_id, refund.provider_status = "succeeded", provider_refund_id, "succeeded"
    events = _release_units(order=order, refund=refund, held=refund.held_events or [], occurred_at=utcnow())
    refund.held_events = None
    _refunded(order, refund, events, actor_id=refund.created_by)


def return_key(intent_id: str, attempt: int = 0) -> str:
    """The idempotency key of the return of a payment that could not be allocated, at its `attempt`: one return per
    intent, whose id is unique, and a new key only for an attempt after the provider refused the one before."""
    return f"{intent_id}-returned" + (f"-{attempt}" if attempt else "")


def is_return_key(key: str | None, intent_id: str) -> bool:
    """Whether `key` is the key of an attempt of the return of `intent_id`."""
    stem = return_key(intent_id)
    return key == stem or ((key or "").startswith(f"{stem}-") and key[len(stem) + 1:].isdigit())


def _provider_call(refund: Refund) -> tuple[str, str]:
    """The PaymentIntent a pending refund is asked of and its idempotency key: a returned payment's own intent
    (`return_key`), else the order's succeeded payment's (`refund_key`)."""
    if refund.payment_id is not None:
        intent_id = db.session.scalar(select(Payment.intent_id).where(Payment.id == refund.payment_id))
        return intent_id, return_key(intent_id, refund.attempt)
    return _intent_of(refund.order_id), refund_key(refund)


def _returns_of(payment: Payment) -> tuple[int, list[Refund]]:
    """What a payment that could not be allocated brought in (its `payment_unallocated` event), and the refunds
    returning it as committed now, oldest first: the shop's own return (made with that event), those made at the
    provider before it (`_at_dashboard`) and the shop's returns of the parts of those that failed (`_top_up_return`)."""
    received = next(event.amount_fen for event in db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.order_id == payment.order_id, OutboxEvent.kind == "payment_unallocated"))
        if event.payload.get("intent_id") == payment.intent_id)
    return received, list(db.session.scalars(select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id)
                                             .execution_options(populate_existing=True)))


def _returned_at_provider(listed: list[dict], intent_id: str) -> list[dict]:
    """The refunds the provider lists of an intent other than our returns (any attempt's key: its dashboard's), that
    gave or are giving money back: each takes part of the payment our return no longer can."""
    return [refund for refund in listed
            if isinstance(refund.get("id"), str) and isinstance(refund.get("amount"), int) and refund["amount"] > 0
            and not is_return_key((refund.get("metadata") or {}).get("refund_key"), intent_id)
            and refund.get("status") not in PROVIDER_FAILED]


def _at_dashboard(refund: Refund) -> bool:
    """Whether a return of a payment is a refund made at the provider (its dashboard), not one the shop asked for."""
    return refund.reason == RETURNED_AT_PROVIDER


def _takes(refund: Refund) -> bool:
    """Whether a return of a payment takes its part of the payment: any not failed, and one the shop asked for that
    failed too (an admin settles that at Stripe); a failed refund made at the dashboard gave nothing and takes none."""
    return refund.status != "failed" or not _at_dashboard(refund)


def _made_under(listed: list[dict], key: str) -> tuple[ProviderRefund, int] | None:
    """The refund the provider lists as made under our `key` (an earlier ask whose answer was lost) and its amount: the
    answer to take, not to ask again for another amount under that key (Stripe refuses a key's reuse with other
    parameters), if any."""
    made = next((refund for refund in listed if (refund.get("metadata") or {}).get("refund_key") == key
                 and isinstance(refund.get("id"), str) and isinstance(refund.get("amount"), int)), None)
    return None if made is None else (ProviderRefund(id=made["id"], status=made.get("status")), made["amount"])


def _to_return(refund: Refund, elsewhere: list[dict]) -> int:
    """What one of our returns of a payment still gives back: what the payment brought in less what its other returns
    take (`_takes`) and what the provider refunded otherwise, as it lists those refunds now or as their events
    recorded them."""
    received, returns = _returns_of(db.session.get(Payment, refund.payment_id))
    known = {other.provider_refund_id or f"#{other.id}": other.amount_fen for other in returns
             if other.id != refund.id and _takes(other)}
    return received - sum({**known, **{other["id"]: other["amount"] for other in elsewhere}}.values())


def _unasked(returns: Sequence[Refund]) -> Refund | None:
    """The return of a payment not yet made at the provider (pending, no provider id: it asks for what is left when
    it is asked), if any: at most one at a time."""
    return next((refund for refund in returns if refund.status == "pending" and refund.provider_refund_id is None),
                None)


def _top_up_return(order: Order, payment_id: int) -> None:
    """Once no return of a payment is waiting to be asked, a refund made at the dashboard that failed after it cut
    our return is returned anew: a pending return of the part no return takes (`_takes`), under the key of the
    payment's next attempt (`return_key`), asked of the provider after commit and settled as any; none if nothing
    is missing, so a replayed or late event adds none."""
    payment = db.session.get(Payment, payment_id)
    received, returns = _returns_of(payment)
    missing = received - sum(refund.amount_fen for refund in returns if _takes(refund))
    if missing <= 0 or _unasked(returns) is not None:
        return
    refund = Refund(order_id=order.id, payment_id=payment_id, amount_fen=missing, method=returns[0].method,
                    reason=RETURNED_AGAIN, source="unallocated", status="pending",
                    attempt=max(refund.attempt for refund in returns) + 1)
    db.session.add(refund)
    db.session.flush()
    after_commit(lambda refund_id=refund.id: queue_settle(refund_id))
    log.warning("payment %s of order %s: %s fen a dashboard refund failed to give back is returned anew (refund %s)",
                payment.intent_id, order.id, missing, refund.id)


def record_return_at_provider(*, order: Order, payment_id: int, provider_refund_id: str, amount_fen: int,
                              status: str | None, occurred_at: datetime) -> None:
    """A refund made at the provider (its dashboard) of a payment that could not be allocated, before our return of
    it: part of the return, with its own `payment_returned` event (one not yet final held pending, its event written
    when it succeeds), and our return, still to be asked, reduced to what is left (none: done), so the returns add up
    to exactly the payment; known already, nothing; dated when the provider made it (`not_before` the payment). One
    beyond what is left of the payment is logged as an error, to settle at Stripe."""
    payment = db.session.get(Payment, payment_id)
    received, returns = _returns_of(payment)
    if any(refund.provider_refund_id == provider_refund_id for refund in returns):
        return
    unasked = _unasked(returns)
    left = received - sum(refund.amount_fen for refund in returns
                          if refund is not unasked and refund.status != "failed")
    if amount_fen > left:
        log.error("provider refund %s of %s fen of returned payment %s of order %s is more than the %s fen left of "
                  "it: settle it at Stripe", provider_refund_id, amount_fen, payment.intent_id, order.id, left)
        return
    final = status in PROVIDER_SUCCEEDED
    returned = Refund(order_id=order.id, payment_id=payment_id, provider_refund_id=provider_refund_id,
                      amount_fen=amount_fen, method=returns[0].method, reason=RETURNED_AT_PROVIDER,
                      source="unallocated",
                      status="succeeded" if final else "pending", provider_status=status or "succeeded")
    db.session.add(returned)
    db.session.flush()
    if final:
        event = record_event(kind="payment_returned", order=order, refund=returned,
                             occurred_at=not_before(occurred_at, order.created_at, payment.succeeded_at),
                             amount_fen=amount_fen,
                             payload={"intent_id": payment.intent_id, "provider_refund_id": provider_refund_id})
        returned.outbox_event_ids = [event.id]
    if unasked is not None:
        unasked.amount_fen = left - amount_fen
        if unasked.amount_fen == 0:  # the provider gave it all back: our return has nothing left to ask
            unasked.status = "succeeded"
    db.session.flush()
    log.info("payment %s of order %s: %s fen returned at the provider (%s)", payment.intent_id, order.id, amount_fen,
             provider_refund_id)


def settle_return(*, order: Order, payment_id: int, provider_refund_id: str, amount_fen: int,
                  status: str | None, key: str) -> None:
    """Our return of a payment, named by its key (`key`: its attempt's) in a provider event before its own answer
    came: of the amount the provider made it, settled as the provider says it stands."""
    payment = db.session.get(Payment, payment_id)
    ours = next((refund for refund in _returns_of(payment)[1]
                 if not _at_dashboard(refund) and return_key(payment.intent_id, refund.attempt) == key), None)
    if ours is not None and ours.status == "pending":
        ours.amount_fen = amount_fen
        _settle(order, ours, ProviderRefund(id=provider_refund_id, status=status or "succeeded"))


def _complete_return(order: Order, refund: Refund, provider_refund_id: str) -> None:
    """A return of a payment the provider made: its id stored, the `payment_returned` event written and the buyer
    told (their money went back as any refund's)."""
    intent_id = db.session.scalar(select(Payment.intent_id).where(Payment.id == refund.payment_id))
    refund.status, refund.provider_refund_id, refund.provider_status = "succeeded", provider_refund_id, "succeeded"
    event = record_event(kind="payment_returned", order=order, refund=refund, occurred_at=utcnow(),
                         amount_fen=refund.amount_fen,
                         payload={"intent_id": intent_id, "provider_refund_id": provider_refund_id})
    refund.outbox_event_ids = [event.id]
    db.session.flush()
    notify(kind="refund_made", order_id=order.id)
    log.info("payment %s of order %s returned (%s)", intent_id, order.id, provider_refund_id)


def _fail(refund: Refund, *, status: str, provider_refund_id: str | None) -> None:
    """A pending refund the provider refused, or made and then failed or canceled: no money went back, so its
    units are sold again and the after-sales request it decided is open again, or decided by the refunds that ended
    while it was pending, if they cover it (a return that failed is logged as an error, to settle at Stripe)."""
    if refund.source == "unallocated" and _at_dashboard(refund):
        log.warning("provider refund %s of payment %s of order %s, part of its return, is %s: that part is returned "
                    "anew", refund.provider_refund_id, refund.payment_id, refund.order_id, status)
    elif refund.source == "unallocated":
        log.error("provider refused to return payment %s of order %s (%s): settle it at Stripe", refund.payment_id,
                  refund.order_id, status)
    else:
        log.warning("provider refund %s of order %s is %s: its units are sold again", refund.id, refund.order_id,
                    status)
    _give_back_units(refund)
    refund.status, refund.provider_status = "failed", status
    refund.provider_refund_id = provider_refund_id or refund.provider_refund_id
    _reopen_request(refund)
    db.session.flush()
    order = db.session.get(Order, refund.order_id)  # locked by the caller
    if refund.source != "unallocated" and not _refund_pending(order):  # refunds that ended meanwhile decide now
        _decide_open_request(order, None, actor_id=None)


def _reopen_request(refund: Refund) -> None:
    """The after-sales request a failed refund decided (its approval, or a refund that covered it) is open again, for
    staff to decide anew: its consumer got no money back."""
    request = db.session.scalar(select(AfterSalesRequest).where(AfterSalesRequest.refund_id == refund.id,
                                                                AfterSalesRequest.status == "approved"))
    if request is not None:
        request.status, request.refund_id, request.decided_by, request.decided_at = "open", None, None, None
        request.decision_reason = f"退款 #{refund.id} 未能在支付渠道完成，申请已重新打开，等待处理。"


def _settle(order: Order, refund: Refund, answer: ProviderRefund) -> None:
    """Record what the provider says of a pending refund: succeeded completes it, failed or canceled fails it, and
    anything else (pending, requires_action) keeps it pending under the provider's id, with no money event yet; a
    payment's return then returns anew what a failed dashboard refund left (`_top_up_return`)."""
    if answer.status in PROVIDER_FAILED:
        _fail(refund, status=answer.status, provider_refund_id=answer.id)
    elif answer.status in PROVIDER_SUCCEEDED and refund.source == "unallocated":
        _complete_return(order, refund, answer.id)
    elif answer.status in PROVIDER_SUCCEEDED:
        _complete(order, refund, answer.id)
    else:
        refund.provider_refund_id, refund.provider_status = answer.id, answer.status
        db.session.flush()
    if refund.source == "unallocated":
        _top_up_return(order, refund.payment_id)


def settle_refund(*, refund_id: int) -> Refund:
    """Ask the provider, with no lock held, to make a pending refund (`_provider_call`'s intent and key) or, made
    already, how it stands; then record the outcome under the order lock (`_settle`; refused: failed). No answer, or
    the shop's key refused (logged as an error, for an operator to fix), leaves it pending, to ask again with the same
    key; the refund."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "pending":
        return refund
    order_id, amount_fen, made, attempt = refund.order_id, refund.amount_fen, refund.provider_refund_id, refund.attempt
    answer = refused = None
    elsewhere: list[dict] = []
    try:
        if made is not None:
            answer = get_provider().retrieve_refund(refund_id=made)
        else:
            intent_id, key = _provider_call(refund)
            if refund.source == "unallocated":  # only what the provider has not refunded already is returned
                listed = get_provider().list_refunds(intent_id=intent_id)
                elsewhere = _returned_at_provider(listed, intent_id)
                answer, amount_fen = _made_under(listed, key) or (None, _to_return(refund, elsewhere))
            if answer is None and amount_fen > 0:
                answer = get_provider().refund(intent_id=intent_id, amount_fen=amount_fen, idempotency_key=key)
    except RefundRefused as exc:
        refused = str(exc)[:24] or "refused"
    except AppError:
        raise
    except Exception as exc:  # noqa: BLE001 - no answer, or the key refused: pending, asked again with the same key
        _back_off(refund, exc)
        return refund
    order = lock_order(order_id)
    for other in elsewhere:
        record_return_at_provider(order=order, payment_id=refund.payment_id, provider_refund_id=other["id"],
                                  amount_fen=other["amount"], status=other.get("status"),
                                  occurred_at=from_timestamp(other.get("created")) or utcnow())
    db.session.refresh(refund)
    refund.failed_attempts, refund.retry_at = 0, None  # the provider answered: no more pauses
    if refund.status != "pending" or refund.attempt != attempt or (answer is None and refused is None):
        return refund  # settled or moved on meanwhile (a retry, the sweeper, or the provider's event), or not asked
    refund.amount_fen = amount_fen
    if answer is None and refund.source == "unallocated" and refused == MORE_THAN_LEFT \
            and refund.attempt + 1 - _first_attempt(refund) < RETURN_ATTEMPTS:
        _ask_return_again(refund, refused)
    elif answer is None:
        _fail(refund, status=refused, provider_refund_id=None)
        if refund.source == "unallocated":
            _top_up_return(order, refund.payment_id)
    else:
        _settle(order, refund, answer)
    return refund


def retry_pause(failures: int) -> timedelta:
    """How long a refund waits after `failures` failed attempts in a row: RESETTLE_AFTER, doubled at each, at most
    RETRY_MAX_PAUSE."""
    return min(RESETTLE_AFTER * 2 ** min(failures - 1, 12), RETRY_MAX_PAUSE)


def _back_off(refund: Refund, exc: Exception) -> None:
    """A pending refund whose attempt failed: not asked again before its pause (`retry_pause`, on the row, so a restart
    keeps it), with one log line per attempt naming the error's class, never its message (which may quote the key):
    an error for an operator naming the key's mode when the provider refused the shop's key, else a warning."""
    refund.failed_attempts += 1
    pause = retry_pause(refund.failed_attempts)
    refund.retry_at = utcnow() + pause
    db.session.flush()
    minutes = pause // timedelta(minutes=1)
    if isinstance(exc, KeyRefused):
        log.error("provider refund %s of order %s: the payment provider refused the shop's %s-mode API key (%s: it "
                  "lacks the permission to refund, or is not valid); nothing was refunded, it stays pending and is "
                  "asked again in %d min (refusal %d in a row): fix the key", refund.id, refund.order_id,
                  api_key_mode(), exc, minutes, refund.failed_attempts)
    else:
        log.warning("provider refund %s of order %s: no answer (%s); it stays pending and is asked again in %d min "
                    "(attempt %d in a row)", refund.id, refund.order_id, exc.__class__.__name__, minutes,
                    refund.failed_attempts)


def _first_attempt(refund: Refund) -> int:
    """The attempt a return of a payment started at: the one after the last attempt of the payment's returns the shop
    made before it (`_top_up_return` numbers on from them, so every attempt has its own key), 0 for the first."""
    last = db.session.scalar(select(func.max(Refund.attempt)).where(
        Refund.payment_id == refund.payment_id, Refund.id < refund.id, Refund.reason != RETURNED_AT_PROVIDER))
    return 0 if last is None else last + 1


def _ask_return_again(refund: Refund, refused: str) -> None:
    """A return the provider refused as more than the payment has left (its dashboard refunded part of it since we
    listed its refunds): kept pending at its next attempt, for the sweeper to ask, under that attempt's key, for what
    the provider's refunds then leave; the refund at the dashboard is reconciled as any."""
    refund.attempt, refund.provider_status = refund.attempt + 1, refused
    db.session.flush()
    log.warning("provider refused to return %s fen of payment %s of order %s (%s): asked again for what is left",
                refund.amount_fen, refund.payment_id, refund.order_id, refused)


def requeue_pending_refunds() -> int:
    """Sweeper: queue the settling of refunds still pending RESETTLE_AFTER after they were made or last queued (one
    whose last attempt failed: not before its `retry_at`), the longest waiting first, so that more than
    SWEEP_BATCH pending refunds are each asked about in turn; how many."""
    now = utcnow()
    waiting = func.coalesce(Refund.asked_at, Refund.created_at)
    due = db.session.scalars(select(Refund.id).where(Refund.status == "pending", waiting < now - RESETTLE_AFTER,
                                                     or_(Refund.retry_at.is_(None), Refund.retry_at <= now))
                             .order_by(waiting, Refund.id).limit(SWEEP_BATCH)
                             .with_for_update(skip_locked=True)).all()
    if due:
        db.session.execute(update(Refund).where(Refund.id.in_(due)).values(asked_at=now))
    for refund_id in due:
        after_commit(lambda refund_id=refund_id: queue_settle(refund_id))
    return len(due)


def queue_settle(refund_id: int) -> None:
    """Send the settling task of one pending refund (after the transaction that made it, or the sweeper's)."""
    from orders.payments.tasks import settle_refund_task

    settle_refund_task.delay(refund_id)


def _same_request(refund: Refund, requests: Sequence[RefundRequest], reason: str, actor: User,
                  key: tuple[str, str] | None) -> bool:
    """Whether a refund is this very request again: same lines, units, shelf and reason, asked under the same
    Idempotency-Key `key` (scope, key: of a store, any of its clerks), or by the same author without one."""
    asked = sorted((r.line_id, r.quantity, r.resellable) for r in requests)
    made = sorted((line.order_line_id, line.quantity, line.resellable) for line in refund.lines)
    asker = ((refund.request_scope, refund.request_key) == key if key is not None
             else refund.created_by == actor.id and refund.request_key is None)
    return asked == made and refund.reason == reason and asker


def _made_under_key(order: Order, requests: Sequence[RefundRequest], reason: str, actor: User,
                    key: tuple[str, str] | None) -> Refund | None:
    """The refund (succeeded, or pending: asked again) that this very request, sent again with its Idempotency-Key,
    made; a refund under that key (in its scope, of any order) that is another request (another order, other lines,
    units or reason) is `idempotency_key_reused` 409: a 202 frees the key for its retry, not for a second refund."""
    if key is None:
        return None
    scope, request_key = key
    made = db.session.scalars(select(Refund).where(Refund.request_scope == scope, Refund.request_key == request_key,
                                                   Refund.status != "failed")).all()
    if any(refund.order_id != order.id or not _same_request(refund, requests, reason, actor, key)
           for refund in made):
        raise Conflict("This Idempotency-Key was used for a different request.", code=ShopCode.IDEMPOTENCY_KEY_REUSED)
    return next(iter(made), None)


def refund_keys(*, actor: User, order_id: int) -> str:
    """The scope of a refund's Idempotency-Keys: a store's sale's, its store (`store_keys`: a refund queued at the till
    and resent by another clerk is made once); an online order's, the admins' (who alone refund one: a refund resent
    by another admin after a hand-over is made once), anyone else's own; 404 outside the actor's scope."""
    order = _order_for(actor, order_id, lock=False)
    if order.store_id is not None:
        return store_keys(actor=actor, store_id=order.store_id)
    return ADMIN_KEYS if actor.role == "admin" else user_keys(actor)


def after_sales_keys(*, actor: User, request_id: int) -> str:
    """The scope of an after-sales decision's Idempotency-Keys: its order's refunds' (`refund_keys`); 404 outside the
    actor's scope."""
    return refund_keys(actor=actor, order_id=_request_for(actor, request_id).order_id)


# --- refunds ----------------------------------------------------------------------------------------

def create_refund(*, actor: User, order_id: int, lines: Sequence[RefundRequest], reason: str,
                  source: str = "staff", request_key: tuple[str, str] | None = None) -> Refund:
    """Refund units of a paid order (staff or admin, or an approved after-sales request); the refund: done, or for a
    provider refund `pending` (units held), to commit before `settle_refund`. A pending refund of the order that is
    this same request (its Idempotency-Key `request_key`: scope and key), or one with that key settled since, is
    returned again; another one is `refund_pending` 409 until it is settled."""
    order = _order_for(actor, order_id, lock=True)
    if actor.role == "consumer":
        raise NotFound(f"No order {order_id}.", code=OrderCode.ORDER_NOT_FOUND)
    made = _made_under_key(order, lines, reason, actor, request_key)
    if made is not None:  # its 202 was not final: settled since (the sweeper, the provider's event) or asked again,
        return made  # whatever happened to the store or the shift meanwhile (the first answer, not a new check)
    refuse_closed_store_staff(actor)
    if actor.role == "store_staff" and source == "staff":
        hold_till(store_id=order.store_id)  # the sale's shift judged as no close under way can change it
        _check_staff_shift(order)
    if order.status not in REFUNDABLE:
        raise Conflict(f"Order {order.id} is {order.status}: only paid orders are refunded.",
                       code=OrderCode.ORDER_NOT_REFUNDABLE, details={"status": order.status})
    pending = db.session.scalars(select(Refund).where(Refund.order_id == order.id, Refund.status == "pending",
                                                      Refund.source != "unallocated").order_by(Refund.id)).all()
    again = next((refund for refund in pending if _same_request(refund, lines, reason, actor, request_key)), None)
    if again is not None:  # a retry of a request whose provider answer was lost: settled again with its key
        return again
    if pending:
        raise Conflict(f"Order {order.id} has a refund still pending at the payment provider; retry shortly.",
                       code=OrderCode.REFUND_PENDING, details={"refund_id": pending[0].id})
    amount = _refund_amount(order, lines)
    at_provider = order.payment_method in PROVIDER_METHODS and amount > 0
    if at_provider:
        _intent_of(order.id)
    key_scope, key = request_key or (None, None)
    refund = Refund(order_id=order.id, amount_fen=amount, method=order.payment_method, reason=reason,
                    source=source, created_by=actor.id, request_scope=key_scope, request_key=key,
                    status="pending" if at_provider else "succeeded",
                    shift_id=None if order.payment_method in PROVIDER_METHODS else _till_shift_id(order, amount))
    db.session.add(refund)
    db.session.flush()
    if at_provider:  # the caller commits it, then `settle_refund` asks the provider outside the lock
        refund.held_events = _take_units(order, refund, lines)
        return refund
    events = refund_units(order=order, refund=refund, requests=lines, occurred_at=refund.created_at)
    _refunded(order, refund, events, actor_id=actor.id)
    return refund


def amount_to_units(lines: Sequence[OrderLine], amount_fen: int) -> tuple[list[RefundRequest], int]:
    """Whole units an amount refunds (DESIGN.md): lines last to first, on each min(units still sold,
    ⌊amount left / unit price⌋); the requests and the remainder below one unit."""
    left, requests = amount_fen, []
    for line in sorted(lines, key=lambda line: line.id, reverse=True):
        if line.unit_price_fen <= 0:
            continue
        units = min(line.units_still_sold, left // line.unit_price_fen)
        if units:
            requests.append(RefundRequest(line_id=line.id, quantity=units))
            left -= units * line.unit_price_fen
    return requests, left


def record_provider_refund(*, order_id: int, provider_refund_id: str, amount_fen: int, occurred_at: datetime,
                           status: str | None = None, key: str | None = None,
                           reason: str = PROVIDER_REASON) -> Refund | None:
    """Reconcile a refund made at the provider (e.g. its dashboard, or a chargeback) as it says it stands (`status`):
    None if that refund id is known, or it is our pending refund of idempotency key `key` (settled now), or it failed,
    or nothing is left to refund (logged as an error), else a refund of the whole units the amount covers (capped at
    what is still refundable), the rest a `refund_remainder` event; one not yet final is held pending, its units off
    the lines and no money event written until it succeeds; dated when the provider made it (`not_before` the order's
    payment)."""
    order = lock_order(order_id)
    known = db.session.scalar(select(Refund.id).where(Refund.provider_refund_id == provider_refund_id))
    if known is not None:
        return None
    pending = db.session.scalars(select(Refund).where(Refund.order_id == order.id, Refund.status == "pending")
                                 .execution_options(populate_existing=True)).all()
    ours = next((refund for refund in pending if key is not None and refund_key(refund) == key), None)
    if ours is not None:
        _settle(order, ours, ProviderRefund(id=provider_refund_id, status=status or "succeeded"))
        return None
    if status in PROVIDER_FAILED:  # no money went back
        return None
    refundable = refundable_fen(order)
    if amount_fen > refundable:
        log.error("provider refund %s of order %s is %s fen but only %s fen is refundable: %s", provider_refund_id,
                  order.id, amount_fen, refundable, "capped" if refundable else "not recorded: settle it at Stripe")
        amount_fen = refundable
    if amount_fen == 0:  # nothing of the order is left to give back: no refund of 0 fen for its buyer to read
        return None
    requests, remainder = amount_to_units(_fresh_lines(order), amount_fen)
    final = status in PROVIDER_SUCCEEDED
    refund = Refund(order_id=order.id, provider_refund_id=provider_refund_id, amount_fen=amount_fen,
                    method=order.payment_method, reason=reason, source="provider", provider_status=status,
                    status="succeeded" if final else "pending")
    db.session.add(refund)
    db.session.flush()
    held = _take_units(order, refund, requests) + ([{"remainder_fen": remainder}] if remainder else [])
    if not final:
        refund.held_events = held
        return refund
    events = _release_units(order=order, refund=refund, held=held,
                            occurred_at=not_before(occurred_at, order.created_at, order.paid_at))
    _refunded(order, refund, events, actor_id=None)
    return refund


def note_provider_refund(*, order_id: int, provider_refund_id: str, status: str | None) -> None:
    """Keep what the provider says of a refund known by its id: a pending one is settled (`_settle`); one already
    counted as money returned that the provider now says failed is marked and logged as a warning for an admin to
    settle with the buyer (DESIGN.md's money events have none that undoes a refund the ledger has reversed); any other
    word of a refund already final (an earlier event delivered late) changes nothing."""
    order = lock_order(order_id)
    refund = db.session.scalar(select(Refund).where(Refund.provider_refund_id == provider_refund_id)
                               .execution_options(populate_existing=True))
    if refund is None or status is None:
        return
    if refund.status == "pending":
        _settle(order, refund, ProviderRefund(id=provider_refund_id, status=status))
    elif refund.status == "succeeded" and status in PROVIDER_FAILED:
        refund.provider_status = status
        log.warning("refund %s of order %s: the provider says its refund %s %s after it was counted as money "
                    "returned; an admin must settle it with the buyer", refund.id, order_id, provider_refund_id,
                    status)
        db.session.flush()


def refundable_fen(order: Order) -> int:
    """What may still be refunded of an order: its payment less every refund of it recorded and not failed (a
    payment returned because it could not be allocated gave back money of its own, not the order's)."""
    refunded = db.session.scalar(select(func.coalesce(func.sum(Refund.amount_fen), 0))
                                 .where(Refund.order_id == order.id, Refund.status != "failed",
                                        Refund.source != "unallocated"))
    return max(order.total_fen - int(refunded), 0)


def get_refund(*, refund_id: int) -> Refund:
    """A refund by id (the caller has already been allowed its order)."""
    return db.session.get(Refund, refund_id)


def read_refund(*, actor: User, refund_id: int) -> Refund:
    """A refund of an order `actor` may see, else `refund_not_found` 404."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or not may_see_order(actor, db.session.get(Order, refund.order_id)):
        raise NotFound(f"No refund {refund_id}.", code=OrderCode.REFUND_NOT_FOUND)
    return refund


def refund_event_ids(refund: Refund) -> list[int]:
    """The ids of a refund's outbox events (its `line_refunded` events and any remainder)."""
    return list(db.session.scalars(select(OutboxEvent.id).where(OutboxEvent.refund_id == refund.id)
                                   .order_by(OutboxEvent.id)))


def list_refunds(*, actor: User, order_id: int, limit: int, cursor: str | None) -> dict:
    """A page of an order's refunds (anyone who may see the order), each with its outbox event ids (one query for
    the page's)."""
    _order_for(actor, order_id, lock=False)
    page = paginate(select(Refund).where(Refund.order_id == order_id), keys=[Refund.id], limit=limit, cursor=cursor)
    ids: dict[int, list[int]] = {refund.id: [] for refund in page["items"]}
    for refund_id, event_id in db.session.execute(select(OutboxEvent.refund_id, OutboxEvent.id)
                                                  .where(OutboxEvent.refund_id.in_(ids)).order_by(OutboxEvent.id)):
        ids[refund_id].append(event_id)
    for refund in page["items"]:
        refund.outbox_event_ids = ids[refund.id]
    return page


# --- after-sales ------------------------------------------------------------------------------------

def _completed_at(order: Order) -> datetime | None:
    """When the order was delivered or collected (its transition to its current status)."""
    return db.session.scalar(select(func.max(OrderTransition.created_at))
                             .where(OrderTransition.order_id == order.id, OrderTransition.to_status == order.status))


def _after_sales_deadline(order: Order) -> datetime:
    """Until when the order's consumer may ask for after-sales, while a request may be made now
    (`after_sales_not_allowed`, `after_sales_window_closed` or `after_sales_open` 409 otherwise: one request at a
    time, an approved one counting until its refund is settled, since a refund that fails reopens it)."""
    completed_at = _completed_at(order) if order.status in AFTER_SALES_STATUSES else None
    if completed_at is None:
        raise Conflict(f"Order {order.id} is {order.status}: after-sales needs a delivered or collected order.",
                       code=OrderCode.AFTER_SALES_NOT_ALLOWED, details={"status": order.status})
    if utcnow() - completed_at > AFTER_SALES_WINDOW:
        raise Conflict("After-sales requests are taken within 7 days of delivery or pickup.",
                       code=OrderCode.AFTER_SALES_WINDOW_CLOSED, details={"completed_at": completed_at.isoformat()})
    undecided = (AfterSalesRequest.status == "open") | ((AfterSalesRequest.status == "approved")
                                                       & (Refund.status == "pending"))  # `_fail` may reopen it
    if db.session.scalar(select(AfterSalesRequest.id).outerjoin(Refund, Refund.id == AfterSalesRequest.refund_id)
                         .where(AfterSalesRequest.order_id == order.id, undecided).limit(1)) is not None:
        raise Conflict(f"Order {order.id} already has an open after-sales request, or one whose refund is still "
                       "pending at the payment provider.", code=OrderCode.AFTER_SALES_OPEN)
    return completed_at + AFTER_SALES_WINDOW


def after_sales_until(*, actor: User, order_id: int) -> datetime | None:
    """Until when `actor` may ask for after-sales on the order, or None while a request would be refused."""
    order = _order_for(actor, order_id, lock=False)
    if actor.role != "consumer":
        return None
    try:
        return _after_sales_deadline(order)
    except Conflict:
        return None


def request_after_sales(*, actor: User, order_id: int, lines: Sequence[RefundRequest], reason: str,
                        photo_url: str | None) -> AfterSalesRequest:
    """A consumer asks for a refund of delivered or collected units, within 7 days, of no more than is still
    refundable (as its approval would be held to); the open request."""
    order = _order_for(actor, order_id, lock=True)
    if actor.role != "consumer":
        raise Forbidden("Only the consumer who placed the order asks for after-sales.")
    _after_sales_deadline(order)
    _refund_amount(order, lines)  # what its approval would refuse is refused now
    request = AfterSalesRequest(order_id=order.id, reason=reason, photo_url=photo_url,
                                lines=[{"line_id": line.line_id, "quantity": line.quantity} for line in lines],
                                refunds_before=db.session.scalar(select(func.coalesce(func.max(Refund.id), 0))
                                                                 .where(Refund.order_id == order.id)))
    db.session.add(request)
    db.session.flush()
    return request


def _request_for(actor: User, request_id: int) -> AfterSalesRequest:
    """An after-sales request of an order `actor` may see, else `after_sales_not_found` 404."""
    request = db.session.get(AfterSalesRequest, request_id)
    if request is None or not may_see_order(actor, db.session.get(Order, request.order_id)):
        raise NotFound(f"No after-sales request {request_id}.", code=OrderCode.AFTER_SALES_NOT_FOUND)
    return request


def read_after_sales(*, actor: User, request_id: int) -> AfterSalesRequest:
    """An after-sales request of an order `actor` may see, else `after_sales_not_found` 404."""
    return _request_for(actor, request_id)


def _open_request(actor: User, request_id: int) -> AfterSalesRequest:
    """The request, re-read under its order's lock, if still open (`after_sales_decided` 409 otherwise)."""
    request = _request_for(actor, request_id)
    lock_order(request.order_id)
    refuse_closed_store_staff(actor)
    db.session.refresh(request)
    if request.status != "open":
        raise Conflict(f"After-sales request {request.id} is already {request.status}.",
                       code=OrderCode.AFTER_SALES_DECIDED,
                       details={"status": request.status})
    return request


def _left_of(request: AfterSalesRequest, lines: Sequence[OrderLine]) -> dict[int, int]:
    """Per line a request asks for, the units its approval refunds: those asked less those refunded since it was made
    (a refund by staff, an admin or the provider meanwhile counts toward it; since: after its `refunds_before`), and
    no more than its order's `lines` still sell."""
    since = dict(db.session.execute(
        select(RefundLine.order_line_id, func.sum(RefundLine.quantity)).join(Refund, Refund.id == RefundLine.refund_id)
        .where(Refund.order_id == request.order_id, Refund.status != "failed", Refund.id > request.refunds_before)
        .group_by(RefundLine.order_line_id)).all())
    by_id = {line.id: line for line in lines}
    return {asked["line_id"]: max(0, min(asked["quantity"] - int(since.get(asked["line_id"], 0)),
                                         by_id[asked["line_id"]].units_still_sold))
            for asked in request.lines}


def approve_after_sales(*, actor: User, request_id: int, resellable: bool) -> AfterSalesRequest:
    """Approve an open request: its units are refunded through the same service as any refund."""
    request = _open_request(actor, request_id)  # its order locked: its lines as committed now
    left = _left_of(request, _fresh_lines(db.session.get(Order, request.order_id)))
    refund = create_refund(actor=actor, order_id=request.order_id, source="after_sales",
                           reason=clip(f"After-sales request {request.id}: {request.reason}", REMARK_MAX),
                           lines=[RefundRequest(line_id=line_id, quantity=quantity, resellable=resellable)
                                  for line_id, quantity in left.items() if quantity])
    request.status, request.refund_id = "approved", refund.id
    request.decided_by, request.decided_at = actor.id, utcnow()
    db.session.flush()
    return request


def reject_after_sales(*, actor: User, request_id: int, reason: str) -> AfterSalesRequest:
    """Reject an open request with a reason the consumer sees."""
    request = _open_request(actor, request_id)
    request.status, request.decision_reason = "rejected", reason
    request.decided_by, request.decided_at = actor.id, utcnow()
    db.session.flush()
    return request


def withdraw_after_sales(*, actor: User, request_id: int) -> AfterSalesRequest:
    """The consumer withdraws their own open request (`withdrawn`, by them, now); its units may be asked for again."""
    if actor.role != "consumer":
        raise Forbidden("Only the consumer who asked withdraws an after-sales request.")
    request = _open_request(actor, request_id)
    request.status, request.decided_by, request.decided_at = "withdrawn", actor.id, utcnow()
    db.session.flush()
    return request


def list_after_sales(*, actor: User, order_id: int, limit: int, cursor: str | None) -> dict:
    """A page of an order's after-sales requests (its consumer, its store's staff, admins)."""
    _order_for(actor, order_id, lock=False)
    return paginate(select(AfterSalesRequest).where(AfterSalesRequest.order_id == order_id),
                    keys=[AfterSalesRequest.id], limit=limit, cursor=cursor)
