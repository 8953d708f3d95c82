"""Sign-in, tokens, roles and the login rate limit."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itsdangerous import URLSafeTimedSerializer

from shop.auth.security import TOKEN_SALT
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
    me = client.get("/api/v1/users", headers={"Authorization": f"Bearer {response.json['access_token']}"})
    assert_error(me, 403, "forbidden")


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


def test_wrong_role_is_403(client, login):
    headers = login("consumer")
    assert_error(client.post("/api/v1/regions", json={}, headers=headers), 403, "forbidden")


def test_repeated_failed_logins_are_rate_limited_but_successes_are_not(client):
    user = UserFactory()
    db.session.commit()
    for _ in range(6):
        assert sign_in(client, user.username).status_code == 200
    statuses = [sign_in(client, user.username, "wrong password").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    error = assert_error(sign_in(client, user.username), 429, "rate_limited")
    assert "5 per 1 minute" in error["message"]


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
