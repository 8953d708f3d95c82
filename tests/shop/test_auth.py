"""Sign-in, tokens, roles and consumer registration (limits and backoff: test_sign_in_limits.py)."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher, extract_parameters
from flask import g
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from shop.auth import security
from shop.auth.models import User
from shop.auth.security import TOKEN_SALT, hash_password
from shop.db import db
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.shop.test_errors import assert_error


def sign_in(client, username, password=DEFAULT_PASSWORD):
    """POST the credentials to the token endpoint."""
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def test_good_credentials_give_an_expiring_token_with_the_role(client):
    user = UserFactory(role="auditor")
    db.session.commit()
    response = sign_in(client, user.username)
    assert response.status_code == 200
    assert response.json["role"] == "auditor"
    expires = datetime.fromisoformat(response.json["expires_at"])
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)
    bearer = {"Authorization": f"Bearer {response.json['access_token']}"}
    assert client.get("/api/v1/users/me", headers=bearer).json["role"] == "auditor"
    assert_error(client.post("/api/v1/users", headers=bearer, json={}), 403, "forbidden")


def test_wrong_password_and_unknown_user_get_the_same_401(client):
    user = UserFactory()
    db.session.commit()
    wrong = assert_error(sign_in(client, user.username, "not the password"), 401, "invalid_credentials")
    unknown = assert_error(sign_in(client, "nobody-here"), 401, "invalid_credentials")
    assert wrong == unknown


def test_disabled_user_cannot_sign_in(client):
    user = UserFactory(active=False)
    db.session.commit()
    assert_error(sign_in(client, user.username), 401, "invalid_credentials")


def test_missing_bad_and_expired_tokens_are_401(app, client):
    assert_error(client.get("/api/v1/users"), 401, "missing_token")
    assert_error(client.get("/api/v1/users", headers={"Authorization": "Bearer forged.token.here"}),
                 401, "invalid_token")
    admin = UserFactory(role="admin")
    db.session.commit()
    signer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT)
    old = signer.dumps({"uid": admin.id, "tv": 0})
    app.config["TOKEN_TTL_SECONDS"] = -1
    assert_error(client.get("/api/v1/users", headers={"Authorization": f"Bearer {old}"}), 401, "token_expired")


def test_every_401_names_the_bearer_scheme_and_says_when_the_token_itself_was_refused(app, client, login):
    """HTTP requires a 401 to carry a `WWW-Authenticate` challenge; RFC 6750 says a bearer client is told
    `error="invalid_token"` when the token it sent was bad, expired or revoked (so it signs in again), and nothing
    more when it sent none or its password was wrong."""
    admin = UserFactory(role="admin")
    db.session.commit()
    expired = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT).dumps({"uid": admin.id, "tv": 0,
                                                                                       "ttl": 0})
    revoked = login("consumer")
    client.post("/api/v1/auth/logout", headers=revoked)
    answers = {
        "missing": client.get("/api/v1/users"),
        "wrong password": sign_in(client, admin.username, "not the password"),
        "forged": client.get("/api/v1/users", headers={"Authorization": "Bearer forged.token.here"}),
        "revoked": client.get("/api/v1/users/me", headers=revoked),
    }
    time.sleep(1.1)
    answers["expired"] = client.get("/api/v1/users", headers={"Authorization": f"Bearer {expired}"})

    challenges = {case: answer.headers.get("WWW-Authenticate") for case, answer in answers.items()}
    assert {answer.status_code for answer in answers.values()} == {401}
    assert challenges == {"missing": 'Bearer realm="shop"', "wrong password": 'Bearer realm="shop"',
                          "forged": 'Bearer realm="shop", error="invalid_token"',
                          "revoked": 'Bearer realm="shop", error="invalid_token"',
                          "expired": 'Bearer realm="shop", error="invalid_token"'}
    assert "WWW-Authenticate" not in client.post("/api/v1/users", headers=login("consumer"), json={}).headers  # 403
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path, method in [("/api/v1/users", "get"), ("/api/v1/auth/token", "post")]:
        assert "WWW-Authenticate" in paths[path][method]["responses"]["401"]["headers"]


@pytest.mark.parametrize("claims", [{"uid": True, "tv": 0, "ttl": 60}, {"tv": False, "ttl": 60}, {"tv": 0, "ttl": "x"},
                                    {"tv": 0, "ttl": None}, {"tv": 0, "ttl": 1e30}, {"uid": 10**30, "tv": 0, "ttl": 60},
                                    [1, 0, 60], "admin"])
def test_a_correctly_signed_token_with_malformed_claims_is_401(app, client, claims):
    admin = UserFactory(role="admin")
    db.session.commit()
    claims = {"uid": admin.id, **claims} if isinstance(claims, dict) else claims
    token = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT).dumps(claims)
    assert_error(client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}), 401, "invalid_token")


def test_wrong_role_is_403(client, login):
    headers = login("consumer")
    assert_error(client.post("/api/v1/regions", json={}, headers=headers), 403, "forbidden")


def test_consumer_registers_with_a_mainland_mobile_number(client):
    response = client.post("/api/v1/auth/register", json={"phone": "13912345678", "password": "long enough pw"})
    assert response.status_code == 201
    assert response.json["role"] == "consumer" and response.json["username"] == "13912345678"
    assert "password_hash" not in response.json
    assert sign_in(client, "13912345678", "long enough pw").status_code == 200
    again = client.post("/api/v1/auth/register", json={"phone": "13912345678", "password": "another pw 1"})
    assert_error(again, 409, "username_taken")


def test_registration_rejects_bad_phone_short_password_and_extra_fields(client):
    error = assert_error(client.post("/api/v1/auth/register", json={"phone": "12345", "password": "x"}),
                         422, "validation_error")
    assert set(error["details"]) == {"phone", "password"}
    sneaky = client.post("/api/v1/auth/register",
                         json={"phone": "13912345679", "password": "long enough pw", "role": "admin"})
    assert assert_error(sneaky, 422, "validation_error")["details"] == {"role": ["Unknown field."]}


@pytest.mark.parametrize("spelling", ["ＡＤＭＩＮ", "admin ", " Admin", "ad\u200bmin", "ADMIN\ufeff"])
def test_any_spelling_of_a_username_signs_in_as_that_user(client, spelling):
    UserFactory(username="admin", role="admin")
    db.session.commit()
    response = sign_in(client, spelling)
    assert response.status_code == 200 and response.json["role"] == "admin"


def test_passwords_are_compared_as_typed_in_case_and_spaces_in_any_width(client):
    user = UserFactory(password_hash=hash_password("Ｐａｓｓｗｏｒｄ 12 "))
    db.session.commit()
    for almost in ("password 12 ", "Ｐａｓｓｗｏｒｄ 12"):  # two: a third failure would start the backoff
        assert_error(sign_in(client, user.username, almost), 401, "invalid_credentials")
    assert sign_in(client, user.username, "Password 12 ").status_code == 200


def test_sign_in_fields_are_bounded(client):
    error = assert_error(client.post("/api/v1/auth/token", json={"username": "u" * 65, "password": "p" * 129}),
                         422, "validation_error")
    assert set(error["details"]) == {"username", "password"}
    control = client.post("/api/v1/auth/token", json={"username": "ad\x00min", "password": "x"})
    assert set(assert_error(control, 422, "validation_error")["details"]) == {"username"}


@pytest.mark.parametrize("spelling", ["１３８００００００００", "138 0000 0000", "138-0000-0000", " 13800000000\u200b",
                                      "1380000000\u0a66", "13800000\u0966\u0966\u0966"])  # Gurmukhi, Devanagari
def test_a_mobile_number_registers_once_in_any_spelling(client, spelling):
    first = client.post("/api/v1/auth/register", json={"phone": "13800000000", "password": "long enough pw"})
    assert first.status_code == 201
    again = client.post("/api/v1/auth/register", json={"phone": spelling, "password": "another pw 1"})
    assert_error(again, 409, "username_taken")


def test_a_full_width_mobile_number_is_stored_and_signs_in_in_ascii(client):
    body = {"phone": "１３９ １２３４ ５６７８", "password": "long enough pw"}
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 201 and response.json["username"] == "13912345678"
    assert db.session.scalar(select(User.username).where(User.id == response.json["id"])) == "13912345678"
    assert sign_in(client, "13912345678", "long enough pw").status_code == 200


MOBILE_SPELLINGS = ["139 3333 0002", "139-3333-0002", "+86 139 3333 0002", "+8613933330002", "0086 139 3333 0002",
                    "86-139-3333-0002", "＋８６ １３９ ３３３３ ０００２"]
NOT_A_MOBILE = "Not a mainland China mobile number (11 digits starting 13 to 19, optionally after +86)."


@pytest.mark.parametrize("spelling", MOBILE_SPELLINGS)
def test_a_consumer_signs_in_with_any_spelling_registration_accepts(client, spelling):
    registered = client.post("/api/v1/auth/register", json={"phone": spelling, "password": "long enough pw"})
    assert registered.status_code == 201 and registered.json["username"] == "13933330002"
    assert sign_in(client, spelling, "long enough pw").status_code == 200
    assert sign_in(client, "13933330002", "long enough pw").status_code == 200


@pytest.mark.parametrize("username, spelling, other", [("staff-shunde", " STAFF-Shunde ", "staffshunde"),
                                                       ("ops-138-0000", "OPS-138-0000", "ops1380000"),
                                                       ("138-0000", "１３８-００００", "1380000")])
def test_a_username_that_is_not_a_mobile_number_keeps_its_dashes(client, username, spelling, other):
    UserFactory(username=username, role="auditor")
    db.session.commit()
    assert sign_in(client, spelling).status_code == 200
    assert_error(sign_in(client, other), 401, "invalid_credentials")


@pytest.mark.parametrize("phone", ["12345", "+86 12345678901", "+1 139 3333 0003", "139 3333 0003 1", "1393333000x",
                                   "+86", "", "86 86 139 3333 0003", "1" * 500])
def test_a_phone_that_is_not_a_mainland_mobile_number_is_refused_with_one_message(client, phone):
    response = client.post("/api/v1/auth/register", json={"phone": phone, "password": "long enough pw"})
    assert assert_error(response, 422, "validation_error")["details"] == {"phone": [NOT_A_MOBILE]}


@pytest.mark.parametrize("password", ["long enough\x00pw", "tab\tinside pw", "line\nbreak pw", "bell\x07 password",
                                      "delete\x7f password", "c1 control\x85 pw", " " * 16, "\u3000" * 8, "\t" * 10,
                                      "\u3164" * 8, "\u2800" * 8, "\u0301" * 8, "\u200b \u3164" * 4])
def test_a_password_with_control_characters_or_only_whitespace_is_refused(client, password):
    response = client.post("/api/v1/auth/register", json={"phone": "13933330004", "password": password})
    assert list(assert_error(response, 422, "validation_error")["details"]) == ["password"]
    assert len(response.json["error"]["details"]["password"]) == 1


def test_a_password_keeps_its_spaces_and_any_script(client):
    for phone, password in (("13933330005", "  spaced out  "), ("13933330006", "密码很长很长很长")):
        assert client.post("/api/v1/auth/register", json={"phone": phone, "password": password}).status_code == 201
        assert sign_in(client, phone, password).status_code == 200


@pytest.mark.parametrize("password", ["13966667777", "+86 139-6666-7777", "my13966667777!", "139.6666.7777pw",
                                      "12345678", "11111111", "password", "PASSWORD", "Password1", "P@ssw0rd",
                                      " qwertyuiop ", "1qaz2wsx",
                                      # typed in a Chinese input method's full-width mode: the same guess
                                      "１２３４５６７８", "ＰＡＳＳＷＯＲＤ", "ｍｙ１３９６６６６７７７７！"])
def test_registration_refuses_the_phone_number_or_a_most_common_password(client, password):
    response = client.post("/api/v1/auth/register", json={"phone": "139 6666 7777", "password": password})
    assert list(assert_error(response, 422, "validation_error")["details"]) == ["password"]
    assert_error(sign_in(client, "13966667777", password), 401, "invalid_credentials")  # nothing registered


@pytest.mark.parametrize("password", ["aaaaaaaaaa", "1111111111111", "ababababab", "abcabcabcabc", "passpass",
                                      "abcdefghijk", "12345678901", "9876543210", "zyxwvutsrq", "qwertyuiopas",
                                      "ＡＢＣＤＥＦＧＨＩＪ", " ZZZZZZZZZZ "])
def test_a_new_password_that_repeats_or_runs_in_sequence_is_refused(client, password):
    # not on the list of the most used passwords, yet guessed as fast: one short group repeated, or a straight run of
    # the alphabet, the digits or a keyboard row (forwards or backwards), in any case or width
    response = client.post("/api/v1/auth/register", json={"phone": "139 6666 7779", "password": password})
    assert list(assert_error(response, 422, "validation_error")["details"]) == ["password"]
    assert_error(sign_in(client, "13966667779", password), 401, "invalid_credentials")  # nothing registered


def test_a_password_with_a_repeat_or_a_run_inside_it_is_kept(client):
    for phone, password in (("13933330007", "abcdefgh!Lz"), ("13933330008", "aaaa1234xyz"),
                            ("13933330009", "很长很长很长的密码")):
        assert client.post("/api/v1/auth/register", json={"phone": phone, "password": password}).status_code == 201


def test_the_registration_page_refuses_a_weak_password_in_chinese(client):
    from tests.web.test_pages_security import _csrf

    for password in ("13966667778", "12345678"):
        page = client.post("/register", data={"phone": "13966667778", "password": password,
                                              "password_again": password, "csrf_token": _csrf(client, "/register")})
        assert page.status_code == 422 and "不能包含手机号或用户名" in page.get_data(as_text=True), password
    assert_error(sign_in(client, "13966667778", "12345678"), 401, "invalid_credentials")


STRONGER = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)


def test_a_sign_in_rehashes_a_password_hashed_with_outdated_parameters(client, monkeypatch):
    user = UserFactory()
    db.session.commit()
    monkeypatch.setattr(security, "_test_hasher", STRONGER)  # the parameters were raised since the account was made
    assert sign_in(client, user.username).status_code == 200
    stored = db.session.scalar(select(User.password_hash).where(User.id == user.id))
    assert extract_parameters(stored).time_cost == 2 and not STRONGER.check_needs_rehash(stored)
    assert sign_in(client, user.username).status_code == 200
    assert sign_in(client, user.username, "not the password").status_code == 401
    assert db.session.scalar(select(User.password_hash).where(User.id == user.id)) == stored  # once is enough


def test_a_token_issued_before_its_lifetime_was_shortened_lasts_the_new_lifetime_and_then_has_expired(app, client):
    user = UserFactory(role="auditor")
    db.session.commit()
    bearer = {"Authorization": f"Bearer {sign_in(client, user.username).json['access_token']}"}  # a 12-hour token
    app.config["TOKEN_TTL_SECONDS"] = 3600  # the operator shortens the lifetime: a token an hour old is still good
    assert client.get("/api/v1/users/me", headers=bearer).status_code == 200
    app.config["TOKEN_TTL_SECONDS"] = 1
    issued_later = datetime.now(UTC) + timedelta(seconds=5)
    with pytest.MonkeyPatch.context() as patch:  # five seconds on: past the new lifetime, so expired, not forged
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: int(issued_later.timestamp()))
        g.pop("token_claims", None)  # checked once per request: the test holds one app context across requests
        assert_error(client.get("/api/v1/users/me", headers=bearer), 401, "token_expired")


def test_a_password_typed_full_width_on_a_phone_signs_in_typed_half_width_on_a_computer(client):
    """A Chinese input method's full-width mode types `Ｌｉａｎｇｓｈａｎ２０２６` for the keys a computer types as
    `Liangshan2026`: the same password (its compatibility form, NFKC), either way round."""
    for phone, typed, later in (("13933330010", "Ｌｉａｎｇｓｈａｎ２０２６", "Liangshan2026"),
                                ("13933330011", "Liangshan2026", "Ｌｉａｎｇｓｈａｎ２０２６")):
        assert client.post("/api/v1/auth/register", json={"phone": phone, "password": typed}).status_code == 201
        assert sign_in(client, phone, later).status_code == 200
        assert sign_in(client, phone, typed).status_code == 200
        assert_error(sign_in(client, phone, "Liangshan2027"), 401, "invalid_credentials")


def test_a_full_width_password_hashed_as_typed_before_still_signs_in_and_then_half_width_too(client):
    user = UserFactory(password_hash=security._test_hasher.hash("Ｌｉａｎｇｓｈａｎ２０２６"))  # hashed as typed
    db.session.commit()
    assert_error(sign_in(client, user.username, "Liangshan2026"), 401, "invalid_credentials")  # not knowable yet
    assert sign_in(client, user.username, "Ｌｉａｎｇｓｈａｎ２０２６").status_code == 200
    assert sign_in(client, user.username, "Liangshan2026").status_code == 200  # its hash is of the one form now
    assert sign_in(client, user.username, "Ｌｉａｎｇｓｈａｎ２０２６").status_code == 200


@pytest.mark.parametrize("password", ["wrong password", "Ｗｒｏｎｇ　ｐａｓｓｗｏｒｄ"])
def test_a_sign_in_as_an_unknown_user_checks_as_many_hashes_as_a_wrong_password_of_a_known_one(client, monkeypatch,
                                                                                              password):
    user = UserFactory()
    db.session.commit()
    checked = []
    verify = PasswordHasher.verify
    monkeypatch.setattr(PasswordHasher, "verify", lambda self, *args: checked.append(1) or verify(self, *args))
    assert_error(sign_in(client, user.username, password), 401, "invalid_credentials")
    known, checked[:] = len(checked), []
    assert_error(sign_in(client, "13900009999", password), 401, "invalid_credentials")
    assert known == len(checked) >= 1


@pytest.mark.parametrize("password", ["a\u0301e\u0301i\u0301o\u0301",
                                      "\u1100\u1161\u1102\u1161\u1103\u1161\u1105\u1161"])
def test_a_password_of_fewer_than_8_characters_typed_as_combining_sequences_is_too_short(client, password):
    """`áéíó` or `가나다라` typed as letters and combining marks (jamo) is 8 code points but 4 characters, as shown and
    as hashed (`password_form`): too short, like `áéíó` typed composed."""
    response = client.post("/api/v1/auth/register", json={"phone": "13933330012", "password": password})
    error = assert_error(response, 422, "validation_error")
    assert error["details"] == {"password": ["Must have 8 to 128 characters."]}
    assert_error(sign_in(client, "13933330012", password), 401, "invalid_credentials")  # nothing registered
