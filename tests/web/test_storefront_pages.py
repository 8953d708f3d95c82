"""Storefront pages through the test client on the seeded demo: browsing and search, the cart's bounds, checkout
errors in Chinese, one order per checkout form, payment, and a consumer's orders being theirs alone."""
from __future__ import annotations

import ast
import builtins
import inspect
import json
import re
import textwrap
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flask import g
from sqlalchemy import func, select, update

from catalog.models import Location, Product, Stock
from catalog.schemas import NAME_MAX
from catalog.service import ProductChanges, update_product
from orders.checkout import service as checkout
from orders.checkout.service import (
    MAX_UNPAID_ORDERS,
    cancel_order,
    deliver_order,
    expire_reservations,
    place_order,
    ship_order,
)
from orders.counter.service import hand_over
from orders.ledger.verify import verify_ledger
from orders.models import AfterSalesRequest, Order, OrderLine, OrderTransition, Payment, Store
from orders.payments import service as payments
from orders.refunds.service import (
    RefundRequest,
    approve_after_sales,
    create_refund,
    record_provider_refund,
    reject_after_sales,
    request_after_sales,
    settle_refund,
)
from shop.auth.models import User
from shop.auth.security import issue_token
from shop.auth.service import find_user
from shop.db import db
from shop.errors import AppError, Conflict
from shop.extensions import limiter
from shop.fields import MAX_QUANTITY
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.factories import StoreFactory
from tests.statements import statements
from tests.suppliers.factories import SupplierFactory
from web.filters import local_time, yuan
from web.pages import ID_OR_CARD_REFUSED
from web.storefront import checkout as web_checkout
from web.storefront.orders import REFUSALS
from web.storefront.reads import lots_on_sale

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_KEY = re.compile(r'name="form_key" value="([0-9a-f]+)"')
DIGEST = re.compile(r'name="digest" value="([0-9a-f]+)"')
CONSUMER = "13800000000"
KQM = "ZJ-KQM-1KG"


def _token(client, path: str) -> str:
    """The CSRF token of the form on `path`."""
    return CSRF_FIELD.search(client.get(path).get_data(as_text=True)).group(1)


@pytest.fixture
def shopper(site):
    """A test client signed in as the demo consumer, with no order left unpaid by an earlier test."""
    site.cancel_unpaid_orders(CONSUMER)
    client = site.app.test_client()
    client.post("/login", data={"username": CONSUMER, "password": site.passwords[CONSUMER],
                                "csrf_token": _token(client, "/login")})
    return client


@pytest.fixture
def stranger(site):
    """A test client signed in as a consumer who registered just now."""
    client = site.app.test_client()
    client.post("/register", data={"phone": "13900000077", "password": "another-pass-1",
                                   "password_again": "another-pass-1", "csrf_token": _token(client, "/register")})
    return client


def _add(client, sku: str, quantity: str):
    """Post the product page's add-to-cart form."""
    return client.post("/cart", data={"sku": sku, "quantity": quantity, "csrf_token": _token(client, f"/p/{sku}")})


def _checkout_form(client) -> dict:
    """The fields a rendered checkout form carries (CSRF token, its own form key, the digest of what it shows)."""
    html = client.get("/checkout").get_data(as_text=True)
    return {"csrf_token": CSRF_FIELD.search(html).group(1), "form_key": FORM_KEY.search(html).group(1),
            "digest": DIGEST.search(html).group(1)}


def _store_id(site, name: str) -> int:
    """The id of the demo store called `name`."""
    with site.app.app_context():
        store_id = db.session.scalar(select(Store.id).where(Store.name == name))
        db.session.remove()
    return store_id


def _orders_of(site, username: str) -> int:
    """How many orders the user has."""
    with site.app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Order)
                                  .where(Order.consumer_id == find_user(username=username).id))
        db.session.remove()
    return count


def test_a_donor_district_shows_the_produce_of_its_paired_counties(site):
    html = site.app.test_client().get("/?donor=440606").get_data(as_text=True)
    paired = re.search(r"顺德区</strong> 对口帮扶：([^<]+)<", html).group(1)
    assert sorted(paired.split("、")) == sorted(["美姑县", "金阳县", "雷波县"])
    assert {"美姑山羊肉", "金阳青花椒", "雷波脐橙礼盒"} <= set(re.findall(r'class="name"[^>]*>([^<]+)<', html))
    assert "昭觉苦荞米" not in html and "木里松茸" not in html


def test_pinyin_initials_find_tartary_buckwheat_and_a_bad_filter_is_a_message(site):
    client = site.app.test_client()
    names = set(re.findall(r'class="name"[^>]*>([^<]+)<', client.get("/?q=kq").get_data(as_text=True)))
    assert "昭觉苦荞米" in names and "布拖苦荞粉" in names and "雷波脐橙礼盒" not in names
    response = client.get("/?donor=" + "9" * 90)
    assert response.status_code == 400 and "筛选条件有误" in response.get_data(as_text=True)


def test_chinese_words_parted_by_a_space_find_what_they_find_together(site):
    client = site.app.test_client()

    def names(q: str) -> set[str]:
        """The product names the home page's search for `q` shows."""
        return set(re.findall(r'class="name"[^>]*>([^<]+)<', client.get(f"/?q={q}").get_data(as_text=True)))

    assert "雷波脐橙礼盒" in names("雷波脐橙")
    for q in ("雷波+脐橙", "雷波%E3%80%80脐橙", "lb+qc"):  # a space, a full-width space, pinyin initials
        assert names(q) == names("雷波脐橙"), q


def _names(html: str) -> list[str]:
    """The product names a storefront list page shows, in order."""
    return re.findall(r'class="name"[^>]*>([^<]+)<', html)


def test_the_filter_form_narrows_by_category_and_a_price_in_yuan_and_sorts(site):
    client = site.app.test_client()
    html = client.get("/").get_data(as_text=True)
    categories = re.search(r'<select id="category" name="category">(.*?)</select>', html, re.S).group(1)
    assert re.findall(r"<option[^>]*>([^<]+)<", categories) == ["全部分类", "菌菇", "粮油", "肉禽", "蔬菜", "水果",
                                                                "调味"]
    sorts = re.search(r'<select id="sort" name="sort">(.*?)</select>', html, re.S).group(1)
    assert re.findall(r"<option[^>]*>([^<]+)<", sorts) == ["默认", "最新", "价格从低到高", "价格从高到低"]

    cheap_first = client.get("/?category=粮油&min_yuan=20&max_yuan=48&sort=price_asc")
    assert cheap_first.status_code == 200
    assert _names(cheap_first.get_data(as_text=True)) == ["布拖苦荞粉", "昭觉苦荞米", "昭觉黑苦荞茶"]
    for low, high in (("٢٠", "￥４８元"), ("¥ 20.00 元", "0048.00"), ("20", "48.")):  # the till's cash boxes' spellings
        same = client.get("/", query_string={"category": "粮油", "min_yuan": low, "max_yuan": high,
                                             "sort": "price_asc"})
        assert _names(same.get_data(as_text=True)) == ["布拖苦荞粉", "昭觉苦荞米", "昭觉黑苦荞茶"], (low, high)
    dearest_first = client.get("/?category=%E7%B2%AE%E6%B2%B9&min_yuan=１６.８&max_yuan=¥52元&sort=price_desc")
    assert _names(dearest_first.get_data(as_text=True)) == ["喜德苦荞茶", "昭觉黑苦荞茶", "昭觉苦荞米", "布拖苦荞粉",
                                                            "昭觉苦荞面条"]
    html = dearest_first.get_data(as_text=True)
    assert re.search(r'<option value="price_desc" selected>价格从高到低', html)
    assert re.search(r'<option value="粮油" selected>粮油', html)
    assert 'value="１６.８"' in html  # as typed
    newest = _names(client.get("/?sort=newest&min_yuan=100").get_data(as_text=True))
    assert newest == ["木里松茸", "美姑岩鹰鸡", "美姑山羊肉", "雷波脐橙（10公斤装）"]


def test_the_filters_work_with_a_donor_district_and_a_search_and_every_form_keeps_the_others(site):
    client = site.app.test_client()
    html = client.get("/?donor=440606&q=lb&category=水果&max_yuan=100&sort=price_desc").get_data(as_text=True)
    assert _names(html) == ["雷波脐橙（5公斤装）", "雷波脐橙礼盒"]
    forms = re.findall(r"<form .*?</form>", html, re.S)
    assert len(forms) == 3
    hidden = [dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form)) for form in forms]
    assert hidden[0] == {"donor": "440606", "category": "水果", "max_yuan": "100", "sort": "price_desc"}  # search
    assert hidden[1] == {"q": "lb", "category": "水果", "max_yuan": "100", "sort": "price_desc"}  # district
    assert hidden[2] == {"donor": "440606", "q": "lb"}  # the filters


