"""Every signed-in user sees their own account and changes their own password (API and page)."""
from __future__ import annotations

import pytest

from shop.db import db
from tests.contract.conftest import documented_codes
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.factories import StoreFactory
from tests.shop.test_auth import sign_in
from tests.shop.test_errors import assert_error
from tests.web.test_pages_security import _csrf, _sign_in

NEW = "a brand new passphrase"


def _bearer(response) -> dict:
    """Authorization headers from a token response."""
    return _bearer_of(response.json)


def _bearer_of(token: dict) -> dict:
    """Authorization headers from a token response's body."""
    return {"Authorization": f"Bearer {token['access_token']}"}


@pytest.mark.parametrize("role, scope", [("consumer", {}), ("auditor", {}), ("store_staff", {"store_id": True})])
def test_every_role_reads_its_own_account_and_nobody_elses(client, role, scope):
    user = UserFactory(role=role, **({"store_id": StoreFactory().id} if scope else {}))
    db.session.commit()
    me = client.get("/api/v1/users/me", headers=_bearer(sign_in(client, user.username)))
    assert me.status_code == 200
    assert (me.json["id"], me.json["username"], me.json["role"]) == (user.id, user.username, role)
    assert me.json["store_id"] == user.store_id and "password_hash" not in me.json
    assert me.headers["Cache-Control"] == "private, no-store"
    assert_error(client.get("/api/v1/users/me"), 401, "missing_token")


def test_a_new_password_ends_every_earlier_token_and_page_session_and_gives_this_client_a_new_token(app, client):
    user = UserFactory(role="consumer")
    db.session.commit()
    phone, laptop = _bearer(sign_in(client, user.username)), _bearer(sign_in(client, user.username))
    browser = app.test_client()
    _sign_in(browser, user)
    assert browser.get("/orders").status_code == 200

    changed = client.post("/api/v1/users/me/password", headers=phone,
                          json={"current_password": DEFAULT_PASSWORD, "new_password": NEW})

    assert changed.status_code == 200, changed.json
    assert changed.json["role"] == "consumer"
    assert client.get("/api/v1/users/me", headers=_bearer(changed)).status_code == 200
    for old in (phone, laptop):
        assert_error(client.get("/api/v1/users/me", headers=old), 401, "invalid_token")
    assert browser.get("/orders").status_code == 302  # signed out of the pages too
    assert_error(sign_in(client, user.username), 401, "invalid_credentials")
    assert sign_in(client, user.username, NEW).status_code == 200


def test_wrong_current_passwords_count_as_failed_sign_ins_of_the_username(client):
    user = UserFactory(role="consumer")
    db.session.commit()
    headers = _bearer(sign_in(client, user.username))
    wrong = {"current_password": "not my password", "new_password": NEW}
    right = {"current_password": DEFAULT_PASSWORD, "new_password": NEW}
    statuses = [client.post("/api/v1/users/me/password", headers=headers, json=wrong).status_code for _ in range(4)]

    assert statuses == [403, 403, 403, 429]  # after three failures in a row the username waits, as for sign-ins
    assert_error(client.post("/api/v1/users/me/password", headers=headers, json=right), 429, "too_many_attempts")
    assert_error(sign_in(client, user.username), 429, "too_many_attempts")  # the same backoff as sign-ins
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200  # nothing changed, the token works


def test_a_wrong_current_password_is_403_wrong_password(client):
    user = UserFactory(role="auditor")
    db.session.commit()
    headers = _bearer(sign_in(client, user.username))
    response = client.post("/api/v1/users/me/password", headers=headers,
                           json={"current_password": "not my password", "new_password": NEW})
    assert_error(response, 403, "wrong_password")
    assert sign_in(client, user.username).status_code == 200


@pytest.mark.parametrize("body, field", [
    ({"current_password": DEFAULT_PASSWORD, "new_password": "short"}, "new_password"),
    ({"current_password": DEFAULT_PASSWORD, "new_password": "p" * 129}, "new_password"),
    ({"current_password": DEFAULT_PASSWORD, "new_password": DEFAULT_PASSWORD}, "new_password"),
    ({"current_password": "", "new_password": NEW}, "current_password"),
    ({"new_password": NEW}, "current_password"),
])
def test_the_new_password_is_checked(client, body, field):
    user = UserFactory(role="consumer")
    db.session.commit()
    headers = _bearer(sign_in(client, user.username))
    response = client.post("/api/v1/users/me/password", headers=headers, json=body)
    assert field in assert_error(response, 422, "validation_error")["details"]
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200


