"""The catalog's part of the demo world."""
from __future__ import annotations

from sqlalchemy import func, select

from catalog.models import Location, Lot, Product, Stock
from shop.db import db


def test_seed_demo_builds_the_catalog_once(runner, client):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "catalog: 15 products created" in first.output
    counts = [db.session.scalar(select(func.count()).select_from(model)) for model in (Product, Lot, Stock)]

    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert "catalog: 0 products created" in second.output
    assert [db.session.scalar(select(func.count()).select_from(model)) for model in (Product, Lot, Stock)] == counts

    products = client.get("/api/v1/products?limit=100").json["items"]
    assert len(products) == 15
    assert len({p["county"]["code"] for p in products}) >= 8
    assert [p["name"] for p in products if not p["certified"]] == ["越西贡椒"]
    assert {p["name"] for p in client.get("/api/v1/products?q=kuqiao&limit=100").json["items"]} >= {
        "昭觉苦荞米", "布拖苦荞粉", "喜德苦荞茶"}

    xichang, foshan = (db.session.scalar(select(Location).where(Location.code == code)) for code in ("XC-WH", "FS-WH"))
    assert (xichang.region_code, foshan.region_code) == ("513401", "440604")
    for product in products:
        stock = client.get(f"/api/v1/products/{product['sku']}").json["stock"]
        # both warehouses hold it (the orders demo moves some of Foshan's on to the stores)
        assert {row["location_id"] for row in stock if row["available"] > 0} >= {xichang.id, foshan.id}


def test_demo_lots_come_from_the_demo_households(runner, client):
    runner.invoke(args=["seed-demo"])
    lot = db.session.scalar(select(Lot).where(Lot.lot_code == "ZJ-KQM-1KG-2026-01"))
    assert lot.quantity == sum(c.quantity for c in lot.contributions) and len(lot.contributions) == 6
    trace = client.get(f"/api/v1/trace/{lot.trace_code}").json
    assert trace["households"]["count"] == 6 and trace["households"]["villages"]
    small = db.session.scalar(select(Lot).where(Lot.lot_code == "LB-QC-5KG-2026-02"))
    assert client.get(f"/api/v1/trace/{small.trace_code}").json["households"] == {"count": None, "fewer_than": 3}
