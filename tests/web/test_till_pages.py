"""The till pages through the test client: the bearer token the till's script gets (CSRF-checked, short-lived,
for store staff only), the store always the clerk's own, bad amounts refused in Chinese, wrong pickup codes
limited as on the API."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask import g
from sqlalchemy import select

from orders.models import Shift
from shop.db import db
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.factories import ShiftFactory, StoreFactory

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')


def _csrf(client, path: str) -> str:
    """The CSRF token a page carries for this client's session (flask-wtf's per-request copy in `g` dropped)."""
    g.pop("csrf_token", None)
    page = client.get(path).get_data(as_text=True)
    return (CSRF_FIELD.search(page) or CSRF_HEADER.search(page)).group(1)


def _signed_in(client, role: str = "store_staff", **scope):
    """A user of `role` signed in to the pages through the sign-in form."""
    user = UserFactory(role=role, **scope)
    db.session.commit()
    client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD,
                                "csrf_token": _csrf(client, "/login")})
    return user


def test_the_till_gets_a_fifteen_minute_bearer_token_that_the_api_takes(client):
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    assert client.post("/till/token").status_code == 400  # no CSRF token: refused
    response = client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/till")})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    expires_at = datetime.fromisoformat(response.json["expires_at"])
    assert timedelta(minutes=14) < expires_at - datetime.now(UTC) <= timedelta(minutes=15)
    bearer = {"Authorization": f"Bearer {response.json['access_token']}"}
    assert client.get(f"/api/v1/stores/{store.id}", headers=bearer).status_code == 200
    other = StoreFactory()
    db.session.commit()
    assert client.get(f"/api/v1/stores/{other.id}", headers=bearer).status_code == 404


def test_a_consumer_gets_no_till_token_and_an_anonymous_visitor_is_sent_to_sign_in(client, app):
    anonymous = app.test_client()
    assert anonymous.post("/till/token", headers={"X-CSRFToken": _csrf(anonymous, "/login")}).status_code == 302
    _signed_in(client, role="consumer")
    assert client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/")}).status_code == 404


def test_the_till_opens_the_shift_of_the_clerks_own_store_whatever_the_form_says(client):
    own, other = StoreFactory(), StoreFactory()
    _signed_in(client, store_id=own.id)
    page = client.get("/till").get_data(as_text=True)
    assert own.name in page and "备用金（元）" in page
    response = client.post("/till/shifts", data={"float": "300.50", "store_id": other.id,
                                                 "csrf_token": _csrf(client, "/till")})
    assert response.status_code == 302
    shifts = db.session.scalars(select(Shift)).all()
    assert [(shift.store_id, shift.float_fen) for shift in shifts] == [(own.id, 30050)]
    assert 'id="till-data"' in client.get("/till").get_data(as_text=True)  # the sale screen with its price list


def test_a_float_that_is_not_an_amount_is_refused_in_chinese_and_opens_nothing(client):
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    for typed in ("abc", "-5", "1.234", ""):
        response = client.post("/till/shifts", data={"float": typed, "csrf_token": _csrf(client, "/till")})
        assert response.status_code == 422 and "请输入备用金金额" in response.get_data(as_text=True)
    assert db.session.scalars(select(Shift)).all() == []


def test_another_stores_shift_can_be_neither_seen_nor_closed(client):
    store = StoreFactory()
    shift = ShiftFactory()
    db.session.commit()
    _signed_in(client, store_id=store.id)
    assert client.get(f"/till/shifts/{shift.id}").status_code == 404
    closing = client.post(f"/till/shifts/{shift.id}/close", data={"counted": "0", "csrf_token": _csrf(client, "/till")})
    assert closing.status_code == 404
    assert db.session.get(Shift, shift.id).closed_at is None


def test_wrong_pickup_codes_are_limited_per_clerk(client):
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    token = _csrf(client, "/till/pickups")
    for _ in range(10):
        wrong = client.post("/till/pickups", data={"pickup_code": "123456", "csrf_token": token})
        assert wrong.status_code == 409 and "本店没有使用此取货码的待取订单" in wrong.get_data(as_text=True)
    assert client.post("/till/pickups", data={"pickup_code": "123456", "csrf_token": token}).status_code == 429
    malformed = client.application.test_client()
    _signed_in(malformed, store_id=store.id)
    response = malformed.post("/till/pickups", data={"pickup_code": "12ab", "csrf_token": _csrf(malformed, "/till")})
    assert response.status_code == 422 and "取货码是 6 位数字" in response.get_data(as_text=True)