def test_the_account_page_changes_the_password_and_keeps_this_browser_signed_in(app, client):
    user = UserFactory(role="consumer")
    db.session.commit()
    _sign_in(client, user)
    other_browser = app.test_client()
    _sign_in(other_browser, user)
    page = client.get("/account")
    assert page.status_code == 200 and user.username in page.get_data(as_text=True)

    mismatch = client.post("/account", data={"current_password": DEFAULT_PASSWORD, "new_password": NEW,
                                             "new_password_again": NEW + "x", "csrf_token": _csrf(client, "/account")})
    assert mismatch.status_code == 422 and "不一致" in mismatch.get_data(as_text=True)
    wrong = client.post("/account", data={"current_password": "not mine", "new_password": NEW,
                                          "new_password_again": NEW, "csrf_token": _csrf(client, "/account")})
    assert wrong.status_code == 403 and "当前密码不正确" in wrong.get_data(as_text=True)
    done = client.post("/account", data={"current_password": DEFAULT_PASSWORD, "new_password": NEW,
                                         "new_password_again": NEW, "csrf_token": _csrf(client, "/account")})

    assert done.status_code == 303 and done.location == "/account"  # a reload shows the change, never sends it again
    assert "密码已修改" in client.get("/account").get_data(as_text=True)
    assert "密码已修改" not in client.get("/account").get_data(as_text=True)  # said once
    assert client.get("/orders").status_code == 200
    assert other_browser.get("/orders").status_code == 302
    assert sign_in(client, user.username, NEW).status_code == 200


def test_the_account_page_needs_a_sign_in_and_a_csrf_token(client):
    assert client.get("/account").status_code == 302
    user = UserFactory(role="auditor")
    db.session.commit()
    _sign_in(client, user)
    refused = client.post("/account", data={"current_password": DEFAULT_PASSWORD, "new_password": NEW,
                                            "new_password_again": NEW})
    assert refused.status_code == 400
    assert sign_in(client, user.username).status_code == 200


def test_the_account_page_refuses_a_new_password_over_128_characters_instead_of_cutting_it(client):
    user = UserFactory(role="consumer")
    db.session.commit()
    _sign_in(client, user)
    long = "Ab1-" * 40
    refused = client.post("/account", data={"current_password": DEFAULT_PASSWORD, "new_password": long,
                                            "new_password_again": long, "csrf_token": _csrf(client, "/account")})
    assert refused.status_code == 422 and "8 至 128 位" in refused.get_data(as_text=True)
    assert sign_in(client, user.username).status_code == 200  # unchanged
    assert sign_in(client, user.username, long[:128]).status_code == 401


@pytest.mark.parametrize("new", [" " * 16, "\u3000" * 8, "new\x00password", "two\nline password"])
def test_a_new_password_of_only_whitespace_or_with_control_characters_is_refused(client, new):
    user = UserFactory(role="consumer")
    db.session.commit()
    headers = _bearer(sign_in(client, user.username))
    response = client.post("/api/v1/users/me/password", headers=headers,
                           json={"current_password": DEFAULT_PASSWORD, "new_password": new})
    assert assert_error(response, 422, "validation_error")["details"].keys() == {"new_password"}
    _sign_in(client, user)
    page = client.post("/account", data={"current_password": DEFAULT_PASSWORD, "new_password": new,
                                         "new_password_again": new, "csrf_token": _csrf(client, "/account")})
    assert page.status_code == 422 and "不能只有空格" in page.get_data(as_text=True)
    assert sign_in(client, user.username).status_code == 200  # unchanged


def test_signing_out_of_the_api_ends_every_token_and_page_session_of_the_user_and_a_new_sign_in_works(app, client):
    user, other = UserFactory(role="consumer"), UserFactory(role="consumer")
    db.session.commit()
    phone, laptop = _bearer(sign_in(client, user.username)), _bearer(sign_in(client, user.username))
    bystander = _bearer(sign_in(client, other.username))
    browser = app.test_client()
    _sign_in(browser, user)
    assert browser.get("/orders").status_code == 200

    signed_out = client.post("/api/v1/auth/logout", headers=phone)

    assert signed_out.status_code == 204 and signed_out.get_data() == b""
    for old in (phone, laptop):
        assert_error(client.get("/api/v1/users/me", headers=old), 401, "invalid_token")
    assert_error(client.post("/api/v1/auth/logout", headers=phone), 401, "invalid_token")
    assert browser.get("/orders").status_code == 302  # signed out of the pages too
    assert client.get("/api/v1/users/me", headers=bystander).status_code == 200  # nobody else's
    assert client.get("/api/v1/users/me", headers=_bearer(sign_in(client, user.username))).status_code == 200
    assert_error(client.post("/api/v1/auth/logout"), 401, "missing_token")


