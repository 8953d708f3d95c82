"""Payment events: verified and stored once by the webhook, processed idempotently by a task, swept if lost.

`receive_event` is the one handler of a signed Stripe-format event (the webhook endpoint and the
sandbox confirm route both call it): it checks the signature (300 s tolerance) on the raw body, stores the event
once by its id (a replay, also a concurrent one, inserts nothing), keeping only what processing reads of it
(`stored_event`: no billing details; of a type the shop ignores, its id and type), and, after the commit, wakes the
drain (`orders.drain_payment_events`, `shop.wakeups`: one queued run however many events arrive
meanwhile), which processes the new events oldest first, each in its own transaction. `process_event`
takes the order lock first, then applies the event; an event that cannot be applied yet (a refund
before the payment it refunds) is `deferred` and applied right after the payment's succeeded event, so
every arrival order ends in the same state. An event the drain failed on, or whose drain was lost, is
left to the `orders.payment_events` sweeper, which re-queues it on its own (`orders.process_payment_event`), at most
MAX_ATTEMPTS times; then it is `failed`, until an operator queues it again (`flask payments requeue-failed`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import stripe
from flask import current_app
from sqlalchemy import Integer, Row, Text, bindparam, func, insert, inspect, literal_column, select, union_all, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import ColumnProperty, load_only
from sqlalchemy.sql.elements import ClauseElement

from orders.checkout.service import NOT_PAID_YET, confirm_locked_payment
from orders.errors import OrderCode
from orders.locking import lock_order
from orders.models import NEW_PAYMENT_EVENT, Order, OutboxEvent, Payment, PaymentEvent, Refund
from orders.outbox import joined_writes, record_event, take_joined
from orders.payments.provider import MAX_PAYMENT_FEN, from_timestamp, get_provider, is_timestamp, not_before
from orders.refunds.service import (
    PROVIDER_FAILED,
    is_return_key,
    note_provider_refund,
    queue_settle,
    record_provider_refund,
    record_return_at_provider,
    settle_return,
)
from shop import wakeups
from shop.auth.models import User
from shop.bodies import parse_json
from shop.db import (
    DONOR_SALES,
    SUPPLIER_SALES,
    after_commit,
    db,
    hold_sales,
    insert_new,
    lock_on_sqlite,
    new_row,
    run_core,
    utcnow,
)
from shop.errors import AppError, Conflict, NotFound
from shop.fields import without_controls

log = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_SECONDS = 300
REFUND_TYPES = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")  # data.object: a Refund
DISPUTE_TYPES = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.funds_withdrawn",
                 "charge.dispute.funds_reinstated", "charge.dispute.closed")  # data.object: a Dispute
FEE_TYPES = ("charge.succeeded", "charge.updated")  # data.object: a Charge, its fee on its balance transaction
HANDLED_TYPES = ("payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded", *REFUND_TYPES,
                 *DISPUTE_TYPES, *FEE_TYPES)
DONE = ("processed", "ignored", "failed")
TAKEN = ("succeeded", "returned")  # a payment the provider took (a returned one too: its fees stand)
REQUEUE_AFTER = timedelta(seconds=60)
MAX_ATTEMPTS = 10  # then the event is `failed` (logged as an error), not retried every minute for ever
SWEEP_BATCH = 200
# What processing reads of a handled event's `data.object` (`_intent_id_of`, `_foreign`, `_succeeded`, `_failed`,
# `_refunded`, `_record_fees`), as `_kept` cuts it: the rest, such as a charge's billing details, is not stored
KEPT_FIELDS = {"object": True, "id": True, "payment_intent": True, "amount": True, "amount_received": True,
               "currency": True, "status": True, "created": True, "reason": True, "metadata": {"refund_key": True},
               "last_payment_error": {"code": True, "decline_code": True},
               "refunds": {"data": [{"id": True, "amount": True, "created": True, "status": True,
                                     "metadata": {"refund_key": True}}]},
               "balance_transaction": True,  # a charge's (its id; `fetch_fees` adds it as a dispute lists its own)
               "balance_transactions": [{"id": True, "fee": True, "currency": True, "exchange_rate": True}]}
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                          "xaf", "xof", "xpf"})  # Stripe's currencies counted in whole units, not hundredths
MAX_FEE = 10**12  # beyond any fee of a payment Stripe can carry
UNALLOCATED_REASON = ("The payment could not be allocated (an amount other than the order's total, or the order "
                      "expired or was cancelled and its stock is gone): returned in full.")


class InvalidSignature(AppError):
    """The webhook's Stripe-Signature is missing, wrong, for another secret or too old."""

    status, code = 400, OrderCode.INVALID_SIGNATURE


class InvalidEvent(AppError):
    """A correctly signed body that is not a Stripe event."""

    status, code = 400, OrderCode.INVALID_EVENT


# Built once: a statement's construction costs about as much CPU as its execution.
_EVENTS = PaymentEvent.__table__  # the insert is Core: the ORM's bulk-insert path costs more than the statement
_STORE_ONCE = {name: insert(_EVENTS).on_conflict_do_nothing(index_elements=["event_id"]).returning(_EVENTS.c.id)
               for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))}
