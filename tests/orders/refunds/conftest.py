"""Paid orders built straight in the database (stock taken through the inventory service), users with
tokens, and a payment provider stub that records its refund calls."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from catalog import inventory
from catalog.inventory import StockRequest
from orders.models import Allocation, Order, OrderLine, OrderTransition, Payment
from orders.outbox import sale_date_of
from orders.payments.provider import ProviderRefund, RefundRefused
from shop.auth.security import issue_token
from shop.db import db, utcnow
from tests.factories import UserFactory

ADDRESS = {"district_code": "440606", "detail": "测试路1号", "recipient": "测试", "phone": "13800000000"}


def user_with_token(role: str, **scope) -> tuple:
    """A user of `role` and Authorization headers for it."""
    user = UserFactory(role=role, **scope)
    token, _ = issue_token(user)
    return user, {"Authorization": f"Bearer {token}"}


def paid_order(*, location_id: int, lines: list[tuple], channel: str = "counter", store=None, shift=None,
               consumer=None, payment_method: str = "cash", status: str = "fulfilled",
               completed_at: datetime | None = None) -> Order:
    """An order whose `lines` [(product, quantity)] were taken from `location_id` FIFO and allocated,
    paid (and moved to `status`, recorded at `completed_at`); a succeeded payment for online ones."""
    now = utcnow()
    order = Order(channel=channel, status="paid", consumer_id=consumer.id if consumer else None,
                  store_id=store.id if store else None, location_id=location_id, donor_code="440606",
                  total_fen=sum(product.price_fen * quantity for product, quantity in lines), paid_at=now,
                  sale_date=sale_date_of(now), shift_id=shift.id if shift else None, payment_method=payment_method,
                  address=ADDRESS if channel == "delivery" else None)
    db.session.add(order)
    db.session.flush()
    portions = inventory.take_lines(location_id=location_id,
                                    lines=[StockRequest(product.id, quantity) for product, quantity in lines])
    for (product, quantity), taken in zip(lines, portions, strict=True):
        line = OrderLine(order_id=order.id, product_id=product.id, sku=product.sku, name=product.name,
                         supplier_id=product.supplier_id, county_code=product.county_code, quantity=quantity,
                         unit_price_fen=product.price_fen, platform_fee_bp=product.platform_fee_bp,
                         store_commission_bp=product.store_commission_bp,
                         household_premium_bp=product.household_premium_bp, dividend_bp=product.dividend_bp)
        db.session.add(line)
        db.session.flush()
        for portion in taken:
            db.session.add(Allocation(order_line_id=line.id, location_id=portion.location_id, lot_id=portion.lot_id,
                                      quantity=portion.quantity, state="allocated"))
    db.session.add(OrderTransition(order_id=order.id, from_status=None, to_status="paid", created_at=now))
    if status != "paid":
        db.session.add(OrderTransition(order_id=order.id, from_status="paid", to_status=status,
                                       created_at=completed_at or now))
        order.status = status
    if payment_method == "stripe":
        db.session.add(Payment(order_id=order.id, provider="sandbox", intent_id=f"pi_test_{order.id}",
                               amount_fen=order.total_fen, status="succeeded", succeeded_at=now))
    db.session.flush()
    db.session.expire(order)
    return order


def days_ago(days: int) -> datetime:
    """A moment `days` days before now."""
    return utcnow() - timedelta(days=days)


@dataclass
class StubProvider:
    """A payment provider that records refunds and, like Stripe, makes one refund per idempotency key (or fails
    like an unreachable one, loses its answer after refunding, or refuses); a refund it makes has the status
    `status` (as Stripe's may be `pending`), and is later retrieved with its status in `statuses`."""

    name: str = "stub"
    fail: bool = False
    lose_answer: bool = False
    refuse: bool = False
    calls: list[dict] = field(default_factory=list)
    made: dict[str, str] = field(default_factory=dict)
    status: str = "succeeded"
    statuses: dict[str, str] = field(default_factory=dict)  # a refund's status now, by its id
    retrieved: list[str] = field(default_factory=list)

    def refund(self, *, intent_id: str, amount_fen: int, idempotency_key: str) -> ProviderRefund:
        """Record the call; the key's refund, or a connection error when failing."""
        if self.fail:
            raise ConnectionError("provider unreachable")
        if self.refuse:
            raise RefundRefused("charge_already_refunded")
        self.calls.append({"intent_id": intent_id, "amount_fen": amount_fen, "idempotency_key": idempotency_key})
        refund_id = self.made.setdefault(idempotency_key, f"re_stub_{len(self.made) + 1}")
        self.statuses.setdefault(refund_id, self.status)
        if self.lose_answer:
            raise TimeoutError("the answer was lost")
        return ProviderRefund(id=refund_id, status=self.status)

    def retrieve_refund(self, *, refund_id: str) -> ProviderRefund:
        """Record the question; the refund as it stands now."""
        if self.fail:
            raise ConnectionError("provider unreachable")
        self.retrieved.append(refund_id)
        return ProviderRefund(id=refund_id, status=self.statuses[refund_id])


@pytest.fixture
def provider(monkeypatch) -> StubProvider:
    """The payment provider the refund service talks to, stubbed."""
    stub = StubProvider()
    monkeypatch.setattr("orders.refunds.service.get_provider", lambda: stub)
    return stub
