"""Stores: opening one in a donor district, who sees which store, the audited payout account."""
from __future__ import annotations

from sqlalchemy import select

from orders.models import Store, StoreAccountChange
from shop.auth.models import User
from shop.db import db
from tests.catalog.factories import LocationFactory
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.factories import StoreFactory
from tests.parallel import send_together
from tests.suppliers.factories import SupplierFactory


def _store_location(code="FS-TEST-ST", region="440604"):
    location = LocationFactory(code=code, kind="store", region_code=region)
    db.session.commit()
    return location


def test_admin_opens_a_store_with_an_encrypted_masked_account(client, login):
    location = _store_location()
    body = {"name": " 大凉山体验店（禅城） ", "district_code": "440604", "location_code": "fs-test-st",
            "bank_account": "6222 0212 3456 7890"}

    response = client.post("/api/v1/stores", json=body, headers=login("admin"))

    assert response.status_code == 201, response.json
    assert response.json == {"id": response.json["id"], "name": "大凉山体验店（禅城）", "district_code": "440604",
                             "location_id": location.id, "active": True, "bank_account": "****7890"}
    stored = db.session.get(Store, response.json["id"])
    assert stored.bank_account == "6222021234567890" and "7890" not in stored.bank_account_enc


def test_a_store_needs_a_donor_district(client, login):
    _store_location(region="513431")
    body = {"name": "店", "district_code": "513431", "location_code": "FS-TEST-ST"}

    response = client.post("/api/v1/stores", json=body, headers=login("admin"))

    assert response.status_code == 422
    assert response.json["error"]["code"] == "district_not_donor"
    assert "district_code" in response.json["error"]["details"]


def test_a_store_needs_an_unused_store_location(client, login):
    admin = login("admin")
    warehouse = LocationFactory(kind="warehouse")
    taken = StoreFactory()
    db.session.commit()

    wrong_kind = client.post("/api/v1/stores", json={"name": "店", "district_code": "440604",
                                                     "location_code": warehouse.code}, headers=admin)
    used = client.post("/api/v1/stores", json={"name": "店", "district_code": "440604",
                                               "location_code": db.session.get(
                                                   type(warehouse), taken.location_id).code}, headers=admin)

    assert (wrong_kind.status_code, wrong_kind.json["error"]["code"]) == (422, "location_not_store")
    assert (used.status_code, used.json["error"]["code"]) == (409, "location_taken")
    assert db.session.scalar(select(Store.id).where(Store.id != taken.id)) is None


def test_two_stores_never_share_a_name(client, login):
    admin = login("admin")
    first, other = _store_location(), _store_location(code="FS-TEST-ST2")
    renamed = StoreFactory()
    db.session.commit()

    opened = client.post("/api/v1/stores", json={"name": "大凉山体验店（禅城）", "district_code": "440604",
                                                 "location_code": first.code}, headers=admin)
    again = client.post("/api/v1/stores", json={"name": " 大凉山体验店（禅城） ", "district_code": "440604",
                                                "location_code": other.code}, headers=admin)
    rename = client.patch(f"/api/v1/stores/{renamed.id}", json={"name": "大凉山体验店（禅城）"}, headers=admin)
    keep = client.patch(f"/api/v1/stores/{opened.json['id']}", json={"name": "大凉山体验店（禅城）"}, headers=admin)

    assert opened.status_code == 201
    for response in (again, rename):
        assert (response.status_code, response.json["error"]["code"]) == (409, "store_name_taken")
        assert "name" in response.json["error"]["details"]
    assert keep.status_code == 200
    assert db.session.scalar(select(Store.id).where(Store.location_id == other.id)) is None
    assert db.session.get(Store, renamed.id).name != "大凉山体验店（禅城）"


def test_a_store_named_like_another_is_refused_naming_it(client, login):
    admin = login("admin")
    locations = [_store_location(code=f"FS-ALIKE-{n}") for n in range(11)]
    first, second = StoreFactory(name="大良店A"), StoreFactory(name="Store a")
    StoreFactory(name="店（顺德）")
    db.session.commit()

    alike = {"大良店Ａ": "大良店A", "大良店 A": "大良店A", "大良店\u200ba": "大良店A",
             "STORE A": "Store a", "Store  A": "Store a", "ｓｔｏｒｅ\u3000a": "Store a",
             "店(顺德)": "店（顺德）", "店 ( 顺德 )": "店（顺德）", "店（顺\U000e0100德）": "店（顺德）",
             "大良店A\ufe0f": "大良店A", "大良店\u034fA": "大良店A"}
    answers = {name: client.post("/api/v1/stores", json={"name": name, "district_code": "440604",
                                                         "location_code": location.code}, headers=admin)
               for name, location in zip(alike, locations, strict=True)}
    rename = client.patch(f"/api/v1/stores/{second.id}", json={"name": "大良店ａ"}, headers=admin)
    own = client.patch(f"/api/v1/stores/{first.id}", json={"name": "大良店a"}, headers=admin)

    for name, response in answers.items():
        assert (response.status_code, response.json["error"]["code"]) == (409, "store_name_taken"), name
        assert alike[name] in response.json["error"]["message"], name
    assert (rename.status_code, rename.json["error"]["code"]) == (409, "store_name_taken")
    assert "大良店A" in rename.json["error"]["message"]
    assert (own.status_code, own.json["name"]) == (200, "大良店a")
    assert db.session.scalars(select(Store.name).order_by(Store.id)).all() == ["大良店a", "Store a", "店（顺德）"]


