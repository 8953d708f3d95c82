"""The orders demo world: a stocked store with a clerk in each Foshan district, seeded idempotently."""
from __future__ import annotations

from sqlalchemy import func, select

from catalog import inventory
from orders.models import StockTransfer, Store
from shop.db import db

FOSHAN = {"440604", "440605", "440606", "440607", "440608"}


def test_seed_demo_opens_a_stocked_store_per_foshan_district_once(runner, client):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    db.session.expire_all()
    stores = db.session.scalars(select(Store)).all()
    transfers = db.session.scalar(select(func.count()).select_from(StockTransfer))

    assert {store.district_code for store in stores} == FOSHAN and len(stores) == 5
    assert first.output.count("clerk staff-") == 5 and first.output.count("password: ") >= 5
    for store in stores:
        stock = inventory.location_stock(location_id=store.location_id, limit=100, cursor=None)["items"]
        assert sum(row.available for row in stock) > 0, store.name
    assert db.session.scalar(select(func.count()).select_from(StockTransfer)
                             .where(StockTransfer.status != "received")) == 0

    # The co-ops' uploaded lots reach the Foshan warehouse only after the seed commits (eager import
    # tasks); the seeder's after-commit pass sends them too, so every store holds all 15 demo products.
    assert "more lots received by the stores after the co-op imports" in first.output
    for store in stores:
        rows = inventory.location_stock(location_id=store.location_id, limit=100, cursor=None)["items"]
        assert len({row.product_id for row in rows}) == 15, store.name

    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert "password: " not in second.output.split("orders: ", 1)[1]
    assert "orders: 0 lots received" in second.output
    assert len(db.session.scalars(select(Store)).all()) == 5
    assert db.session.scalar(select(func.count()).select_from(StockTransfer)) == transfers

    token = client.post("/api/v1/auth/token", json={"username": "staff-shunde", "password": _password(first.output,
                                                                                                      "staff-shunde")})
    assert token.status_code == 200
    shunde = next(store for store in stores if store.district_code == "440606")
    mine = client.get("/api/v1/stores", headers={"Authorization": f"Bearer {token.json['access_token']}"}).json
    assert [item["id"] for item in mine["items"]] == [shunde.id]


def _password(output: str, username: str) -> str:
    """The password the demo printed for `username`."""
    line = next(line for line in output.splitlines() if f"clerk {username} password: " in line)
    return line.split("password: ", 1)[1]
