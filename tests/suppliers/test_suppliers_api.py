"""Suppliers: registration by admins, validation, scope, masking and reveal of the bank account."""
from __future__ import annotations

import pytest

from shop.auth.service import create_user
from shop.db import db
from shop.errors import NotFound, ValidationError
from suppliers.service import get_supplier, supplier_takes_users
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.parallel import send_together
from tests.statements import statements
from tests.suppliers.factories import SupplierFactory, make_bank_account, make_uscc


def _body(**overrides) -> dict:
    """A valid supplier registration."""
    return {"name": "昭觉县测试苦荞合作社", "kind": "cooperative", "uscc": make_uscc(9001), "county_code": "513431",
            **overrides}


def test_admin_registers_a_supplier_with_a_masked_bank_account(client, admin):
    account = make_bank_account()
    response = client.post("/api/v1/suppliers", json=_body(bank_account=account, contact="测试联系人"), headers=admin)
    assert response.status_code == 201, response.json
    assert response.json["uscc"] == make_uscc(9001) and response.json["county_code"] == "513431"
    assert response.json["bank_account"] == "****" + account[-4:]
    assert supplier_takes_users(response.json["id"]) and not supplier_takes_users(response.json["id"] + 1)


def test_a_bad_uscc_check_character_is_rejected(client, admin):
    good = make_uscc(9002)
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")
    response = client.post("/api/v1/suppliers", json=_body(uscc=bad), headers=admin)
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_uscc"


def test_a_uscc_is_registered_once(client, admin):
    assert client.post("/api/v1/suppliers", json=_body(), headers=admin).status_code == 201
    again = client.post("/api/v1/suppliers", json=_body(name="另一个名字"), headers=admin)
    assert again.status_code == 409 and again.json["error"]["code"] == "uscc_taken"


def test_a_supplier_must_be_in_a_recipient_county(client, admin):
    donor = client.post("/api/v1/suppliers", json=_body(county_code="440604"), headers=admin)
    assert donor.status_code == 422 and donor.json["error"]["code"] == "county_not_recipient"
    unknown = client.post("/api/v1/suppliers", json=_body(county_code="513499"), headers=admin)
    assert unknown.status_code == 422 and unknown.json["error"]["code"] == "region_not_found"
    assert unknown.json["error"]["details"] == {"county_code": ["No region with this code."]}


def test_a_bad_bank_account_is_rejected(client, admin):
    response = client.post("/api/v1/suppliers", json=_body(bank_account="not-a-number"), headers=admin)
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_bank_account"


def test_only_admins_create_list_and_edit_suppliers(client, coop, supplier):
    assert client.post("/api/v1/suppliers", json=_body(), headers=coop).status_code == 403
    assert client.get("/api/v1/suppliers", headers=coop).status_code == 403
    assert client.patch(f"/api/v1/suppliers/{supplier.id}", json={"name": "x"}, headers=coop).status_code == 403


def test_admin_lists_filters_and_edits_suppliers(client, admin, supplier, other_supplier):
    listed = client.get("/api/v1/suppliers?county_code=513437", headers=admin).json
    assert [s["id"] for s in listed["items"]] == [other_supplier.id]
    edited = client.patch(f"/api/v1/suppliers/{supplier.id}", json={"active": False, "name": "改名合作社"},
                          headers=admin)
    assert edited.status_code == 200 and edited.json["active"] is False and edited.json["name"] == "改名合作社"
    inactive = client.get("/api/v1/suppliers?active=false", headers=admin).json["items"]
    assert [s["id"] for s in inactive] == [supplier.id]
    fixed_uscc = client.patch(f"/api/v1/suppliers/{supplier.id}", json={"uscc": make_uscc(9003)}, headers=admin)
    assert fixed_uscc.status_code == 422