@pytest.mark.parametrize(("typed", "message"), [
    ("abc", "最低价请填写以元为单位的金额，如 12.5。"),
    ("1e3", "最低价请填写以元为单位的金额，如 12.5。"),
    ("-5", "最低价不能是负数。"),
    ("－５", "最低价不能是负数。"),
    ("12.345", "最低价最多两位小数（精确到分）。"),
    ("10000000", "最低价不能超过 ¥1,000,000.00。"),
    ("9" * 5000, "最低价不能超过 ¥1,000,000.00。"),
    ("²", "最低价请填写以元为单位的金额，如 12.5。"),
    ("①0", "最低价请填写以元为单位的金额，如 12.5。"),
    ("1_000", "最低价请填写以元为单位的金额，如 12.5。"),
    ("12,5", "最低价请填写以元为单位的金额，如 12.5。"),
    ("1 000", "最低价请填写以元为单位的金额，如 12.5。"),
])
def test_a_bad_price_is_a_message_in_chinese_beside_the_field_never_a_500(site, typed, message):
    response = site.app.test_client().get("/", query_string={"min_yuan": typed, "category": "水果"})  # the rest holds
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'<p class="error" id="min_yuan-error">{message}</p>' in html
    assert 'id="min_yuan" name="min_yuan"' in html and 'aria-invalid="true"' in html
    assert set(_names(html)) == {"盐源苹果", "雷波脐橙（5公斤装）", "雷波脐橙（10公斤装）", "雷波脐橙礼盒"}


@pytest.mark.parametrize("blank", ["\u200b", "\ufeff", "\u200b\u3000\u2060", " \u200d "])
def test_a_filter_box_holding_only_invisible_characters_is_not_filled_in(site, blank):
    # pasted from a chat app (a zero-width space, a byte-order mark): a box left empty, as the API reads it, and the
    # other filters still hold
    client = site.app.test_client()
    for box, other in (("q", {"category": "水果"}), ("category", {"q": "苦荞"}), ("min_yuan", {"category": "水果"}),
                       ("max_yuan", {"q": "苦荞"})):
        response = client.get("/", query_string={box: blank, **other})
        html = response.get_data(as_text=True)
        assert response.status_code == 200, box
        assert 'class="error"' not in html, box
        assert _names(html) == _names(client.get("/", query_string=other).get_data(as_text=True)), box


def test_a_price_range_the_wrong_way_round_names_its_upper_bound(site):
    response = site.app.test_client().get("/?min_yuan=50&max_yuan=12.5")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert '<p class="error" id="max_yuan-error">最高价不能低于最低价。</p>' in html
    assert site.app.test_client().get("/?min_yuan=12.5&max_yuan=12.50").status_code == 200


def test_storefront_posts_need_the_csrf_token_and_checkout_needs_a_consumer(site):
    client = site.app.test_client()
    response = client.post("/cart", data={"sku": KQM, "quantity": "1"})
    assert response.status_code == 400 and "表单已过期" in response.get_data(as_text=True)
    assert "购物车是空的" in client.get("/cart").get_data(as_text=True)
    assert client.get("/checkout").location == "/login?next=/checkout"
    clerk = site.app.test_client()
    clerk.post("/login", data={"username": "staff-shunde", "password": site.passwords["staff-shunde"],
                               "csrf_token": _token(clerk, "/login")})
    assert clerk.get("/checkout").status_code == 404 and clerk.get("/orders").status_code == 404


def test_a_forged_page_link_is_a_message_in_chinese(site, shopper):
    response = shopper.get("/?donor=440606&cursor=forged")
    assert response.status_code == 400 and "翻页链接无效，已回到第一页" in response.get_data(as_text=True)
    assert "美姑山羊肉" in response.get_data(as_text=True)  # the first page of the same filter
    response = shopper.get("/orders?cursor=forged")
    assert response.status_code == 400 and "翻页链接无效" in response.get_data(as_text=True)
    assert 'href="/orders">回到第一页' in response.get_data(as_text=True)


def test_a_forged_huge_quantity_is_a_clear_message_never_a_500(site, shopper):
    for quantity in ("1" + "0" * 30, "-5", "2.5", "１.５", "1000001"):
        response = _add(shopper, KQM, quantity)
        assert response.status_code == 422, quantity
        assert "数量必须是 1 到 1000000 之间的整数" in response.get_data(as_text=True)
    with shopper.session_transaction() as session:  # a cart no page could have written
        session["cart"] = {KQM: 10**40, "<script>": 1, "LB-QC-5KG": "9"}
    assert "购物车是空的" in shopper.get("/cart").get_data(as_text=True)
    assert shopper.get("/checkout").status_code == 302


def test_a_quantity_is_read_from_decimal_digits_only_as_the_api_reads_numbers(site, shopper):
    """A superscript, a circled number or any other sign NFKC folds to a digit is no quantity (the API's `?limit=²` is
    a 422 too), nor is an exponent, an underscore, a space inside or a minus zero; any script's digits are (`٣`), and a
    box of 100,000 digits is refused at once."""
    for quantity in ("²", "①", "Ⅲ", "1e3", "1_000", "1 2", "-0", "+3", "9" * 100_000):
        response = _add(shopper, KQM, quantity)
        assert response.status_code == 422, quantity[:8]
        assert "数量必须是 1 到 1000000 之间的整数" in response.get_data(as_text=True)
    assert "购物车是空的" in shopper.get("/cart").get_data(as_text=True)
    try:
        assert _add(shopper, KQM, "\u200b٣ ").status_code == 302
        assert 'value="3"' in shopper.get("/cart").get_data(as_text=True)
    finally:
        shopper.post(f"/cart/{KQM}", data={"remove": "1", "csrf_token": _token(shopper, "/cart")})


def _quantity_box(html: str, box_id: str) -> str:
    """The quantity box `box_id` of a page, as rendered."""
    return re.search(rf'<input id="{box_id}"[^>]*>', html).group(0)


def test_a_refused_quantity_is_shown_again_as_typed_in_its_own_box_with_the_message_beside_it(site, shopper):
    """A quantity the product page refuses shows that product page again (it was the cart page, away from the
    product and its typed units), and one a cart line refuses marks that line's box, holding what was typed, with the
    message beside it (it came back holding the old quantity, under a message naming no line); nothing changes."""
    try:
        _add(shopper, KQM, "2")
        _add(shopper, "LB-QC-5KG", "1")
        refused = _add(shopper, "LB-QC-5KG", "1.5")
        html = refused.get_data(as_text=True)
        assert refused.status_code == 422 and "<h1>雷波脐橙（5公斤装）</h1>" in html
        box = _quantity_box(html, "quantity")
        assert 'value="1.5"' in box and 'aria-invalid="true" aria-describedby="quantity-error"' in box
        assert '<p class="error" role="alert" id="quantity-error">数量必须是 1 到 1000000 之间的整数。</p>' in html

        line = shopper.post("/cart/LB-QC-5KG", data={"quantity": "abc", "csrf_token": _token(shopper, "/cart")})
        html = line.get_data(as_text=True)
        assert line.status_code == 422
        box = _quantity_box(html, "qty-2")
        assert 'value="abc"' in box and 'aria-invalid="true" aria-describedby="qty-error-2"' in box
        assert '<p class="error" role="alert" id="qty-error-2">数量必须是 0 到 1000000 之间的整数。</p>' in html
        assert 'aria-invalid' not in _quantity_box(html, "qty-1") and html.count("数量必须是") == 1
        cart = shopper.get("/cart").get_data(as_text=True)
        assert 'value="2"' in _quantity_box(cart, "qty-1") and 'value="1"' in _quantity_box(cart, "qty-2")
    finally:
        for sku in (KQM, "LB-QC-5KG"):
            shopper.post(f"/cart/{sku}", data={"remove": "1", "csrf_token": _token(shopper, "/cart")})


def test_a_cart_filled_before_signing_in_stays_but_not_one_another_user_left_signed_in(site, shopper):
    other = site.app.test_client()
    other.post("/register", data={"phone": "13900000066", "password": "another-pass-6",
                                  "password_again": "another-pass-6", "csrf_token": _token(other, "/register")})
    other.post("/logout", data={"csrf_token": _token(other, "/account")})
    _add(other, KQM, "3")  # a shopper's cart before signing in
    other.post("/login", data={"username": "13900000066", "password": "another-pass-6",
                               "csrf_token": _token(other, "/login")})
    assert KQM in other.get("/cart").get_data(as_text=True)
    _add(shopper, KQM, "2")  # the demo consumer left signed in; the other signs in from a stale sign-in page
    shopper.post("/login", data={"username": "13900000066", "password": "another-pass-6",
                                 "csrf_token": _token(shopper, f"/p/{KQM}")})
    assert "13900000066" in shopper.get("/account").get_data(as_text=True)
    assert "购物车是空的" in shopper.get("/cart").get_data(as_text=True)
    with site.app.app_context():
        limiter.reset()  # this test's four sign-ins are not the next tests' to wait for


def test_the_cart_holds_at_most_fifty_lines(site, shopper):
    with shopper.session_transaction() as session:
        session["cart"] = {f"NO-SUCH-{n:03d}": 1 for n in range(50)}
    response = _add(shopper, KQM, "1")
    assert response.status_code == 422 and "购物车最多 50 种商品" in response.get_data(as_text=True)
    assert response.get_data(as_text=True).count("已下架，请删除") == 50  # lines no longer on sale are named
    remove = shopper.post("/cart/NO-SUCH-000", data={"remove": "1", "csrf_token": _token(shopper, "/cart")})
    assert remove.status_code == 302 and _add(shopper, KQM, "1").status_code == 302


def test_a_quantity_beyond_the_stock_shows_the_short_line(site, shopper):
    _add(shopper, KQM, "20000")  # beyond the stock, within one payment
    form = _checkout_form(shopper)
    response = shopper.post("/checkout", data={**form, "channel": "pickup",
                                               "store_id": _store_id(site, "大凉山体验店（顺德）")})
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "有商品库存不足" in html
    assert re.search(r"库存不足：只剩 <span class=\"num\">\d+</span>，您要 <span class=\"num\">20000</span>", html)


