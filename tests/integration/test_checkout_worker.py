"""Checkouts paid through the sandbox while a real worker drains the payments and the outbox through Redis: the
commits wake the drains (one queued run however many commit meanwhile), every order is paid once, every paid line
is attributed once, and nothing is left pending."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from catalog.models import Stock
from orders.ledger.models import LedgerTransaction
from orders.ledger.verify import verify_ledger
from orders.models import Order, OrderTransition, OutboxEvent, PaymentEvent
from shop.db import db
from tests.orders.payments.conftest import place_order, stock, user_with_token

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BUYERS, ORDERS_EACH = 4, 6


def wait_for(condition, seconds: float, what: str) -> None:
    """Poll `condition` (in a fresh transaction each time) until it holds, or fail naming `what`."""
    deadline = time.monotonic() + seconds
    while True:
        db.session.rollback()
        if condition():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_concurrent_checkouts_are_paid_and_attributed_once_each(celery_worker_process, redis_app):
    world = stock(quantity=BUYERS * ORDERS_EACH)
    buyers = [user_with_token()[1] for _ in range(BUYERS)]
    db.session.commit()
    sku = world["products"][0].sku
    placed, errors = [], []

    def buy(headers: dict) -> None:
        client = redis_app.test_client()
        try:
            for _ in range(ORDERS_EACH):
                order = place_order(client, headers, [(sku, 1)])
                intent_id = order["payment"]["client_secret"].split("_secret_")[0]
                answer = client.post(f"/api/v1/payments/sandbox/{intent_id}/confirm", json={"outcome": "succeeded"},
                                     headers=headers)
                assert answer.status_code == 200, answer.json
                placed.append(order["id"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=buy, args=(headers,)) for headers in buyers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(placed) == BUYERS * ORDERS_EACH

    paid = select(func.count()).select_from(Order).where(Order.id.in_(placed), Order.status == "paid")
    wait_for(lambda: db.session.scalar(paid) == len(placed), 60, "the worker to pay every order")
    wait_for(lambda: db.session.scalar(select(func.count()).select_from(OutboxEvent)
                                       .where(OutboxEvent.delivered_at.is_(None))) == 0, 60,
             "the worker to deliver every outbox event")

    assert Counter(db.session.scalars(select(OrderTransition.order_id).where(OrderTransition.to_status == "paid"))) \
        == dict.fromkeys(placed, 1)
    assert set(db.session.scalars(select(PaymentEvent.status))) == {"processed"}
    per_event = Counter(db.session.scalars(select(LedgerTransaction.outbox_event_id)))
    assert len(per_event) == len(placed) and set(per_event.values()) == {1}
    assert verify_ledger()["ok"] is True
    assert db.session.execute(select(func.sum(Stock.on_hand), func.sum(Stock.reserved))
                              .where(Stock.product_id == world["products"][0].id)).one() == (0, 0)  # all sold
