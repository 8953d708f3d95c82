"""A supplier's default agreement: the platform's rates, set by admins, read by the catalog."""
from __future__ import annotations

from sqlalchemy import select

from shop.auth.models import User
from shop.db import db
from suppliers.models import DEFAULT_AGREEMENT
from suppliers.service import default_agreement
from tests.shop.test_errors import assert_error
from tests.suppliers.factories import make_uscc

RATES = {"platform_fee_bp": 600, "store_commission_bp": 1000, "household_premium_bp": 500, "dividend_bp": 300}


def _create(client, admin, n, **extra):
    """POST a new supplier."""
    return client.post("/api/v1/suppliers", headers=admin, json={
        "name": f"协议社{n}", "kind": "cooperative", "uscc": make_uscc(7000 + n), "county_code": "513431", **extra})


def test_a_new_supplier_has_the_platforms_non_zero_default_agreement(client, admin):
    response = _create(client, admin, 1)
    assert response.status_code == 201
    assert response.json["agreement"] == DEFAULT_AGREEMENT and all(DEFAULT_AGREEMENT.values())
    assert default_agreement(supplier_id=response.json["id"]) == DEFAULT_AGREEMENT


def test_admins_set_the_agreement_and_the_catalog_reads_it(client, admin):
    created = _create(client, admin, 2, agreement=RATES)
    assert created.status_code == 201 and created.json["agreement"] == RATES
    changed = client.patch(f"/api/v1/suppliers/{created.json['id']}", headers=admin,
                           json={"agreement": {**RATES, "dividend_bp": 0}})
    assert changed.status_code == 200
    assert default_agreement(supplier_id=created.json["id"]) == {**RATES, "dividend_bp": 0}


def test_rates_are_bounded_and_sum_to_at_most_everything(client, admin, supplier):
    for bad in ({**RATES, "platform_fee_bp": 10001}, {**RATES, "platform_fee_bp": -1},
                {**RATES, "platform_fee_bp": 9000}, {k: v for k, v in RATES.items() if k != "dividend_bp"},
                {**RATES, "dividend_bp": "300"}):
        response = client.patch(f"/api/v1/suppliers/{supplier.id}", headers=admin, json={"agreement": bad})
        assert response.status_code == 422 and "agreement" in response.json["error"]["details"], bad


def test_a_coop_cannot_set_its_own_rates(client, coop, supplier):
    response = client.patch(f"/api/v1/suppliers/{supplier.id}", headers=coop,
                            json={"agreement": {**RATES, "platform_fee_bp": 0}})
    assert response.status_code == 403
    assert default_agreement(supplier_id=supplier.id) == DEFAULT_AGREEMENT


def test_every_agreement_rate_change_is_kept_in_the_suppliers_history(client, admin, login, supplier):
    response = client.patch(f"/api/v1/suppliers/{supplier.id}", headers=admin,
                            json={"agreement": {**DEFAULT_AGREEMENT, "platform_fee_bp": 600, "dividend_bp": 100},
                                  "reason": "2027 年协议"})
    assert response.status_code == 200
    client.patch(f"/api/v1/suppliers/{supplier.id}", headers=admin,  # the same rates again: nothing to record
                 json={"agreement": {**DEFAULT_AGREEMENT, "platform_fee_bp": 600, "dividend_bp": 100}})
    client.patch(f"/api/v1/suppliers/{supplier.id}", headers=admin,
                 json={"agreement": {**DEFAULT_AGREEMENT, "platform_fee_bp": 700, "dividend_bp": 100}})

    admin_user = db.session.scalar(select(User).where(User.role == "admin"))
    for headers in (admin, login("auditor")):
        history = client.get(f"/api/v1/suppliers/{supplier.id}/history", headers=headers)
        assert history.status_code == 200
        assert [(h["field"], h["old_value"], h["new_value"], h["reason"]) for h in history.json["items"]] == [
            ("platform_fee_bp", DEFAULT_AGREEMENT["platform_fee_bp"], 600, "2027 年协议"),
            ("dividend_bp", DEFAULT_AGREEMENT["dividend_bp"], 100, "2027 年协议"),
            ("platform_fee_bp", 600, 700, None)]
        assert all(h["changed_by"] == admin_user.id and h["username"] == admin_user.username and h["changed_at"]
                   for h in history.json["items"])


def test_a_suppliers_history_is_for_its_coop_admins_and_auditors(client, admin, coop, other_coop, supplier):
    assert client.get(f"/api/v1/suppliers/{supplier.id}/history", headers=coop).status_code == 200
    assert_error(client.get(f"/api/v1/suppliers/{supplier.id}/history", headers=other_coop), 404, "supplier_not_found")
    assert_error(client.get("/api/v1/suppliers/999999/history", headers=admin), 404, "supplier_not_found")
