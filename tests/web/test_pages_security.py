"""The pages' security: cookie flags, CSRF on every form post, the CSP, roles, and the shared sign-in limit."""
from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from argon2 import PasswordHasher, extract_parameters
from flask import g
from sqlalchemy import select

from shop.auth import security
from shop.auth.models import User
from shop.db import db
from shop.fields import MAX_PHONE_INPUT, mainland_mobile
from tests.catalog.factories import ProductFactory
from tests.conftest import _emptied, make_app
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.factories import StoreFactory
from tests.suppliers.factories import SupplierFactory

CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]+)"')


def _csrf(client, path: str = "/login") -> str:
    """The CSRF token a page's form carries for this client's session (the test holds one app context across
    requests, so flask-wtf's per-request copy in `g` is dropped first)."""
    g.pop("csrf_token", None)
    return CSRF_FIELD.search(client.get(path).data).group(1).decode()


def _sign_in(client, user) -> object:
    """Post the sign-in form for `user`."""
    return client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD,
                                       "csrf_token": _csrf(client)})


def _register(client, phone: str) -> object:
    """Post the registration form for `phone`."""
    return client.post("/register", data={"phone": phone, "password": "long enough pw",
                                          "password_again": "long enough pw", "csrf_token": _csrf(client, "/register")})


def test_sign_in_sets_an_httponly_samesite_session_cookie_and_goes_to_the_role_home(client):
    clerk = UserFactory(role="consumer")
    db.session.commit()
    response = _sign_in(client, clerk)
    assert response.status_code == 302 and response.location == "/"
    cookie = response.headers["Set-Cookie"]
    assert "shop_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # only under SHOP_ENV=production


PUBLIC_URL = "https://shop.example.cn"


@pytest.fixture
def production_app(_pg_migrated, redis_url, tmp_path, request):
    """The app as production runs it (SHOP_ENV=production, PostgreSQL, Redis, served over https at PUBLIC_URL)."""
    from tests.shop.test_app import PRODUCTION

    env = {**PRODUCTION, "PAYMENTS": "sandbox", "DATABASE_URL": _pg_migrated, "REDIS_URL": redis_url}
    yield from _emptied(make_app(tmp_path, **env), request)


def test_in_production_the_session_cookie_is_host_only_so_no_other_subdomain_can_plant_one(production_app):
    """A cookie named `shop_session` could be set for the whole parent domain by any other site under it (a
    sibling subdomain), signing a shopper in to the planter's account, where what they type (a delivery address,
    a phone) is the planter's to read; a `__Host-` cookie is only ever set by this host, over https."""
    client = production_app.test_client()
    user = UserFactory(role="consumer")
    db.session.commit()
    page = client.get("/login", base_url=PUBLIC_URL)
    token = CSRF_FIELD.search(page.data).group(1).decode()

    signed_in = client.post("/login", base_url=PUBLIC_URL, headers={"Referer": f"{PUBLIC_URL}/login"},
                            data={"username": user.username, "password": DEFAULT_PASSWORD, "csrf_token": token})

    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith("__Host-shop_session=")
    assert "Secure" in cookie and "Path=/;" in cookie and "Domain" not in cookie and "HttpOnly" in cookie
    assert client.get("/account", base_url=PUBLIC_URL).status_code == 200
    planted = production_app.test_client()
    planted.set_cookie("shop_session", client.get_cookie("__Host-shop_session", domain="shop.example.cn").value,
                       domain="example.cn")
    assert planted.get("/account", base_url=PUBLIC_URL).status_code == 302  # to the sign-in page


def test_a_form_post_without_the_csrf_token_is_refused_and_signs_nobody_in(client):
    user = UserFactory(role="consumer")
    db.session.commit()
    response = client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 400 and "表单已过期" in response.get_data(as_text=True)
    assert client.get("/coop").status_code == 302  # still anonymous


def test_a_token_from_another_session_is_refused(client, app):
    user = UserFactory(role="consumer")
    db.session.commit()
    stolen = _csrf(app.test_client())
    response = client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD,
                                           "csrf_token": stolen})
    assert response.status_code == 400


