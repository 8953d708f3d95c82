"""Admins manage users: roles, scope ids, disabling and password resets."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, update

from orders.models import Store
from shop.auth.models import User
from shop.db import db
from shop.errors import Conflict
from suppliers.models import DEFAULT_AGREEMENT, Supplier
from tests.contract.conftest import documented_codes
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.factories import StoreFactory
from tests.orders.ledger.test_payouts_bank_file import download, household_batch
from tests.shop.test_auth import sign_in
from tests.shop.test_errors import assert_error
from tests.suppliers.factories import SupplierFactory, make_bank_account


def test_admin_creates_a_store_staff_user_bound_to_a_store(client, login):
    admin = login("admin")
    store = StoreFactory()
    db.session.commit()
    response = client.post("/api/v1/users", headers=admin, json={
        "username": "staff-chancheng", "password": "counter pass 1", "role": "store_staff", "store_id": store.id})
    assert response.status_code == 201
    assert response.json["store_id"] == store.id and response.json["supplier_id"] is None
    missing = client.post("/api/v1/users", headers=admin, json={
        "username": "staff-nowhere", "password": "counter pass 1", "role": "store_staff", "store_id": store.id + 1})
    assert assert_error(missing, 422, "validation_error")["details"]["store_id"] == ["No such store."]
    assert sign_in(client, "staff-chancheng", "counter pass 1").json["role"] == "store_staff"


@pytest.mark.parametrize("body, field", [
    ({"role": "store_staff"}, "store_id"),
    ({"role": "coop"}, "supplier_id"),
    ({"role": "consumer", "store_id": 1}, "store_id"),
    ({"role": "auditor", "supplier_id": 1}, "supplier_id"),
])
def test_scope_ids_must_fit_the_role(client, login, body, field):
    response = client.post("/api/v1/users", headers=login("admin"),
                           json={"username": "13900000043", "password": "a good password", **body})
    assert field in assert_error(response, 422, "validation_error")["details"]


def test_duplicate_username_is_409(client, login):
    admin = login("admin")
    body = {"username": "dup-user", "password": "a good password", "role": "auditor"}
    assert client.post("/api/v1/users", headers=admin, json=body).status_code == 201
    assert_error(client.post("/api/v1/users", headers=admin, json=body), 409, "username_taken")


def test_list_users_is_paginated_and_filtered_by_role(client, login):
    admin = login("admin")
    UserFactory.create_batch(3, role="auditor")
    db.session.commit()
    first = client.get("/api/v1/users?role=auditor&limit=2", headers=admin).json
    second = client.get(f"/api/v1/users?role=auditor&limit=2&cursor={first['next_cursor']}", headers=admin).json
    names = [u["username"] for u in first["items"] + second["items"]]
    assert len(names) == 3 == len(set(names))
    assert second["next_cursor"] is None


def test_disabling_a_user_revokes_its_tokens(client, login):
    victim = UserFactory(role="admin")
    db.session.commit()
    victim_headers = {"Authorization": f"Bearer {sign_in(client, victim.username).json['access_token']}"}
    assert client.get(f"/api/v1/users/{victim.id}", headers=victim_headers).status_code == 200
    response = client.patch(f"/api/v1/users/{victim.id}", headers=login("admin"), json={"active": False})
    assert response.status_code == 200 and response.json["active"] is False
    assert_error(client.get(f"/api/v1/users/{victim.id}", headers=victim_headers), 401, "invalid_token")


def test_password_reset_replaces_the_old_password(client, login):
    admin = login("admin")
    user = UserFactory(role="consumer")
    db.session.commit()
    client.patch(f"/api/v1/users/{user.id}", headers=admin, json={"password": "brand new secret"})
    assert sign_in(client, user.username).status_code == 401
    assert sign_in(client, user.username, "brand new secret").status_code == 200


@pytest.mark.parametrize("via", ["page", "api"])
def test_a_sign_in_checked_against_the_old_password_while_an_admin_resets_it_stays_signed_out(racing_app, via):
    import threading
    import time

    from tests.shop.test_own_account import _hashed_as_in_production
    from tests.web.test_pages_security import _csrf

    client, browser = racing_app.test_client(), racing_app.test_client()
    admin, user = UserFactory(role="admin"), UserFactory(role="consumer")
    user.password_hash = _hashed_as_in_production(DEFAULT_PASSWORD)
    db.session.commit()
    admin_headers = {"Authorization": f"Bearer {sign_in(client, admin.username).json['access_token']}"}
    credentials = {"username": user.username, "password": DEFAULT_PASSWORD}
    form = credentials | {"csrf_token": _csrf(browser)}
    answers = {}

    def sign_in_with_the_old_password() -> None:
        answers["sign-in"] = (browser.post("/login", data=form) if via == "page"
                              else browser.post("/api/v1/auth/token", json=credentials))

    signing_in = threading.Thread(target=sign_in_with_the_old_password)
    signing_in.start()
    time.sleep(0.03)  # the sign-in is checking the old password (argon2, about 0.1 s)
    reset = client.patch(f"/api/v1/users/{user.id}", headers=admin_headers, json={"password": "brand new secret"})
    signing_in.join(timeout=60)
    db.session.expire_all()  # the requests changed the user behind this session's back

    assert reset.status_code == 200
    if via == "page":
        assert answers["sign-in"].status_code == 302
        assert browser.get("/orders").status_code == 302  # to the sign-in page: the reset ended this session
    else:
        token = answers["sign-in"].json["access_token"]
        assert_error(client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}), 401,
                     "invalid_token")


def test_unknown_user_is_404(client, login):
    admin = login("admin")
    assert_error(client.get("/api/v1/users/9999", headers=admin), 404, "user_not_found")
    assert_error(client.get(f"/api/v1/users/{2**31}", headers=admin), 404, "not_found")


def test_non_admins_cannot_manage_users(client, login):
    for role in ("consumer", "auditor"):
        assert_error(client.post("/api/v1/users", headers=login(role), json={"username": "x", "password": "a good "
                                 "password", "role": "admin"}), 403, "forbidden")
    assert_error(client.get("/api/v1/users", headers=login("consumer")), 403, "forbidden")
    auditor = login("auditor")                          # an auditor reads who is who (created_by, settled_by ids)
    listed = client.get("/api/v1/users", headers=auditor)
    assert listed.status_code == 200
    assert client.get(f"/api/v1/users/{listed.json['items'][0]['id']}", headers=auditor).status_code == 200


def test_usernames_are_stored_in_one_spelling_and_a_second_spelling_is_taken(client, login):
    admin = login("admin")
    body = {"password": "a good password", "role": "auditor"}
    created = client.post("/api/v1/users", headers=admin, json={"username": " Ｎｅｗ.Auditor\u200b ", **body})
    assert created.status_code == 201 and created.json["username"] == "new.auditor"
    for spelling in ("NEW.AUDITOR", "ｎｅｗ.ａｕｄｉｔｏｒ", "new.auditor\ufeff"):
        again = client.post("/api/v1/users", headers=admin, json={"username": spelling, **body})
        assert_error(again, 409, "username_taken")
    assert sign_in(client, "New.Auditor", "a good password").status_code == 200


@pytest.mark.parametrize("fields, bad", [
    ({"username": "ab"}, "username"),
    ({"username": "u" * 65}, "username"),
    ({"username": "two words"}, "username"),
    ({"username": "\u200b\u200b\u200b"}, "username"),
    ({"password": "p" * 129}, "password"),
    ({"role": "store_staff", "store_id": 2**31}, "store_id"),
    ({"role": "store_staff", "store_id": 0}, "store_id"),
    ({"role": "store_staff", "store_id": "3"}, "store_id"),
    ({"role": "coop", "supplier_id": 2**63}, "supplier_id"),
])
def test_user_fields_are_bounded(client, login, fields, bad):
    body = {"username": "someone", "password": "a good password", "role": "auditor", **fields}
    error = assert_error(client.post("/api/v1/users", headers=login("admin"), json=body), 422, "validation_error")
    assert set(error["details"]) == {bad}


@pytest.mark.parametrize("username", ["...", "._-", "u513431198001011234", "staff.513431198001011234"])
def test_a_username_of_only_punctuation_or_holding_a_resident_id_is_refused(client, login, username):
    """A username is shown unmasked in the user lists and audits: it names someone in letters or digits, and holds
    no resident ID number."""
    body = {"username": username, "password": "a good password", "role": "auditor"}
    error = assert_error(client.post("/api/v1/users", headers=login("admin"), json=body), 422, "validation_error")
    assert set(error["details"]) == {"username"}
    assert client.post("/api/v1/users", headers=login("admin"),
                       json={**body, "username": "u513431198001011236"}).status_code == 201  # no valid check digit



@pytest.mark.parametrize("username", ["-admin", "admin.", "a..b", "a-_b", "_auditor", "probe-staff1."])
def test_a_username_parts_letters_and_digits_by_single_separators_only(client, login, username):
    body = {"username": username, "password": "a good password", "role": "auditor"}
    error = assert_error(client.post("/api/v1/users", headers=login("admin"), json=body), 422, "validation_error")
    assert set(error["details"]) == {"username"}


def test_a_username_that_differs_from_a_users_only_by_its_separators_is_taken(client, login):
    """`probe_staff1` and `probe.staff1` read as `probe-staff1` in the lists and audits: the first one keeps it."""
    admin = login("admin")
    body = {"password": "a good password", "role": "auditor"}
    first = client.post("/api/v1/users", headers=admin, json={"username": "probe-staff1", **body})
    assert first.status_code == 201, first.json
    for look_alike in ("probe_staff1", "Probe.Staff1", "ｐｒｏｂｅ_ｓｔａｆｆ１"):
        taken = assert_error(client.post("/api/v1/users", headers=admin, json={"username": look_alike, **body}),
                             409, "username_taken")
        assert "'probe-staff1'" in taken["message"], taken
    assert client.post("/api/v1/users", headers=admin, json={"username": "probestaff1", **body}).status_code == 201
    assert client.get("/api/v1/users?role=auditor&limit=100", headers=admin).json["items"][-1]["username"] == (
        "probestaff1")


def test_two_look_alike_usernames_created_at_once_make_one_user(racing_app):
    from collections import Counter

    from sqlalchemy import func, select

    from shop.auth import service
    from shop.auth.models import User
    from tests.catalog.test_concurrency import race

    names = ["probe-staff1", "probe_staff1"]

    outcomes = race(racing_app, 2, lambda i: service.create_user(username=names[i], password="a good password",
                                                                 role="auditor"))

    assert outcomes == Counter({"ok": 1, "username_taken": 1})
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(User).where(User.username.in_(names))) == 1


def test_an_admin_cannot_disable_themselves(client, login):
    me = login("admin")
    my_id = client.get("/api/v1/users?role=admin", headers=me).json["items"][-1]["id"]
    assert_error(client.patch(f"/api/v1/users/{my_id}", headers=me, json={"active": False}), 409,
                 "cannot_disable_self")
    assert client.get(f"/api/v1/users/{my_id}", headers=me).json["active"] is True


def test_an_admin_cannot_reset_their_own_password_without_the_current_one(client):
    admin = UserFactory(role="admin")
    db.session.commit()
    token = sign_in(client, admin.username).json["access_token"]  # a token is all someone who took it has
    headers = {"Authorization": f"Bearer {token}"}

    refused = client.patch(f"/api/v1/users/{admin.id}", headers=headers, json={"password": "taken over for good"})

    assert_error(refused, 409, "cannot_disable_self")
    assert "/users/me/password" in refused.json["error"]["message"]
    assert_error(sign_in(client, admin.username, "taken over for good"), 401, "invalid_credentials")
    assert sign_in(client, admin.username).status_code == 200
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    document = client.get("/api/v1/openapi.json").json
    assert "cannot_disable_self" in documented_codes(document["paths"]["/api/v1/users/{user_id}"]["patch"])[409]


def test_the_last_active_admin_cannot_be_disabled(app):
    from shop.auth import service

    only = UserFactory(role="admin")
    UserFactory(role="admin", active=False)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        service.update_user(user_id=only.id, changes=service.UserChanges(active=False))
    assert refused.value.code == "last_active_admin"


def test_two_admins_disabling_each_other_at_once_leave_one_admin_active(racing_app):
    from collections import Counter

    from sqlalchemy import func, select

    from shop.auth import service
    from shop.auth.models import User
    from tests.catalog.test_concurrency import race

    admins = [UserFactory(role="admin"), UserFactory(role="admin")]
    db.session.commit()
    ids = [admin.id for admin in admins]

    outcomes = race(racing_app, 2, lambda i: service.update_user(
        user_id=ids[1 - i], changes=service.UserChanges(active=False), actor=db.session.get(User, ids[i])))

    assert outcomes == Counter({"ok": 1, "last_active_admin": 1})
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin", User.active)) == 1


def test_two_admins_moving_one_clerk_at_once_are_audited_in_the_order_they_happened(racing_app):
    from collections import Counter

    from sqlalchemy import select

    from shop.auth import service
    from shop.auth.models import User, UserChange
    from tests.catalog.test_concurrency import race

    stores = [StoreFactory(), StoreFactory(), StoreFactory()]
    clerk, admins = UserFactory(role="store_staff", store_id=stores[0].id), [UserFactory(role="admin") for _ in "ab"]
    db.session.commit()
    ids, targets = [admin.id for admin in admins], [stores[1].id, stores[2].id]

    outcomes = race(racing_app, 2, lambda i: service.update_user(
        user_id=clerk.id, changes=service.UserChanges(store_id=targets[i]), actor=db.session.get(User, ids[i])))

    assert outcomes == Counter({"ok": 2})
    db.session.expire_all()
    moves = db.session.scalars(select(UserChange).where(UserChange.user_id == clerk.id,
                                                        UserChange.action == "scope_changed")
                               .order_by(UserChange.id)).all()
    assert moves[0].old_store_id == stores[0].id and moves[1].old_store_id == moves[0].new_store_id
    assert db.session.get(User, clerk.id).store_id == moves[1].new_store_id


def test_an_auditor_reads_users_with_phone_numbers_masked(client, login):
    consumer = UserFactory(role="consumer", username="13912345678")
    db.session.commit()
    auditor, admin = login("auditor"), login("admin")
    listed = client.get("/api/v1/users?role=consumer", headers=auditor).json["items"]
    assert [user["username"] for user in listed if user["id"] == consumer.id] == ["***"]
    assert client.get(f"/api/v1/users/{consumer.id}", headers=auditor).json["username"] == "***"
    assert client.get(f"/api/v1/users/{consumer.id}", headers=admin).json["username"] == "13912345678"


def test_no_user_but_a_consumer_is_named_by_a_phone_number(client, login):
    """A username is shown unmasked to admins and in audits: only a consumer's is a phone number, on creation and on a
    role change alike."""
    admin = login("admin")
    store = StoreFactory()
    consumer = UserFactory(role="consumer", username="13911112222")
    db.session.commit()
    for body in ({"username": "13900000002", "role": "admin"}, {"username": "+86 139 7777 0001", "role": "auditor"},
                 {"username": "86-139-0000-0001", "role": "store_staff", "store_id": store.id}):
        created = client.post("/api/v1/users", headers=admin, json={**body, "password": "a good password"})
        assert assert_error(created, 422, "validation_error")["details"] == {
            "username": ["Must not hold an ID, bank card or phone number."]}, body
    moved = client.patch(f"/api/v1/users/{consumer.id}", headers=admin, json={"role": "store_staff",
                                                                              "store_id": store.id})
    assert set(assert_error(moved, 422, "validation_error")["details"]) == {"username"}
    assert client.get(f"/api/v1/users/{consumer.id}", headers=admin).json["role"] == "consumer"
    assert client.get(f"/api/v1/audit/user-changes?user_id={consumer.id}", headers=admin).json["items"] == []


def test_every_audit_list_masks_a_phone_number_in_the_name_of_who_acted(client, login):
    """An account named by a phone number before the rule above is shown masked in every audit, as the user audit and
    an auditor's user list show it."""
    supplier, (household, _), batch = household_batch()
    phoned = UserFactory(role="admin", username="13900000002")
    db.session.commit()
    admin = {"Authorization": f"Bearer {sign_in(client, phoned.username).json['access_token']}"}
    assert download(client, admin, batch.id).status_code == 200  # audited as a download and as reveals
    assert client.patch(f"/api/v1/households/{household.id}", headers=admin,
                        json={"bank_account": make_bank_account(), "reason": "农户换卡"}).status_code == 200
    assert client.patch(f"/api/v1/suppliers/{supplier.id}", headers=admin, json={
        "agreement": {**DEFAULT_AGREEMENT, "dividend_bp": 100}, "reason": "2027 年协议"}).status_code == 200

    auditor = login("auditor")
    for path in ("/api/v1/audit/reveals", "/api/v1/audit/payout-downloads", "/api/v1/audit/account-changes",
                 f"/api/v1/suppliers/{supplier.id}/history"):
        listed = client.get(path, headers=auditor)
        assert listed.status_code == 200, listed.json
        assert listed.json["items"] and {row["username"] for row in listed.json["items"]} == {"***"}, path
        assert "13900000002" not in listed.get_data(as_text=True), path


