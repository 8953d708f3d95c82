"""Cursors are signed for their list and type-checked: anything not issued by the list is a 400."""
from __future__ import annotations

import base64
import json

import pytest

from catalog.models import Product, ProductChange
from shop.db import db
from shop.pagination import _serializer
from shop.regions.models import Region
from tests.catalog.factories import ProductFactory


def assert_invalid_cursor(response) -> None:
    """The response is the 400 `invalid_cursor` error."""
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "invalid_cursor"
    assert "cursor" in response.json["error"]["details"]


@pytest.fixture
def products(app):
    """Five active products."""
    made = ProductFactory.create_batch(5)
    db.session.commit()
    return made


def _next_cursor(client, url: str, headers: dict | None = None) -> str:
    """The next_cursor of the first page of `url`."""
    cursor = client.get(url, headers=headers).json["next_cursor"]
    assert cursor
    return cursor


def test_a_cursor_pages_on_where_the_last_page_ended(client, products):
    cursor = _next_cursor(client, "/api/v1/products?limit=2")
    page = client.get(f"/api/v1/products?limit=2&cursor={cursor}").json
    assert [p["sku"] for p in page["items"]] == [p.sku for p in products[2:4]]


def test_an_unsigned_cursor_is_refused(client, products):
    forged = base64.urlsafe_b64encode(json.dumps([2]).encode()).decode().rstrip("=")
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={forged}"))


def test_a_truncated_or_edited_cursor_is_refused(client, products):
    cursor = _next_cursor(client, "/api/v1/products?limit=2")
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={cursor[:-3]}"))
    payload, signature = cursor.split(".")
    edited = base64.urlsafe_b64encode(json.dumps([0]).encode()).decode().rstrip("=")
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={edited}.{signature}"))


def test_a_cursor_of_another_list_is_refused(client, products, login):
    product_cursor = _next_cursor(client, "/api/v1/products?limit=2")
    assert_invalid_cursor(client.get(f"/api/v1/regions?cursor={product_cursor}"))
    assert_invalid_cursor(client.get(f"/api/v1/products/{products[0].sku}/history?cursor={product_cursor}",
                                     headers=login("admin")))


@pytest.mark.parametrize("values", [
    ["2"], [2.0], [True], [None], [2**31], [2**63], [-(2**63) - 1], [1, 2], [], {"id": 2}, "2", 2,
])
def test_a_correctly_signed_cursor_with_mistyped_values_is_refused(app, client, products, values):
    cursor = _serializer([Product.id]).dumps(values)
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={cursor}"))


def test_string_keys_are_checked_against_their_column(app, client):
    good = _serializer([Region.code]).dumps(["513400"])
    assert client.get(f"/api/v1/regions?cursor={good}").status_code == 200
    for values in ([513400], ["5" * 500]):
        assert_invalid_cursor(client.get(f"/api/v1/regions?cursor={_serializer([Region.code]).dumps(values)}"))


def test_a_cursor_signed_with_another_secret_is_refused(app, client, products):
    cursor = _serializer([Product.id]).dumps([2])
    app.config["SECRET_KEY"] = "another-secret"
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={cursor}"))


def test_an_oversized_cursor_or_limit_is_a_validation_error(client):
    for query in ("cursor=" + "a" * 600, "limit=101", "limit=0", "limit=99999999999999999999999"):
        response = client.get(f"/api/v1/products?{query}")
        assert response.status_code == 422, query
        assert set(response.json["error"]["details"]) <= {"cursor", "limit"}


def test_history_pages_with_its_own_cursors(client, login):
    product = ProductFactory()
    db.session.add_all(ProductChange(product_id=product.id, field="price_fen", old_value=i, new_value=i + 1)
                       for i in range(3))
    db.session.commit()
    headers = login("admin")
    url = f"/api/v1/products/{product.sku}/history?limit=2"
    cursor = _next_cursor(client, url, headers)
    rest = client.get(f"{url}&cursor={cursor}", headers=headers)
    assert rest.status_code == 200 and [h["old_value"] for h in rest.json["items"]] == [2]
