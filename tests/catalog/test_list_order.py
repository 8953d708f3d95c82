"""The product list's `sort`: by id (the default), newest first, by price up or down, ties by id; paging through
each order returns every product once, in order, on SQLite and PostgreSQL; a cursor holds for its own order only."""
from __future__ import annotations

import pytest

from shop.db import db
from tests.catalog.factories import ProductFactory
from tests.suppliers.factories import SupplierFactory

PRICES = (3000, 1500, 3000, 990, 1500, 3000, 4200, 990, 1500, 3000, 2500)  # equal prices across page boundaries


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(request):
    """A test client of the app on SQLite, then on PostgreSQL."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app").test_client()


def _made() -> list[tuple[int, str, int]]:
    """The products of PRICES, made in order, and a draft no list shows: (id, SKU, price) of each on sale."""
    supplier = SupplierFactory()
    products = [ProductFactory(supplier=supplier, price_fen=price) for price in PRICES]
    ProductFactory(supplier=supplier, price_fen=1500, status="draft")
    db.session.commit()
    return [(product.id, product.sku, product.price_fen) for product in products]


def _all_pages(client, query: str, limit: int = 3) -> tuple[list[dict], int]:
    """Every item of the list `query` read page by page, and the number of pages."""
    items, cursor, pages = [], None, 0
    while True:
        response = client.get(f"/api/v1/products?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.json
        items += response.json["items"]
        pages += 1
        cursor = response.json["next_cursor"]
        if cursor is None:
            return items, pages


@pytest.mark.parametrize(("sort", "key"), [
    (None, lambda row: row[0]),
    ("id", lambda row: row[0]),
    ("newest", lambda row: -row[0]),
    ("price_asc", lambda row: (row[2], row[0])),
    ("price_desc", lambda row: (-row[2], -row[0])),
])
def test_paging_through_each_order_returns_every_product_once_in_order(api, sort, key):
    made = _made()
    query = f"&sort={sort}" if sort else ""

    for limit in (1, 3, 4, 100):
        items, pages = _all_pages(api, query, limit)
        assert [item["sku"] for item in items] == [sku for _, sku, _ in sorted(made, key=key)], (sort, limit)
        assert pages == -(-len(made) // limit)


def test_price_orders_filter_by_price_and_category_and_keep_ties_in_id_order(api):
    made = _made()
    fruit = ProductFactory(supplier=SupplierFactory(), price_fen=1500, category="水果").sku
    db.session.commit()
    cheap_first, _ = _all_pages(api, "&sort=price_asc&category=粮油&min_price_fen=1500&max_price_fen=3000", 2)
    in_range = [(id_, sku, price) for id_, sku, price in made if 1500 <= price <= 3000]
    assert [item["sku"] for item in cheap_first] == [sku for _, sku, _ in sorted(in_range, key=lambda r: (r[2], r[0]))]
    assert [item["price_fen"] for item in cheap_first] == [1500] * 3 + [2500] + [3000] * 4
    dearest_first, _ = _all_pages(api, "&sort=PRICE_DESC&max_price_fen=1500", 2)  # a choice in any case
    assert [item["sku"] for item in dearest_first] == \
        [fruit] + [sku for _, sku, price in reversed(made) if price == 1500] + \
        [sku for _, sku, price in reversed(made) if price == 990]


def test_a_cursor_holds_for_the_order_it_was_issued_for_only(api):
    _made()
    cursors = {}
    for sort in ("id", "newest", "price_asc", "price_desc"):
        cursors[sort] = api.get(f"/api/v1/products?limit=2&sort={sort}").json["next_cursor"]
        assert api.get(f"/api/v1/products?limit=2&sort={sort}&cursor={cursors[sort]}").status_code == 200
    for issued, cursor in cursors.items():
        for sent in ("id", "newest", "price_asc", "price_desc"):
            if sent != issued:
                response = api.get(f"/api/v1/products?limit=2&sort={sent}&cursor={cursor}")
                assert response.status_code == 400, (issued, sent)
                assert response.json["error"]["code"] == "invalid_cursor"
    forged = cursors["price_asc"][:-2] + ("AA" if not cursors["price_asc"].endswith("AA") else "BB")
    assert api.get(f"/api/v1/products?sort=price_asc&cursor={forged}").json["error"]["code"] == "invalid_cursor"


def test_an_unknown_sort_is_a_422_naming_it(api):
    for sort in ("price", "name", "-price_fen", "x" * 200):
        response = api.get(f"/api/v1/products?sort={sort}")
        assert response.status_code == 422, sort
        assert response.json["error"]["code"] == "validation_error"
        assert list(response.json["error"]["details"]) == ["sort"]
    assert api.get("/api/v1/products?sort=").status_code == 200  # left empty: the default


def test_the_sort_parameter_is_documented_with_its_choices(api):
    parameters = api.get("/api/v1/openapi.json").json["paths"]["/api/v1/products"]["get"]["parameters"]
    sort = next(parameter for parameter in parameters if parameter["name"] == "sort")
    assert sort["schema"]["enum"] == ["id", "newest", "price_asc", "price_desc"]
    assert sort["schema"]["default"] == "id"
    assert "id" in sort["description"] and "cursor" in sort["description"]