@pytest.mark.parametrize("value", ["yes", "1", "on", 1, 0, "true", None])
def test_a_body_boolean_is_true_or_false_only(client, login, value):
    admin = login("admin")
    user = UserFactory(role="consumer")
    db.session.commit()
    response = client.patch(f"/api/v1/users/{user.id}", headers=admin, json={"active": value})
    assert response.status_code == 422 and "active" in response.json["error"]["details"], value
    assert client.get(f"/api/v1/users/{user.id}", headers=admin).json["active"] is True


def test_a_query_boolean_is_true_false_1_or_0_in_any_spelling(client):
    for value in ("true", "TRUE", "ｔｒｕｅ", "1", "false", "0"):
        assert client.get(f"/api/v1/products?certified={value}").status_code == 200, value
    for value in ("yes", "on", "2"):
        assert client.get(f"/api/v1/products?certified={value}").status_code == 422, value
    # left empty, as a search form sends a filter not chosen: not given, so not a filter
    assert client.get("/api/v1/products?certified=").json == client.get("/api/v1/products").json


def test_an_admin_creates_a_consumer_only_under_a_mobile_number(client, login):
    """A consumer's username is the phone number they sign in with, as registration and the command line require."""
    admin = login("admin")
    named = client.post("/api/v1/users", headers=admin,
                        json={"username": "bob", "password": "a good password", "role": "consumer"})
    numbered = client.post("/api/v1/users", headers=admin,
                           json={"username": "13900000042", "password": "a good password", "role": "consumer"})
    assert assert_error(named, 422, "validation_error")["details"] == {
        "username": ["A consumer's username is a mainland China mobile number."]}
    assert numbered.status_code == 201 and numbered.json["username"] == "13900000042"