def test_stores_opened_at_once_under_one_name_are_one_store(racing_app):
    """Under names that read alike, too: only one of them is opened."""
    admin = UserFactory(role="admin")
    codes = [_store_location(code=f"FS-RACE-{n}").code for n in range(3)]
    client = racing_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": admin.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}

    answers = send_together(racing_app, "POST", "/api/v1/stores", [
        (headers, {"name": name, "district_code": "440604", "location_code": code})
        for name, code in zip(("店（并发）A", "店(并发)a", "店（并发） Ａ"), codes, strict=True)])

    assert sorted(status for status, _ in answers) == [201, 409, 409], answers
    assert {body["error"]["code"] for status, body in answers if status == 409} == {"store_name_taken"}
    assert client.get("/api/v1/stores", headers=headers).json["items"] == [
        body for status, body in answers if status == 201]


def test_a_stores_location_is_in_its_own_district(client, login):
    admin = login("admin")
    nanhai = _store_location(code="FS-NH-NEW", region="440605")  # 南海区, another Foshan donor district
    liangshan = _store_location(code="XC-ST-NEW", region="513431")  # 昭觉县, in the recipient prefecture
    city = _store_location(code="FS-CITY-ST", region="440600")  # 佛山市: the city, not a district in it

    refused = [client.post("/api/v1/stores", json={"name": "店", "district_code": "440604", "location_code": code},
                           headers=admin) for code in (nanhai.code, liangshan.code, city.code)]
    opened = client.post("/api/v1/stores", json={"name": "店", "district_code": "440605",
                                                 "location_code": nanhai.code}, headers=admin)

    for response, region in zip(refused, ("440605", "513431", "440600"), strict=True):
        assert (response.status_code, response.json["error"]["code"]) == (422, "location_outside_district")
        assert response.json["error"]["details"]["location_code"] == [
            f"The location is in region {region}, not in the store's district 440604."]
    assert opened.status_code == 201 and opened.json["location_id"] == nanhai.id
    assert db.session.scalar(select(Store.id).where(Store.location_id != nanhai.id)) is None


def test_only_admins_open_stores(client, login):
    _store_location()
    body = {"name": "店", "district_code": "440604", "location_code": "FS-TEST-ST"}
    assert client.post("/api/v1/stores", json=body, headers=login("auditor")).status_code == 403
    assert client.post("/api/v1/stores", json={**body, "active": False}, headers=login("admin")).status_code == 422


def test_who_sees_which_store(client, login):
    mine = StoreFactory()
    mine.bank_account = "6222021234567890"
    other = StoreFactory()
    closed = StoreFactory(active=False)
    db.session.commit()

    admin = client.get("/api/v1/stores", headers=login("admin")).json["items"]
    staff = client.get("/api/v1/stores", headers=login("store_staff", store_id=mine.id)).json["items"]
    consumer = client.get("/api/v1/stores", headers=login("consumer")).json["items"]

    assert [s["id"] for s in admin] == [mine.id, other.id, closed.id]
    assert admin[0]["bank_account"] == "****7890"
    assert [(s["id"], s["bank_account"]) for s in staff] == [(mine.id, None)]
    assert [s["id"] for s in consumer] == [mine.id, other.id]
    assert all(s["bank_account"] is None for s in consumer)
    supplier = SupplierFactory()
    db.session.commit()
    assert client.get("/api/v1/stores", headers=login("coop", supplier_id=supplier.id)).status_code == 403


def test_another_stores_staff_get_404(client, login):
    mine, other = StoreFactory(), StoreFactory(active=False)
    db.session.commit()
    staff = login("store_staff", store_id=mine.id)

    assert client.get(f"/api/v1/stores/{mine.id}", headers=staff).status_code == 200
    response = client.get(f"/api/v1/stores/{other.id}", headers=staff)
    assert (response.status_code, response.json["error"]["code"]) == (404, "store_not_found")
    assert client.get(f"/api/v1/stores/{other.id}", headers=login("consumer")).status_code == 404
    assert client.get(f"/api/v1/stores/{other.id}", headers=login("auditor")).status_code == 200


