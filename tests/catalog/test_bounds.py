"""Bounded input: numbers beyond any realistic value (or a column's range) in the query, the path, the
body or a cursor are 4xx JSON errors on both databases, never a 500 or 503; identifiers in any spelling."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from catalog.models import Lot, Product
from shop.blueprint import Blueprint
from shop.db import db
from shop.extensions import api
from shop.fields import MAX_QUANTITY
from shop.pagination import _serializer
from tests.catalog.factories import LocationFactory, ProductFactory, lot_body, make_lot
from tests.factories import DEFAULT_PASSWORD, UserFactory

HUGE = 2**63 - 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request):
    """An app on either database with a product, a warehouse, and a way to sign in."""
    app = request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")
    client = app.test_client()

    def login(role: str = "admin", **scope) -> dict:
        user = UserFactory(role=role, **scope)
        db.session.commit()
        token = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
        return {"Authorization": f"Bearer {token.json['access_token']}"}

    product, location = ProductFactory(), LocationFactory()
    db.session.commit()
    return {"app": app, "client": client, "admin": login("admin"), "product": product, "location": location}


def _product_cursor(app, values) -> str:
    """A cursor of the product list carrying `values`, signed with the app's key as the list signs its own."""
    with app.test_request_context("/api/v1/products"):
        return _serializer([Product.id]).dumps(values)


CASES = [
    # query string
    ("GET", "/api/v1/products?limit=9223372036854775807", None, 422),
    ("GET", "/api/v1/products?limit=-1", None, 422),
    ("GET", "/api/v1/products?min_price_fen=9223372036854775808", None, 422),
    ("GET", "/api/v1/products?max_price_fen=-5", None, 422),
    ("GET", "/api/v1/products?in_stock_at=2147483648", None, 422),
    ("GET", "/api/v1/products?supplier_id=-1", None, 422),
    ("GET", "/api/v1/products?supplier_id=" + "9" * 5000, None, 422),
    ("GET", "/api/v1/regions?limit=99999999999999999999", None, 422),
    # path
    ("GET", "/api/v1/lots/2147483648", None, 404),
    ("GET", "/api/v1/lots/0", None, 404),
    ("GET", "/api/v1/lots/-1", None, 404),
    ("GET", "/api/v1/lots/" + "9" * 5000, None, 404),
    ("GET", "/api/v1/locations/9223372036854775808/stock", None, 404),
    ("GET", "/api/v1/suppliers/2147483648/lots", None, 404),
    ("GET", "/api/v1/inventory-uploads/99999999999", None, 404),
    ("PATCH", "/api/v1/suppliers/9223372036854775807", {"name": "x"}, 404),
    ("GET", "/api/v1/products/" + "A" * 1000, None, 404),
    ("GET", "/api/v1/trace/" + "X" * 1000, None, 404),
    # body
    ("POST", "/api/v1/products", {"price_fen": HUGE}, 422),
    ("POST", "/api/v1/products", {"net_weight_g": 2**31}, 422),
    ("POST", "/api/v1/products", {"supplier_id": 2**40}, 422),
    ("POST", "/api/v1/products", {"platform_fee_bp": HUGE}, 422),
    ("PATCH", "/api/v1/products/{sku}", {"price_fen": HUGE}, 422),
    ("PATCH", "/api/v1/products/{sku}", {"net_weight_g": -(2**63)}, 422),
    ("POST", "/api/v1/lots", {"quantity": HUGE}, 422),
    ("POST", "/api/v1/lots", {"contributions": [{"household_code": "H1", "quantity": HUGE}]}, 422),
    ("POST", "/api/v1/lots", {"contributions": [{"household_code": f"H{i}", "quantity": MAX_QUANTITY}
                                                for i in range(3)]}, 422),
]


@pytest.mark.parametrize(("method", "url", "body", "status"), CASES,
                         ids=[f"{m} {u[:60]} {str(b)[:40]}" for m, u, b, _ in CASES])