def test_an_admin_creates_users_under_the_username_sign_in_reads(client, login):
    """A consumer's number in any spelling is stored as its 11 digits; a staff username keeps its dashes."""
    admin = login("admin")
    body = {"password": "a good password"}
    consumer = client.post("/api/v1/users", headers=admin,
                           json={"username": "+86 139-0000-0043", "role": "consumer", **body})
    staff = client.post("/api/v1/users", headers=admin,
                        json={"username": "Staff-Shunde", "role": "store_staff", "store_id": StoreFactory().id,
                              **body})
    assert (consumer.status_code, consumer.json["username"]) == (201, "13900000043")
    assert (staff.status_code, staff.json["username"]) == (201, "staff-shunde")
    assert sign_in(client, "139 0000 0043", "a good password").status_code == 200
    assert sign_in(client, "STAFF-SHUNDE", "a good password").status_code == 200


@pytest.mark.parametrize("password", [" " * 16, "\u3000" * 8, "\u200b" * 9, "new\x00password", "tab\tpassword"])
def test_an_admin_sets_no_password_of_only_whitespace_or_with_control_characters(client, login, password):
    admin = login("admin")
    user = UserFactory(role="consumer")
    db.session.commit()
    created = client.post("/api/v1/users", headers=admin,
                          json={"username": "someone", "password": password, "role": "auditor"})
    reset = client.patch(f"/api/v1/users/{user.id}", headers=admin, json={"password": password})
    for response in (created, reset):
        assert assert_error(response, 422, "validation_error")["details"].keys() == {"password"}
    assert sign_in(client, user.username).status_code == 200  # unchanged