# what `_process` reads of an event before the order's lock (its payload only for a charge's event, then loaded): the
# lock's read loads the whole row again
_WITH_ORDER_ID = (select(PaymentEvent, Payment.order_id).outerjoin(Payment, Payment.intent_id == PaymentEvent.intent_id)
                  .options(load_only(PaymentEvent.event_id, PaymentEvent.type, PaymentEvent.intent_id,
                                     PaymentEvent.status)))
_EVENT_WITH_ORDER_ID = _WITH_ORDER_ID.where(PaymentEvent.id == bindparam("event_id"))
_NEXT_NEW_EVENT = (_WITH_ORDER_ID.where(NEW_PAYMENT_EVENT)
                   .order_by(PaymentEvent.id).limit(1).with_for_update(of=PaymentEvent, skip_locked=True))
_UNDER_LOCK = (select(PaymentEvent, Payment).outerjoin(Payment, Payment.intent_id == PaymentEvent.intent_id)
               .where((PaymentEvent.id == bindparam("event_id"))
                      | ((PaymentEvent.intent_id == bindparam("intent_id")) & (PaymentEvent.status == "deferred")))
               .order_by(PaymentEvent.created, PaymentEvent.id).execution_options(populate_existing=True))
# the order locked: a cancel and a confirm of it go one after the other (as Stripe serialises them)
_CONFIRMING = (select(Payment.amount_fen, Payment.status, Order.id, Order.consumer_id,
                      Order.status.label("order_status"))
               .join(Order, Order.id == Payment.order_id).where(Payment.intent_id == bindparam("intent_id"))
               .with_for_update(of=Order))


# --- receiving ----------------------------------------------------------------------------------------

def _moment(timestamp: object) -> datetime:
    """A Stripe Unix timestamp as an aware UTC datetime (`invalid_event` 400 if it is not one)."""
    if (moment := from_timestamp(timestamp)) is None:
        raise InvalidEvent("The event's `created` is not a Unix timestamp.")
    return moment


def _short_string(value: object, limit: int) -> str | None:
    """`value` if it is a non-empty string of at most `limit` characters and no control characters (PostgreSQL stores
    no NUL), else None."""
    return value if isinstance(value, str) and 0 < len(value) <= limit and value == without_controls(value) else None


def verify_event(*, payload: bytes, signature: str | None) -> dict:
    """The event a webhook body carries, once its Stripe signature checks out (`invalid_signature` 400)."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, current_app.config["STRIPE_WEBHOOK_SECRET"],
                                              SIGNATURE_TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise InvalidSignature("The Stripe-Signature header does not verify this body.") from exc
    try:
        event = parse_json(payload)
    except ValueError as exc:
        raise InvalidEvent(f"The body is not acceptable JSON: {exc}.") from exc
    data = event.get("data") if isinstance(event, dict) else None
    if (not isinstance(data, dict) or not isinstance(data.get("object"), dict)
            or _short_string(event.get("id"), 255) is None or _short_string(event.get("type"), 64) is None):
        raise InvalidEvent("The body is not a Stripe event (id, type, created, data.object).")
    _moment(event.get("created"))
    return event


def _kept(value: object, shape: object) -> object:
    """`value` cut down to `shape`: a dict keeps the keys a dict shape names, a list each item as a one-item list
    shape says, `True` a scalar; anything else is None (so a malformed refund entry is still counted, and skipped)."""
    if isinstance(shape, dict) and isinstance(value, dict):
        return {key: _kept(value[key], part) for key, part in shape.items() if key in value}
    if isinstance(shape, list) and isinstance(value, list):
        return [_kept(item, shape[0]) for item in value]
    return value if shape is True and not isinstance(value, dict | list) else None


def stored_event(event: Mapping) -> dict:
    """What is stored of a verified event: its id and type, and for a handled type its `created`, `livemode` and only
    the KEPT_FIELDS of its `data.object`."""
    if event["type"] not in HANDLED_TYPES:
        return {"id": event["id"], "type": event["type"]}
    mode = {"livemode": event["livemode"]} if "livemode" in event else {}
    return {"id": event["id"], "type": event["type"], "created": event["created"], **mode,
            "data": {"object": _kept(event["data"]["object"], KEPT_FIELDS)}}


def _intent_id_of(event: Mapping) -> str | None:
    """The PaymentIntent an event concerns: the object itself, or the charge's `payment_intent`."""
    obj = event["data"]["object"]
    if obj.get("object") == "payment_intent":
        return _short_string(obj.get("id"), 255)
    return _short_string(obj.get("payment_intent"), 255)


def _queue(row_id: int) -> None:
    """Send the processing task of one event (the sweeper's, after its transaction committed)."""
    from orders.payments.tasks import process_payment_event

    process_payment_event.delay(row_id)


def wake() -> None:
    """Wake the drain unless a run is queued and not yet started (after the event's transaction committed). It
    starts at once: a buyer waits for this one, and a delayed (ETA) task added some 80 ms to each payment."""
    from orders.payments.tasks import drain_payment_events

    wakeups.wake(drain_payment_events)


