"""Agreement rates and activation are the platform's: co-ops create drafts on their supplier's default
agreement, only admins set rates or put a product on sale, and the history records who set what."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from catalog.models import Product, ProductChange
from shop.auth.models import User
from shop.db import db
from tests.catalog.factories import ProductFactory
from tests.catalog.test_products import RATES, product_body
from tests.suppliers.factories import SupplierFactory

AGREEMENT = {"platform_fee_bp": 600, "store_commission_bp": 700, "household_premium_bp": 400, "dividend_bp": 100}


@pytest.fixture
def agreed_coop(login):
    """A co-op whose supplier has a default agreement set by the platform, and its user's headers."""
    supplier = SupplierFactory(**AGREEMENT)
    db.session.commit()
    return supplier, login("coop", supplier_id=supplier.id)


def _history(product_id: int) -> list[tuple]:
    """The product's history as (field, old, new, changed_by), oldest first."""
    rows = db.session.scalars(select(ProductChange).where(ProductChange.product_id == product_id)
                              .order_by(ProductChange.id))
    return [(r.field, r.old_shown, r.new_shown, r.changed_by) for r in rows]


def test_a_coops_new_product_is_a_draft_on_its_suppliers_default_agreement(client, agreed_coop):
    supplier, headers = agreed_coop
    response = client.post("/api/v1/products", json=product_body(), headers=headers)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "draft"
    assert {name: response.json[name] for name in AGREEMENT} == AGREEMENT

    product = db.session.scalar(select(Product).where(Product.sku == "ZJ-KQ-001"))
    coop_user = db.session.scalar(select(User).where(User.supplier_id == supplier.id))
    assert _history(product.id) == [("price_fen", None, 3980, coop_user.id),
                                    *((name, None, AGREEMENT[name], coop_user.id) for name in AGREEMENT),
                                    ("unit", None, "bag", coop_user.id), ("net_weight_g", None, 1000, coop_user.id)]


@pytest.mark.parametrize("rate", sorted(AGREEMENT))
@pytest.mark.parametrize("value", [0, 100])
def test_a_coop_sending_any_rate_on_creation_is_refused(client, agreed_coop, rate, value):
    response = client.post("/api/v1/products", json=product_body(**{rate: value}), headers=agreed_coop[1])
    assert response.status_code == 403
    assert response.json["error"]["code"] == "rates_admin_only"
    assert set(response.json["error"]["details"]) == {rate}
    assert db.session.scalar(select(Product).where(Product.sku == "ZJ-KQ-001")) is None


def test_a_coop_cannot_change_its_products_rates_even_to_zero(client, agreed_coop):
    supplier, headers = agreed_coop
    product = ProductFactory(supplier=supplier)
    db.session.commit()
    for body in ({"platform_fee_bp": 0}, {"dividend_bp": 0, "household_premium_bp": 0, "price_fen": 1},
                 {"store_commission_bp": product.store_commission_bp}):
        response = client.patch(f"/api/v1/products/{product.sku}", json=body, headers=headers)
        assert response.status_code == 403, body
        assert response.json["error"]["code"] == "rates_admin_only"
    db.session.refresh(product)
    assert (product.platform_fee_bp, product.dividend_bp, product.price_fen) == (500, 300, 2000)
    assert _history(product.id) == []


def test_a_coop_cannot_move_a_product_on_sale_to_another_county(client, agreed_coop, login):
    """The origin decides which donor's pairing its sales count for: only an admin changes it once on sale."""
    supplier, headers = agreed_coop
    on_sale = ProductFactory(supplier=supplier, status="active")
    draft = ProductFactory(supplier=supplier, status="draft")
    db.session.commit()
    moved = client.patch(f"/api/v1/products/{on_sale.sku}", json={"county_code": "513432"}, headers=headers)
    assert moved.status_code == 403 and moved.json["error"]["code"] == "origin_admin_only"
    assert client.patch(f"/api/v1/products/{on_sale.sku}", json={"county_code": on_sale.county_code},
                        headers=headers).status_code == 200
    assert client.patch(f"/api/v1/products/{draft.sku}", json={"county_code": "513432"}, headers=headers
                        ).status_code == 200
    assert client.patch(f"/api/v1/products/{on_sale.sku}", json={"county_code": "513432"}, headers=login("admin")
                        ).status_code == 200