@pytest.mark.parametrize("role, field, factory, code", [
    ("store_staff", "store_id", StoreFactory, "store_inactive"),
    ("coop", "supplier_id", SupplierFactory, "supplier_inactive"),
])
def test_an_inactive_store_or_supplier_takes_no_new_users(client, login, role, field, factory, code):
    """A deactivated scope gets no user, created or moved there; its users and an active scope are untouched."""
    admin = login("admin")
    active, inactive = factory(), factory(active=False)
    moved = UserFactory(role="auditor")
    db.session.commit()
    body = {"username": "new-hand", "password": "a good password", "role": role}

    created = client.post("/api/v1/users", headers=admin, json={**body, field: inactive.id})
    changed = client.patch(f"/api/v1/users/{moved.id}", headers=admin, json={"role": role, field: inactive.id})

    for response in (created, changed):
        assert assert_error(response, 409, code)["details"].keys() == {field}
    assert client.get("/api/v1/users?role=" + role, headers=admin).json["items"] == []
    assert client.get(f"/api/v1/users/{moved.id}", headers=admin).json["role"] == "auditor"
    assert client.post("/api/v1/users", headers=admin, json={**body, field: active.id}).status_code == 201


@pytest.mark.parametrize("role, field, factory, code", [
    ("store_staff", "store_id", StoreFactory, "store_inactive"),
    ("coop", "supplier_id", SupplierFactory, "supplier_inactive"),
])
def test_a_disabled_user_of_a_closed_store_or_supplier_is_not_enabled_again(client, login, role, field, factory,
                                                                           code):
    """Enabling a disabled user is refused while its store or supplier is closed, as adding one there is; enabled
    together with a move to an open one, it is enabled there."""
    admin = login("admin")
    closed, open_one = factory(active=False), factory()
    db.session.flush()
    user = UserFactory(role=role, active=False, **{field: closed.id})
    db.session.commit()

    refused = client.patch(f"/api/v1/users/{user.id}", headers=admin, json={"active": True})

    assert assert_error(refused, 409, code)["details"].keys() == {field}
    assert client.get(f"/api/v1/users/{user.id}", headers=admin).json["active"] is False
    assert sign_in(client, user.username).status_code == 401
    moved = client.patch(f"/api/v1/users/{user.id}", headers=admin, json={"active": True, field: open_one.id})
    assert (moved.status_code, moved.json["active"], moved.json[field]) == (200, True, open_one.id)