def receive_event(*, payload: bytes, signature: str | None) -> int | None:
    """Verify a webhook body and store its event once, queued for processing after commit; the stored row's
    id, or None for an event id already stored (a replay: nothing is written or queued)."""
    event = verify_event(payload=payload, signature=signature)
    handled = event["type"] in HANDLED_TYPES
    now = utcnow()
    values = {"provider": current_app.config["PAYMENTS"], "event_id": event["id"], "type": event["type"],
              "intent_id": _intent_id_of(event), "created": _moment(event["created"]), "payload": stored_event(event),
              "status": "pending" if handled else "ignored", "attempts": 0, "received_at": now,
              "queued_at": now if handled else None, "processed_at": None if handled else now}
    row_id = run_core(_STORE_ONCE[db.session.get_bind().dialect.name], values).scalar()
    if row_id is not None and handled:
        after_commit(wake)
    return row_id


# --- processing ---------------------------------------------------------------------------------------

def _amount(obj: Mapping, *names: str) -> int:
    """The first of `names` in `obj` that is an integer amount one payment can carry (0 to MAX_PAYMENT_FEN; 0 if none
    is): a payment's `amount_received` when it carries one, even 0, before its `amount`."""
    for name in names:
        value = obj.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PAYMENT_FEN:
            return value
    return 0


def _return_payment(*, order: Order, payment: Payment, amount_fen: int, paid_at: datetime) -> None:
    """Record a payment that could not be allocated in full and its return: a pending refund of it, asked of the
    provider once this transaction has committed (`settle_refund`: no lock is held across the call)."""
    refund = Refund(order_id=order.id, payment_id=payment.id, amount_fen=amount_fen, method="stripe",
                    reason=UNALLOCATED_REASON, source="unallocated", status="pending")
    db.session.add(refund)
    payment.status, payment.succeeded_at, payment.last_error = "returned", paid_at, None
    db.session.flush()
    record_event(kind="payment_unallocated", order=order, occurred_at=paid_at, amount_fen=amount_fen,
                 payload={"intent_id": payment.intent_id})
    after_commit(lambda refund_id=refund.id: queue_settle(refund_id))
    log.info("payment %s of order %s could not be allocated: to be returned", payment.intent_id, order.id)


def _dated(event: PaymentEvent, order: Order, payment: Payment) -> datetime:
    """When money an event of a payment made moves (a fee, a chargeback) counts: the event's `created`, but never
    before its order or that payment (`not_before`, as `_paid_at`)."""
    return not_before(event.created, order.created_at, payment.succeeded_at)


def _paid_at(event: PaymentEvent, order: Order) -> datetime:
    """When a payment counts as made: the event's `created`, but never before the order existed (a clock or a
    replayed event must not date a sale before its order, perhaps into a month already disclosed: `not_before`)."""
    return not_before(event.created, order.created_at)


def _succeeded(event: PaymentEvent, order: Order, payment: Payment) -> None:
    """A confirmed payment: the order paid and allocated, or, if that is impossible (also a second payment of an
    order already paid), the payment returned; a payment that received nothing is only logged."""
    if payment.status in ("returned", "succeeded"):  # this payment's money is already counted, or was returned
        return
    amount = _amount(event.payload["data"]["object"], "amount_received", "amount")
    if amount == 0:
        payment.last_error = "nothing_received"
        log.warning("payment event %s: intent %s succeeded but received nothing (no amount a payment can carry): "
                    "ignored", event.event_id, payment.intent_id)
        return
    paid_at = _paid_at(event, order)
    outcome = confirm_locked_payment(order=order, intent_id=payment.intent_id, amount_fen=amount, paid_at=paid_at,
                                     payment=payment)
    if outcome in ("unallocatable", "already_paid"):
        _return_payment(order=order, payment=payment, amount_fen=amount, paid_at=paid_at)
        return
    payment.status, payment.last_error = "succeeded", None
    payment.succeeded_at = payment.succeeded_at or paid_at


def _failed(event: PaymentEvent, payment: Payment) -> None:
    """A failed attempt: recorded (its error code only) while the payment is still to be made (not once it succeeded,
    was returned, or was cancelled with its order: a decline reported late changes none of them); the order stays
    pending until it expires."""
    if payment.status not in NOT_PAID_YET:
        return
    error = event.payload["data"]["object"].get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    code = _short_string(error.get("decline_code"), 200) or _short_string(error.get("code"), 200)
    payment.status, payment.last_error = "failed", code or "payment_failed"


def _listed(event: PaymentEvent) -> list[tuple[dict, datetime]]:
    """The provider refunds an event names, each with when it was made, oldest first: a Charge's listed refunds, or
    a Refund's own event's refund (one that is not a Stripe refund skipped, with a warning)."""
    obj = event.payload["data"]["object"]
    if event.type in REFUND_TYPES:
        if _short_string(obj.get("id"), 255) is None or obj.get("object") != "refund" or not _amount(obj, "amount"):
            log.warning("payment event %s is not about a Stripe refund: skipped", event.event_id)
            return []
        return [(obj, _moment(obj["created"]) if is_timestamp(obj.get("created")) else event.created)]
    listed = obj.get("refunds")
    refunds = listed.get("data") if isinstance(listed, dict) else None
    refunds = refunds if isinstance(refunds, list) else []
    valid = [r for r in refunds if isinstance(r, dict) and _short_string(r.get("id"), 255)
             and is_timestamp(r.get("created")) and _amount(r, "amount")]
    if len(valid) != len(refunds):
        log.warning("payment event %s lists refunds that are not Stripe refunds: those are skipped", event.event_id)
    return [(r, _moment(r["created"])) for r in sorted(valid, key=lambda r: (r["created"], r["id"]))]