def test_pages_carry_a_csp_without_inline_script(client):
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "js.stripe.com" not in policy  # sandbox mode: no outside script at all
    assert b"<script>" not in client.get("/login").data


def test_the_api_ignores_the_session_cookie(client):
    admin = UserFactory(role="admin")
    db.session.commit()
    _sign_in(client, admin)
    assert client.get("/api/v1/users").status_code == 401  # bearer tokens only, so no CSRF exposure


def test_a_page_of_another_role_does_not_exist_for_the_user(client):
    consumer = UserFactory(role="consumer")
    db.session.commit()
    _sign_in(client, consumer)
    assert client.get("/till").status_code == 404
    assert client.get("/coop").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in_and_back(client):
    response = client.get("/coop")
    assert response.status_code == 302 and response.location == "/login?next=/coop"
    user = UserFactory(role="coop", supplier_id=SupplierFactory().id)
    db.session.commit()
    token = _csrf(client, "/login?next=/coop")
    response = client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD,
                                           "csrf_token": token, "next": "/coop"})
    assert response.location == "/coop"


def test_next_never_leads_to_another_host(app):
    user = UserFactory(role="consumer")
    db.session.commit()
    targets = ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "/\n/x.example")
    for target in targets:
        client = app.test_client()
        response = client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD,
                                               "csrf_token": _csrf(client), "next": target})
        assert response.location == "/"


def test_a_deactivated_user_is_signed_out_of_the_pages(client):
    user = UserFactory(role="store_staff", store_id=StoreFactory().id)
    db.session.commit()
    _sign_in(client, user)
    user.active = False
    db.session.commit()
    assert client.get("/till").status_code == 302


def test_failed_page_sign_ins_share_the_api_limit(app, client):
    user = UserFactory(role="consumer")
    db.session.commit()
    limit = int(app.config["LOGIN_RATE_LIMIT"].split()[0])
    statuses = []
    for attempt in range(limit + 1):
        if attempt % 2:
            body = {"username": f"nobody{attempt}", "password": "wrong-password"}
            statuses.append(client.post("/api/v1/auth/token", json=body).status_code)
        else:
            statuses.append(client.post("/login", data={"username": f"nobody{attempt}", "password": "wrong",
                                                        "csrf_token": _csrf(client)}).status_code)
    assert statuses[:limit] == [401] * limit and statuses[limit] == 429
    response = client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD,
                                           "csrf_token": _csrf(client)})
    assert response.status_code == 429


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def either_database(request):
    """The app on SQLite and on PostgreSQL."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


@pytest.mark.parametrize("username", ["staff-shunde\x00", "admin\x07", "\ue000admin", "a" * 200])
def test_a_username_no_user_can_have_gets_the_sign_in_form_again_on_either_database(either_database, username):
    """The sign-in page judges the username by the API's rule before any query: never the generic error page."""
    client = either_database.test_client()
    response = client.post("/login", data={"username": username, "password": "whatever1", "next": "/till",
                                           "csrf_token": _csrf(client)})
    page = response.get_data(as_text=True)
    assert response.status_code == 401 and "用户名或密码错误" in page
    assert 'name="password"' in page and 'name="next" value="/till"' in page


WAIT = re.compile(r"尝试次数过多，请 (\d+) 秒后再试。")


@pytest.mark.parametrize("limit", ["LOGIN_RATE_LIMIT", "AUTH_RATE_LIMIT"])
def test_a_sign_in_refused_by_an_address_limit_gets_the_form_again_with_the_wait(app, client, limit):
    """Failed sign-ins (or sign-ins of any kind) used up from this address: the form again, the username and the page
    to go back to kept, saying how many seconds to wait, as the per-username backoff does."""
    user = UserFactory(role="consumer")
    db.session.commit()
    for attempt in range(int(app.config[limit].split()[0])):
        body = {"username": f"nobody{attempt}" if limit == "LOGIN_RATE_LIMIT" else user.username,
                "password": DEFAULT_PASSWORD}
        assert client.post("/api/v1/auth/token", json=body).status_code in (200, 401)

    response = client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD, "next": "/orders",
                                           "csrf_token": _csrf(client)})

    page = response.get_data(as_text=True)
    assert response.status_code == 429 and WAIT.search(page), page
    assert abs(int(WAIT.search(page).group(1)) - int(response.headers["Retry-After"])) <= 1
    assert 'name="next" value="/orders"' in page and f'value="{user.username}"' in page and 'name="password"' in page


