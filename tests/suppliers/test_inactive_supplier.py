"""A deactivated supplier's co-op still reads its own data (households, links, lots, statements) but changes none of
it: every route a co-op may write through answers `supplier_inactive` 409, found from the app's URL map so that a new
co-op write route is covered (or this test fails until it is)."""
from __future__ import annotations

import io
import re
from datetime import date

import pytest
from sqlalchemy import select

from shop.db import db
from suppliers.models import BenefitLink, Household
from tests.catalog.factories import LocationFactory, ProductFactory, lot_body
from tests.contract.conftest import documented_codes
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, household_payload, make_bank_account

# routes a co-op calls that change no supplier's data: its own sign-out and password
NOT_SUPPLIER_DATA = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/users/me/password")}

# (method, rule) -> the request a co-op of the supplier would send: (url, keyword arguments of the test client)
COOP_WRITES = {
    ("POST", "/api/v1/suppliers/<int:supplier_id>/households"):
        lambda s: (f"/api/v1/suppliers/{s['supplier'].id}/households", {"json": household_payload()}),
    ("PATCH", "/api/v1/households/<int:household_id>"):
        lambda s: (f"/api/v1/households/{s['household'].id}",
                   {"json": {"bank_account": make_bank_account(), "reason": "农户换了银行卡"}}),
    ("POST", "/api/v1/suppliers/<int:supplier_id>/benefit-links"):
        lambda s: (f"/api/v1/suppliers/{s['supplier'].id}/benefit-links",
                   {"json": {"household_code": s["household"].code, "kind": "employment",
                             "valid_from": date.today().isoformat()}}),
    ("PATCH", "/api/v1/benefit-links/<int:link_id>"):
        lambda s: (f"/api/v1/benefit-links/{s['link'].id}", {"json": {"valid_until": "2026-11-28"}}),
    ("POST", "/api/v1/products"):
        lambda s: ("/api/v1/products", {"json": {"sku": "INACTIVE-NEW", "name": "停用社新品", "unit": "bag",
                                                 "net_weight_g": 500, "price_fen": 100, "category": "grain",
                                                 "county_code": "513431"}}),
    ("PATCH", "/api/v1/products/<sku>"):
        lambda s: (f"/api/v1/products/{s['product'].sku}", {"json": {"status": "archived"}}),
    ("POST", "/api/v1/lots"):
        lambda s: ("/api/v1/lots", {"json": lot_body(s["product"], s["location"], [s["household"]])}),
    ("POST", "/api/v1/suppliers/<int:supplier_id>/inventory-uploads"):
        lambda s: (f"/api/v1/suppliers/{s['supplier'].id}/inventory-uploads",
                   {"data": {"file": (io.BytesIO(b"sku,lot_code\nX,Y\n"), "a.csv")},
                    "content_type": "multipart/form-data"}),
}


def _required_roles(view, method: str) -> tuple[str, ...]:
    """The roles `require_role` admits to a view's `method`."""
    handler = getattr(getattr(view, "view_class", None), method.lower(), view)
    while handler is not None and not hasattr(handler, "required_roles"):
        handler = getattr(handler, "__wrapped__", None)
    return getattr(handler, "required_roles", ())


def _coop_writes(app) -> set[tuple[str, str]]:
    """Every (method, rule) of the API a co-op user may send a change to."""
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"GET", "HEAD", "OPTIONS"}
            if "coop" in _required_roles(app.view_functions[rule.endpoint], method)}


@pytest.fixture
def deactivated(client, admin, coop, supplier):
    """The supplier's household, link, product and a warehouse, and then the supplier deactivated by an admin."""
    household = HouseholdFactory(supplier=supplier, bank_account=make_bank_account())
    link = BenefitLinkFactory(household=household, supplier_id=supplier.id)
    product, location = ProductFactory(supplier=supplier, status="active"), LocationFactory()
    db.session.commit()
    assert client.patch(f"/api/v1/suppliers/{supplier.id}", json={"active": False}, headers=admin).status_code == 200
    return {"supplier": supplier, "household": household, "link": link, "product": product, "location": location}


def test_every_co_op_write_route_is_covered(app):
    assert _coop_writes(app) - NOT_SUPPLIER_DATA == set(COOP_WRITES)


@pytest.mark.parametrize("route", sorted(COOP_WRITES), ids=" ".join)
def test_a_deactivated_suppliers_co_op_changes_nothing(client, coop, deactivated, route):
    url, kwargs = COOP_WRITES[route](deactivated)
    response = client.open(url, method=route[0], headers=coop, **kwargs)
    assert (response.status_code, response.json["error"]["code"]) == (409, "supplier_inactive"), response.json
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route[1])
    operation = client.get("/api/v1/openapi.json").json["paths"][path][route[0].lower()]
    assert "supplier_inactive" in documented_codes(operation).get(409, set())


def test_its_household_bank_account_and_links_stay_as_they_were_and_it_still_reads_them(client, coop, deactivated):
    household, link = deactivated["household"], deactivated["link"]
    account = household.bank_account
    edited = client.patch(f"/api/v1/households/{household.id}", headers=coop,
                          json={"bank_account": make_bank_account(), "head_name": "改名", "reason": "换卡"})
    ended = client.patch(f"/api/v1/benefit-links/{link.id}", json={"valid_until": "2026-11-28"}, headers=coop)
    assert [edited.status_code, ended.status_code] == [409, 409]
    db.session.expire_all()
    assert db.session.get(Household, household.id).bank_account == account
    assert db.session.scalar(select(BenefitLink.valid_until).where(BenefitLink.id == link.id)) is None
    supplier_id = deactivated["supplier"].id
    for url in (f"/api/v1/households/{household.id}", f"/api/v1/benefit-links/{link.id}",
                f"/api/v1/suppliers/{supplier_id}/households", f"/api/v1/suppliers/{supplier_id}/benefit-links",
                f"/api/v1/suppliers/{supplier_id}/lots", f"/api/v1/households/{household.id}/statement",
                f"/api/v1/suppliers/{supplier_id}/statement"):
        assert client.get(url, headers=coop).status_code == 200, url


def test_an_admin_still_corrects_a_deactivated_suppliers_households_and_ends_its_links(client, admin, deactivated):
    household, link = deactivated["household"], deactivated["link"]
    edited = client.patch(f"/api/v1/households/{household.id}", json={"members": 5}, headers=admin)
    ended = client.patch(f"/api/v1/benefit-links/{link.id}", json={"valid_until": "2026-11-28"}, headers=admin)
    assert [edited.status_code, ended.status_code] == [200, 200], (edited.json, ended.json)