def test_the_user_operations_document_every_conflict_they_answer(client, login):
    """A client generated from the document knows each 409 creating or moving a user can get: a taken username, an
    inactive store or supplier."""
    admin = login("admin")
    store, supplier, auditor = StoreFactory(active=False), SupplierFactory(active=False), UserFactory(role="auditor")
    db.session.commit()
    body = {"password": "a good password", "role": "auditor"}
    answers = {
        "post": [client.post("/api/v1/users", headers=admin, json={**body, "username": auditor.username}),
                 client.post("/api/v1/users", headers=admin, json={**body, "username": "new-clerk",
                                                                   "role": "store_staff", "store_id": store.id}),
                 client.post("/api/v1/users", headers=admin, json={**body, "username": "new-coop",
                                                                   "role": "coop", "supplier_id": supplier.id})],
        "patch": [client.patch(f"/api/v1/users/{auditor.id}", headers=admin,
                               json={"role": "store_staff", "store_id": store.id}),
                  client.patch(f"/api/v1/users/{auditor.id}", headers=admin,
                               json={"role": "coop", "supplier_id": supplier.id})],
    }
    paths = client.get("/api/v1/openapi.json").json["paths"]
    operations = {"post": paths["/api/v1/users"]["post"], "patch": paths["/api/v1/users/{user_id}"]["patch"]}

    got = {method: [(response.status_code, response.json["error"]["code"]) for response in responses]
           for method, responses in answers.items()}
    assert got == {"post": [(409, "username_taken"), (409, "store_inactive"), (409, "supplier_inactive")],
                   "patch": [(409, "store_inactive"), (409, "supplier_inactive")]}
    undocumented = [(method, answer) for method, answered in got.items() for answer in answered
                    if answer[1] not in documented_codes(operations[method]).get(answer[0], set())]
    assert undocumented == []