def test_out_of_range_numbers_are_4xx_json_never_5xx(world, method, url, body, status):
    product, location = world["product"], world["location"]
    if body is not None and url.endswith("/lots"):
        body = lot_body(product, location, [], **body)
    url = url.format(sku=product.sku)
    response = world["client"].open(url, method=method, json=body, headers=world["admin"])
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    assert set(response.json["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize("values", [[HUGE], [2**31], [-(2**63) - 1]])
def test_a_signed_cursor_beyond_the_key_columns_range_is_a_400(world, values):
    response = world["client"].get(f"/api/v1/products?cursor={_product_cursor(world['app'], values)}")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"


def test_a_lot_of_2_63_units_is_refused_and_the_biggest_allowed_lots_keep_the_product_page_up(world):
    client, product, location = world["client"], world["product"], world["location"]
    huge = client.post("/api/v1/lots", headers=world["admin"],
                       json=lot_body(product, location, [], lot_code="HUGE", quantity=HUGE))
    assert huge.status_code == 422 and "quantity" in huge.json["error"]["details"]
    for n in range(3):
        created = client.post("/api/v1/lots", headers=world["admin"],
                              json=lot_body(product, location, [], lot_code=f"MAX-{n}", quantity=MAX_QUANTITY))
        assert created.status_code == 201, created.json
    page = client.get(f"/api/v1/products/{product.sku}")
    assert page.status_code == 200
    assert page.json["stock"] == [{"location_id": location.id, "available": 3 * MAX_QUANTITY}]
    assert client.get("/api/v1/products").status_code == 200


def test_ids_in_the_openapi_document_are_bounded(client):
    parameters = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/lots/{lot_id}"]["parameters"]
    schema = next(p for p in parameters if p["name"] == "lot_id")["schema"]
    assert (schema["minimum"], schema["maximum"]) == (1, 2**31 - 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def range_client(request):
    """A client of an app (either database) with a route whose query overflows the integer range."""
    app = request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")
    blp = Blueprint("overflow", __name__, url_prefix="/api/v1")

    @blp.route("/overflow")
    def overflow():
        db.session.execute(text("SELECT CAST(:v AS INTEGER)"), {"v": 2**64})
        return {}

    api.register_blueprint(blp)
    return app.test_client()


def test_a_database_range_error_is_a_422_not_a_500(range_client):
    response = range_client.get("/api/v1/overflow")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "value_out_of_range"


def test_skus_and_codes_in_any_spelling_name_the_same_product_and_location(world):
    client, product, location = world["client"], world["product"], world["location"]
    full_width = product.sku.translate({ord(c): ord(c) + 0xFEE0 for c in product.sku})
    for spelling in (product.sku.lower(), full_width, f" {product.sku}\u200b"):
        assert client.get(f"/api/v1/products/{spelling}").json["sku"] == product.sku, spelling
    created = client.post("/api/v1/lots", headers=world["admin"], json=lot_body(
        product, location, [], product_sku=product.sku.lower(), location_code=location.code.lower(),
        lot_code="kq-2026\u200b", quantity=5))
    assert created.status_code == 201, created.json
    assert created.json["sku"] == product.sku and created.json["lot_code"] == "KQ-2026"


def test_trace_codes_in_any_spelling_find_the_lot(world):
    client = world["client"]
    lot: Lot = make_lot(world["product"], world["location"])
    db.session.commit()
    code = lot.trace_code
    for spelling in (code.lower(), code.translate({ord(c): ord(c) + 0xFEE0 for c in code if c.isalnum()})):
        assert client.get(f"/api/v1/trace/{spelling}").json["trace_code"] == code, spelling
        assert client.get(f"/t/{spelling}").status_code == 200, spelling
    missing = client.get("/t/" + "Z" * 2000)
    assert missing.status_code == 404 and ("Z" * 65).encode() not in missing.data


@pytest.mark.parametrize("url", ["/api/v1/products/AB%00C", "/api/v1/trace/AB%00C", "/t/AB%00C",
                                 "/api/v1/products/%E2%80%8B", "/t/%20"])
def test_codes_that_cannot_be_a_sku_or_trace_code_are_not_found(world, url):
    assert world["client"].get(url).status_code == 404


def test_household_codes_in_contributions_in_any_spelling_find_the_household(client, coop_world):
    world = coop_world
    body = lot_body(world["product"], world["location"], world["households"])
    for contribution in body["contributions"]:
        contribution["household_code"] = f" {contribution['household_code'].lower()}\u200b"
    created = client.post("/api/v1/lots", json=body, headers=world["headers"])
    assert created.status_code == 201, created.json
    assert created.json["households"] == 3
