"""Response headers: what was answered to a signed-in caller is kept in no cache."""
from __future__ import annotations

from shop.db import db
from tests.suppliers.factories import HouseholdFactory


def test_answers_to_a_signed_in_caller_are_never_stored_by_a_cache(client, login):
    admin = login("admin")
    household = HouseholdFactory()
    db.session.commit()

    revealed = client.get(f"/api/v1/households/{household.id}?reveal=true&reason=核对身份", headers=admin)
    own_orders = client.get("/api/v1/orders", headers=login("consumer"))
    public = client.get("/api/v1/regions")

    assert revealed.status_code == 200 and "*" not in revealed.json["id_number"]
    assert revealed.headers["Cache-Control"] == "private, no-store"
    assert own_orders.headers["Cache-Control"] == "private, no-store"
    assert "no-store" not in public.headers.get("Cache-Control", "")  # public reference data may be cached


def test_a_new_token_and_a_new_account_are_never_stored_by_a_cache(client):
    """Neither request carries a token: the answer to a write is still the caller's alone."""
    from tests.factories import DEFAULT_PASSWORD, UserFactory

    user = UserFactory(role="admin")
    db.session.commit()
    token = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    account = client.post("/api/v1/auth/register", json={"phone": "13912345678", "password": "a-long-password-1"})

    assert token.status_code == 200 and "access_token" in token.json
    assert account.status_code == 201, account.json
    assert token.headers["Cache-Control"] == "private, no-store"
    assert account.headers["Cache-Control"] == "private, no-store"


def test_retry_after_comes_only_with_an_answer_that_asks_to_wait(client):
    """The sign-in route is rate-limited: its successes and plain refusals do not tell a client to wait."""
    from tests.factories import DEFAULT_PASSWORD, UserFactory

    user = UserFactory(role="admin")
    db.session.commit()
    ok = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    refused = client.post("/api/v1/auth/token", json={"username": user.username, "password": "not-it-at-all"})
    answers = [client.post("/api/v1/auth/token", json={"username": user.username, "password": "not-it-at-all"})
               for _ in range(12)]

    assert ok.status_code == 200 and "Retry-After" not in ok.headers
    assert refused.status_code == 401 and "Retry-After" not in refused.headers
    waits = [answer for answer in answers if answer.status_code == 429]
    assert waits and all(int(answer.headers["Retry-After"]) >= 1 for answer in waits)


def test_a_conflict_on_a_rate_limited_route_does_not_tell_a_client_to_wait(client):
    """Registration is rate-limited: a phone already registered is a 409 that waiting does not right, so it carries
    no Retry-After (a client honouring it would only wait to be refused again)."""
    body = {"phone": "13912345678", "password": "a-long-password-1"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    again = client.post("/api/v1/auth/register", json=body)
    assert again.status_code == 409 and "Retry-After" not in again.headers, dict(again.headers)


def test_production_over_https_tells_browsers_to_stay_on_https(app, client):
    app.config["SHOP_ENV"] = "production"
    over_https = client.get("/api/v1/regions", base_url="https://shop.example")
    over_http = client.get("/api/v1/regions")
    app.config["SHOP_ENV"] = "development"
    in_development = client.get("/api/v1/regions", base_url="https://shop.example")

    assert over_https.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in over_http.headers
    assert "Strict-Transport-Security" not in in_development.headers