def _refunded(event: PaymentEvent, order: Order) -> None:
    """Refunds made at the provider (e.g. its dashboard), as the event names them: each one reconciled
    (`_reconcile_refund`)."""
    for refund, occurred_at in _listed(event):
        _reconcile_refund(order, refund, occurred_at=occurred_at)


def _returned(event: PaymentEvent, order: Order, payment: Payment) -> None:
    """Refunds of a payment being returned, as the event names them: one known by its id is kept as the provider says
    it stands, the return itself (by its key) settled, and one made at the provider's dashboard counted as part of the
    return (`record_return_at_provider`)."""
    for refund, occurred_at in _listed(event):
        refund_id, status = refund["id"], _short_string(refund.get("status"), 24)
        if db.session.scalar(select(Refund.id).where(Refund.provider_refund_id == refund_id)) is not None:
            note_provider_refund(order_id=order.id, provider_refund_id=refund_id, status=status)
        elif is_return_key(_key_of(refund), payment.intent_id):
            settle_return(order=order, payment_id=payment.id, provider_refund_id=refund_id,
                          amount_fen=refund["amount"], status=status, key=_key_of(refund))
        elif status not in PROVIDER_FAILED:
            record_return_at_provider(order=order, payment_id=payment.id, provider_refund_id=refund_id,
                                      amount_fen=refund["amount"], status=status, occurred_at=occurred_at)


def _reconcile_refund(order: Order, refund: Mapping, *, occurred_at: datetime) -> None:
    """One provider refund (`id`, `amount`, `status`, `metadata`): recorded if its id is not known (ours, pending, by
    its key), else what the provider says of it kept."""
    refund_id, status = refund["id"], _short_string(refund.get("status"), 24)
    if db.session.scalar(select(Refund.id).where(Refund.provider_refund_id == refund_id)) is None:
        record_provider_refund(order_id=order.id, provider_refund_id=refund_id, amount_fen=refund["amount"],
                               occurred_at=occurred_at, status=status, key=_key_of(refund))
    else:
        note_provider_refund(order_id=order.id, provider_refund_id=refund_id, status=status)


def _key_of(refund: Mapping) -> str | None:
    """The shop's idempotency key a provider refund carries in its metadata (our refunds only), if any."""
    metadata = refund.get("metadata")
    return _short_string(metadata.get("refund_key"), 255) if isinstance(metadata, dict) else None


def _embeds_refunds(charge: Mapping) -> bool:
    """Whether a charge carries its refunds as a list of them (older API versions); from 2022-11-15 on it carries
    none, or only a field not included (null, or a list object without its data)."""
    refunds = charge.get("refunds")
    return isinstance(refunds, dict) and isinstance(refunds.get("data"), list)


def fetch_listed_refunds(event: PaymentEvent) -> None:
    """A `charge.refunded` that does not embed its refunds (`_embeds_refunds`) gets them from the provider, kept in
    its payload as an older event carried them (called before the order's lock is taken)."""
    if event.type != "charge.refunded" or not event.intent_id:
        return
    obj = event.payload["data"]["object"]
    if _embeds_refunds(obj):
        return
    listed = get_provider().list_refunds(intent_id=event.intent_id)
    kept = _kept({"refunds": {"data": listed}}, {"refunds": KEPT_FIELDS["refunds"]})
    event.payload = {**event.payload, "data": {"object": {**obj, **kept}}}
    db.session.flush()


def fetch_fees(event: PaymentEvent) -> None:
    """A charge's event naming its balance transaction gets that from the provider (its fee), kept in its payload as
    a dispute lists its own (called before the order's lock is taken)."""
    if event.type not in FEE_TYPES:
        return
    obj = event.payload["data"]["object"]
    txn_id = _short_string(obj.get("balance_transaction"), 255)
    if (txn_id is None or "balance_transactions" in obj
            or txn_id in _recorded_fees(Payment.intent_id == event.intent_id)):
        return
    txn = get_provider().retrieve_balance_transaction(balance_transaction_id=txn_id)
    kept = _kept({"balance_transactions": [txn]}, {"balance_transactions": KEPT_FIELDS["balance_transactions"]})
    event.payload = {**event.payload, "data": {"object": {**obj, **kept}}}
    db.session.flush()


def _recorded_fees(*where) -> set[str]:
    """The balance transactions whose fee is recorded for the orders of the payments `where` names (a charge is
    updated for many reasons: its balance transaction is fetched, and its fee recorded, once)."""
    return {payload.get("balance_transaction") for payload in db.session.scalars(
        select(OutboxEvent.payload).join(Payment, Payment.order_id == OutboxEvent.order_id)
        .where(OutboxEvent.kind == "processor_fee", *where))}


