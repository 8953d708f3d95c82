"""What checkout writes is what it answers: lines, allocations and the first transition, row for row (both
databases). The create writes each table with one Core INSERT; a mix-up of ids between rows would show here."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from orders.models import Allocation, OrderLine, OrderTransition
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.orders.checkout.conftest import delivery_body
from tests.orders.payments.conftest import user_with_token


def test_a_multi_line_order_is_written_line_by_line_with_its_fifo_lots(racing_app):
    client = racing_app.test_client()
    warehouse = LocationFactory()
    a, b, c = ProductFactory(price_fen=1250), ProductFactory(price_fen=800), ProductFactory(price_fen=300)
    newer = make_lot(a, warehouse, quantity=10, harvested_on=date(2026, 9, 1))
    older = make_lot(a, warehouse, quantity=3, harvested_on=date(2026, 8, 1))
    only_b, only_c = make_lot(b, warehouse, quantity=5), make_lot(c, warehouse, quantity=5)
    buyer, headers = user_with_token()
    db.session.commit()

    answer = client.post("/api/v1/orders", json=delivery_body((c.sku, 2), (a.sku, 4), (b.sku, 1)), headers=headers)

    assert answer.status_code == 201, answer.json
    body = answer.json
    assert [(line["sku"], line["quantity"], line["amount_fen"], line["refunded_quantity"]) for line in body["lines"]] \
        == [(c.sku, 2, 600, 0), (a.sku, 4, 5000, 0), (b.sku, 1, 800, 0)]
    db.session.expire_all()
    lines = db.session.scalars(select(OrderLine).where(OrderLine.order_id == body["id"]).order_by(OrderLine.id)).all()
    assert [line.id for line in lines] == [line["id"] for line in body["lines"]]
    assert [(line.sku, line.quantity) for line in lines] == [(c.sku, 2), (a.sku, 4), (b.sku, 1)]
    held = {line.id: sorted((alloc.lot_id, alloc.quantity, alloc.state) for alloc in db.session.scalars(
        select(Allocation).where(Allocation.order_line_id == line.id))) for line in lines}
    # FIFO by harvest date: A's line takes the older lot's 3 units and 1 of the newer (stocked first)
    assert held == {lines[0].id: [(only_c.id, 2, "reserved")],
                    lines[1].id: sorted([(older.id, 3, "reserved"), (newer.id, 1, "reserved")]),
                    lines[2].id: [(only_b.id, 1, "reserved")]}
    first = db.session.scalars(select(OrderTransition).where(OrderTransition.order_id == body["id"])).all()
    assert [(t.from_status, t.to_status, t.actor_id) for t in first] == [(None, "pending_payment", buyer.id)]
    assert client.get(f"/api/v1/orders/{body['id']}", headers=headers).json == body