def test_an_edit_of_a_supplier_reads_it_once_under_its_lock_and_a_missing_one_is_not_found(client, admin, supplier):
    """An admin's edit reads the supplier once, under its lock, before changing it; an id no supplier has is a 404."""
    supplier_id = supplier.id
    db.session.expunge_all()  # a request starts with nothing loaded
    with statements() as seen:
        edited = client.patch(f"/api/v1/suppliers/{supplier_id}", json={"contact": "新联系人"}, headers=admin)
    assert edited.status_code == 200 and edited.json["contact"] == "新联系人"
    write = next(i for i, s in enumerate(seen) if s.startswith("UPDATE suppliers SET contact"))
    assert sum("FROM suppliers" in s and "suppliers.id =" in s for s in seen[:write]) == 1
    missing = client.patch(f"/api/v1/suppliers/{supplier_id + 100}", json={"contact": "谁"}, headers=admin)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "supplier_not_found"


def test_a_coop_sees_its_own_supplier_and_no_other(client, coop, supplier, other_supplier):
    assert client.get(f"/api/v1/suppliers/{supplier.id}", headers=coop).json["name"] == supplier.name
    other = client.get(f"/api/v1/suppliers/{other_supplier.id}", headers=coop)
    assert other.status_code == 404 and other.json["error"]["code"] == "supplier_not_found"


def test_admin_reveals_a_suppliers_bank_account_with_a_reason_and_it_is_audited(client, admin):
    account = make_bank_account()
    supplier = SupplierFactory(bank_account=account)
    db.session.commit()
    assert client.get(f"/api/v1/suppliers/{supplier.id}", headers=admin).json["bank_account"].endswith(account[-4:])
    revealed = client.get(f"/api/v1/suppliers/{supplier.id}?reveal=true&reason=季度结算核对", headers=admin)
    assert revealed.json["bank_account"] == account
    audit = client.get("/api/v1/audit/reveals", headers=admin).json["items"]
    assert [(a["supplier_id"], a["fields"], a["reason"]) for a in audit] == [
        (supplier.id, ["bank_account"], "季度结算核对")]
    assert client.get(f"/api/v1/suppliers/{supplier.id}", headers=admin).json["bank_account"] != account


def test_get_supplier_raises_supplier_not_found(app, supplier):
    assert get_supplier(supplier.id) is supplier
    with pytest.raises(NotFound) as error:
        get_supplier(supplier.id + 100)
    assert error.value.code == "supplier_not_found"


def test_coop_users_must_name_an_existing_supplier(app, supplier):
    assert create_user(username="coop-ok", password="long password", role="coop", supplier_id=supplier.id)
    with pytest.raises(ValidationError) as error:
        create_user(username="coop-bad", password="long password", role="coop", supplier_id=supplier.id + 100)
    assert error.value.details == {"supplier_id": ["No such supplier."]}