@pytest.mark.parametrize("role, field, factory, model, code", [
    ("store_staff", "store_id", StoreFactory, Store, "store_inactive"),
    ("coop", "supplier_id", SupplierFactory, Supplier, "supplier_inactive"),
])
def test_a_user_added_while_the_store_or_supplier_is_being_closed_waits_and_is_refused(racing_app, role, field,
                                                                                        factory, model, code):
    """An admin adds a user while another admin's deactivation is not yet committed: the user is not added to the
    closed store or supplier on the strength of having read it open."""
    scope, admin = factory(), UserFactory(role="admin")
    db.session.commit()
    client = racing_app.test_client()
    headers = {"Authorization": f"Bearer {sign_in(client, admin.username).json['access_token']}"}
    body = {"username": "new-hand", "password": "long enough pw", "role": role, field: scope.id}
    answers = []

    def add_user():
        with racing_app.app_context():
            answers.append(racing_app.test_client().post("/api/v1/users", json=body, headers=headers))

    with db.engine.connect() as closing:  # the other admin's deactivation, as its update writes it
        if model is Store:  # `update_store` locks the store first
            closing.execute(select(Store.id).where(Store.id == scope.id).with_for_update())
        closing.execute(update(model).where(model.id == scope.id).values(active=False))
        adding = threading.Thread(target=add_user)
        adding.start()
        adding.join(timeout=1)
        closing.commit()
    adding.join(timeout=30)

    assert_error(answers[0], 409, code)
    db.session.expire_all()
    assert db.session.scalar(select(User).where(User.username == "new-hand")) is None

