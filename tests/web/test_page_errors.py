"""Errors a page's view never saw (routing, methods, the database, a bug) reach page users as the Chinese error
page, with the status's message; the API keeps its JSON shape for the same kinds of error."""
from __future__ import annotations

import re

import pytest
from flask import g
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from catalog import inventory
from catalog import service as catalog
from catalog.models import Lot
from shop.db import db
from tests.factories import UserFactory
from tests.orders.factories import StoreFactory
from tests.suppliers.factories import SupplierFactory
from tests.web.test_coop_journey import console_errors
from tests.web.test_coop_pages import signed_in_coop
from tests.web.test_pages_security import _sign_in
from tests.web.test_till_pages import _signed_in
from web.storefront import reads


def assert_error_page(response, status: int, message: str) -> str:
    """The response is the HTML error page with `status` and its Chinese message (no English from Werkzeug)."""
    html = response.get_data(as_text=True)
    assert response.status_code == status and response.mimetype == "text/html"
    assert f'<p role="alert">{message}</p>' in html
    assert "Not Found" not in html and "Method Not Allowed" not in html and '"error"' not in html
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    return html


@pytest.mark.parametrize("path", ["/orders/abc", "/till/receipts/x", "/no-such-page", "/p/"])
def test_a_path_no_page_matches_is_the_chinese_404_page(client, path):
    assert_error_page(client.get(path), 404, "页面不存在")


def test_a_method_a_page_does_not_take_is_the_chinese_405_page_with_allow(client):
    response = client.get("/logout")
    assert_error_page(response, 405, "不支持此操作")
    assert "POST" in response.headers["Allow"]


def test_a_method_the_till_does_not_take_is_the_chinese_405_page(client):
    _signed_in(client, store_id=StoreFactory().id)
    assert_error_page(client.put("/till/pickups"), 405, "不支持此操作")


def test_a_database_outage_on_a_page_is_the_chinese_503_page(app, monkeypatch):
    client = signed_in_coop(app, SupplierFactory())

    def unavailable(**_):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(inventory, "list_supplier_lots", unavailable)
    monkeypatch.setitem(app.jinja_env.globals, "web_user", unavailable)  # the page's header asks no one either
    assert_error_page(client.get("/coop/lots"), 503, "服务暂时不可用，请稍后再试。")


def test_an_unexpected_error_on_a_page_is_the_chinese_500_page_without_internals(app, client, monkeypatch):
    def broken(**_):
        raise RuntimeError("secret internals 42")

    monkeypatch.setattr(reads, "donor_districts", broken)
    html = assert_error_page(client.get("/"), 500, "出错了，请稍后再试。")
    assert "secret internals" not in html and "Traceback" not in html


def test_the_api_keeps_its_json_errors_for_the_same_kinds_of_error(client, monkeypatch):
    assert client.get("/api/v1/orders/abc").json["error"]["code"] == "not_found"
    response = client.delete("/api/v1/regions")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"]

    def unavailable(**_):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(catalog, "list_products", unavailable)
    response = client.get("/api/v1/products")
    assert response.status_code == 503 and response.json["error"]["code"] == "service_unavailable"


def test_a_forged_page_link_in_the_portal_says_so_and_links_to_the_first_page(app):
    client = signed_in_coop(app, SupplierFactory())
    html = assert_error_page(client.get("/coop/lots?cursor=x"), 400, "翻页链接无效，请回到第一页。")
    assert '<a class="button primary" href="/coop/lots">回到第一页</a>' in html


def test_a_sign_out_sent_again_from_another_tab_goes_home_as_the_first_did(app):
    client = signed_in_coop(app, SupplierFactory())
    g.pop("csrf_token", None)
    page = client.get("/coop").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/logout", data={"csrf_token": token}).location == "/"  # in one tab

    again = client.post("/logout", data={"csrf_token": token})  # the other tab's 退出, its form now stale

    assert again.status_code == 302 and again.location == "/"
    assert client.get("/coop").status_code == 302  # still signed out
    someone = signed_in_coop(app, SupplierFactory())  # signed in, a forged sign-out is refused as any forged form
    assert_error_page(someone.post("/logout", data={"csrf_token": token}), 400, "表单已过期，请返回刷新页面后重试。")
    assert someone.get("/coop").status_code == 200


def test_a_form_sent_after_signing_out_says_the_sign_in_ended_and_links_to_sign_in(app):
    client = signed_in_coop(app, SupplierFactory())
    g.pop("csrf_token", None)
    page = client.get("/coop").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/logout", data={"csrf_token": token})  # in another tab
    response = client.post("/coop/uploads", data={"csrf_token": token}, headers={"Referer": "http://localhost/coop"})
    html = assert_error_page(response, 400, "表单未提交：您的登录已结束（已退出或超时），请重新登录后再操作。")
    assert '<a class="button primary" href="/login?next=/coop">重新登录</a>' in html
    anonymous = app.test_client()  # a form anyone may send is merely stale
    assert_error_page(anonymous.post("/cart", data={"sku": "X", "csrf_token": token}), 400,
                      "表单已过期，请返回刷新页面后重试。")


