"""Who created or changed which user, when: the user audit an auditor reads; an admin moves a clerk to another store
or changes a user's role; usernames an admin gives cannot pass for another in a look-alike script."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shop.db import db
from shop.errors import Conflict
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.factories import StoreFactory
from tests.shop.test_auth import sign_in
from tests.shop.test_errors import assert_error

AUDIT = "/api/v1/audit/user-changes"


def _bearer(response) -> dict:
    """Authorization headers from a token response."""
    return {"Authorization": f"Bearer {response.json['access_token']}"}


def _admin(client) -> tuple[dict, int]:
    """A signed-in admin's headers and id."""
    admin = UserFactory(role="admin")
    db.session.commit()
    return _bearer(sign_in(client, admin.username)), admin.id


def _changes(client, headers, user_id: int) -> list[dict]:
    """The audit rows of one user, oldest first."""
    response = client.get(f"{AUDIT}?user_id={user_id}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def test_an_admins_user_management_is_audited_who_what_when_and_never_a_password(client, login):
    admin, admin_id = _admin(client)
    store = StoreFactory()
    db.session.commit()
    created = client.post("/api/v1/users", headers=admin, json={
        "username": "staff-audited", "password": "counter pass 1", "role": "store_staff", "store_id": store.id}).json
    for body in ({"active": False}, {"active": True}, {"password": "another pass 2"}):
        assert client.patch(f"/api/v1/users/{created['id']}", headers=admin, json=body).status_code == 200

    rows = _changes(client, login("auditor"), created["id"])

    assert [row["action"] for row in rows] == ["created", "disabled", "enabled", "password_reset"]
    assert {(row["actor_id"], row["username"], row["user_id"]) for row in rows} == {
        (admin_id, "staff-audited", created["id"])}
    assert (rows[0]["new_role"], rows[0]["new_store_id"], rows[0]["new_supplier_id"]) == ("store_staff", store.id, None)
    assert all(row["created_at"] for row in rows)
    assert "counter pass" not in json.dumps(rows) and "argon2" not in json.dumps(rows)
    assert client.get(AUDIT, headers=admin).status_code == 200
    for role in ("consumer", "coop", "store_staff"):
        scope = {"store_id": store.id} if role == "store_staff" else {"supplier_id": 1} if role == "coop" else {}
        assert_error(client.get(AUDIT, headers=login(role, **scope)), 403, "forbidden")


def test_the_audit_is_paginated_and_filtered_by_user(client, login):
    admin, _ = _admin(client)
    ids = [client.post("/api/v1/users", headers=admin, json={
        "username": f"auditor-{n}", "password": "a good password", "role": "auditor"}).json["id"] for n in range(3)]
    client.patch(f"/api/v1/users/{ids[0]}", headers=admin, json={"active": False})

    first = client.get(f"{AUDIT}?limit=2", headers=admin).json
    rest = client.get(f"{AUDIT}?limit=2&cursor={first['next_cursor']}", headers=admin).json

    assert [(row["user_id"], row["action"]) for row in first["items"] + rest["items"]][-4:] == [
        (ids[0], "created"), (ids[1], "created"), (ids[2], "created"), (ids[0], "disabled")]
    assert [row["action"] for row in _changes(client, admin, ids[0])] == ["created", "disabled"]


def test_the_command_line_creations_and_resets_are_audited_with_no_actor(runner, client, login):
    assert runner.invoke(args=["create-user", "--role", "admin", "--username", "ops-admin"],
                         input="long password 1\n").exit_code == 0
    assert runner.invoke(args=["reset-password", "--username", "ops-admin"], input="fresh password 9\n").exit_code == 0
    user_id = client.get("/api/v1/users?role=admin", headers=login("admin")).json["items"][0]["id"]

    rows = _changes(client, login("auditor"), user_id)

    assert [(row["action"], row["actor_id"], row["actor_username"]) for row in rows] == [
        ("created", None, None), ("password_reset", None, None)]
    assert rows[0]["new_role"] == "admin"


def test_an_own_password_change_and_a_registration_are_the_users_own_with_the_phone_masked(client, login):
    phone = "13912345678"
    registered = client.post("/api/v1/auth/register", json={"phone": phone, "password": DEFAULT_PASSWORD}).json
    me = _bearer(sign_in(client, phone))
    changed = client.post("/api/v1/users/me/password", headers=me,
                          json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new passphrase"})
    assert changed.status_code == 200

    rows = _changes(client, login("auditor"), registered["id"])

    assert [(row["action"], row["actor_id"]) for row in rows] == [
        ("created", registered["id"]), ("password_changed", registered["id"])]
    assert phone not in json.dumps(rows) and rows[0]["username"] == rows[0]["actor_username"] == "***"


def test_an_admin_moves_a_clerk_to_another_store_which_ends_the_clerks_tokens_and_is_audited(client, login):
    admin, admin_id = _admin(client)
    here, there = StoreFactory(), StoreFactory()
    clerk = UserFactory(role="store_staff", store_id=here.id)
    db.session.commit()
    clerk_headers = _bearer(sign_in(client, clerk.username))

    moved = client.patch(f"/api/v1/users/{clerk.id}", headers=admin, json={"store_id": there.id})

    assert moved.status_code == 200 and (moved.json["role"], moved.json["store_id"]) == ("store_staff", there.id)
    assert_error(client.get("/api/v1/users/me", headers=clerk_headers), 401, "invalid_token")
    row = _changes(client, admin, clerk.id)[-1]
    assert (row["action"], row["actor_id"]) == ("scope_changed", admin_id)
    assert (row["old_role"], row["old_store_id"], row["new_role"], row["new_store_id"]) == (
        "store_staff", here.id, "store_staff", there.id)


def test_an_admin_changes_a_role_and_the_scope_follows_it(client, login):
    admin, _ = _admin(client)
    store = StoreFactory()
    clerk = UserFactory(role="store_staff", store_id=store.id)
    db.session.commit()

    promoted = client.patch(f"/api/v1/users/{clerk.id}", headers=admin, json={"role": "auditor"})

    assert promoted.status_code == 200 and (promoted.json["role"], promoted.json["store_id"]) == ("auditor", None)
    row = _changes(client, admin, clerk.id)[-1]
    assert (row["action"], row["old_role"], row["old_store_id"], row["new_role"], row["new_store_id"]) == (
        "role_changed", "store_staff", store.id, "auditor", None)
    assert sign_in(client, clerk.username).json["role"] == "auditor"


@pytest.mark.parametrize("body, field", [
    ({"role": "store_staff"}, "store_id"),
    ({"role": "coop"}, "supplier_id"),
    ({"store_id": 1}, "store_id"),
    ({"role": "consumer", "supplier_id": 1}, "supplier_id"),
    ({"role": "owner"}, "role"),
    ({"store_id": 0}, "store_id"),
])
def test_a_role_or_scope_change_must_fit_as_on_creation(client, login, body, field):
    admin, _ = _admin(client)
    user = UserFactory(role="auditor")
    db.session.commit()
    response = client.patch(f"/api/v1/users/{user.id}", headers=admin, json=body)
    assert field in assert_error(response, 422, "validation_error")["details"]
    assert client.get(f"/api/v1/users/{user.id}", headers=admin).json["role"] == "auditor"
    assert [row["action"] for row in _changes(client, admin, user.id)] == []


def test_a_user_becomes_a_consumer_only_if_named_by_a_mobile_number_as_on_creation(client, login):
    admin, _ = _admin(client)
    store = StoreFactory()
    clerk = UserFactory(role="store_staff", store_id=store.id, username="probe_staff1")
    db.session.commit()

    refused = client.patch(f"/api/v1/users/{clerk.id}", headers=admin, json={"role": "consumer"})

    assert assert_error(refused, 422, "validation_error")["details"] == {
        "username": ["A consumer's username is a mainland China mobile number."]}
    assert client.get(f"/api/v1/users/{clerk.id}", headers=admin).json["role"] == "store_staff"
    assert _changes(client, admin, clerk.id) == []


def test_an_admin_cannot_demote_themselves_but_another_admin(client, login):
    admin, admin_id = _admin(client)
    other = UserFactory(role="admin")
    db.session.commit()
    assert_error(client.patch(f"/api/v1/users/{admin_id}", headers=admin, json={"role": "auditor"}), 409,
                 "cannot_disable_self")
    assert client.get(f"/api/v1/users/{admin_id}", headers=admin).json["role"] == "admin"
    demoted = client.patch(f"/api/v1/users/{other.id}", headers=admin, json={"role": "auditor"})
    assert demoted.status_code == 200 and demoted.json["role"] == "auditor"


def test_the_last_active_admin_cannot_be_demoted(app):
    from shop.auth import service

    only = UserFactory(role="admin")
    UserFactory(role="admin", active=False)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        service.update_user(user_id=only.id, changes=service.UserChanges(role="auditor"))
    assert refused.value.code == "last_active_admin"


@pytest.mark.parametrize("username", ["\u0430dmin", "аудитор", "ad\u0131min", "ad min", "admin@shop", "管理员"])
def test_an_admin_given_username_is_ascii_letters_digits_and_dot_underscore_dash(client, runner, login, username):
    response = client.post("/api/v1/users", headers=login("admin"),
                           json={"username": username, "password": "a good password", "role": "admin"})
    assert set(assert_error(response, 422, "validation_error")["details"]) == {"username"}
    typed = runner.invoke(args=["create-user", "--role", "admin", "--username", username], input="long password 1\n")
    assert typed.exit_code != 0 and "username" in typed.output


def test_usernames_of_the_demo_and_full_width_spellings_still_pass(client, runner, login):
    admin = login("admin")
    for username in ("Ｆｉｒｓｔ-Ａｕｄｉｔｏｒ", "second_auditor", "third.auditor"):
        created = client.post("/api/v1/users", headers=admin,
                              json={"username": username, "password": "a good password", "role": "auditor"})
        assert created.status_code == 201, created.json
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    names = {user["username"] for user in client.get("/api/v1/users?limit=100", headers=admin).json["items"]}
    assert {"first-auditor", "admin", "auditor", "13800000000", "staff-shunde", "staff-gaoming", "coop-zhaojue",
            "coop-leibo"} <= names


def test_user_changes_are_append_only_in_postgresql(pg_app):
    from shop.auth.service import create_user

    create_user(username="kept-forever", password="a good password", role="auditor")
    db.session.commit()
    for statement in ("UPDATE user_changes SET action = 'disabled'", "DELETE FROM user_changes"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()


def test_a_sign_out_of_the_api_or_of_the_pages_is_audited_as_the_users_own(app, client, login):
    from tests.web.test_pages_security import _csrf, _sign_in

    user = UserFactory(role="consumer")
    db.session.commit()
    headers = _bearer(sign_in(client, user.username))
    browser = app.test_client()

    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    _sign_in(browser, user)
    token = _csrf(browser, "/orders")
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    assert browser.post("/logout", data={"csrf_token": _csrf(browser)}).status_code == 302  # signed out: no row

    rows = _changes(client, login("auditor"), user.id)
    assert [(row["action"], row["actor_id"]) for row in rows] == [("signed_out", user.id), ("signed_out", user.id)]
    assert all(row["created_at"] for row in rows)
