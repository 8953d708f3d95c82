"""The order state machine: one table of allowed transitions; every transition is recorded."""
from __future__ import annotations

from orders.models import Order, OrderTransition
from shop.db import db
from shop.errors import Conflict

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending_payment": frozenset({"paid", "cancelled", "expired"}),
    "expired": frozenset({"paid"}),  # a late payment whose units could be allocated afresh
    "paid": frozenset({"shipped", "fulfilled", "refunded"}),
    "shipped": frozenset({"delivered", "refunded"}),
    "delivered": frozenset({"refunded"}),
    "fulfilled": frozenset({"refunded"}),
    "cancelled": frozenset(),
    "refunded": frozenset(),
}


def can_transition(order: Order, to: str) -> bool:
    """Whether the table allows `order` to move to status `to`."""
    return to in TRANSITIONS[order.status]


def transition(order: Order, to: str, *, actor_id: int | None, reason: str | None = None) -> None:
    """Move `order` to status `to` and record who did it (`invalid_transition` 409 if the table forbids it); both are
    written by the session's next flush."""
    if not can_transition(order, to):
        raise Conflict(f"Order {order.id} cannot go from {order.status} to {to}.", code="invalid_transition",
                       details={"status": order.status, "to": to})
    db.session.add(OrderTransition(order_id=order.id, from_status=order.status, to_status=to, actor_id=actor_id,
                                   reason=reason))
    order.status = to


def record_created(order: Order, *, actor_id: int | None) -> OrderTransition:
    """Record an order's first status (the transition from nothing), also of an order not yet flushed: both are
    written by the session's next flush; the record."""
    created = OrderTransition(order=order, from_status=None, to_status=order.status, actor_id=actor_id)
    db.session.add(created)
    return created
