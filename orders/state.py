"""The order state machine: one table of allowed transitions; every transition is recorded."""
from __future__ import annotations

from orders.errors import OrderCode
from orders.models import Order, OrderTransition
from orders.outbox import hold_or_join, insert_or_join
from shop.db import insert_new
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
    """Move `order` to status `to` (written by the session's next flush) and record who did it (written now, or with
    `joined_writes`' caller's statement; `invalid_transition` 409 if the table forbids it)."""
    if not can_transition(order, to):
        raise Conflict(f"Order {order.id} cannot go from {order.status} to {to}.", code=OrderCode.INVALID_TRANSITION,
                       details={"status": order.status, "to": to})
    record = OrderTransition(order_id=order.id, from_status=order.status, to_status=to, actor_id=actor_id,
                             reason=reason)
    order.status = to  # before the insert, whose autoflush then writes the order's changes in one UPDATE
    insert_or_join(record)
    if to == "paid":
        _dating_sales(order)


def record_created(order: Order, *, actor_id: int | None) -> OrderTransition:
    """Record a new order's first status (the transition from nothing), written now; the record."""
    created = OrderTransition(order_id=order.id, from_status=None, to_status=order.status, actor_id=actor_id)
    insert_new([created])
    if order.status == "paid":
        _dating_sales(order)
    return created


def _dating_sales(order: Order) -> None:
    """An order becoming paid dates a sale of each supplier of its lines and of its donor region: their sale dates
    are held (shared, one statement, or in `joined_writes`' caller's) until the transaction commits, so a dividend
    link's check of the supplier's last sale date, and a pairing end's check of its donor's last paired sale (both
    exclusive), either see this sale or commit before it, and the sale is attributed with the link and reported under
    the pairing valid on its date (DESIGN.md). Taken after the order's and its stock's row locks, which neither
    takes."""
    hold_or_join(supplier_ids=(line.supplier_id for line in order.lines), donor_code=order.donor_code)