def test_a_coop_cannot_certify_a_product_on_sale_or_extend_its_certificate(client, agreed_coop, login):
    """The 扶贫产品 badge a buyer sees is checked by an admin when the product goes on sale: once on sale, a co-op may
    withdraw the certificate but not set, replace or extend it; on a draft it may (an admin activates it)."""
    supplier, headers = agreed_coop
    on_sale = ProductFactory(supplier=supplier, status="active", certificate_number="凉扶认001",
                             certificate_issuer="凉山州乡村振兴局", certificate_valid_until=date(2026, 1, 31))
    uncertified = ProductFactory(supplier=supplier, status="active", certificate_number=None,
                                 certificate_issuer=None, certificate_valid_from=None, certificate_valid_until=None)
    draft = ProductFactory(supplier=supplier, status="draft")
    db.session.commit()
    extended = {"number": "凉扶认001", "issuer": "凉山州乡村振兴局", "valid_from": "2026-01-01",
                "valid_until": "2099-12-31"}
    for product in (on_sale, uncertified):
        refused = client.patch(f"/api/v1/products/{product.sku}", json={"certificate": extended}, headers=headers)
        assert refused.status_code == 403 and refused.json["error"]["code"] == "certificate_admin_only"
    assert db.session.get(Product, on_sale.id).certificate_valid_until == date(2026, 1, 31)
    assert db.session.get(Product, uncertified.id).certificate_number is None
    assert client.patch(f"/api/v1/products/{draft.sku}", json={"certificate": extended},
                        headers=headers).status_code == 200
    assert client.patch(f"/api/v1/products/{on_sale.sku}", json={"certificate": extended},
                        headers=login("admin")).status_code == 200
    same = client.patch(f"/api/v1/products/{on_sale.sku}", json={"certificate": extended, "price_fen": 2100},
                        headers=headers)
    assert same.status_code == 200  # the certificate it holds, sent again with an edit, changes nothing
    withdrawn = client.patch(f"/api/v1/products/{on_sale.sku}", json={"certificate": None}, headers=headers)
    assert withdrawn.status_code == 200 and withdrawn.json["certified"] is False


def test_an_admin_changes_rates_and_the_history_names_the_admin(client, agreed_coop, login):
    product = ProductFactory(supplier=agreed_coop[0])
    db.session.commit()
    response = client.patch(f"/api/v1/products/{product.sku}", json={"platform_fee_bp": 0}, headers=login("admin"))
    assert response.status_code == 200 and response.json["platform_fee_bp"] == 0
    admin = db.session.scalar(select(User).where(User.role == "admin"))
    assert _history(product.id) == [("platform_fee_bp", 500, 0, admin.id)]


def test_only_an_admin_puts_a_product_on_sale_and_a_coop_may_archive_its_own(client, agreed_coop, login):
    _, headers = agreed_coop
    refused = client.post("/api/v1/products", json=product_body(status="active"), headers=headers)
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "activation_admin_only"
    assert client.post("/api/v1/products", json=product_body(), headers=headers).status_code == 201

    activate = client.patch("/api/v1/products/ZJ-KQ-001", json={"status": "active"}, headers=headers)
    assert activate.status_code == 403
    assert activate.json["error"]["code"] == "activation_admin_only"
    assert client.get("/api/v1/products/ZJ-KQ-001").status_code == 404

    admin = client.patch("/api/v1/products/ZJ-KQ-001", json={"status": "active"}, headers=login("admin"))
    assert admin.status_code == 200 and admin.json["status"] == "active"
    assert client.get("/api/v1/products/ZJ-KQ-001").status_code == 200
    edit = client.patch("/api/v1/products/ZJ-KQ-001", json={"status": "active", "price_fen": 4200}, headers=headers)
    assert edit.status_code == 200 and edit.json["status"] == "active"

    archived = client.patch("/api/v1/products/ZJ-KQ-001", json={"status": "archived"}, headers=headers)
    assert archived.status_code == 200 and archived.json["status"] == "archived"
    assert client.get("/api/v1/products/ZJ-KQ-001").status_code == 404


def test_an_admin_creates_with_explicit_rates_or_the_suppliers_default(client, agreed_coop, login):
    supplier, _ = agreed_coop
    headers = login("admin")
    explicit = client.post("/api/v1/products", headers=headers,
                           json=product_body(supplier_id=supplier.id, status="active", **RATES))
    assert explicit.status_code == 201
    assert explicit.json["status"] == "active"
    assert {name: explicit.json[name] for name in RATES} == RATES

    partial = client.post("/api/v1/products", headers=headers,
                          json=product_body(sku="ZJ-KQ-002", name="昭觉苦荞米（2公斤装）", supplier_id=supplier.id,
                                            dividend_bp=0))
    assert partial.status_code == 201
    assert {name: partial.json[name] for name in AGREEMENT} == AGREEMENT | {"dividend_bp": 0}