def test_a_cart_above_what_one_payment_carries_is_refused_when_the_units_are_added_not_only_at_checkout(site,
                                                                                                         shopper):
    """The consumer is told at once, in the checkout's words, that units taking the cart's total above what one
    payment carries are too many, whether added from the product page or typed into the cart; the cart keeps what it
    had, and lowering a line is always accepted."""
    _add(shopper, "ML-ST-500G", "1")
    limit = "订单合计不能超过 ¥999,999.99（单笔支付的上限），请减少数量或分几笔下单。"
    added = _add(shopper, "ML-ST-500G", "3000")
    assert added.status_code == 422 and limit in _page_text(added.get_data(as_text=True))
    typed = shopper.post("/cart/ML-ST-500G", data={"quantity": "3000", "csrf_token": _token(shopper, "/cart")})
    assert typed.status_code == 422 and limit in _page_text(typed.get_data(as_text=True))
    with shopper.session_transaction() as session:
        assert session["cart"] == {"ML-ST-500G": 1}
        session["cart"] = {"ML-ST-500G": 3000}  # put in before its price rose
    lowered = shopper.post("/cart/ML-ST-500G", data={"quantity": "2000", "csrf_token": _token(shopper, "/cart")})
    assert lowered.status_code == 302


def test_an_order_above_what_one_payment_carries_is_refused_in_chinese_naming_the_limit(site, shopper):
    with site.app.app_context():  # 3000 boxes of 木里松茸 in stock: ¥1,194,000 in one order
        product = db.session.scalar(select(Product).where(Product.sku == "ML-ST-500G"))
        make_lot(product, db.session.scalar(select(Location).where(Location.kind == "warehouse")), quantity=3000)
        db.session.commit()
        db.session.remove()
    with shopper.session_transaction() as session:  # put in the cart before its price rose
        session["cart"] = {"ML-ST-500G": 3000}
    before = _orders_of(site, CONSUMER)
    address = {"channel": "delivery", "district_code": "440606", "detail": "大良街道演示路 8 号",
               "recipient": "工会采购", "phone": "13912345678"}
    response = shopper.post("/checkout", data={**_checkout_form(shopper), **address})
    text = _page_text(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "订单合计不能超过 ¥999,999.99（单笔支付的上限），请减少数量或分几笔下单。" in text
    assert _orders_of(site, CONSUMER) == before and "木里松茸" in text  # the form again, the cart kept


def _named(node: ast.expr, names: dict):
    """What a name or a dotted name through modules and classes (`OrderCode.X`, `inventory.reserve_lines`) is."""
    if isinstance(node, ast.Name):
        return names.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        owner = _named(node.value, names)
        return getattr(owner, node.attr, None) if inspect.ismodule(owner) or inspect.isclass(owner) else None
    return None


def _codes_raised(*roots) -> set[str]:
    """The error codes `roots` and the project's functions they call can raise: each `AppError` made with its `code=`,
    or its class's own code."""
    seen, codes, todo = set(), set(), list(roots)
    while todo:
        function = inspect.unwrap(todo.pop())
        if function in seen:
            continue
        seen.add(function)
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
            callee = _named(node.func, function.__globals__) if isinstance(node, ast.Call) else None
            if inspect.isclass(callee) and issubclass(callee, AppError):
                given = [_named(keyword.value, function.__globals__) for keyword in node.keywords
                         if keyword.arg == "code"]
                codes.add(given[0] if given else callee.code)
            elif inspect.isfunction(callee) and callee.__module__.split(".")[0] in ("shop", "catalog", "orders", "web"):
                todo.append(callee)
    return codes


def test_every_refusal_of_a_checkout_is_told_in_chinese_on_the_checkout_form():
    """What placing an order (as the API does), starting its payment and the form's own once-only key can refuse."""
    codes = _codes_raised(checkout.place_order, checkout.start_payment, web_checkout.placed_order)
    assert {"insufficient_stock", "too_many_unpaid_orders", "order_total_too_large",
            "payment_provider_unavailable"} <= codes  # the walk reaches the service's refusals
    assert sorted(codes - set(REFUSALS)) == []


def test_a_sixth_unpaid_order_is_refused_on_the_checkout_form_with_a_link_to_the_orders(site, shopper):
    address = {"channel": "delivery", "district_code": "440604", "detail": "祖庙街道演示路 1 号",
               "recipient": "演示收货人", "phone": "13912345678"}
    for _ in range(MAX_UNPAID_ORDERS):
        _add(shopper, "LB-QC-5KG", "1")
        assert shopper.post("/checkout", data={**_checkout_form(shopper), **address}).status_code == 302
    _add(shopper, "LB-QC-5KG", "1")
    before = _orders_of(site, CONSUMER)
    response = shopper.post("/checkout", data={**_checkout_form(shopper), **address})
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and 'id="checkout-form"' in html
    assert f"您有 {MAX_UNPAID_ORDERS} 个订单待支付：请先支付或取消其中一个，再下新订单。" in _page_text(html)
    assert re.search(r'<a href="/orders">去“我的订单”支付或取消</a>', html)
    assert _orders_of(site, CONSUMER) == before


def test_a_double_submitted_checkout_places_one_order(site, shopper):
    _add(shopper, "LB-QC-GIFT", "1")
    before = _orders_of(site, CONSUMER)
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（南海）")}
    first = shopper.post("/checkout", data=form)
    second = shopper.post("/checkout", data=form)
    assert first.status_code == second.status_code == 302
    assert first.location == second.location and re.fullmatch(r"/orders/\d+/pay", first.location)
    assert _orders_of(site, CONSUMER) == before + 1


def test_two_submissions_of_one_form_at_once_place_one_order(site, shopper):
    _add(shopper, "LB-QC-GIFT", "1")
    before = _orders_of(site, CONSUMER)
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（三水）")}
    cookie = shopper.get_cookie("shop_session").value
    locations: list[str] = []

    def submit() -> None:
        client = site.app.test_client()
        client.set_cookie("shop_session", cookie)
        locations.append(client.post("/checkout", data=form).location)

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(locations) == 2 and locations[0] == locations[1] is not None
    assert _orders_of(site, CONSUMER) == before + 1


def test_delivery_needs_a_valid_address_in_a_donor_district(site, shopper):
    _add(shopper, "LB-QC-5KG", "1")
    address = {"channel": "delivery", "district_code": "440606", "detail": "大良街道演示路 2 号",
               "recipient": "演示顾客", "phone": "138 0000 0000"}
    response = shopper.post("/checkout", data={**_checkout_form(shopper), **address, "phone": "12"})
    assert response.status_code == 422 and "11 位中国大陆手机号" in response.get_data(as_text=True)
    response = shopper.post("/checkout", data={**_checkout_form(shopper), **address, "district_code": "513431"})
    assert response.status_code == 422 and "我们只配送到对口帮扶城市的各区" in response.get_data(as_text=True)
    response = shopper.post("/checkout", data={**_checkout_form(shopper), **address})
    order_id = int(response.location.split("/")[2])
    with site.app.app_context():
        order = db.session.get(Order, order_id)
        assert (order.channel, order.address["detail"], order.donor_code) == (
            "delivery", "大良街道演示路 2 号", "440606")
        db.session.remove()


def test_each_wrong_delivery_field_is_marked_and_names_its_message(site, shopper):
    """A screen reader hears, on the field itself, that it is wrong and why (as the pickup store's select does)."""
    _add(shopper, "LB-QC-5KG", "1")
    response = shopper.post("/checkout", data={**_checkout_form(shopper), "channel": "delivery", "district_code": "",
                                               "detail": "", "recipient": "", "phone": "12"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for field in ("district_code", "detail", "recipient", "phone"):
        control = re.search(rf'<(?:input|select) id="{field}"[^>]*>', html).group(0)
        assert 'aria-invalid="true"' in control, field
        described = re.search(r'aria-describedby="([^"]+)"', control).group(1)
        assert re.search(rf'<p class="error" id="{described}">[^<]+</p>', html), field
    # the address is shown to the staff who ship: an ID or card number in its text is refused there, as in every text
    # a person types (the address's phone field holds the contact number)
    before = _orders_of(site, CONSUMER)
    for field, typed in (("detail", "大良街道演示路 8 号 11010519491231002X"),
                         ("recipient", "张三 6222 0212 3456 7890 128"),
                         ("detail", "大良街道演示路 8 号 １１０１０５１９４９１２３１００２ｘ")):
        response = shopper.post("/checkout", data={**_checkout_form(shopper), **DELIVERY, field: typed})
        assert response.status_code == 422, typed
        assert f'<p class="error" id="{field}-error">{ID_OR_CARD_REFUSED}</p>' in response.get_data(as_text=True)
    assert _orders_of(site, CONSUMER) == before


def test_a_delivery_field_holding_a_control_character_says_so_not_to_fill_it_in(site, shopper):
    """A recipient or address pasted with a control character or a bidirectional override is told to remove it, as the
    API's field refuses it, not "请填写收货人（最多 50 字）" as if it were empty or too long; no order is placed."""
    _add(shopper, "LB-QC-5KG", "1")
    before = _orders_of(site, CONSUMER)
    for field, typed in (("recipient", "张\x01三"), ("detail", "大良街道\u202e演示路 8 号")):
        response = shopper.post("/checkout", data={**_checkout_form(shopper), **DELIVERY, field: typed})
        html = response.get_data(as_text=True)
        assert response.status_code == 422, typed
        assert re.search(rf'<p class="error" id="{field}-error">[^<]*控制字符', html), typed
    assert _orders_of(site, CONSUMER) == before


def test_another_consumers_order_does_not_exist_for_them(site, shopper, stranger):
    _add(shopper, "ZJ-KQC-250G", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（禅城）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    pay_token = _token(shopper, f"/orders/{order_id}/pay")
    paid = shopper.post(f"/orders/{order_id}/pay", data={"outcome": "succeeded", "csrf_token": pay_token})
    assert paid.status_code == 302
    assert shopper.get(f"/orders/{order_id}/pickup-qr.svg").mimetype == "image/svg+xml"

    token = _token(stranger, "/cart")
    for response in (stranger.get(f"/orders/{order_id}"), stranger.get(f"/orders/{order_id}/pay"),
                     stranger.get(f"/orders/{order_id}/pickup-qr.svg"),
                     stranger.post(f"/orders/{order_id}/pay", data={"outcome": "failed", "csrf_token": token}),
                     stranger.post(f"/orders/{order_id}/cancel", data={"csrf_token": token}),
                     stranger.post(f"/orders/{order_id}/to-cart", data={"csrf_token": token}),
                     stranger.post(f"/orders/{order_id}/after-sales", data={
                         "csrf_token": token, "form_key": "1" * 32, "line_id": "1", "quantity": "1",
                         "reason": "坏了"})):
        html = response.get_data(as_text=True)
        assert response.status_code == 404 and ("订单不存在" in html or "没有可显示的取货码" in html)
    tried = {f"/orders/{order_id}", f"/orders/{order_id}/pay", f"/orders/{order_id}/pickup-qr.svg",
             f"/orders/{order_id}/cancel", f"/orders/{order_id}/to-cart", f"/orders/{order_id}/after-sales"}
    assert {path.replace(str(order_id), "<order_id>") for path in tried} == {  # every page naming an order
        rule.rule.replace("<int:order_id>", "<order_id>") for rule in site.app.url_map.iter_rules()
        if rule.endpoint.startswith("storefront.") and "order_id" in rule.arguments}
    assert f"订单 #{order_id}" not in stranger.get("/orders").get_data(as_text=True)
    assert f"订单 #{order_id}" in shopper.get("/orders").get_data(as_text=True)
    with site.app.app_context():
        assert db.session.get(Order, order_id).status == "paid"
        assert verify_ledger()["ok"] is True
        db.session.remove()


def test_a_collected_order_says_so_with_its_impact_and_no_pickup_code(site, shopper):
    _add(shopper, "ZJ-KQMT-500G", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（顺德）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    shopper.post(f"/orders/{order_id}/pay", data={"outcome": "succeeded",
                                                  "csrf_token": _token(shopper, f"/orders/{order_id}/pay")})
    with site.app.app_context():  # the clerk's hand-over, through the service the till calls
        order = db.session.get(Order, order_id)
        hand_over(actor=find_user(username="staff-shunde"), store_id=order.store_id, pickup_code=order.pickup_code)
        db.session.commit()
        impact = db.session.get(Order, order_id).impact  # as the API's order shows it
        db.session.remove()
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "已取货" in html and "已在 大凉山体验店（顺德） 取货" in html and 'id="pickup-code"' not in html
    assert impact["households"] >= 3 and impact["counties"] == [{"code": "513431", "name": "昭觉县"}]
    expected = f"{yuan(impact['attributed_fen'])} 归属于 昭觉县 {impact['households']} 户"
    assert re.sub(r"<[^>]+>", "", re.search(r'id="impact">(.+?)</p>', html, re.DOTALL).group(1)) == expected
    assert shopper.get(f"/orders/{order_id}/pickup-qr.svg").status_code == 404


def _paid_order(site, shopper, sku: str, quantity: str, store: str) -> int:
    """The id of a pickup order of `quantity` units of `sku` at the demo store `store`, paid in the sandbox."""
    _add(shopper, sku, quantity)
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, store)}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    shopper.post(f"/orders/{order_id}/pay", data={"outcome": "succeeded",
                                                  "csrf_token": _token(shopper, f"/orders/{order_id}/pay")})
    return order_id


def _impact_line(html: str) -> str:
    """The text of the order page's impact line."""
    return re.sub(r"<[^>]+>", "", re.search(r'id="impact">(.+?)</p>', html, re.DOTALL).group(1)).strip()


def test_an_order_of_a_lot_no_household_delivered_says_so_and_one_of_fewer_than_3_names_no_county(site, shopper):
    order_id = _paid_order(site, shopper, "BT-WYY-5KG", "1", "大凉山体验店（高明）")  # an enterprise's lot
    with site.app.app_context():
        assert db.session.get(Order, order_id).impact == {"households": 0, "attributed_fen": 0, "counties": []}
        db.session.remove()
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert _impact_line(html) == "本单收益没有归属任何建档立卡脱贫户。"
    assert "少于" not in html
    with site.app.app_context():  # as the ledger pushes an order whose lots two households of two counties delivered
        db.session.execute(update(Order).where(Order.id == order_id).values(
            impact_households=2, impact_fen=123, impact_counties=[{"code": "513431", "name": "昭觉县"},
                                                                  {"code": "513432", "name": "喜德县"}]))
        db.session.commit()
        db.session.remove()
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert _impact_line(html) == "本单收益归属于少于 3 户（不公布金额与县）"  # no count, amount or county
    assert "昭觉县" not in _impact_line(html) and "喜德县" not in html and "1.23" not in html


def test_a_fully_refunded_order_says_its_attribution_was_reversed(site, shopper):
    order_id = _paid_order(site, shopper, "ZJ-KQMT-500G", "1", "大凉山体验店（顺德）")
    with site.app.app_context():
        assert db.session.get(Order, order_id).impact["households"] >= 3
        line = db.session.get(Order, order_id).lines[0]
        refund = create_refund(actor=find_user(username="admin"), order_id=order_id, reason="顾客不要了",
                               lines=[RefundRequest(line_id=line.id, quantity=1)])
        db.session.commit()
        settle_refund(refund_id=refund.id)
        db.session.commit()
        assert db.session.get(Order, order_id).status == "refunded"
        db.session.remove()
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert _impact_line(html) == "本单已全额退款，收益归属已撤销，不再归属任何建档立卡脱贫户。"
    assert "少于" not in html


def test_a_fully_refunded_pickup_order_has_no_pickup_code_and_reaches_no_household_in_the_api_as_on_its_page(
        site, shopper):
    order_id = _paid_order(site, shopper, "ZJ-KQMT-500G", "1", "大凉山体验店（顺德）")
    with site.app.app_context():
        order = db.session.get(Order, order_id)
        code, store_id, line_id = order.pickup_code, order.store_id, order.lines[0].id
        refund = create_refund(actor=find_user(username="admin"), order_id=order_id, reason="顾客电话要求取消",
                               lines=[RefundRequest(line_id=line_id, quantity=1, resellable=True)])
        db.session.commit()
        settle_refund(refund_id=refund.id)
        db.session.commit()
        token, _ = issue_token(find_user(username=CONSUMER))
        with pytest.raises(Conflict) as refused:  # the store's hand-over
            hand_over(actor=find_user(username="staff-shunde"), store_id=store_id, pickup_code=code)
        db.session.rollback()
        db.session.remove()
    assert refused.value.code == "pickup_code_invalid"

    api = site.app.test_client().get(f"/api/v1/orders/{order_id}", headers={"Authorization": f"Bearer {token}"}).json
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)

    assert (api["status"], api["pickup_code"]) == ("refunded", None)
    assert 'id="pickup-code"' not in html and code not in html
    assert api["impact"] == {"households": 0, "attributed_fen": 0, "counties": []}
    assert _impact_line(html) == "本单已全额退款，收益归属已撤销，不再归属任何建档立卡脱贫户。"


def _page_text(html: str) -> str:
    """A page's text: tags dropped, white space folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_an_order_page_shows_its_refunds_after_sales_answers_and_what_was_paid_in_the_end(site, shopper):
    order_id = _paid_order(site, shopper, "ZJ-KQMT-500G", "3", "大凉山体验店（南海）")
    with site.app.app_context():
        order = db.session.get(Order, order_id)
        hand_over(actor=find_user(username="staff-nanhai"), store_id=order.store_id, pickup_code=order.pickup_code)
        db.session.commit()
        buyer, admin = find_user(username=CONSUMER), find_user(username="admin")
        line = db.session.get(Order, order_id).lines[0]
        asked = [RefundRequest(line_id=line.id, quantity=1)]
        rejected = request_after_sales(actor=buyer, order_id=order_id, lines=asked, reason="包装破损",
                                       photo_url=None)
        reject_after_sales(actor=admin, request_id=rejected.id, reason="照片看不出问题")
        db.session.commit()
        approved = request_after_sales(actor=buyer, order_id=order_id, lines=asked, reason="有一袋受潮",
                                       photo_url=None)
        refund_id = approve_after_sales(actor=admin, request_id=approved.id, resellable=False).refund_id
        db.session.commit()
        refund = settle_refund(refund_id=refund_id)
        db.session.commit()
        ids, name, price, total = (rejected.id, approved.id), line.name, line.unit_price_fen, order.total_fen
        refunded_at, answered_at = local_time(refund.created_at), local_time(rejected.decided_at)
        asked_at = [local_time(request.created_at) for request in (rejected, approved)]
        db.session.remove()
    text = _page_text(shopper.get(f"/orders/{order_id}").get_data(as_text=True))
    assert f"合计 {yuan(total)} 已退款 -{yuan(price)} 实付 {yuan(total - price)}" in text
    assert f"退款 {refunded_at} {yuan(price)} {name} × 1 售后申请 #{ids[1]}：有一袋受潮" in text
    assert (f"售后申请 #{ids[0]} 未通过 提交于 {asked_at[0]} {name} × 1 原因：包装破损 "
            f"答复：照片看不出问题（ {answered_at} ）") in text  # the time is an element of its own
    assert f"售后申请 #{ids[1]} 已同意 提交于 {asked_at[1]} {name} × 1 原因：有一袋受潮 已退款 {yuan(price)}" in text


DELIVERY = {"channel": "delivery", "district_code": "440606", "detail": "大良街道演示路 8 号",
            "recipient": "演示收货人", "phone": "13912345678"}


def _delivery_paid(shopper, sku: str, quantity: str) -> int:
    """The id of a delivery order of `quantity` units of `sku`, paid in the sandbox."""
    _add(shopper, sku, quantity)
    order_id = int(shopper.post("/checkout", data={**_checkout_form(shopper), **DELIVERY}).location.split("/")[2])
    shopper.post(f"/orders/{order_id}/pay", data={"outcome": "succeeded",
                                                  "csrf_token": _token(shopper, f"/orders/{order_id}/pay")})
    return order_id


def ship_and_deliver(site, order_id: int) -> int:
    """The admin ships the paid delivery order and marks it delivered, through the services the API calls."""
    with site.app.app_context():
        admin = find_user(username="admin")
        ship_order(actor=admin, order_id=order_id, carrier="顺丰速运", tracking_number="SF1234567890")
        deliver_order(actor=admin, order_id=order_id)
        db.session.commit()
        db.session.remove()
    return order_id


def _delivered_order(site, shopper, sku: str, quantity: str) -> int:
    """The id of a paid delivery order the admin shipped and marked delivered just now."""
    return ship_and_deliver(site, _delivery_paid(shopper, sku, quantity))


def _ask_form(client, order_id: int) -> dict:
    """The hidden fields of the order page's after-sales forms (CSRF token, form key)."""
    html = client.get(f"/orders/{order_id}").get_data(as_text=True)
    return {"csrf_token": CSRF_FIELD.search(html).group(1), "form_key": FORM_KEY.search(html).group(1)}


def _requests_of(site, order_id: int) -> list[tuple[str, list, str]]:
    """The order's after-sales requests: status, lines and reason."""
    with site.app.app_context():
        requests = [(r.status, r.lines, r.reason) for r in db.session.scalars(
            select(AfterSalesRequest).where(AfterSalesRequest.order_id == order_id).order_by(AfterSalesRequest.id))]
        db.session.remove()
    return requests


def test_a_delivered_order_takes_an_after_sales_request_per_line_until_seven_days_after_delivery(site, shopper):
    order_id = _delivered_order(site, shopper, "ZJ-KQMT-500G", "3")
    with site.app.app_context():
        line_id = db.session.get(Order, order_id).lines[0].id
        delivered = db.session.scalar(select(OrderTransition.created_at).where(
            OrderTransition.order_id == order_id, OrderTransition.to_status == "delivered"))
        db.session.remove()
    page = _page_text(shopper.get(f"/orders/{order_id}").get_data(as_text=True))
    assert f"申请售后 送达或取货后 7 天内可以申请退款，请在 {local_time(delivered + timedelta(days=7))} 前提交" in page
    ask = {**_ask_form(shopper, order_id), "line_id": str(line_id)}

    assert shopper.post(f"/orders/{order_id}/after-sales", data={**ask, "csrf_token": "forged", "quantity": "1",
                                                                  "reason": "受潮"}).status_code == 400
    too_many = shopper.post(f"/orders/{order_id}/after-sales", data={**ask, "quantity": "4", "reason": "有一袋受潮"})
    html = too_many.get_data(as_text=True)
    assert too_many.status_code == 409 and "最多可以申请 3 件。" in _page_text(html)
    assert ">有一袋受潮</textarea>" in html and 'aria-invalid="true"' in html  # kept as typed, the field marked
    blank = shopper.post(f"/orders/{order_id}/after-sales", data={**ask, "quantity": "1", "reason": "  "})
    assert blank.status_code == 422 and "请填写申请原因（最多 500 字）。" in blank.get_data(as_text=True)
    numbers = shopper.post(f"/orders/{order_id}/after-sales",
                           data={**ask, "quantity": "1", "reason": "退到卡 6222 0212 3456 7890 128"})
    assert numbers.status_code == 422 and ID_OR_CARD_REFUSED in numbers.get_data(as_text=True)
    for typed in ("两", "²", "①"):  # no digit, as the API reads numbers
        not_a_number = shopper.post(f"/orders/{order_id}/after-sales",
                                    data={**ask, "quantity": typed, "reason": "受潮"})
        assert not_a_number.status_code == 422 and "请填写要退的件数" in not_a_number.get_data(as_text=True)
    assert _requests_of(site, order_id) == []

    asked = shopper.post(f"/orders/{order_id}/after-sales", data={**ask, "quantity": "２", "reason": "有两袋受潮"})
    assert asked.status_code == 302 and asked.location == f"/orders/{order_id}"
    again = shopper.post(f"/orders/{order_id}/after-sales", data={**ask, "quantity": "２", "reason": "有两袋受潮"})
    assert again.status_code == 302  # the same form sent twice asks once
    assert _requests_of(site, order_id) == [("open", [{"line_id": line_id, "quantity": 2}], "有两袋受潮")]
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "售后申请已提交，请等待处理结果。" in html and 'name="line_id"' not in html  # no form while one is open
    assert "售后申请 #" in html and "待处理" in html and "原因：有两袋受潮" in html
    second = shopper.post(f"/orders/{order_id}/after-sales",
                          data={**ask, "form_key": "0" * 32, "quantity": "1", "reason": "还有一袋"})
    assert second.status_code == 409 and "已有一个处理中的售后申请" in second.get_data(as_text=True)

    # the consumer withdraws the open request (the 撤回 form beside it), and may then ask for its units again
    with site.app.app_context():
        request_id = db.session.scalar(select(AfterSalesRequest.id).where(AfterSalesRequest.order_id == order_id))
        db.session.remove()
    withdraw = f"/after-sales/{request_id}/withdraw"
    assert f'action="{withdraw}"' in html and "撤回" in _page_text(html)
    token = CSRF_FIELD.search(html).group(1)
    forged = shopper.post(withdraw, data={"csrf_token": "forged"})
    unknown = shopper.post("/after-sales/999999/withdraw", data={"csrf_token": token})  # or another's: the API's 404
    assert forged.status_code == 400 and unknown.status_code == 404
    assert "售后申请不存在" in unknown.get_data(as_text=True)
    assert _requests_of(site, order_id)[0][0] == "open"
    withdrawn = shopper.post(withdraw, data={"csrf_token": token})
    assert withdrawn.status_code == 302 and withdrawn.location == f"/orders/{order_id}"
    assert _requests_of(site, order_id)[0][0] == "withdrawn"
    page = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "售后申请已撤回。" in page and f"售后申请 #{request_id} 已撤回" in _page_text(page)
    assert f'action="{withdraw}"' not in page and 'name="line_id"' in page
    again = shopper.post(withdraw, data={"csrf_token": token})
    assert again.status_code == 302
    assert "已经处理，不能撤回" in shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    asked = shopper.post(f"/orders/{order_id}/after-sales",
                         data={**ask, **_ask_form(shopper, order_id), "quantity": "2", "reason": "有两袋受潮"})
    assert asked.status_code == 302
    assert [status for status, _, _ in _requests_of(site, order_id)] == ["withdrawn", "open"]


def test_an_after_sales_request_worth_more_than_is_left_to_refund_is_told_so_beside_its_units(site, shopper):
    """The provider's dashboard gave back one unit and a fen more: asking for the two units left is more money than
    the order still holds, and the form says so (not an error page)."""
    order_id = _delivered_order(site, shopper, "ZJ-KQMT-500G", "3")
    with site.app.app_context():
        line = db.session.get(Order, order_id).lines[0]
        line_id, price = line.id, line.unit_price_fen
        record_provider_refund(order_id=order_id, provider_refund_id="re_dashboard", amount_fen=price + 1,
                               occurred_at=datetime.now(UTC))
        db.session.commit()
        db.session.remove()
    ask = {**_ask_form(shopper, order_id), "line_id": str(line_id)}

    refused = shopper.post(f"/orders/{order_id}/after-sales", data={**ask, "quantity": "2", "reason": "有两袋受潮"})

    assert refused.status_code == 409
    assert "金额超过了本单还能退的金额" in _page_text(refused.get_data(as_text=True))
    assert _requests_of(site, order_id) == []


def test_after_sales_is_offered_only_once_delivered_and_within_seven_days(site, shopper):
    paid = _delivery_paid(shopper, "ZJ-KQMT-500G", "1")
    assert "申请售后" not in shopper.get(f"/orders/{paid}").get_data(as_text=True)
    order_id = _delivered_order(site, shopper, "ZJ-KQMT-500G", "1")
    ask = {**_ask_form(shopper, order_id), "quantity": "1", "reason": "坏了"}
    with site.app.app_context():
        line_ids = {made: db.session.get(Order, made).lines[0].id for made in (paid, order_id)}
        for transition in db.session.scalars(select(OrderTransition).where(OrderTransition.order_id == order_id)):
            transition.created_at -= timedelta(days=8)
        db.session.commit()
        db.session.remove()
    assert "申请售后" not in shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    late = shopper.post(f"/orders/{order_id}/after-sales", data={**ask, "line_id": line_ids[order_id]})
    assert late.status_code == 409 and "已过了申请期限" in late.get_data(as_text=True)
    early = shopper.post(f"/orders/{paid}/after-sales", data={**ask, "line_id": line_ids[paid]})
    assert early.status_code == 409 and "送达或取货后才能申请售后" in early.get_data(as_text=True)
    assert _requests_of(site, order_id) == [] and _requests_of(site, paid) == []


def test_a_delivery_order_shows_where_it_ships_with_the_phone_masked(site, shopper):
    _add(shopper, "LB-QC-5KG", "1")
    address = {"channel": "delivery", "district_code": "440606", "detail": "大良街道演示路 8 号",
               "recipient": "演示收货人", "phone": "139 1234 5678"}
    order_id = int(shopper.post("/checkout", data={**_checkout_form(shopper), **address}).location.split("/")[2])
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "收货地址 演示收货人 139****5678 佛山市顺德区 大良街道演示路 8 号" in _page_text(html)
    assert "13912345678" not in html


def test_an_order_page_masks_personal_numbers_in_older_rows_of_its_after_sales_reason_and_address(site, shopper):
    order_id = _delivered_order(site, shopper, "ZJ-KQMT-500G", "2")
    with site.app.app_context():
        line_id = db.session.get(Order, order_id).lines[0].id
    ask = {**_ask_form(shopper, order_id), "line_id": str(line_id)}
    asked = shopper.post(f"/orders/{order_id}/after-sales", data={**ask, "quantity": "1", "reason": "受潮"})
    assert asked.status_code == 302
    with site.app.app_context():  # rows written before reasons and addresses refused personal numbers
        request = db.session.scalar(select(AfterSalesRequest).where(AfterSalesRequest.order_id == order_id))
        request.reason = "受潮，请打 13912345678 联系"
        order = db.session.get(Order, order_id)
        order.address = {**order.address, "recipient": "张三 110101199003070011", "detail": "演示路 8 号 13812345678"}
        db.session.commit()
        db.session.remove()
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    page = _page_text(html)
    assert "原因：受潮，请打 *** 联系" in page
    assert "收货地址 张三 *** 139****5678 佛山市顺德区 演示路 8 号 ***" in page
    assert not {"13912345678", "110101199003070011", "13812345678"} & set(re.findall(r"\d+", html))
    with site.app.app_context():
        limiter.reset()  # this test's sign-in is not the next tests' to wait for


def test_amounts_are_shown_in_yuan_from_fen():
    assert [yuan(fen) for fen in (0, 5, 1230, 3980, 123456789, -250)] == [
        "¥0.00", "¥0.05", "¥12.30", "¥39.80", "¥1,234,567.89", "-¥2.50"]


def test_a_failed_sandbox_payment_leaves_the_order_payable_and_it_can_be_cancelled(site, shopper):
    _add(shopper, "BT-KQF-1KG", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（高明）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    token = _token(shopper, f"/orders/{order_id}/pay")
    shopper.post(f"/orders/{order_id}/pay", data={"outcome": "failed", "csrf_token": token})
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "待支付" in html and "去支付" in html
    shopper.post(f"/orders/{order_id}/cancel", data={"csrf_token": token})
    assert "已取消" in shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert shopper.get(f"/orders/{order_id}/pay").status_code == 302  # nothing left to pay


def test_a_sandbox_payment_the_worker_has_not_processed_is_being_confirmed_and_cannot_be_cancelled(
        site, shopper, monkeypatch):
    _add(shopper, "BT-KQF-1KG", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（高明）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    returned = shopper.get(f"/orders/{order_id}?redirect_status=succeeded").get_data(as_text=True)  # from Stripe
    assert "支付已提交，正在确认" in returned and "取消订单" not in returned
    token = _token(shopper, f"/orders/{order_id}/pay")
    with monkeypatch.context() as worker_busy:  # the event is stored, its processing not yet run
        worker_busy.setattr(payments, "wake", lambda: None)
        paid = shopper.post(f"/orders/{order_id}/pay", data={"outcome": "succeeded", "csrf_token": token})
    page = shopper.get(paid.location)
    html = page.get_data(as_text=True)
    assert "待支付" in html and "支付成功" not in html and "支付已提交，正在确认，请稍后刷新本页。" in html
    assert "取消订单" not in html and "去支付" not in html and "请在" not in html
    assert shopper.get(f"/orders/{order_id}/pay").location == f"/orders/{order_id}"  # not paid twice meanwhile
    with site.app.app_context():  # the worker catches up: the order is paid and says so
        payments.wake()
        db.session.commit()
        db.session.remove()
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "已支付" in html and "正在确认" not in html and "取消订单" not in html


def test_cancelling_from_a_stale_tab_while_the_payment_is_being_confirmed_says_so_on_the_order_page(
        site, shopper, monkeypatch):
    """A 取消订单 form left open in another tab, sent after paying while the worker is behind: the order page says
    the payment is being confirmed (not a bare conflict page), and the order is not cancelled."""
    _add(shopper, "BT-KQF-1KG", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（高明）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    token = _token(shopper, f"/orders/{order_id}/pay")
    with monkeypatch.context() as worker_busy:
        worker_busy.setattr(payments, "wake", lambda: None)
        shopper.post(f"/orders/{order_id}/pay", data={"outcome": "succeeded", "csrf_token": token})
        stale = shopper.post(f"/orders/{order_id}/cancel", data={"csrf_token": token})
    assert stale.status_code == 302 and stale.location == f"/orders/{order_id}"
    html = shopper.get(stale.location).get_data(as_text=True)
    assert "付款正在确认，订单不能取消。" in html and "已取消" not in html
    with site.app.app_context():  # the worker catches up: the order is paid
        payments.wake()
        db.session.commit()
        db.session.remove()
    assert "已支付" in shopper.get(f"/orders/{order_id}").get_data(as_text=True)


def test_with_stripe_keys_the_payment_page_loads_stripe_elements_from_stripe_only(site, shopper):
    _add(shopper, "JY-QHJ-250G", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（顺德）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    config = site.app.config
    saved = {name: config.get(name) for name in ("PAYMENTS", "STRIPE_PUBLISHABLE_KEY")}
    config.update(PAYMENTS="stripe", STRIPE_PUBLISHABLE_KEY="pk_test_storefront")
    try:
        response = shopper.get(f"/orders/{order_id}/pay")
    finally:
        config.update(saved)
    html = response.get_data(as_text=True)
    assert '<script src="https://js.stripe.com/v3/"></script>' in html
    assert 'data-publishable-key="pk_test_storefront"' in html
    assert re.search(r'data-client-secret="pi_\w+_secret_\w+"', html)
    assert "script-src 'self' https://js.stripe.com" in response.headers["Content-Security-Policy"]
    assert "支付成功" not in html and "<script>" not in html


def test_a_product_description_keeps_its_line_breaks_in_the_browser(site, phone):
    with site.app.app_context():
        product = db.session.scalar(select(Product).where(Product.sku == "LB-QC-GIFT"))
        product.description = "产地：雷波县\n规格：礼盒装\n\n储存：阴凉干燥处"
        db.session.commit()
    page = phone.new_page()
    page.goto(site.url + "/p/LB-QC-GIFT")
    description = page.locator(".description")
    assert description.inner_text() == "产地：雷波县\n规格：礼盒装\n\n储存：阴凉干燥处"
    assert description.bounding_box()["height"] > 3 * 20  # four lines as typed, not one run-on line


def _admin_changes(site, sku: str, **changes) -> None:
    """An admin's edit of a product, through the catalog service the admin API calls."""
    with site.app.app_context():
        update_product(actor=find_user(username="admin"), sku=sku, changes=ProductChanges(**changes))
        db.session.commit()
        db.session.remove()


def test_a_checkout_form_places_only_the_lines_and_prices_it_showed(site, shopper):
    _add(shopper, "YY-APL-5KG", "1")
    store_id = _store_id(site, "大凉山体验店（顺德）")
    before = _orders_of(site, CONSUMER)
    stale = {**_checkout_form(shopper), "channel": "pickup", "store_id": store_id}
    _add(shopper, "MG-SY-1KG", "3")  # another tab adds to the cart meanwhile
    response = shopper.post("/checkout", data=stale)
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "购物车或价格已变化，请确认后再提交" in html
    assert _orders_of(site, CONSUMER) == before
    with site.app.app_context():
        price = db.session.scalar(select(Product.price_fen).where(Product.sku == "YY-APL-5KG"))
        db.session.remove()
    shown = {**_checkout_form(shopper), "channel": "pickup", "store_id": store_id}
    _admin_changes(site, "YY-APL-5KG", price_fen=price + 4000)  # an admin reprices meanwhile
    try:
        response = shopper.post("/checkout", data=shown)
        assert response.status_code == 409 and "购物车或价格已变化" in response.get_data(as_text=True)
        assert _orders_of(site, CONSUMER) == before
        again = shopper.post("/checkout", data={**_checkout_form(shopper), "channel": "pickup", "store_id": store_id})
        assert again.status_code == 302 and _orders_of(site, CONSUMER) == before + 1
    finally:
        _admin_changes(site, "YY-APL-5KG", price_fen=price)


def test_an_expired_order_says_nothing_was_charged_and_its_lines_go_back_to_the_cart(site, shopper):
    _add(shopper, "XD-KQC-300G", "2")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（顺德）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    token = _token(shopper, f"/orders/{order_id}/pay")
    with site.app.app_context():  # the reservation runs out before the shopper pays
        expire_reservations(now=datetime.now(UTC) + timedelta(days=1))
        db.session.commit()
        db.session.remove()
    paid = shopper.post(f"/orders/{order_id}/pay", data={"outcome": "succeeded", "csrf_token": token},
                        follow_redirects=True)
    html = paid.get_data(as_text=True)
    assert "订单已超时未支付，库存已释放，未扣款" in html and "放回购物车" in html
    back = shopper.post(f"/orders/{order_id}/to-cart", data={"csrf_token": token}, follow_redirects=True)
    cart = back.get_data(as_text=True)
    assert "已放回购物车" in cart and 'href="/p/XD-KQC-300G"' in cart and 'value="2"' in cart
    again = shopper.post(f"/orders/{order_id}/to-cart", data={"csrf_token": token}, follow_redirects=True)
    assert 'value="2"' in again.get_data(as_text=True)  # pressed twice: the order's units, once
    set_empty = shopper.post("/cart/XD-KQC-300G", data={"remove": "1", "csrf_token": token})
    assert set_empty.status_code == 302


def test_a_cancelled_order_says_what_happened_and_what_to_do(site, shopper):
    _add(shopper, "XD-KQC-300G", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（顺德）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    shopper.post(f"/orders/{order_id}/cancel", data={"csrf_token": _token(shopper, f"/orders/{order_id}")})
    html = shopper.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "订单已取消，库存已释放，未扣款" in html and "放回购物车" in html
    assert html.count("订单已取消") == 1  # said once, not also as a flash


def _pay_late(site, order_id: int) -> int:
    """Stripe's word that the order's PaymentIntent was paid after all (a payment page left open), delivered to the
    webhook; the amount."""
    with site.app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.order_id == order_id))
        amount, payload = payment.amount_fen, json.dumps(payments.sandbox_event(
            intent_id=payment.intent_id, order_id=order_id, amount_fen=payment.amount_fen, outcome="succeeded"))
        db.session.remove()
    delivered = site.app.test_client().post("/api/v1/payments/stripe/webhook", data=payload, headers={
        "Stripe-Signature": payments.sign(payload, secret=site.app.config["STRIPE_WEBHOOK_SECRET"]),
        "Content-Type": "application/json"})
    assert delivered.status_code == 200
    return amount


def test_an_expired_order_whose_late_payment_was_returned_says_it_was_charged_and_refunded(site, shopper):
    _add(shopper, "XD-KQC-300G", "1")
    store_id = _store_id(site, "大凉山体验店（顺德）")
    order_id = int(shopper.post("/checkout", data={**_checkout_form(shopper), "channel": "pickup",
                                                   "store_id": store_id}).location.split("/")[2])
    with site.app.app_context():  # it expires, and another buyer takes what the store had of it
        expire_reservations(now=datetime.now(UTC) + timedelta(days=1))
        location_id = db.session.get(Store, store_id).location_id
        product = db.session.scalar(select(Product).where(Product.sku == "XD-KQC-300G"))
        left = db.session.scalar(select(func.sum(Stock.on_hand - Stock.reserved)).where(
            Stock.location_id == location_id, Stock.product_id == product.id))
        other = UserFactory(role="consumer")
        taken = place_order(actor=other, channel="pickup", store_id=store_id,
                            lines=[{"sku": "XD-KQC-300G", "quantity": left}]).order.id
        other_id = other.id
        db.session.commit()
        db.session.remove()

    try:
        amount = _pay_late(site, order_id)
    finally:
        with site.app.app_context():  # the other buyer's units back for the module's other tests
            cancel_order(actor=db.session.get(User, other_id), order_id=taken)
            db.session.commit()
            db.session.remove()

    text = _page_text(shopper.get(f"/orders/{order_id}").get_data(as_text=True))
    assert f"订单已超时未支付，库存已释放。超时后到账的付款 {yuan(amount)} 已全额退回。" in text
    assert "未扣款" not in text


def test_a_cancelled_order_whose_racing_payment_was_returned_says_it_was_charged_and_refunded(site, shopper):
    _add(shopper, "XD-KQC-300G", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（顺德）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    shopper.post(f"/orders/{order_id}/cancel", data={"csrf_token": _token(shopper, f"/orders/{order_id}")})

    amount = _pay_late(site, order_id)

    text = _page_text(shopper.get(f"/orders/{order_id}").get_data(as_text=True))
    assert f"订单已取消，库存已释放。取消后到账的付款 {yuan(amount)} 已全额退回。" in text
    assert "未扣款" not in text


def test_a_returned_payment_part_of_which_was_refunded_at_the_dashboard_is_told_once_and_whole(site, shopper):
    _add(shopper, "XD-KQC-300G", "1")
    form = {**_checkout_form(shopper), "channel": "pickup", "store_id": _store_id(site, "大凉山体验店（顺德）")}
    order_id = int(shopper.post("/checkout", data=form).location.split("/")[2])
    shopper.post(f"/orders/{order_id}/cancel", data={"csrf_token": _token(shopper, f"/orders/{order_id}")})
    with site.app.app_context():
        intent_id = db.session.scalar(select(Payment.intent_id).where(Payment.order_id == order_id))
        db.session.remove()
    refund = {"id": "re_dashboard_part", "object": "refund", "amount": 100, "created": int(time.time()),
              "currency": "cny", "payment_intent": intent_id, "status": "succeeded", "metadata": {}}
    payload = json.dumps({"id": "evt_dashboard_part", "object": "event", "created": int(time.time()),
                          "livemode": False, "type": "refund.created", "data": {"object": refund}})
    assert site.app.test_client().post("/api/v1/payments/stripe/webhook", data=payload, headers={
        "Stripe-Signature": payments.sign(payload, secret=site.app.config["STRIPE_WEBHOOK_SECRET"]),
        "Content-Type": "application/json"}).status_code == 200

    amount = _pay_late(site, order_id)

    text = _page_text(shopper.get(f"/orders/{order_id}").get_data(as_text=True))
    assert f"订单已取消，库存已释放。取消后到账的付款 {yuan(amount)} 已全额退回。如仍需要" in text
    assert f"{yuan(100)} 付款未能对应到库存，其中一部分已在支付平台退回" in text  # the refunds, each as it was made
    assert f"{yuan(amount - 100)} 付款未能对应到库存，其余部分已退回" in text


def test_an_archived_product_in_the_cart_shows_its_name_and_full_width_digits_are_a_quantity(site, shopper):
    assert _add(shopper, "YX-GJ-200G", "２").status_code == 302
    with site.app.app_context():
        name = db.session.scalar(select(Product.name).where(Product.sku == "YX-GJ-200G"))
        db.session.remove()
    assert 'value="2"' in shopper.get("/cart").get_data(as_text=True)
    _admin_changes(site, "YX-GJ-200G", status="archived")
    try:
        cart, checkout = (shopper.get(path).get_data(as_text=True) for path in ("/cart", "/checkout"))
        assert f"<span>{name}</span> <span class=\"warn\">已下架，请删除</span>" in cart
        assert re.search(rf"<th scope=\"row\">{name}\s*<strong class=\"error note\">已下架", checkout)
    finally:
        _admin_changes(site, "YX-GJ-200G", status="active")
        shopper.post("/cart/YX-GJ-200G", data={"remove": "1", "csrf_token": _token(shopper, "/cart")})


def test_a_product_with_many_lots_lists_the_first_twenty_on_sale_and_counts_the_rest(site):
    with site.app.app_context():
        product = db.session.scalar(select(Product).where(Product.sku == "ML-ST-500G"))
        warehouse = db.session.scalar(select(Location).where(Location.kind == "warehouse"))
        for day in range(25):
            make_lot(product, warehouse, quantity=5, harvested_on=date(2026, 1, 1) + timedelta(days=day))
        db.session.commit()
        count = len(lots_on_sale(sku="ML-ST-500G", limit=1000)[0])
        first = lots_on_sale(sku="ML-ST-500G", limit=1)[0][0]
        db.session.remove()
    html = site.app.test_client().get("/p/ML-ST-500G").get_data(as_text=True)
    assert html.count("溯源码 ") == 20 and f"共 {count} 个在售批次" in html
    assert html.index("溯源码 ") == html.index(f"溯源码 {first.trace_code}")  # the lot sold first, first


@pytest.mark.parametrize("query", ["from=singlemessage", "q=+", "utm_source=wechat&foo=1"])
def test_the_more_products_link_works_whatever_else_a_shared_address_carries(app, client, query):
    ProductFactory.create_batch(25)
    db.session.commit()
    first = client.get(f"/?{query}")
    following = re.search(r'href="([^"]*cursor=[^"]*)">更多商品', first.get_data(as_text=True)).group(1)

    rest = client.get(following.replace("&amp;", "&"))

    assert rest.status_code == 200 and "翻页链接无效" not in rest.get_data(as_text=True)
    assert rest.get_data(as_text=True).count("测试产品") == 5



def test_every_quantity_box_is_the_shared_text_box_bounded_by_the_apis_own_limit(site, shopper):
    """Every quantity box (storefront and till) is the one text box with the numeric keyboard (`web/_inputs.html`: a
    browser keeps what an IME commits, ３), never type=number with a number written in the page; the server bounds it
    by the API's `MAX_QUANTITY` (one rule: if the bound changes, the pages change with it)."""
    for template in (Path(__file__).resolve().parents[2] / "web").rglob("*.html"):
        assert 'type="number"' not in template.read_text(), template.name
        for box in re.findall(r"<input[^>]*(?:quantity|qty)[^>]*>", template.read_text()):
            assert 'name="quantity' not in box and 'name="received' not in box, f"{template.name}: {box}"
    product = shopper.get(f"/p/{KQM}").get_data(as_text=True)
    assert re.search(r'<input id="quantity" name="quantity" type="text" inputmode="numeric"', product)
    _add(shopper, KQM, "2")
    assert re.search(r'<input id="qty-1" name="quantity" type="text" inputmode="numeric"',
                     shopper.get("/cart").get_data(as_text=True))
    refused = _add(shopper, KQM, str(MAX_QUANTITY + 1))
    assert refused.status_code == 422 and f"1 到 {MAX_QUANTITY} 之间的整数" in refused.get_data(as_text=True)


def test_a_shopper_finds_a_product_by_its_whole_name_pasted_into_the_search_box(client):
    """The search box takes as much as a product's name holds (the API's bound on q), so a long name shared from a
    chat and pasted whole finds its product instead of being cut or refused."""
    name = "凉山州昭觉县高山有机苦荞米" * 7 + "礼盒装"
    product = ProductFactory(name=name)
    ProductFactory(name="凉山州昭觉县高山有机苦荞米")
    db.session.commit()
    page = client.get("/", query_string={"q": name})
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and f"/p/{product.sku}" in body and body.count("/p/") == 1
    assert re.search(r'<input id="q" name="q" type="search" maxlength="(\d+)"', body).group(1) == str(NAME_MAX)


def test_a_lot_held_only_at_a_closed_store_is_not_listed_on_sale_on_the_product_page(app, client):
    """A store closed with stock on its shelves sells none of it: the product page lists neither its stock nor its lots,
    and counts none of its units as on sale beside the lots it lists."""
    product = ProductFactory()
    warehouse = LocationFactory()
    closed = StoreFactory(active=False)
    on_sale = make_lot(product, warehouse, quantity=3)
    shut_away = make_lot(product, db.session.get(Location, closed.location_id), quantity=7)
    also_closed = make_lot(product, warehouse, quantity=2)
    db.session.add(Stock(location_id=closed.location_id, lot_id=also_closed.id, product_id=product.id, on_hand=9))
    db.session.commit()

    html = client.get(f"/p/{product.sku}").get_data(as_text=True)

    assert f"溯源码 {on_sale.trace_code}" in html and f"溯源码 {shut_away.trace_code}" not in html
    assert f"溯源码 {also_closed.trace_code}" in html and "可售 2<" in html and "可售 11" not in html


def test_every_active_store_is_offered_for_pickup_at_checkout_however_many_there_are(client):
    product = ProductFactory(price_fen=1000)
    stores = [StoreFactory() for _ in range(101)]  # one more than a page of the stores list
    buyer = UserFactory(role="consumer", username="13900000088")
    db.session.commit()

    def token(path: str) -> str:
        """The CSRF token of the form on `path` (flask-wtf's copy in `g`, of the test's app context, dropped)."""
        g.pop("csrf_token", None)
        return _token(client, path)

    client.post("/login", data={"username": buyer.username, "password": DEFAULT_PASSWORD,
                                "csrf_token": token("/login")})
    added = client.post("/cart", data={"sku": product.sku, "quantity": "1", "csrf_token": token(f"/p/{product.sku}")})
    assert added.status_code == 302

    response = client.get(f"/checkout?store={stores[-1].id}")

    page = response.get_data(as_text=True)
    choices = re.search(r'<select id="store_id".*?</select>', page, re.S).group(0)
    offered = [int(number) for number in re.findall(r'<option value="(\d+)"', choices)]
    assert response.status_code == 200 and offered == [store.id for store in stores]
    assert f'<option value="{stores[-1].id}" selected>' in page  # the store a link chose, too


def test_the_cart_and_the_checkout_form_read_their_products_at_once_however_many_lines_they_hold(client):
    """The cart and the checkout form read the products of all their lines together: 50 lines (of 50 co-ops'
    products) cost the statements 1 line costs, not a product and a supplier read per line."""
    consumer = UserFactory(role="consumer")
    products = [ProductFactory(price_fen=100 + n) for n in range(50)]
    db.session.commit()
    skus, names = [p.sku for p in products], {p.sku: p.name for p in products}
    client.post("/login", data={"username": consumer.username, "password": DEFAULT_PASSWORD,
                                "csrf_token": _token(client, "/login")})

    def cost(path: str, lines: list[str]) -> int:
        with client.session_transaction() as session:
            session["cart"] = dict.fromkeys(lines, 1)
        with statements() as seen:
            page = client.get(path)
        body = page.get_data(as_text=True)
        assert page.status_code == 200 and all(names[sku] in body for sku in lines), path
        assert "已下架" not in body, path
        return len(seen)

    for path in ("/cart", "/checkout"):
        assert cost(path, skus) == cost(path, skus[:1]), path


def test_putting_an_ended_orders_lines_back_in_the_cart_reads_their_products_at_once(client):
    """An expired or cancelled order's lines go back to the cart with their products read together: an order of 50
    lines (of 50 co-ops' products) costs the statements an order of 1 line costs."""
    consumer, store = UserFactory(role="consumer"), StoreFactory()
    products = [ProductFactory(price_fen=100 + n) for n in range(50)]
    db.session.commit()
    client.post("/login", data={"username": consumer.username, "password": DEFAULT_PASSWORD,
                                "csrf_token": _token(client, "/login")})

    def cancelled(lines: list[Product]) -> int:
        order = Order(channel="pickup", status="cancelled", consumer_id=consumer.id, store_id=store.id,
                      location_id=store.location_id, donor_code=store.district_code,
                      total_fen=sum(p.price_fen for p in lines), payment_method="stripe")
        order.lines = [OrderLine(product_id=p.id, sku=p.sku, name=p.name, supplier_id=p.supplier_id,
                                 county_code=p.county_code, quantity=1, unit_price_fen=p.price_fen,
                                 platform_fee_bp=p.platform_fee_bp, store_commission_bp=p.store_commission_bp,
                                 household_premium_bp=p.household_premium_bp, dividend_bp=p.dividend_bp)
                       for p in lines]
        db.session.add(order)
        db.session.commit()
        return order.id

    def cost(lines: list[Product]) -> int:
        order_id = cancelled(lines)
        with client.session_transaction() as session:
            session.pop("cart", None)
        g.pop("csrf_token", None)  # flask-wtf's per-request copy, kept in this test's app context
        token = _token(client, f"/orders/{order_id}")
        with statements() as seen:
            back = client.post(f"/orders/{order_id}/to-cart", data={"csrf_token": token})
        assert back.status_code == 302
        with client.session_transaction() as session:
            assert session["cart"] == {p.sku: 1 for p in lines}
        return len(seen)

    assert cost(products) == cost(products[:1])


def test_a_product_whose_supplier_stopped_selling_shows_its_name_in_the_cart_as_off_sale_not_its_code(app, client):
    """A co-op deactivated while its product sits in a shopper's cart: the cart names the product and says it is off
    sale (as for an archived product), never showing the bare SKU in its place."""
    supplier = SupplierFactory()
    product = ProductFactory(name="盐源丑苹果 5kg", supplier=supplier)
    db.session.commit()
    _add(client, product.sku, "1")
    supplier.active = False
    db.session.commit()

    page = client.get("/cart").get_data(as_text=True)

    assert f'<span>{product.name}</span> <span class="warn">已下架，请删除</span>' in page


def test_changing_a_line_removed_meanwhile_in_another_tab_says_it_is_no_longer_in_the_cart(app, client):
    """Two tabs on the cart: a line removed in one and given new units in the other is said to be gone (to add it
    again), never answered as if the change were made; removing it again stays quiet."""
    product = ProductFactory(name="会理石榴 2kg")
    db.session.commit()
    _add(client, product.sku, "1")
    token = _token(client, "/cart")
    client.post(f"/cart/{product.sku}", data={"remove": "1", "csrf_token": token})

    changed = client.post(f"/cart/{product.sku}", data={"quantity": "3", "csrf_token": token})

    assert changed.status_code == 422 and "这件商品已不在购物车中" in changed.get_data(as_text=True)
    assert client.post(f"/cart/{product.sku}", data={"remove": "1", "csrf_token": token}).status_code == 302