def test_page_sign_ins_and_registrations_share_the_apis_limit_on_every_attempt(app, client):
    user = UserFactory(role="consumer")
    db.session.commit()
    limit = int(app.config["AUTH_RATE_LIMIT"].split()[0])
    for _ in range(limit - 2):
        client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})

    assert _sign_in(client, user).status_code == 302
    assert _register(app.test_client(), "13912345678").status_code == 302
    assert _sign_in(app.test_client(), user).status_code == 429
    assert _register(app.test_client(), "13912345679").status_code == 429


def test_a_session_cookie_copied_before_sign_out_no_longer_signs_in(app, client):
    user = UserFactory(role="coop", supplier_id=SupplierFactory().id)
    db.session.commit()
    _sign_in(client, user)
    copied = client.get_cookie("shop_session").value
    assert client.get("/coop/households").status_code == 200

    signed_out = client.post("/logout", data={"csrf_token": _csrf(client, "/coop")})

    assert signed_out.status_code == 302
    thief = app.test_client()
    thief.set_cookie("shop_session", copied)
    assert thief.get("/coop/households").status_code == 302  # to the sign-in page
    _sign_in(client, user)  # signing in again works, with a new session
    assert client.get("/coop/households").status_code == 200


def test_signing_out_from_a_page_left_open_before_the_session_was_renewed_still_signs_out(app, client):
    """A tab left open across a sign-in's renewal (a password changed in another tab, which starts a fresh session)
    holds a form token of the session before; its 退出 showed 表单已过期 and left the browser signed in. A sign-out
    posted from the shop's own pages (their Origin says so) signs out whatever its form token; one from another site
    still needs the token."""
    user = UserFactory(role="consumer")
    db.session.commit()
    _sign_in(client, user)
    left_open = _csrf(client, "/account")
    new = "another long pw 1"
    changed = client.post("/account", data={"current_password": DEFAULT_PASSWORD, "new_password": new,
                                            "new_password_again": new, "csrf_token": _csrf(client, "/account")})
    assert changed.status_code == 303 and client.get("/account").status_code == 200

    elsewhere = client.post("/logout", data={"csrf_token": left_open}, headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 400 and client.get("/account").status_code == 200
    signed_out = client.post("/logout", data={"csrf_token": left_open}, headers={"Origin": "http://localhost"})

    assert signed_out.status_code == 302 and signed_out.location == "/"
    assert client.get("/account").status_code == 302  # to the sign-in page


def test_every_html_response_carries_the_security_headers_and_allows_only_its_own_inline_styles(client):
    import base64
    import hashlib

    from shop.headers import INLINE_STYLE

    for path in ("/t/NO-SUCH-LOT", "/no/such/page", "/p/" + "A" * 70, "/"):
        response = client.get(path)
        assert response.mimetype == "text/html", path
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        for css in INLINE_STYLE.findall(response.get_data(as_text=True)):
            assert "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'" in policy
    assert client.get("/api/v1/regions").headers["X-Content-Type-Options"] == "nosniff"


def test_a_registration_sent_twice_signs_the_new_consumer_in(app, client):
    token = _csrf(client, "/register")
    second_tap = app.test_client()
    second_tap.set_cookie("shop_session", client.get_cookie("shop_session").value)
    form = {"phone": "13912340000", "password": "long enough pw", "password_again": "long enough pw",
            "csrf_token": token}
    assert client.post("/register", data=form).status_code == 302
    again = second_tap.post("/register", data=form)
    assert again.status_code == 302 and again.location == "/"
    assert second_tap.get("/orders").status_code == 200  # signed in, not sent to the sign-in page


def test_a_visitor_sent_to_sign_in_from_checkout_registers_and_comes_back_to_checkout(app, client):
    """A new customer asked to sign in at checkout follows the register link: the page they came from goes with them,
    through a refused form too, and registering lands them back on it (another host never)."""
    sign_in_page = client.get(client.get("/checkout").location).get_data(as_text=True)
    register_link = re.search(r'还没有账户？<a href="(/register[^"]*)">', sign_in_page).group(1)
    assert unquote(register_link) == "/register?next=/checkout"
    form = client.get(register_link).get_data(as_text=True)
    assert '<input type="hidden" name="next" value="/checkout">' in form
    body = {"phone": "13912340002", "password": "long enough pw", "password_again": "not the same pw",
            "next": "/checkout", "csrf_token": _csrf(client, register_link)}
    refused = client.post("/register", data=body)
    assert refused.status_code == 422 and 'name="next" value="/checkout"' in refused.get_data(as_text=True)
    registered = client.post("/register", data={**body, "password_again": "long enough pw"})
    assert registered.status_code == 302 and registered.location == "/checkout"
    assert client.get("/orders").status_code == 200  # signed in as the new consumer
    elsewhere = app.test_client()
    away = elsewhere.post("/register", data={"phone": "13912340003", "password": "long enough pw",
                                             "password_again": "long enough pw", "next": "//evil.example/x",
                                             "csrf_token": _csrf(elsewhere, "/register?next=//evil.example/x")})
    assert away.status_code == 302 and away.location == "/"


def test_registering_someone_elses_phone_says_to_sign_in(app, client):
    assert _register(client, "13912340001").status_code == 302
    other = app.test_client()
    response = other.post("/register", data={"phone": "13912340001", "password": "another password",
                                             "password_again": "another password",
                                             "csrf_token": _csrf(other, "/register")})
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "该手机号已注册，请登录" in html and 'href="/login"' in html
    assert other.get("/orders").status_code == 302


def test_a_page_sign_in_lasts_web_session_seconds_from_signing_in_whatever_the_activity(app, client):
    clerk = UserFactory(role="store_staff", store_id=StoreFactory().id)
    db.session.commit()
    _sign_in(client, clerk)
    lifetime = int(app.permanent_session_lifetime.total_seconds())
    with client.session_transaction() as session:  # signed in almost a lifetime ago, busy ever since
        session["at"] -= lifetime - 30
    for _ in range(3):  # the till's token refreshes
        assert client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/till")}).status_code == 200
    with client.session_transaction() as session:  # the lifetime is over: the activity did not extend it
        session["at"] -= 31
    assert client.get("/till").status_code == 302  # to the sign-in page
    _sign_in(client, clerk)
    assert client.get("/till").status_code == 200


def test_a_consumer_signs_in_on_the_page_with_the_spelling_they_registered_with(app, client):
    assert _register(client, "+86 139 3333 0012").status_code == 302
    other = app.test_client()
    response = other.post("/login", data={"username": "139 3333 0012", "password": "long enough pw",
                                          "csrf_token": _csrf(other)})
    assert response.status_code == 302 and other.get("/orders").status_code == 200
    staff = UserFactory(username="staff-shunde", role="store_staff", store_id=StoreFactory().id)
    db.session.commit()
    clerk = app.test_client()
    signed_in = clerk.post("/login", data={"username": "Staff-Shunde", "password": DEFAULT_PASSWORD,
                                           "csrf_token": _csrf(clerk)})
    assert signed_in.status_code == 302 and staff.username == "staff-shunde"


def test_the_registration_page_says_once_what_a_phone_or_password_needs(app, client):
    bad_phone = _register(client, "+86 12345")
    html = bad_phone.get_data(as_text=True)
    assert bad_phone.status_code == 422 and html.count('class="error"') == 1 and "11 位" in html
    spaces = " " * 16
    bad_password = client.post("/register", data={"phone": "13933330013", "password": spaces,
                                                  "password_again": spaces, "csrf_token": _csrf(client, "/register")})
    assert bad_password.status_code == 422 and "不能只有空格" in bad_password.get_data(as_text=True)


def test_a_page_sign_in_rehashes_a_password_hashed_with_outdated_parameters(client, monkeypatch):
    user = UserFactory(role="consumer")
    db.session.commit()
    monkeypatch.setattr(security, "_test_hasher", PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    assert _sign_in(client, user).status_code == 302
    stored = db.session.scalar(select(User.password_hash).where(User.id == user.id))
    assert extract_parameters(stored).time_cost == 2


@pytest.mark.parametrize("handed", ["2147483648", "99999999999", "1234567890123", "9" * 5000])
def test_the_pickups_page_after_a_forged_hand_over_id_is_the_page_without_it_on_either_database(either_database,
                                                                                                  handed):
    """`?handed=` names the order just handed over; an id no order can have shows the pickups page, never an error."""
    client = either_database.test_client()
    clerk = UserFactory(role="store_staff", store_id=StoreFactory().id)
    db.session.commit()
    client.post("/login", data={"username": clerk.username, "password": DEFAULT_PASSWORD,
                                "csrf_token": _csrf(client)})

    response = client.get(f"/till/pickups?handed={handed}")

    assert response.status_code == 200 and 'name="pickup_code"' in response.get_data(as_text=True)


def test_the_registration_pages_sign_in_of_a_taken_phone_shares_the_addresss_budget_of_failed_sign_ins(app, client):
    limit = int(app.config["LOGIN_RATE_LIMIT"].split()[0])
    phones = [f"1391234{n:04d}" for n in range(limit + 1)]
    for phone in phones:
        assert _register(app.test_client(), phone).status_code == 302  # each registered elsewhere
    for phone in phones[:limit]:  # someone else's phone with a guessed password: a failed sign-in of this address
        guess = client.post("/register", data={"phone": phone, "password": "a guess 12345", "password_again":
                                               "a guess 12345", "csrf_token": _csrf(client, "/register")})
        assert guess.status_code == 409
    assert client.post("/api/v1/auth/token", json={"username": "nobody1", "password": "wrong"}).status_code == 429
    # and with the address's budget spent, the form checks no password: it says to sign in, signing nobody in
    right = client.post("/register", data={"phone": phones[limit], "password": "long enough pw", "password_again":
                                           "long enough pw", "csrf_token": _csrf(client, "/register")})
    assert right.status_code == 409 and "该手机号已注册，请登录" in right.get_data(as_text=True)
    assert client.get("/orders").status_code == 302


def test_every_page_shows_a_signed_in_consumers_phone_masked_as_the_order_page_shows_a_delivery_phone(app, client):
    assert _register(client, "13912345678").status_code == 302
    for path in ("/", "/orders", "/cart", "/account"):
        html = client.get(path).get_data(as_text=True)
        shown = re.sub(r"<input[^>]*hidden>", "", html)  # the password manager's hidden username field aside
        assert "13912345678" not in shown and "139****5678" in shown, path


@pytest.mark.parametrize("path", ["/register", "/login"])
def test_the_sign_in_and_registration_pages_of_someone_signed_in_lead_on_rather_than_show_the_form(client, path):
    """A consumer already signed in who opens the registration (or sign-in) page, from a bookmark or the back button,
    is taken on to the page they asked to go to (else their home), never shown a form to sign up again."""
    assert _register(client, "13912340036").status_code == 302
    assert client.get(path).location == "/"
    assert client.get(f"{path}?next=/orders").location == "/orders"
    assert client.get(f"{path}?next=//evil.example/x").location == "/"


def test_a_cart_outlives_its_owners_ended_sign_in_but_is_not_another_users(app, client):
    """A consumer whose page sign-in ended (its lifetime over, or signed out on another device) is asked to sign in
    again at checkout and finds the cart they filled; someone else signing in on that browser does not get it."""
    owner, other = UserFactory(username="13912340031"), UserFactory(username="13912340032")
    product = ProductFactory()
    db.session.commit()
    _sign_in(client, owner)
    client.post("/cart", data={"sku": product.sku, "quantity": "2", "csrf_token": _csrf(client, "/cart")})
    lifetime = int(app.permanent_session_lifetime.total_seconds())
    with client.session_transaction() as session:  # signed in a lifetime ago
        session["at"] -= lifetime + 1
    assert client.get("/checkout").location == "/login?next=/checkout"
    _sign_in(client, owner)
    cart = client.get("/cart").get_data(as_text=True)
    assert product.name in cart and 'id="qty-1" name="quantity" type="text" inputmode="numeric" autocomplete="off" ' \
        'maxlength="16" value="2"' in cart

    owner.token_version += 1  # signed out everywhere on another device
    db.session.commit()
    assert client.get("/checkout").status_code == 302
    _sign_in(client, other)
    assert "购物车是空的" in client.get("/cart").get_data(as_text=True)


def test_a_cart_kept_for_its_owners_ended_sign_in_is_hidden_from_whoever_uses_the_browser_meanwhile(app, client):
    """On a shared computer: the cart kept for a consumer whose sign-in ended is not shown to the next person there
    (not on the cart page, not in its count), who fills a cart of their own; the owner signing in again gets theirs
    back with what was added meanwhile, and someone else signing in gets only what was added meanwhile."""
    owner, other = UserFactory(username="13912340033"), UserFactory(username="13912340034")
    kept, added = ProductFactory(name="苦荞茶 kept"), ProductFactory(name="核桃 added")
    db.session.commit()
    _sign_in(client, owner)
    client.post("/cart", data={"sku": kept.sku, "quantity": "2", "csrf_token": _csrf(client, "/cart")})
    with client.session_transaction() as session:  # signed in a lifetime ago
        session["at"] -= int(app.permanent_session_lifetime.total_seconds()) + 1
    page = client.get("/cart").get_data(as_text=True)
    assert kept.name not in page and "购物车是空的" in page
    client.post("/cart", data={"sku": added.sku, "quantity": "1", "csrf_token": _csrf(client)})
    page = client.get("/cart").get_data(as_text=True)
    assert added.name in page and kept.name not in page

    with client.session_transaction() as session:
        browser = dict(session)
    _sign_in(client, owner)
    page = client.get("/cart").get_data(as_text=True)
    assert kept.name in page and added.name in page

    with client.session_transaction() as session:  # the same browser again, signed in as someone else
        session.clear()
        session.update(browser)
    _sign_in(client, other)
    page = client.get("/cart").get_data(as_text=True)
    assert added.name in page and kept.name not in page


def test_signing_in_again_merges_the_lines_filled_meanwhile_as_adding_them_would_and_says_what_was_not(app, client):
    """A consumer whose sign-in ended fills the cart again before signing in: each line filled meanwhile joins the cart
    put aside as adding its units would, within a line's units and one payment's total; a line refused is left out
    and the cart page names it and says why, never dropping units unsaid."""
    from orders.payments.provider import MAX_PAYMENT_FEN
    from shop.fields import MAX_QUANTITY

    owner = UserFactory(username="13912340035")
    tea = ProductFactory(name="苦荞茶", price_fen=1)
    honey = ProductFactory(name="蜂蜜", price_fen=MAX_PAYMENT_FEN // 2)
    walnut = ProductFactory(name="核桃", price_fen=MAX_PAYMENT_FEN // 2 + 1)
    db.session.commit()
    _sign_in(client, owner)
    for product, units in ((tea, MAX_QUANTITY - 1), (honey, 1)):
        client.post("/cart", data={"sku": product.sku, "quantity": str(units),
                                   "csrf_token": _csrf(client, f"/p/{product.sku}")})
    with client.session_transaction() as session:  # signed in a lifetime ago
        session["at"] -= int(app.permanent_session_lifetime.total_seconds()) + 1
    for product, units in ((tea, 5), (walnut, 1)):
        client.post("/cart", data={"sku": product.sku, "quantity": str(units),
                                   "csrf_token": _csrf(client, f"/p/{product.sku}")})

    _sign_in(client, owner)
    page = client.get("/cart").get_data(as_text=True)
    assert f'value="{MAX_QUANTITY - 1}"' in page  # the tea's units as they were, none of the 5 taken in part
    assert '<p class="flash warn" role="status">登录前加入的 5 件“苦荞茶”没有并入购物车' in page
    assert f"每种商品最多 {MAX_QUANTITY} 件" in page
    assert "1 件“核桃”没有并入购物车" in page and "单笔支付的上限" in page
    assert f'href="/p/{walnut.sku}"' not in page and f'href="/p/{honey.sku}"' in page
    assert "没有并入" not in client.get("/cart").get_data(as_text=True)  # said once


@pytest.mark.parametrize("limit", ["REGISTER_RATE_LIMIT", "AUTH_RATE_LIMIT"])
def test_a_registration_or_password_change_refused_by_an_address_limit_gets_its_form_again_with_the_wait(app, client,
                                                                                                          limit):
    """Registrations (or sign-ins of any kind) used up from this address: the registration form again, the phone and
    the page to go back to kept, saying how many seconds to wait in words and in Retry-After, as the sign-in page does;
    and a password change refused by the address's limits gets the account page again saying the same."""
    user = UserFactory(role="consumer", username="13912340041")
    db.session.commit()
    _sign_in(client, user)  # before the budget is spent (one of all sign-ins and registrations)
    for attempt in range(int(app.config[limit].split()[0]) - (limit == "AUTH_RATE_LIMIT")):
        if limit == "REGISTER_RATE_LIMIT":
            body = {"phone": f"1391234{attempt:04d}", "password": "long enough pw"}
            assert client.post("/api/v1/auth/register", json=body).status_code == 201
        else:
            body = {"username": user.username, "password": DEFAULT_PASSWORD}
            assert client.post("/api/v1/auth/token", json=body).status_code == 200

    visitor = app.test_client()
    response = visitor.post("/register", data={"phone": "139 1234 9999", "password": "long enough pw",
                                               "password_again": "long enough pw", "next": "/orders",
                                               "csrf_token": _csrf(visitor, "/register")})
    page = response.get_data(as_text=True)
    assert response.status_code == 429 and WAIT.search(page), page
    assert abs(int(WAIT.search(page).group(1)) - int(response.headers["Retry-After"])) <= 1
    assert 'name="next" value="/orders"' in page and 'value="139 1234 9999"' in page and 'name="password"' in page

    if limit == "AUTH_RATE_LIMIT":  # a password change hashes a password too
        changed = client.post("/account", data={"current_password": DEFAULT_PASSWORD, "new_password": "a new long pw",
                                                "new_password_again": "a new long pw",
                                                "csrf_token": _csrf(client, "/account")})
        page = changed.get_data(as_text=True)
        assert changed.status_code == 429 and WAIT.search(page) and 'name="new_password"' in page, page
        assert abs(int(WAIT.search(page).group(1)) - int(changed.headers["Retry-After"])) <= 1


def test_the_phone_boxes_take_every_spelling_the_api_reads(app, client):
    """The registration and delivery phone boxes hold as many characters as the API reads of a phone number (its
    bound, MAX_PHONE_INPUT), so a spaced spelling it takes (`+86 138 - 0000 - 0000`) is never cut by the browser."""
    spelling = "+86 139 - 1234 - 0061"
    assert len(spelling) > 20 and mainland_mobile(spelling) == "13912340061"
    box = re.compile(r'<input id="phone"[^>]*>')
    assert f'maxlength="{MAX_PHONE_INPUT}"' in box.search(client.get("/register").get_data(as_text=True)).group(0)
    buyer, product = UserFactory(username="13912340062"), ProductFactory()
    db.session.commit()
    _sign_in(client, buyer)
    client.post("/cart", data={"sku": product.sku, "quantity": "1", "csrf_token": _csrf(client, "/cart")})
    assert f'maxlength="{MAX_PHONE_INPUT}"' in box.search(client.get("/checkout").get_data(as_text=True)).group(0)


def test_the_account_page_says_a_new_password_typed_full_width_is_the_current_one(client):
    """The current password typed in a phone's full-width mode (`ｃｏｒｒｅｃｔ　ｈｏｒｓｅ…`) is the current password
    (a password is the same in any width), so the page says that, not the password rule, and nothing changes."""
    user = UserFactory(role="consumer")
    db.session.commit()
    _sign_in(client, user)
    same = "".join(chr(ord(char) + 0xFEE0) if char != " " else "\u3000" for char in DEFAULT_PASSWORD)
    form = {"current_password": DEFAULT_PASSWORD, "new_password": same, "new_password_again": DEFAULT_PASSWORD}
    page = client.post("/account", data=form | {"csrf_token": _csrf(client, "/account")})
    assert page.status_code == 422 and "新密码不能与当前密码相同" in page.get_data(as_text=True)
    signed_in = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    assert signed_in.status_code == 200