def test_an_admin_finds_a_user_by_username_in_any_spelling_and_lists_the_disabled_ones(client, login):
    admin = login("admin")
    consumer = UserFactory(role="consumer", username="13912345670")
    clerk = UserFactory(role="auditor", username="staff-shunde", active=False)
    UserFactory.create_batch(2, role="consumer")
    db.session.commit()

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/v1/users?{query}", headers=admin)
        assert response.status_code == 200, response.json
        return [user["id"] for user in response.json["items"]]

    assert ids("username=%2B86%20139-1234-5670") == [consumer.id]  # normalised as sign-in reads it
    assert ids("username=STAFF-Shunde") == [clerk.id]
    assert ids("username=staff") == []  # an exact match, not a search
    assert ids("active=false") == [clerk.id]
    assert clerk.id not in ids("active=true&limit=100")
    assert ids("username=13912345670&active=false") == []
    for bad in ("username=" + "a" * 65, "username=a%00b", "active=maybe"):
        assert assert_error(client.get(f"/api/v1/users?{bad}", headers=admin), 422, "validation_error")


def test_an_auditor_may_not_look_a_user_up_by_a_phone_number_shown_to_them_masked(client, login):
    UserFactory(role="consumer", username="13912345671")
    clerk = UserFactory(role="auditor", username="staff-shunde")
    db.session.commit()
    auditor = login("auditor")
    assert_error(client.get("/api/v1/users?username=13912345671", headers=auditor), 403, "forbidden")
    found = client.get("/api/v1/users?username=staff-shunde", headers=auditor).json["items"]
    assert [user["id"] for user in found] == [clerk.id]


@pytest.mark.parametrize("password", ["password", "12345678", "Staff-Shunde-2026", "STAFF_SHUNDE2!"])
def test_an_admin_gives_no_account_a_most_common_password_or_its_username(client, login, password):
    admin = login("admin")
    user = UserFactory(role="store_staff", username="staff-shunde", store_id=StoreFactory().id)
    db.session.commit()
    created = client.post("/api/v1/users", headers=admin,
                          json={"username": "staff-shunde2", "password": password, "role": "admin"})
    reset = client.patch(f"/api/v1/users/{user.id}", headers=admin, json={"password": password})
    for response in (created, reset):
        assert assert_error(response, 422, "validation_error")["details"].keys() == {"password"}, password
    assert sign_in(client, user.username).status_code == 200  # unchanged
