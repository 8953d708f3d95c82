"""An order's impact line (GET /orders/<id>, its receipt): pushed by the ledger from the order's household
postings, net of refunds; 1 or 2 households show no count and no amount (DESIGN "Public outputs"), none is none."""
from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import select

from catalog.models import Location, LotContribution
from orders import outbox
from orders.ledger.attribution import apply_events
from orders.ledger.models import LedgerTransaction, Posting
from orders.models import Order, OrderLine, OutboxEvent
from shop.db import db, utcnow
from shop.regions.models import Region
from suppliers.models import Household
from tests.catalog.factories import ProductFactory, make_lot
from tests.catalog.test_concurrency import race
from tests.orders.factories import StoreFactory, flushed
from tests.orders.ledger.test_attribution import make_world, pay_pickup
from tests.orders.refunds.conftest import paid_order
from tests.suppliers.factories import HouseholdFactory, SupplierFactory


def expected_impact(order_id: int) -> tuple[int, int, list[dict]]:
    """Computed here from the postings: households with a non-zero net, their net total, their counties."""
    net: dict[int, int] = {}
    rows = db.session.execute(select(Posting.household_id, Posting.amount_fen)
                              .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                              .where(LedgerTransaction.order_id == order_id, Posting.household_id.is_not(None)))
    for household_id, amount in rows:
        net[household_id] = net.get(household_id, 0) + amount
    reached = [household_id for household_id, fen in net.items() if fen]
    codes = sorted({db.session.get(Household, household_id).county_code for household_id in reached})
    counties = [{"code": code, "name": db.session.get(Region, code).name} for code in codes]
    return len(reached), sum(net[household_id] for household_id in reached), counties


def impact_of(client, order_id: int, headers: dict) -> dict:
    """The order's impact as GET /orders/<id> shows it (and the receipt shows the same)."""
    response = client.get(f"/api/v1/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.json
    receipt = client.get(f"/api/v1/orders/{order_id}/receipt", headers=headers)
    assert receipt.status_code == 200, receipt.json
    assert receipt.json["impact"] == response.json["impact"]
    return response.json["impact"]


def test_a_paid_orders_impact_is_the_sum_of_its_household_postings(client, login):
    world = make_world(today=outbox.sale_date_of(utcnow()))

    order_id = pay_pickup(client, world, 3)

    households, fen, counties = expected_impact(order_id)
    assert (households, fen) == (5, 83 + 83 + 84 + 75 + 37)  # DESIGN's split, by hand in test_attribution
    assert {"513431", "513432"} <= {county["code"] for county in counties}
    assert impact_of(client, order_id, login("admin")) == {"households": 5, "attributed_fen": fen,
                                                           "counties": counties}


def test_a_refund_lowers_the_impact_and_after_a_full_refund_it_reaches_no_household(client, login):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    order_id = pay_pickup(client, world, 3)
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))
    admin = login("admin")
    before = impact_of(client, order_id, admin)["attributed_fen"]

    response = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**admin, "Idempotency-Key": "r1"},
                           json={"lines": [{"line_id": line_id, "quantity": 2}], "reason": "坏了"})

    assert response.status_code == 201, response.json
    households, fen, counties = expected_impact(order_id)
    assert fen == 42 + 41 + 42 + 25 + 12 < before
    assert impact_of(client, order_id, admin) == {"households": households, "attributed_fen": fen,
                                                  "counties": counties}

    again = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**admin, "Idempotency-Key": "r2"},
                        json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "全退"})

    assert again.status_code == 201, again.json
    assert expected_impact(order_id) == (0, 0, [])
    # none reached is 0, told apart from fewer than 3
    assert impact_of(client, order_id, admin) == {"households": 0, "attributed_fen": 0, "counties": []}


def test_fewer_than_three_households_show_no_count_and_no_amount(client, login):
    supplier = SupplierFactory()
    store = StoreFactory()
    product = ProductFactory(supplier=supplier, price_fen=1000, platform_fee_bp=500, store_commission_bp=0,
                             household_premium_bp=2000, dividend_bp=0)
    lot = make_lot(product, db.session.get(Location, store.location_id), quantity=5, harvested_on=date(2026, 9, 1))
    pair = [HouseholdFactory(supplier=supplier, county_code="513431"),
            HouseholdFactory(supplier=supplier, county_code="513432")]
    for household in pair:
        db.session.add(LotContribution(lot_id=lot.id, household_id=household.id, quantity=1, village="测试村"))
    db.session.commit()

    order_id = pay_pickup(client, {"store": store, "product": product}, 2)

    households, fen, counties = expected_impact(order_id)
    assert (households, fen) == (2, 400)
    assert [county["code"] for county in counties] == ["513431", "513432"]
    # nor their counties: two counties beside "fewer than 3" would say there were exactly 2 households, one in each
    assert impact_of(client, order_id, login("admin")) == {"households": None, "fewer_than": 3}
    documented = client.get("/api/v1/openapi.json").json["components"]["schemas"]["OrderOut"]["properties"]["impact"]
    assert "1 or 2 households `{households: null, fewer_than: 3}`" in documented["description"]


def test_an_unpaid_order_has_no_impact(client, login):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    response = client.post("/api/v1/orders", headers={**login("consumer"), "Idempotency-Key": "unpaid"},
                           json={"channel": "pickup", "store_id": world["store"].id,
                                 "lines": [{"sku": world["product"].sku, "quantity": 1}]})

    assert response.status_code == 201, response.json
    assert response.json["impact"] is None


def test_lines_of_one_order_attributed_at_once_leave_the_whole_orders_impact(racing_app):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    store, supplier = world["store"], world["supplier"]
    apples = ProductFactory(supplier=supplier, price_fen=2000, household_premium_bp=1000, dividend_bp=0)
    lot = make_lot(apples, db.session.get(Location, store.location_id), quantity=5, harvested_on=date(2026, 9, 1))
    for household in (HouseholdFactory(supplier=supplier) for _ in range(3)):
        db.session.add(LotContribution(lot_id=lot.id, household_id=household.id, quantity=2, village="测试村"))
    order = paid_order(location_id=store.location_id, channel="counter", store=store, payment_method="cash",
                       lines=[(world["product"], 2), (apples, 3)], status="paid")
    racing_app.extensions["outbox_consumers"] = {}  # no delivery after this commit: the racers apply the events
    event_ids = [flushed(outbox.record_line_paid(order=order, line=line, occurred_at=order.paid_at)).id
                 for line in db.session.scalars(select(OrderLine).where(OrderLine.order_id == order.id))]
    db.session.commit()

    outcomes = race(racing_app, 2, lambda i: apply_events([db.session.get(OutboxEvent, event_ids[i])]))

    assert outcomes == Counter({"ok": 2})
    db.session.expire_all()
    households, fen, counties = expected_impact(order.id)
    assert households == 3 + 2 + 3  # lot 1's three, the two dividend holders valid today, the apples' three
    stored = db.session.get(Order, order.id)
    assert (stored.impact_households, stored.impact_fen, stored.impact_counties) == (households, fen, counties)