@pytest.mark.parametrize("new", ["iloveyou", "Qwerty123", "{username} 2026"])
def test_a_new_password_that_is_common_or_holds_the_username_is_refused(client, new):
    user = UserFactory(role="auditor", username="audit-li")
    db.session.commit()
    new = new.format(username="Audit-Li")
    headers = _bearer(sign_in(client, user.username))
    response = client.post("/api/v1/users/me/password", headers=headers,
                           json={"current_password": DEFAULT_PASSWORD, "new_password": new})
    assert assert_error(response, 422, "validation_error")["details"].keys() == {"new_password"}
    _sign_in(client, user)
    page = client.post("/account", data={"current_password": DEFAULT_PASSWORD, "new_password": new,
                                         "new_password_again": new, "csrf_token": _csrf(client, "/account")})
    assert page.status_code == 422 and "不能是 12345678、password 这类常见密码" in page.get_data(as_text=True)
    assert sign_in(client, user.username).status_code == 200  # unchanged



def _hashed_as_in_production(password: str) -> str:
    """`password` hashed with the production argon2 parameters (the suite's own are the cheapest): checking it takes
    as long as it does in production, the window in which requests of one user overlap."""
    from argon2 import PasswordHasher, profiles

    return PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY).hash(password)


def test_two_password_changes_sent_at_once_from_the_same_current_password_let_one_win(racing_app):
    from tests.parallel import post_together

    client = racing_app.test_client()
    user = UserFactory(role="consumer", password_hash=_hashed_as_in_production(DEFAULT_PASSWORD))
    db.session.commit()
    phone, laptop = _bearer(sign_in(client, user.username)), _bearer(sign_in(client, user.username))
    new = ["the phone's new passphrase", "the laptop's new passphrase"]

    answers = post_together(racing_app, "/api/v1/users/me/password", [
        (headers, {"current_password": DEFAULT_PASSWORD, "new_password": new[i]})
        for i, headers in enumerate((phone, laptop))])

    # the first ends the other's token, or changes the password the other then checks: never both changed
    assert sorted(status for status, _ in answers) in ([200, 401], [200, 403]), answers
    won = next(i for i, (status, _) in enumerate(answers) if status == 200)
    assert answers[1 - won][1]["error"]["code"] in ("invalid_token", "wrong_password")
    db.session.expire_all()  # the requests changed the user behind this session's back
    assert client.get("/api/v1/users/me", headers=_bearer_of(answers[won][1])).status_code == 200
    assert sign_in(client, user.username, new[won]).status_code == 200
    assert_error(sign_in(client, user.username, new[1 - won]), 401, "invalid_credentials")


def test_a_sign_out_and_a_password_change_at_once_take_turns_and_the_second_finds_its_token_ended(racing_app):
    import threading
    import time

    client = racing_app.test_client()
    user = UserFactory(role="consumer", password_hash=_hashed_as_in_production(DEFAULT_PASSWORD))
    db.session.commit()
    phone, thief = _bearer(sign_in(client, user.username)), _bearer(sign_in(client, user.username))
    answers = {}

    def change() -> None:
        answers["change"] = racing_app.test_client().post(
            "/api/v1/users/me/password", headers=thief,
            json={"current_password": DEFAULT_PASSWORD, "new_password": NEW})

    changing = threading.Thread(target=change)
    changing.start()
    time.sleep(0.03)  # the change is checking the current password (argon2, about 0.1 s)
    signed_out = racing_app.test_client().post("/api/v1/auth/logout", headers=phone)
    changing.join(timeout=60)
    changed = answers["change"]
    db.session.expire_all()  # the requests changed the user behind this session's back

    # never both: a change that came second would keep a token the sign-out did not end, one that came first ended
    # the token the sign-out was sent with
    assert sorted([changed.status_code, signed_out.status_code]) in ([200, 401], [204, 401])
    refused = signed_out if changed.status_code == 200 else changed
    assert_error(refused, 401, "invalid_token")
    assert_error(client.get("/api/v1/users/me", headers=phone), 401, "invalid_token")
    if changed.status_code == 200:
        assert client.get("/api/v1/users/me", headers=_bearer(changed)).status_code == 200
        assert sign_in(client, user.username, NEW).status_code == 200
    else:
        assert_error(client.get("/api/v1/users/me", headers=thief), 401, "invalid_token")
        assert sign_in(client, user.username).status_code == 200


def test_the_answers_to_wrong_current_passwords_are_in_the_openapi_document(client):
    user = UserFactory(role="consumer")
    db.session.commit()
    headers = _bearer(sign_in(client, user.username))
    wrong = {"current_password": "not my password", "new_password": NEW}
    answers = [client.post("/api/v1/users/me/password", headers=headers, json=wrong) for _ in range(4)]
    operation = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/users/me/password"]["post"]

    documented = documented_codes(operation)
    for answer in answers:
        assert answer.json["error"]["code"] in documented.get(answer.status_code, set()), (answer.status_code,
                                                                                           answer.json, documented)
    assert "rate_limited" in documented[429]  # the limit of every password hashed from one address