def _fee_in_fen(fee: int, currency: object, exchange_rate: object) -> int | None:
    """A fee in the balance's currency as fen of the charge's CNY (divided by the charge's exchange rate, to the
    nearest fen, half up), or None if it cannot be converted (no rate)."""
    if currency == "cny":
        return fee
    if isinstance(exchange_rate, bool) or not isinstance(exchange_rate, int | float) or exchange_rate <= 0:
        return None
    hundredths = Decimal(fee) * (100 if currency in ZERO_DECIMAL else 1)
    return int((hundredths / Decimal(str(exchange_rate))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _record_fees(obj: Mapping, order: Order, occurred_at: datetime) -> None:
    """Each balance transaction the object lists (a charge's, fetched; a dispute's own) with a fee not yet recorded:
    a `processor_fee` event of its worth in fen (negative: a fee given back), the platform's cost. A fee that cannot
    be converted to fen is logged as an error, to book by hand."""
    listed = obj.get("balance_transactions")
    recorded = _recorded_fees(Payment.order_id == order.id)
    for txn in listed if isinstance(listed, list) else []:
        txn_id = _short_string(txn.get("id"), 255) if isinstance(txn, dict) else None
        fee = txn.get("fee") if txn_id else None
        if (not isinstance(fee, int) or isinstance(fee, bool) or fee == 0 or abs(fee) > MAX_FEE
                or txn_id in recorded):
            continue
        fen = _fee_in_fen(fee, txn.get("currency"), txn.get("exchange_rate"))
        if fen is None or abs(fen) > MAX_FEE:
            log.error("balance transaction %s of order %s kept a fee of %s %s with no usable exchange rate to CNY: "
                      "book it by hand", txn_id, order.id, fee, txn.get("currency"))
            continue
        record_event(kind="processor_fee", order=order, occurred_at=occurred_at, amount_fen=fen,
                     payload={"balance_transaction": txn_id, "fee": fee, "currency": txn.get("currency"),
                              "exchange_rate": txn.get("exchange_rate")})
        recorded.add(txn_id)


def _charged(event: PaymentEvent, order: Order, payment: Payment) -> str:
    """A charge's event: its fee recorded once its payment has succeeded (deferred until then); the event's
    status."""
    if payment.status not in TAKEN:
        return "deferred"
    _record_fees(event.payload["data"]["object"], order, _dated(event, order, payment))
    return "processed"


DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed", "closed"})  # Stripe's final dispute statuses
DISPUTE_LOST_REASON = "Chargeback: the buyer's bank won the dispute."


def _disputed(event: PaymentEvent, order: Order, payment: Payment) -> str:
    """A dispute of the payment (opened, funds withdrawn or reinstated, closed): its id, status, reason and amount
    kept on the payment for admins (the order's `payment.dispute`), with a warning; the event's status. A dispute
    lost is money the provider took back for good: counted as a provider refund of its amount (by the dispute's
    id, so once), or deferred until the payment it names has succeeded."""
    obj = event.payload["data"]["object"]
    status = _short_string(obj.get("status"), 32) or event.type.rsplit(".", 1)[1]
    if status == "lost" and payment.status not in TAKEN:
        return "deferred"
    if payment.status in TAKEN:  # the dispute's fee (and its return, if won), whatever its order
        _record_fees(obj, order, _dated(event, order, payment))
    if payment.dispute_status in DISPUTE_CLOSED and status not in DISPUTE_CLOSED:
        return "processed"  # an earlier event of a dispute already closed, delivered late: the outcome stands
    payment.dispute_id = _short_string(obj.get("id"), 255) or payment.dispute_id
    payment.dispute_status = status
    payment.dispute_reason = _short_string(obj.get("reason"), 64)
    payment.dispute_amount_fen = _amount(obj, "amount")
    log.warning("payment %s of order %s is disputed (%s: %s, %s, %s fen): answer it at Stripe", payment.intent_id,
                order.id, event.type, payment.dispute_status, payment.dispute_reason, payment.dispute_amount_fen)
    if status == "lost" and payment.status == "succeeded" and payment.dispute_id and payment.dispute_amount_fen:
        record_provider_refund(order_id=order.id, provider_refund_id=payment.dispute_id,
                               amount_fen=payment.dispute_amount_fen, occurred_at=_dated(event, order, payment),
                               reason=DISPUTE_LOST_REASON)
    elif status == "lost":
        log.error("payment %s of order %s was returned and its dispute %s lost too: settle it at Stripe",
                  payment.intent_id, order.id, payment.dispute_id)
    return "processed"


def _apply(event: PaymentEvent, order: Order, payment: Payment, deferred: list[PaymentEvent]) -> str:
    """Apply one event to its (locked) order and its intent's payment; its new status: processed, or deferred
    (a refund of an unpaid payment). After a succeeded payment the intent's `deferred` events are applied too. A
    payment's success keeps its new rows and hold of sales for `_write_changes` (`joined_writes`: none of its steps
    reads their ids)."""
    with joined_writes(kept=event.type == "payment_intent.succeeded"):
        status = _applied(event, order, payment)
        _write_changes()
    if event.type == "payment_intent.succeeded":
        for waiting in deferred:
            _apply(waiting, order, payment, [])
    return status


def _applied(event: PaymentEvent, order: Order, payment: Payment) -> str:
    """Apply one event's change to its order and payment, not yet written; the event's new status."""
    status = "processed"
    if event.type == "payment_intent.succeeded":
        _succeeded(event, order, payment)
    elif event.type == "payment_intent.payment_failed":
        _failed(event, payment)
    elif event.type in DISPUTE_TYPES:
        status = _disputed(event, order, payment)
    elif event.type in FEE_TYPES:
        status = _charged(event, order, payment)
    elif payment.status == "succeeded":
        _refunded(event, order)
    elif payment.status == "returned":
        _returned(event, order, payment)
    else:
        status = "deferred"
    event.status, event.processed_at = status, utcnow() if status == "processed" else None
    return status


def _row_changes(state) -> tuple[object, dict] | None:
    """The table of one loaded row and its changed columns (with its `onupdate` ones) as values, its new values set on
    the object as written; None if it has a change only the ORM's flush can write (a relationship, a version
    counter)."""
    mapper, changed = state.mapper, {}
    if mapper.version_id_col is not None or len(mapper.tables) != 1:
        return None
    for key in state.committed_state:
        prop = mapper.attrs.get(key)
        if (not isinstance(prop, ColumnProperty) or len(prop.columns) != 1
                or isinstance(state.dict[key], ClauseElement)):
            return None
        changed[prop.columns[0]] = state.dict[key]
    for column in mapper.local_table.columns:
        if column.onupdate is not None and column not in changed:
            if not column.onupdate.is_callable:
                return None
            changed[column] = state.dict[mapper.get_property_by_column(column).key] = column.onupdate.arg(None)
    changed.update(zip(mapper.primary_key, state.identity, strict=True))
    return mapper.local_table, changed


_WRITES: dict[tuple, object] = {}  # the statement of each shape of changes (tables and columns), built once
MAX_WRITES = 256  # shapes kept (an event changes a handful of rows: a few shapes recur); a rarer one is built each time
# a paid order's hold of its sales' dates (`shop.db.hold_sales`, shared) as a query its writes can join
_HELD = union_all(
    select(literal_column(str(SUPPLIER_SALES)).label("space"),
           func.unnest(bindparam("held_ids", type_=ARRAY(Integer))).label("key")),
    select(literal_column(str(DONOR_SALES)), func.hashtext(func.unnest(bindparam("held_codes", type_=ARRAY(Text))))),
).subquery("held")
_HOLD_SALES = select(func.pg_advisory_xact_lock_shared(_HELD.c.space, _HELD.c.key)).order_by(_HELD.c.space,
                                                                                               _HELD.c.key)


def _new_columns(table) -> list:
    """A table's columns a new row writes (all but its primary key, as `new_row`)."""
    return [column for column in table.columns if not column.primary_key]


def _write_statement(shape: tuple) -> object:
    """One UPDATE per (table, columns) of `shape`'s updates, one INSERT per new row of its (table, rows), and, if it
    holds sales, the hold's query: each but the last a data-modifying CTE of the last (the hold's query last, so it
    runs). Parameter `r<i>_<column>` is the i-th updated row's (its primary key's in the WHERE clause, the others in
    SET), `n<i>_<j>_<column>` the j-th new row's of the i-th insert."""
    if shape in _WRITES:
        return _WRITES[shape]
    updated, inserted, holds = shape
    parts = [update(table).where(*(key == bindparam(f"r{i}_{key.name}", type_=key.type)
                                   for key in table.primary_key.columns))
             .values({column: bindparam(f"r{i}_{column.name}", type_=column.type) for column in columns
                      if not column.primary_key})
             for i, (table, columns) in enumerate(updated)]
    parts += [insert(table).values({column: bindparam(f"n{i}_{j}_{column.key}", type_=column.type)
                                    for column in _new_columns(table)})
              for i, (table, count) in enumerate(inserted) for j in range(count)]  # a multi-row one is not cached
    statement = _HOLD_SALES if holds else parts.pop()
    for i, earlier in enumerate(parts):
        statement = statement.add_cte(earlier.cte(f"w{i}"))
    if len(_WRITES) < MAX_WRITES:
        _WRITES[shape] = statement
    return statement


def _write_apart(joined: dict | None) -> None:
    """Make the writes `joined_writes` kept one by one (after a flush: a change only the ORM writes, or SQLite)."""
    if joined is None:
        return
    for model in dict.fromkeys(type(obj) for obj in joined["rows"]):
        insert_new([obj for obj in joined["rows"] if type(obj) is model])
    for donor_code in sorted(joined["donors"]) or [None]:
        hold_sales(supplier_ids=joined["suppliers"], donor_code=donor_code)


def _write_changes() -> None:
    """Write the session's changes of loaded rows (the event's, its payment's, its order's and allocations'), and the
    new rows and the hold of sales `joined_writes` kept (the transition, the outbox rows of a paid order) in one
    statement on PostgreSQL, each UPDATE and INSERT a data-modifying CTE of the last: one round trip and none of the
    unit of work's bookkeeping per row. Anything else (a new or deleted object, a change only the ORM writes, SQLite)
    is flushed, then the kept writes made apart."""
    session, joined = db.session, take_joined()
    if session.new or session.deleted or session.get_bind().dialect.name != "postgresql":
        session.flush()
        _write_apart(joined)
        return
    states = [inspect(obj) for obj in session.dirty]
    rows = [_row_changes(state) for state in states if state.committed_state]
    if None in rows:
        session.flush()
        _write_apart(joined)
        return
    rows.sort(key=lambda row: (row[0].name, tuple(v for c, v in row[1].items() if c.primary_key)))
    joined = joined or {"rows": [], "suppliers": set(), "donors": set()}
    tables = list(dict.fromkeys(type(obj).__table__ for obj in joined["rows"]))
    new_rows = [[new_row(obj) for obj in joined["rows"] if type(obj).__table__ is table] for table in tables]
    holds = bool(joined["suppliers"] or joined["donors"])
    if rows or new_rows or holds:
        shape = (tuple((table, tuple(changed)) for table, changed in rows),
                 tuple((table, len(values)) for table, values in zip(tables, new_rows, strict=True)), holds)
        params = {f"r{i}_{column.name}": value for i, (_, changed) in enumerate(rows)
                  for column, value in changed.items()}
        params.update({f"n{i}_{j}_{key}": value for i, values in enumerate(new_rows) for j, row in enumerate(values)
                       for key, value in row.items()})
        if holds:
            params.update(held_ids=sorted(joined["suppliers"]), held_codes=sorted(joined["donors"]))
        # not `session.execute`: its autoflush would write them first
        session.connection().execute(_write_statement(shape), params).close()
    for state in states:
        state._commit_all(state.dict, session.identity_map)  # noqa: SLF001 - written above: clean, as a flush leaves it


def _under_lock(event_id: int, intent_id: str) -> tuple[PaymentEvent, Payment | None, list[PaymentEvent]]:
    """Read again, once the order is locked, the event (another worker may have processed it meanwhile) with
    its intent's payment, and the intent's deferred events (only written under that lock), oldest first: one
    statement."""
    rows = db.session.execute(_UNDER_LOCK, {"event_id": event_id, "intent_id": intent_id}).all()
    event, payment = next((e, p) for e, p in rows if e.id == event_id)
    return event, payment, [e for e, _ in rows if e.id != event_id]


def process_event(*, event_id: int) -> str:
    """Process a stored event under its order's lock (idempotent); its status afterwards, or "missing"."""
    found = db.session.execute(_EVENT_WITH_ORDER_ID, {"event_id": event_id}).first()
    return "missing" if found is None else _process(found.PaymentEvent, found.order_id)


def claim_new_event() -> Row | None:
    """The oldest pending event no worker has tried yet, locked (an event another worker holds is skipped), with
    its intent's order id; None when there is none."""
    return db.session.execute(_NEXT_NEW_EVENT).first()


def process_claimed(claimed: Row) -> str:
    """Process an event `claim_new_event` returned; its status afterwards. The caller commits."""
    return _process(claimed.PaymentEvent, claimed.order_id)


def count_failed_attempt(event_id: int) -> None:
    """Record a failed attempt at an event (after the failed work was rolled back): the sweeper retries it, on
    its own, once its grace period has passed. The caller commits."""
    db.session.execute(update(PaymentEvent).where(PaymentEvent.id == event_id)
                       .values(attempts=PaymentEvent.attempts + 1, queued_at=utcnow()))


def _expected_livemode() -> bool:
    """Whether the configured Stripe key is a live one (`sk_live_…`, `rk_live_…`); the sandbox is test mode."""
    return "_live_" in (current_app.config.get("STRIPE_API_KEY") or "")


def _foreign(event: PaymentEvent) -> str | None:
    """Why an event about one of our intents is still not ours to apply (the other mode's, or money in another
    currency than CNY), else None."""
    livemode = event.payload.get("livemode")
    if isinstance(livemode, bool) and livemode != _expected_livemode():
        return f"is {'live' if livemode else 'test'} mode, this shop is not"
    currency = event.payload["data"]["object"].get("currency")
    if event.type == "payment_intent.succeeded" and currency is not None and currency != "cny":
        return "is not in CNY"
    return None


def _process(event: PaymentEvent, intent_order_id: int | None) -> str:
    """Process an event read with its intent's order id, under its order's lock; its status afterwards. Only an
    intent this shop created (a payment row of ours has its id), in CNY and our mode, is applied."""
    if event.status in DONE:
        return event.status
    if not event.intent_id or intent_order_id is None:
        return _ignore(event, "names a payment intent this shop never created")
    fetch_listed_refunds(event)
    fetch_fees(event)
    try:
        order = lock_order(intent_order_id, for_payment=event.type == "payment_intent.succeeded")
    except NotFound:
        return _ignore(event, "names no order of ours")
    event, payment, deferred = _under_lock(event.id, event.intent_id)
    if event.status in DONE:
        return event.status
    refusal = _foreign(event)
    if refusal is not None:
        return _ignore(event, refusal)
    return _apply(event, order, payment, deferred)


def _ignore(event: PaymentEvent, why: str) -> str:
    """Mark an event ignored (it is not about a payment of ours), with a warning saying why (its ids only)."""
    event.status, event.processed_at = "ignored", utcnow()
    db.session.flush()
    log.warning("payment event %s %s: ignored", event.event_id, why)
    return event.status


def requeue_pending_events() -> int:
    """Sweeper: re-queue events still pending a grace period after they were last queued, or mark them `failed` once
    they were tried MAX_ATTEMPTS times; how many were re-queued."""
    now = utcnow()
    stale = db.session.scalars(
        select(PaymentEvent).where(PaymentEvent.status == "pending",
                                   func.coalesce(PaymentEvent.queued_at, PaymentEvent.received_at)
                                   < now - REQUEUE_AFTER)
        .order_by(PaymentEvent.id).limit(SWEEP_BATCH).with_for_update(skip_locked=True)).all()
    requeued = 0
    for event in stale:
        if event.attempts >= MAX_ATTEMPTS:
            event.status, event.processed_at = "failed", now
            log.error("payment event %s failed %s times: given up (see the earlier errors); once the cause is fixed, "
                      "`flask payments requeue-failed --event-id %s` queues it again", event.event_id, event.attempts,
                      event.id)
            continue
        event.queued_at, event.attempts = now, event.attempts + 1
        row_id = event.id
        after_commit(lambda row_id=row_id: _queue(row_id))
        requeued += 1
    db.session.flush()
    return requeued


def requeue_failed_events(*, event_id: int | None = None, since: datetime | None = None) -> list[int]:
    """Failed events (the one `event_id`, and of those only the ones that failed at or after `since`) put back as new:
    pending, attempts reset, so the drain (woken after commit) processes them as any new event and the sweeper again
    gives each MAX_ATTEMPTS; their ids, oldest first. An event no longer failed (requeued already, also by a
    concurrent run: its row lock decides) is left as it is, so running it twice requeues once. The caller commits."""
    where = [PaymentEvent.status == "failed"]
    if event_id is not None:
        where.append(PaymentEvent.id == event_id)
    if since is not None:
        where.append(PaymentEvent.processed_at >= since)
    requeued = sorted(db.session.scalars(
        update(PaymentEvent).where(*where)
        .values(status="pending", attempts=0, queued_at=utcnow(), processed_at=None)
        .returning(PaymentEvent.id).execution_options(synchronize_session=False)).all())
    if requeued:
        after_commit(wake)
    return requeued


# --- the sandbox --------------------------------------------------------------------------------------

def sandbox_enabled(config: Mapping) -> bool:
    """Whether sandbox payments may be confirmed: the sandbox provider, no Stripe key, not production."""
    return (config["PAYMENTS"] == "sandbox" and not config.get("STRIPE_API_KEY")
            and config["SHOP_ENV"] != "production")


def sandbox_event(*, intent_id: str, order_id: int, amount_fen: int, outcome: str) -> dict:
    """A Stripe-format `payment_intent.succeeded` / `payment_intent.payment_failed` event for an intent; an intent
    succeeds once, so its success is one event id however often it is confirmed (each failure is an event of its
    own)."""
    succeeded = outcome == "succeeded"
    intent = {"id": intent_id, "object": "payment_intent", "amount": amount_fen,
              "amount_received": amount_fen if succeeded else 0, "currency": "cny",
              "status": "succeeded" if succeeded else "requires_payment_method",
              "metadata": {"order_id": str(order_id)},
              "last_payment_error": None if succeeded else {"type": "card_error", "code": "card_declined",
                                                            "decline_code": "generic_decline"}}
    once = hashlib.sha256(f"{intent_id}:succeeded".encode()).hexdigest()[:24]
    event_id = once if succeeded else secrets.token_hex(12)
    return {"id": f"evt_{event_id}", "object": "event", "created": int(utcnow().timestamp()),
            "livemode": False, "type": "payment_intent.succeeded" if succeeded else "payment_intent.payment_failed",
            "data": {"object": intent}}


def sign(payload: str, *, secret: str) -> str:
    """The `Stripe-Signature` header Stripe would send for `payload` now (`t=…,v1=<HMAC-SHA256>`)."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret)


def sandbox_confirm(*, actor: User, intent_id: str, outcome: str) -> dict:
    """Pay (or fail) a sandbox PaymentIntent: a signed Stripe-format event handed to the webhook's handler; the
    order's id, status and payment status as the confirm found them (`state_after_confirm` reads them again once the
    event was processed). Only the order's buyer or an admin (`payment_not_found` 404 for anyone else)."""
    lock_on_sqlite("UPDATE orders SET id = id WHERE id = (SELECT order_id FROM payments WHERE intent_id = :intent_id)",
                   intent_id=intent_id)
    found = run_core(_CONFIRMING, {"intent_id": intent_id}).first()
    if found is None or (actor.role != "admin" and found.consumer_id != actor.id):
        raise NotFound(f"No payment {intent_id}.", code=OrderCode.PAYMENT_NOT_FOUND)
    if found.order_status == "cancelled":  # as Stripe refuses to confirm the intent the cancel cancelled
        raise Conflict(f"Order {found.id} was cancelled: its payment can no longer be made.",
                       code=OrderCode.PAYMENT_INTENT_CANCELED, details={"order_id": found.id})
    payload = json.dumps(sandbox_event(intent_id=intent_id, order_id=found.id, amount_fen=found.amount_fen,
                                       outcome=outcome), separators=(",", ":"))
    receive_event(payload=payload.encode(), signature=sign(payload, secret=current_app.config["STRIPE_WEBHOOK_SECRET"]))
    return {"order_id": found.id, "status": found.order_status, "payment_status": found.status}


def state_after_confirm(found: dict) -> dict:
    """What the sandbox route answers once the confirm has committed: the state the confirm found, or, where tasks
    run in-process (the embedded default) and so the event was processed at the commit, the state read again."""
    if current_app.config["CELERY"]["task_always_eager"]:
        return payment_state(order_id=found["order_id"])
    return found


def payment_state(*, order_id: int) -> dict:
    """The order's status and its latest payment's."""
    latest = (select(Payment.status).where(Payment.order_id == Order.id).order_by(Payment.id.desc()).limit(1)
              .correlate(Order).scalar_subquery())
    status, payment_status = db.session.execute(select(Order.status, latest).where(Order.id == order_id)).one()
    return {"order_id": order_id, "status": status, "payment_status": payment_status}