def test_a_bank_account_change_needs_a_reason_and_is_audited(client, login):
    store = StoreFactory()
    store.bank_account = "6222021234567890"
    db.session.commit()
    admin = login("admin")

    refused = client.patch(f"/api/v1/stores/{store.id}", json={"bank_account": "6222-0299-9999-1111"}, headers=admin)
    changed = client.patch(f"/api/v1/stores/{store.id}", json={"bank_account": "6222-0299-9999-1111",
                                                               "reason": "开户行变更", "name": "新店名"}, headers=admin)

    assert (refused.status_code, refused.json["error"]["code"]) == (422, "account_change_reason_required")
    assert changed.status_code == 200
    assert (changed.json["bank_account"], changed.json["name"]) == ("****1111", "新店名")
    audit = db.session.scalars(select(StoreAccountChange)).all()
    assert [(a.store_id, a.old_masked[:10], a.new_masked[:10], a.reason) for a in audit] == [
        (store.id, "****7890 #", "****1111 #", "开户行变更")]
    listed = client.get(f"/api/v1/stores/{store.id}/account-changes", headers=login("auditor")).json["items"]
    assert [row["new_masked"] for row in listed] == [audit[0].new_masked]
    assert client.patch(f"/api/v1/stores/{store.id}", json={"name": "x"},
                        headers=login("store_staff", store_id=store.id)).status_code == 403


def test_a_change_between_accounts_ending_alike_is_told_apart_in_the_audit(client, login):
    """Payouts redirected to another bank's account with the same last four digits, then back: the audit shows
    two different accounts, and the same account the same way each time, never the number."""
    store = StoreFactory()
    store.bank_account = "6222021234567890128"
    db.session.commit()
    admin = login("admin")

    for account in ("6228480000000000128", "6222 0212 3456 7890 128"):
        changed = client.patch(f"/api/v1/stores/{store.id}", json={"bank_account": account, "reason": "更正"},
                               headers=admin)
        assert changed.status_code == 200, changed.json

    page = client.get(f"/api/v1/stores/{store.id}/account-changes", headers=login("auditor"))
    [first, second] = [(row["old_masked"], row["new_masked"]) for row in page.json["items"]]
    assert first[0] != first[1] and all(mask.startswith("****0128 #") for mask in first)
    assert second == (first[1], first[0])
    assert "6222021234567890128" not in page.get_data(as_text=True)
    assert "6228480000000000128" not in page.get_data(as_text=True)


def test_concurrent_account_changes_chain_in_the_audit_and_the_last_one_holds(racing_app):
    """Four admins change a store's payout account at once: each change is made on the one before it, so the log
    chains from the first account and the store pays into the last entry's account."""
    store = StoreFactory()
    store.bank_account = "6222021234567890128"
    admin = UserFactory(role="admin")
    db.session.commit()
    client = racing_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": admin.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}
    url = f"/api/v1/stores/{store.id}"
    before = client.get(f"{url}/account-changes", headers=headers).json["items"]

    answers = send_together(racing_app, "PATCH", url, [
        (headers, {"bank_account": f"622202123456789{digit * 4}", "reason": "并发"}) for digit in "1234"])

    assert [status for status, _ in answers] == [200] * 4, answers
    log = client.get(f"{url}/account-changes", headers=headers).json["items"]
    assert before == [] and len(log) == 4
    assert log[0]["old_masked"].startswith("****0128 #")
    assert [entry["old_masked"] for entry in log[1:]] == [entry["new_masked"] for entry in log[:-1]]
    db.session.expire_all()  # this thread's session read the store before the race
    assert client.get(url, headers=headers).json["bank_account"] == log[-1]["new_masked"][:8]
    assert sorted(entry["new_masked"][:8] for entry in log) == ["****1111", "****2222", "****3333", "****4444"]


def test_an_invalid_bank_account_is_refused(client, login):
    store = StoreFactory()
    db.session.commit()
    response = client.patch(f"/api/v1/stores/{store.id}", json={"bank_account": "12AB", "reason": "x"},
                            headers=login("admin"))
    assert (response.status_code, response.json["error"]["code"]) == (422, "invalid_bank_account")


def test_a_clerk_account_needs_an_existing_store(client, login):
    store = StoreFactory()
    db.session.commit()
    admin = login("admin")
    body = {"username": "clerk1", "password": "long enough pw", "role": "store_staff"}

    missing = client.post("/api/v1/users", json={**body, "store_id": store.id + 1000}, headers=admin)
    created = client.post("/api/v1/users", json={**body, "store_id": store.id}, headers=admin)

    assert missing.status_code == 422 and "store_id" in missing.json["error"]["details"]
    assert created.status_code == 201


def test_an_inactive_store_takes_no_new_clerks(client, login):
    store = StoreFactory(active=False)
    db.session.commit()
    body = {"username": "clerk2", "password": "long enough pw", "role": "store_staff", "store_id": store.id}

    response = client.post("/api/v1/users", json=body, headers=login("admin"))

    assert response.status_code == 409 and response.json["error"]["code"] == "store_inactive"
    assert response.json["error"]["details"] == {"store_id": ["The store is inactive: it takes no new staff."]}
    assert db.session.scalar(select(User).where(User.username == "clerk2")) is None

