"""The public catalog read path on SQLite and in production shape (PostgreSQL, cache in Redis): one statement
per read, cached lists that follow every write, stock that is always live, search and paging unchanged."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from catalog.schemas import ProductDetailOut, ProductOut, TraceOut
from orders.ledger.verify import verify_ledger
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.factories import UserFactory
from tests.orders.counter.conftest import bearer, clerk, make_counter, sale_body
from tests.statements import statements
from tests.suppliers.factories import SupplierFactory


@pytest.fixture(params=["sqlite", pytest.param("production", marks=[pytest.mark.postgres, pytest.mark.redis])])
def shop_app(request):
    """The embedded default (SQLite, in-process cache), then production shape (PostgreSQL, Redis)."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "redis_app")


def _skus(client, query: str) -> list[str]:
    """The SKUs of one public list page."""
    response = client.get(f"/api/v1/products?limit=100&{query}")
    assert response.status_code == 200, response.json
    return [item["sku"] for item in response.json["items"]]


def test_a_counter_sale_shows_at_once_on_the_product_page_while_the_list_stays_cached(shop_app):
    client = shop_app.test_client()
    counter = make_counter()
    staff = clerk(counter.store)
    page, listing = f"/api/v1/products/{counter.rice.sku}", f"/api/v1/products?county={counter.rice.county_code}"
    listed = client.get(listing).json
    assert client.get(page).json["stock"] == [{"location_id": counter.store.location_id, "available": 13}]

    sold = client.post(f"/api/v1/stores/{counter.store.id}/counter-sales", json=sale_body(counter), headers=staff)

    assert sold.status_code == 201, sold.json
    assert client.get(page).json["stock"] == [{"location_id": counter.store.location_id, "available": 10}]
    with statements() as seen:
        assert client.get(listing).json == listed
    assert seen == []  # the list came from the cache: a sale changes no product
    assert verify_ledger()["ok"] is True


def test_each_read_is_one_statement_and_a_cached_list_none(shop_app):
    client = shop_app.test_client()
    product = ProductFactory()
    lot = make_lot(product, LocationFactory(), quantity=4)
    db.session.commit()
    page, listing, trace = (f"/api/v1/products/{product.sku}", f"/api/v1/products?county={product.county_code}",
                            f"/api/v1/trace/{lot.trace_code}")
    db.session.expunge_all()
    client.get("/api/v1/products?limit=1")  # once-per-process start-up checks are not a read's cost
    for url, count in ((page, 1), (listing, 1), (listing, 0), (trace, 1)):
        with statements() as seen:
            assert client.get(url).status_code == 200
        assert len(seen) == count, (url, seen)


def test_cached_lists_follow_product_and_supplier_writes(shop_app):
    client = shop_app.test_client()
    supplier = SupplierFactory()
    product = ProductFactory(supplier=supplier, price_fen=1000)
    admin = UserFactory(role="admin")
    db.session.commit()
    headers = bearer(admin)
    url = f"/api/v1/products?county={supplier.county_code}"
    assert client.get(url).json["items"][0]["price_fen"] == 1000
    client.patch(f"/api/v1/products/{product.sku}", json={"price_fen": 1200}, headers=headers)
    assert client.get(url).json["items"][0]["price_fen"] == 1200
    client.patch(f"/api/v1/suppliers/{supplier.id}", json={"name": "改名后的合作社"}, headers=headers)
    assert client.get(url).json["items"][0]["supplier"]["name"] == "改名后的合作社"
    assert client.get(f"/api/v1/products/{product.sku}").json["supplier"]["name"] == "改名后的合作社"


def test_search_finds_the_same_products_on_both_databases(shop_app):
    client = shop_app.test_client()
    buckwheat = ProductFactory(name="昭觉苦荞米").sku
    tea = ProductFactory(name="喜德苦荞茶").sku
    orange = ProductFactory(name="雷波脐橙12").sku
    percent = ProductFactory(name="满100%鲜果").sku
    underscore = ProductFactory(name="礼盒_A").sku
    ProductFactory(name="下架苦荞", status="draft")
    db.session.commit()
    for q, found in (("苦荞", {buckwheat, tea}), ("kuqiao", {buckwheat, tea}), ("KQ", {buckwheat, tea}),
                     ("ku qiao", {buckwheat, tea}), ("zjkqm", {buckwheat}), ("qicheng1", {orange}),
                     ("脐橙12", {orange}), ("%", {percent}), ("_", {underscore}), ("100%", {percent}),
                     ("vqzzz", set()), ("海鲜", set())):
        assert set(_skus(client, f"q={q.replace('%', '%25')}")) == found, q


def test_deeper_pages_through_next_cursor_list_every_product_once(shop_app):
    client = shop_app.test_client()
    made = {ProductFactory(supplier=SupplierFactory(county_code="513436")).sku for _ in range(45)}
    db.session.commit()
    for query in ("county=513436", "donor=440606", "q=ceshi"):
        seen, cursor = [], None
        while True:
            page = client.get(f"/api/v1/products?{query}&limit=20" + (f"&cursor={cursor}" if cursor else "")).json
            seen += [item["sku"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 45 and set(seen) == made, query


def test_reads_answer_exactly_the_documented_fields(shop_app):
    client = shop_app.test_client()
    product = ProductFactory()
    lot = make_lot(product, LocationFactory(), quantity=2)
    db.session.commit()
    detail = client.get(f"/api/v1/products/{product.sku}").json
    assert set(detail) == set(ProductDetailOut().fields)
    assert detail["certificate"]["valid_until"] == product.certificate_valid_until.isoformat()
    assert set(client.get("/api/v1/products").json["items"][0]) == set(ProductOut().fields)
    traced = client.get(f"/api/v1/trace/{lot.trace_code}").json
    assert set(traced) == set(TraceOut().fields) - {"attributed_fen"}
    assert traced["lot"]["harvested_on"] == lot.harvested_on.isoformat()


@pytest.mark.postgres
def test_a_public_read_leaves_what_follows_in_the_request_one_transaction(pg_app):
    """A read run outside a transaction must not leave the session autocommitting what comes next."""
    from catalog import service
    from catalog.models import Location

    sku = ProductFactory().sku
    db.session.commit()
    db.session.close()
    assert service.show_product(sku=sku, actor=None)["sku"] == sku
    LocationFactory(code="AFTER-READ")
    db.session.flush()
    db.session.rollback()
    assert db.session.scalar(select(Location.id).where(Location.code == "AFTER-READ")) is None
