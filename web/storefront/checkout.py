"""Checkout from the storefront's form: the same services as `POST /api/v1/orders`, once per rendered form.

Each rendered checkout form carries a fresh key. The first submission claims the key in the API's
idempotency table (a scope of its own per consumer) and places the order; a second submission of the same
form (a double click, a resent request) finds the key and is sent to the first order, also while the
first is still running (it waits for it, as the API's idempotent writes do). The reservation commits
before the payment provider is called, with the key marked in progress; if the provider fails, the
order is abandoned (its stock released) and the key freed.
"""
from __future__ import annotations

import hashlib
import json
import time

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from orders.checkout import service as checkout
from shop.auth.models import User
from shop.db import commit, db
from shop.errors import AppError, Conflict, ShopCode
from shop.idempotency import IN_PROGRESS_POLL_SECONDS, IN_PROGRESS_WAIT_SECONDS, IdempotencyKey


def _scope(user: User) -> str:
    """Whose keys these are: the consumer's, apart from the API's."""
    return f"page-checkout:{user.id}"


def _fingerprint(order: dict) -> str:
    """The order request a form key was first used for (kept with the key, as the API keeps its requests')."""
    return hashlib.sha256(json.dumps(order, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _record(user: User, key: str) -> IdempotencyKey | None:
    """The committed record of a form key, if any."""
    return db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.scope == _scope(user),
                                                          IdempotencyKey.key == key))


def placed_order(*, user: User, key: str) -> int | None:
    """The order already placed from the form with `key`, if any, after waiting for a submission of it still in
    progress (`idempotency_key_in_progress` 409 after a while)."""
    deadline = time.monotonic() + IN_PROGRESS_WAIT_SECONDS
    while (record := _record(user, key)) is not None and record.status_code is None:
        if time.monotonic() > deadline:
            raise Conflict("The order from this form is still being placed; retry later.",
                           code=ShopCode.IDEMPOTENCY_KEY_IN_PROGRESS)
        db.session.rollback()
        time.sleep(IN_PROGRESS_POLL_SECONDS)
    return int(record.response_body) if record is not None else None


def _claim(*, user: User, key: str, order: dict) -> IdempotencyKey | None:
    """Claim a form key for a new order: its record, or None if another submission of the form claimed it first."""
    record = IdempotencyKey(user_id=user.id, scope=_scope(user), key=key, request_hash=_fingerprint(order))
    db.session.add(record)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    return record


def place_order_once(*, user: User, key: str, order: dict) -> int:
    """Place the order a checkout form describes (validated `OrderCreate` data) and start its payment, once per
    form key (a submission finding the key claimed gets the order placed under it); the order's id. Domain errors
    (`insufficient_stock`, `product_unavailable`, …) leave nothing behind; `PaymentNotStarted` (the provider down,
    or the total below its minimum charge) after the order was abandoned."""
    while (record := _claim(user=user, key=key, order=order)) is None:
        placed = placed_order(user=user, key=key)
        if placed is not None:
            return placed
    try:
        placed = checkout.place_order(actor=user, **order)
    except AppError:
        db.session.rollback()  # the claim goes too: the same form may be sent again once corrected
        raise
    commit()  # the reservation (and the key, in progress) are durable before the provider is called
    try:
        checkout.start_payment(order=placed.order)
    except checkout.PaymentNotStarted as exc:
        checkout.abandon_order(order_id=placed.id, reason=exc.reason)
        db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == record.id))
        commit()
        raise
    record.status_code, record.response_body = 201, str(placed.id)
    commit()
    return placed.id
