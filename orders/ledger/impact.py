"""An order's impact, pushed by the ledger onto the order (orders never read the ledger), and what a lot's sales
brought households, for its public trace.

From the order's household postings (premium and dividend of its `line_paid` and `line_refunded`
transactions, so net of refunds): the households with a non-zero net amount, the sum of those postings,
and the counties of those households. Recomputed from the postings each time the order's sale or refund
is posted: an order's events are applied one after another (attribution applies an order's earlier
events first, under their locks), so the last push has seen every posting of the order.
"""
from __future__ import annotations

import json
from collections.abc import Collection

from sqlalchemy import JSON, bindparam, func, select, text, update

from orders.ledger.models import HOUSEHOLD_POSTINGS, LedgerTransaction, Posting
from orders.models import Order
from shop.db import among, db
from shop.regions.models import Region
from suppliers.models import Household

IMPACT_KINDS = ("line_paid", "line_refunded")
_LOT_NET = (select(Posting.household_id, func.sum(Posting.amount_fen).label("fen"))
            .where(Posting.lot_id == bindparam("lot_id"), text(HOUSEHOLD_POSTINGS))
            .group_by(Posting.household_id).having(func.sum(Posting.amount_fen) != 0).subquery())
# A lot's households reached (a non-zero net premium and dividend from its postings) and their fen: one statement,
# on the postings' lot index, built once (catalog.queries.lot_reach runs it for the trace page).
LOT_HOUSEHOLDS_REACHED = select(func.count(), func.coalesce(func.sum(_LOT_NET.c.fen), 0))


def order_impacts(order_ids: Collection[int]) -> dict[int, tuple[int, int, list[dict]]]:
    """Per order: its households reached, the fen attributed to them and their counties ({code, name}, by code)."""
    net = (select(LedgerTransaction.order_id, Posting.household_id, func.sum(Posting.amount_fen).label("fen"))
           .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
           .where(among(LedgerTransaction.order_id, order_ids), LedgerTransaction.kind.in_(IMPACT_KINDS),
                  Posting.household_id.is_not(None))
           .group_by(LedgerTransaction.order_id, Posting.household_id).subquery())
    rows = db.session.execute(
        select(net.c.order_id, net.c.fen, Region.code, Region.name)
        .join(Household, Household.id == net.c.household_id)
        .join(Region, Region.code == Household.county_code)
        .where(net.c.fen != 0))
    households: dict[int, int] = dict.fromkeys(order_ids, 0)
    fen: dict[int, int] = dict.fromkeys(order_ids, 0)
    counties: dict[int, dict[str, str]] = {order_id: {} for order_id in order_ids}
    for order_id, amount, code, name in rows:
        households[order_id] += 1
        fen[order_id] += int(amount)
        counties[order_id][code] = name
    return {order_id: (households[order_id], fen[order_id],
                       [{"code": code, "name": name} for code, name in sorted(counties[order_id].items())])
            for order_id in order_ids}


def push_order_impacts(order_ids: Collection[int]) -> None:
    """Store each order's impact on its row (`updated_at` unchanged: the order itself did not change). The
    orders are the batch's own, whose events it holds locked, so no other worker updates them meanwhile."""
    if not order_ids:
        return
    impacts = sorted(order_impacts(order_ids).items())
    if db.session.get_bind().dialect.name == "postgresql":  # one UPDATE from arrays, rows in id order
        db.session.execute(text(
            "UPDATE orders SET impact_households = i.households, impact_fen = i.fen, impact_counties = i.counties "
            "FROM (SELECT * FROM unnest(CAST(:ids AS integer[]), CAST(:households AS integer[]), "
            "CAST(:fens AS bigint[]), CAST(:counties AS json[])) ORDER BY 1) AS i (id, households, fen, counties) "
            "WHERE orders.id = i.id"),
            {"ids": [order_id for order_id, _impact in impacts],
             "households": [households for _id, (households, _fen, _counties) in impacts],
             "fens": [fen for _id, (_households, fen, _counties) in impacts],
             "counties": [json.dumps(counties, ensure_ascii=False) for _id, (_h, _f, counties) in impacts]})
        return
    orders = Order.__table__
    db.session.execute(
        update(orders).where(orders.c.id == bindparam("order_id"))
        .values(impact_households=bindparam("households"), impact_fen=bindparam("fen"),
                impact_counties=bindparam("counties", type_=JSON), updated_at=orders.c.updated_at),
        [{"order_id": order_id, "households": households, "fen": fen, "counties": counties}
         for order_id, (households, fen, counties) in impacts])