@pytest.mark.parametrize("ended", ["lifetime", "elsewhere"])
def test_a_form_sent_once_the_sign_in_ended_says_so_and_links_to_sign_in_back_to_its_page(app, ended):
    """A buyer's sign-in ended (its lifetime over, or signed out on another device) while the order page stayed open:
    a cancel sent from it says it was not sent and links to sign in, back to the order page; never the sign-in page
    leading on to the form's address, a page only a form posts to (不支持此操作, 405)."""
    client, buyer = app.test_client(), UserFactory(username="13912340051")
    db.session.commit()
    _sign_in(client, buyer)
    g.pop("csrf_token", None)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/account").get_data(as_text=True)).group(1)
    if ended == "lifetime":
        with client.session_transaction() as session:
            session["at"] -= int(app.permanent_session_lifetime.total_seconds()) + 1
    else:
        buyer.token_version += 1
        db.session.commit()

    response = client.post("/orders/7/cancel", data={"csrf_token": token}, headers={"Referer": "http://localhost/orders/7"})

    html = assert_error_page(response, 400, "表单未提交：您的登录已结束（已退出或超时），请重新登录后再操作。")
    assert '<a class="button primary" href="/login?next=/orders/7">重新登录</a>' in html


def test_the_sites_icon_is_served_where_browsers_look_for_it_and_cached(client):
    """Every page's browser asks for /favicon.ico (the trace page and the printable statement name no icon): it is the
    site's icon, cached for a week, never the 404 page; the pages name the same file."""
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")
    assert icon.data[:4] == b"\x00\x00\x01\x00"  # an icon file
    assert "max-age=604800" in icon.headers["Cache-Control"]
    assert '<link rel="icon" href="/favicon.ico">' in client.get("/login").get_data(as_text=True)


def test_no_page_has_a_console_error_for_a_missing_icon(site, desktop):
    """In Chromium: the storefront and a lot's trace page (which names no icon) load with no console error."""
    with site.app.app_context():
        code = db.session.scalar(select(Lot.trace_code).order_by(Lot.id).limit(1))
    page = desktop.new_page()
    errors = console_errors(page)
    for path in (f"/t/{code}", "/"):
        page.goto(site.url + path)
        page.wait_for_load_state("networkidle")
    assert errors == []


def test_a_query_parameter_given_twice_is_refused_naming_it_on_every_page_as_the_api_refuses_it(app, client, login):
    """`?code=A&code=B` is not answered as if only `code=A` were asked (the co-op searching for B sees A's household
    and no word): the API refuses it with a 422 naming the parameter, and every page does the same; a parameter left
    blank once, or one that ad links add (`utm_*`), is not given and refuses nothing."""
    supplier = SupplierFactory()
    coop = signed_in_coop(app, supplier)
    for page, path, name in ((coop, "/coop/households?code=R1&code=R2", "code"),
                             (coop, "/coop/households?status=a&status=b", "status"),
                             (coop, "/coop/lots?limit=5&limit=50", "limit"),
                             (client, "/?q=苦荞&category=粮油&q=脐橙", "q"),
                             (client, "/disclosure?month=2026-10&month=2026-11", "month")):
        html = assert_error_page(page.get(path), 422, f"网址中的参数“{name}”出现了不止一次，每个参数只能有一个值。")
        assert "R1" not in html, path
    assert coop.get("/coop/households?code=&code=R1").status_code == 200
    assert client.get("/?utm_source=a&utm_source=b").status_code == 200
    api = client.get(f"/api/v1/suppliers/{supplier.id}/households?code=R1&code=R2",
                     headers=login("coop", supplier_id=supplier.id))
    assert api.status_code == 422 and list(api.json["error"]["details"]) == ["code"], api.json


@pytest.mark.parametrize("path", ["/no-such-page", "/static/web/no-such.css", "/orders/abc"])
def test_an_error_page_showing_who_is_signed_in_is_never_stored_by_a_cache(client, path):
    """An error page outside any page's blueprint (a path no page matches, a missing static file) names the signed-in
    user in its header as every page does (a consumer's phone number, masked): it is never kept by a cache, as pages
    are not."""
    user = UserFactory(role="consumer", username="13800138000")
    db.session.commit()
    _sign_in(client, user)

    response = client.get(path)

    assert response.status_code == 404 and "138****8000" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_shoppers_error_page_links_back_to_the_cart_and_orders_but_a_clerks_does_not(app, client, monkeypatch):
    """A shopper on an error page (a product gone, a path no page matches, a server error) gets links back to the cart
    and to their orders, not only home; a clerk's error page at the till offers no cart."""
    buyer = UserFactory(role="consumer", username="13800138001")
    db.session.commit()
    _sign_in(client, buyer)
    for path, status in (("/p/NO-SUCH-SKU", 404), ("/no-such-page", 404)):
        html = client.get(path).get_data(as_text=True)
        main = html[html.index("<main"):]
        assert client.get(path).status_code == status
        assert 'href="/cart"' in main and 'href="/orders"' in main, path

    def broken(**_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(reads, "donor_districts", broken)
    html = assert_error_page(client.get("/"), 500, "出错了，请稍后再试。")
    assert 'href="/cart"' in html and 'href="/orders"' in html

    clerk = app.test_client()
    _signed_in(clerk, store_id=StoreFactory().id)
    html = clerk.get("/till/no-such-page").get_data(as_text=True)
    assert 'href="/cart"' not in html and 'href="/orders"' not in html