def test_the_routes_are_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").json
    assert {"/api/v1/suppliers", "/api/v1/suppliers/{supplier_id}/households", "/api/v1/households/{household_id}",
            "/api/v1/suppliers/{supplier_id}/benefit-links", "/api/v1/benefit-links/{link_id}",
            "/api/v1/audit/reveals"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {"consent_on", "consent_basis", "id_number"} <= set(schemas["HouseholdCreate"]["properties"])
    assert "supplier_id" not in schemas["HouseholdCreate"]["properties"]
    assert "supplier_id" not in schemas["BenefitLinkCreate"]["properties"]


def test_a_supplier_named_like_another_is_refused_naming_it(client, admin):
    """Product and trace pages, statements and payout lists show a supplier by its name: two reading alike (a
    full-width space, a zero-width joiner, full-width letters, other brackets) would be taken for one."""
    first = SupplierFactory(name="大凉山苦荞茶合作社")
    second = SupplierFactory(name="Liangshan Co-op (Buckwheat)")
    db.session.commit()

    alike = {"大凉山\u3000苦荞茶合作社": "大凉山苦荞茶合作社", "大凉山\u200d苦荞茶合作社": "大凉山苦荞茶合作社",
             "ＬＩＡＮＧＳＨＡＮ Co-op（Buckwheat）": "Liangshan Co-op (Buckwheat)"}
    answers = {name: client.post("/api/v1/suppliers", json=_body(name=name, uscc=make_uscc(9100 + n)), headers=admin)
               for n, name in enumerate(alike)}
    rename = client.patch(f"/api/v1/suppliers/{second.id}", json={"name": "大凉山 苦荞茶合作社"}, headers=admin)
    own = client.patch(f"/api/v1/suppliers/{first.id}", json={"name": "大凉山苦荞茶 合作社"}, headers=admin)

    for name, response in answers.items():
        assert (response.status_code, response.json["error"]["code"]) == (409, "supplier_name_taken"), name
        assert alike[name] in response.json["error"]["message"], name
        assert "name" in response.json["error"]["details"], name
    assert (rename.status_code, rename.json["error"]["code"]) == (409, "supplier_name_taken")
    assert (own.status_code, own.json["name"]) == (200, "大凉山苦荞茶 合作社")
    listed = client.get("/api/v1/suppliers?limit=100", headers=admin).json["items"]
    assert sorted(s["name"] for s in listed) == sorted(["大凉山苦荞茶 合作社", "Liangshan Co-op (Buckwheat)"])


def test_suppliers_registered_at_once_under_names_reading_alike_are_one_supplier(racing_app):
    admin = UserFactory(role="admin")
    client = racing_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": admin.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}

    answers = send_together(racing_app, "POST", "/api/v1/suppliers", [
        (headers, _body(name=name, uscc=make_uscc(9200 + n)))
        for n, name in enumerate(("并发苦荞合作社", "并发\u3000苦荞合作社", "并发苦荞\u200d合作社"))])

    assert sorted(status for status, _ in answers) == [201, 409, 409], answers
    assert {body["error"]["code"] for status, body in answers if status == 409} == {"supplier_name_taken"}
    assert [s["id"] for s in client.get("/api/v1/suppliers", headers=headers).json["items"]] == [
        body["id"] for status, body in answers if status == 201]


def test_every_refusal_of_the_suppliers_routes_is_named_in_the_openapi_document(client, admin, coop, supplier,
                                                                                 other_supplier):
    """A client generated from the document must know each answer it can get: a malformed USCC, ID number or account
    (422 with its own code), a household code that names none to link (404), a code the co-op already uses (409)."""
    import re

    from tests.suppliers.factories import HouseholdFactory, household_payload, make_id_number

    own = HouseholdFactory(supplier=supplier)
    theirs = HouseholdFactory(supplier=other_supplier, county_code="513437", code=own.code)
    db.session.commit()
    link = {"household_code": own.code, "kind": "purchase", "valid_from": "2026-01-01"}
    links, households = f"/api/v1/suppliers/{supplier.id}/benefit-links", f"/api/v1/suppliers/{supplier.id}/households"
    sent = [
        ("/api/v1/suppliers", "post", admin, _body(uscc="91110000600037341M"), (422, "invalid_uscc")),
        ("/api/v1/suppliers", "post", admin, _body(bank_account="1234"), (422, "invalid_bank_account")),
        ("/api/v1/suppliers/{supplier_id}", "patch", admin, {"bank_account": "1234", "reason": "换卡"},
         (422, "invalid_bank_account")),
        ("/api/v1/suppliers/{supplier_id}", "patch", admin, {"bank_account": make_bank_account()},
         (422, "account_change_reason_required")),
        ("/api/v1/suppliers/{supplier_id}/households", "post", coop, household_payload(id_number="513431" + "1" * 12),
         (422, "invalid_id_number")),
        ("/api/v1/suppliers/{supplier_id}/households", "post", coop, household_payload(bank_account="1234"),
         (422, "invalid_bank_account")),
        ("/api/v1/households/{household_id}", "patch", coop, {"bank_account": "1234", "reason": "换卡"},
         (422, "invalid_bank_account")),
        ("/api/v1/suppliers/{supplier_id}/benefit-links", "post", coop, {**link, "household_code": "NO-SUCH"},
         (404, "household_not_found")),
        ("/api/v1/suppliers/{supplier_id}/benefit-links", "post", coop, {**link, "id_number": "513431" + "1" * 12},
         (422, "invalid_id_number")),
        ("/api/v1/suppliers/{supplier_id}/benefit-links", "post", coop, {**link, "id_number": theirs.id_number},
         (409, "household_code_taken")),
    ]
    paths = client.get("/api/v1/openapi.json").json["paths"]
    urls = {"/api/v1/suppliers": "/api/v1/suppliers", "/api/v1/suppliers/{supplier_id}": f"/api/v1/suppliers/"
            f"{supplier.id}", "/api/v1/suppliers/{supplier_id}/households": households,
            "/api/v1/households/{household_id}": f"/api/v1/households/{own.id}",
            "/api/v1/suppliers/{supplier_id}/benefit-links": links}
    undocumented = []
    for path, method, headers, body, expected in sent:
        answer = client.open(urls[path], method=method, json=body, headers=headers)
        assert (answer.status_code, answer.json["error"]["code"]) == expected, (path, body, answer.json)
        description = paths[path][method]["responses"].get(str(expected[0]), {}).get("description", "")
        if f"`{expected[1]}`" not in re.findall(r"`\w+`", description):
            undocumented.append(f"{method.upper()} {path}: {expected}")
    assert not undocumented, "\n".join(undocumented)
    assert make_id_number()  # the sweep's list of personal data is not empty


def test_every_change_of_a_supplier_is_recorded_with_who_when_and_what(client, admin, coop, supplier, other_coop,
                                                                       login):
    """Who renamed a co-op, changed its contact or deactivated it must be known afterwards: each field changed is a
    history row (old and new, who, when, the reason if given) beside its rate changes, readable by its co-op, admins
    and auditors; its bank account's changes are in the account-change audit only (masked)."""
    url, account, name = f"/api/v1/suppliers/{supplier.id}", make_bank_account(), supplier.name
    assert client.patch(url, headers=admin, json={"name": name, "contact": "李四 0834-1234567",
                                                  "kind": "enterprise"}).status_code == 200
    assert client.patch(url, headers=admin, json={"active": False, "contact": None, "reason": "合作社注销",
                                                  "bank_account": account}).status_code == 200
    assert client.patch(url, headers=login("admin"), json={"active": True, "name": "新名字合作社"}).status_code == 200

    for headers in (coop, admin, login("auditor")):
        history = client.get(f"{url}/history", headers=headers)
        assert history.status_code == 200, history.json
        rows = [(row["field"], row["old_value"], row["new_value"], row["reason"]) for row in history.json["items"]]
        assert rows == [("kind", "cooperative", "enterprise", None), ("contact", None, "李四 0834-1234567", None),
                        ("contact", "李四 0834-1234567", None, "合作社注销"), ("active", "true", "false", "合作社注销"),
                        ("name", name, "新名字合作社", None), ("active", "false", "true", None)]
        assert all(row["changed_at"] and row["username"].startswith("user") for row in history.json["items"])
        assert account[-4:] not in history.get_data(as_text=True)
    by = [row["changed_by"] for row in client.get(f"{url}/history", headers=admin).json["items"]]
    assert by[0] == by[3] != by[4] == by[5]
    assert client.get(f"{url}/history", headers=other_coop).status_code == 404
    page = client.get(f"{url}/history?limit=4", headers=coop).json
    assert len(page["items"]) == 4 and page["next_cursor"]


def test_a_yi_contacts_name_is_kept_with_the_id_cards_middle_dot_however_it_was_typed(client, admin):
    """A supplier's contact is a person's name, written as on the ID card (吉克·阿依) however the dot was typed."""
    created = client.post("/api/v1/suppliers", json=_body(contact="吉克•阿依"), headers=admin)
    assert created.status_code == 201 and created.json["contact"] == "吉克·阿依"
    edited = client.patch(f"/api/v1/suppliers/{created.json['id']}", json={"contact": "阿苏 ・拉格．木呷"},
                          headers=admin)
    assert edited.status_code == 200 and edited.json["contact"] == "阿苏·拉格·木呷"
