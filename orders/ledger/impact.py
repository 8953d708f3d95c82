"""An order's impact, pushed by the ledger onto the order (orders never read the ledger).

From the order's household postings (premium and dividend of its `line_paid` and `line_refunded`
transactions, so net of refunds): the households with a non-zero net amount, the sum of those postings,
and the counties of those households. Recomputed from the postings each time the order's sale or refund
is posted: an order's events are applied one after another (attribution applies an order's earlier
events first, under their locks), so the last push has seen every posting of the order.
"""
from __future__ import annotations

from sqlalchemy import func, select, update

from orders.ledger.models import LedgerTransaction, Posting
from orders.models import Order
from shop.db import db
from shop.regions.models import Region
from suppliers.models import Household

IMPACT_KINDS = ("line_paid", "line_refunded")


def order_impact(order_id: int) -> tuple[int, int, list[dict]]:
    """The order's households reached, the fen attributed to them and their counties ({code, name}, by code)."""
    net = (select(Posting.household_id, func.sum(Posting.amount_fen).label("fen"))
           .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
           .where(LedgerTransaction.order_id == order_id, LedgerTransaction.kind.in_(IMPACT_KINDS),
                  Posting.household_id.is_not(None))
           .group_by(Posting.household_id).subquery())
    rows = db.session.execute(
        select(net.c.fen, Region.code, Region.name)
        .join(Household, Household.id == net.c.household_id)
        .join(Region, Region.code == Household.county_code)
        .where(net.c.fen != 0)).all()
    counties = {code: name for _fen, code, name in rows}
    return (len(rows), int(sum(fen for fen, _code, _name in rows)),
            [{"code": code, "name": counties[code]} for code in sorted(counties)])


def push_order_impact(order_id: int) -> None:
    """Store the order's impact on the order row (its `updated_at` unchanged: the order itself did not change)."""
    households, fen, counties = order_impact(order_id)
    db.session.execute(update(Order).where(Order.id == order_id)
                       .values(impact_households=households, impact_fen=fen, impact_counties=counties,
                               updated_at=Order.updated_at))
