"""In a real browser, the first journey of the pages: a consumer finds 苦荞 by typing `kq`, buys two units for
pickup at the 顺德 store, pays in the sandbox and sees the pickup code; screenshots of every storefront page."""
from __future__ import annotations

import re

from sqlalchemy import select

from orders.ledger.verify import verify_ledger
from orders.models import Order, Store
from shop.auth.service import find_user
from shop.db import db
from tests.web.conftest import screenshot, sign_in

CONSUMER = "13800000000"
SHUNDE = "大凉山体验店（顺德）"


def _no_errors(page) -> list[str]:
    """Collect the page's console errors (a CSP violation is one)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors


def test_a_consumer_finds_kq_buys_two_for_pickup_at_shunde_pays_and_sees_the_pickup_code(site, phone):
    page = phone.new_page()
    errors = _no_errors(page)
    sign_in(page, site, CONSUMER)
    page.wait_for_url(site.url + "/")
    screenshot(page, "storefront-home")

    page.get_by_label("搜索商品").fill("kq")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*\?q=kq"))
    results = page.get_by_role("list", name="商品")
    assert results.get_by_role("link", name="昭觉苦荞米").is_visible()
    assert "雷波脐橙" not in results.inner_text()
    screenshot(page, "storefront-search")

    page.get_by_role("link", name="昭觉苦荞米").click()
    assert page.get_by_role("heading", name="昭觉苦荞米").is_visible()
    assert page.get_by_text("凉扶认〔2026〕").is_visible()
    assert page.get_by_role("cell", name=SHUNDE).is_visible()
    assert page.get_by_role("link", name=re.compile("溯源码")).first.is_visible()
    screenshot(page, "storefront-product")

    page.get_by_label("数量").fill("2")
    page.get_by_role("button", name="加入购物车").click()
    page.wait_for_url(site.url + "/cart")
    assert page.get_by_label("数量").input_value() == "2"
    screenshot(page, "storefront-cart")

    page.get_by_role("link", name="去结算").click()
    page.wait_for_url(site.url + "/checkout")
    page.get_by_label("门店自提").check()
    assert page.get_by_label("详细地址").is_hidden()  # only the chosen channel's fields
    page.get_by_label("取货门店").select_option(label=SHUNDE)
    screenshot(page, "storefront-checkout")
    page.get_by_role("button", name=re.compile("提交订单")).click()

    page.wait_for_url(re.compile(r".*/orders/\d+/pay$"))
    order_id = int(page.url.split("/")[-2])
    assert page.get_by_text("¥79.60").first.is_visible()  # 2 × ¥39.80
    screenshot(page, "storefront-pay")
    page.get_by_role("button", name="支付成功").click()

    page.wait_for_url(site.url + f"/orders/{order_id}")
    code = page.locator("#pickup-code").inner_text()
    assert re.fullmatch(r"\d{6}", code)
    assert page.locator("#order-status").inner_text() == "已支付"
    assert page.get_by_role("img", name=f"取货码 {code} 的二维码").is_visible()
    screenshot(page, "storefront-order")
    page.get_by_role("link", name="我的订单").click()
    assert page.get_by_role("link", name=f"订单 #{order_id}").is_visible()
    screenshot(page, "storefront-orders")
    assert errors == []

    with site.app.app_context():
        order = db.session.get(Order, order_id)
        store = db.session.scalar(select(Store).where(Store.id == order.store_id))
        assert (order.status, order.channel, order.pickup_code, store.name) == ("paid", "pickup", code, SHUNDE)
        assert [(line.sku, line.quantity) for line in order.lines] == [("ZJ-KQM-1KG", 2)]
        assert order.consumer_id == find_user(username=CONSUMER).id
        assert verify_ledger()["ok"] is True
        db.session.remove()


def test_at_desktop_size_a_shunde_shopper_browses_the_paired_counties_and_orders_for_delivery(site, desktop):
    page = desktop.new_page()
    errors = _no_errors(page)
    page.goto(site.url + "/")
    page.get_by_label("我在哪个区").select_option(label="顺德区")
    page.get_by_role("button", name="选择").click()
    page.wait_for_url(re.compile(r".*\?donor=440606"))
    assert page.get_by_text(re.compile("顺德区 对口帮扶")).is_visible()
    screenshot(page, "storefront-home")
    page.get_by_label("搜索商品").fill("kq")
    page.get_by_role("button", name="搜索").click()
    page.wait_for_url(re.compile(r".*q=kq"))
    assert page.get_by_text("没有找到商品").is_visible()  # 苦荞 is not from 顺德's paired counties
    page.goto(site.url + "/?q=kq")
    screenshot(page, "storefront-search")

    page.goto(site.url + "/p/LB-QC-5KG")
    screenshot(page, "storefront-product")
    page.get_by_role("button", name="加入购物车").click()
    screenshot(page, "storefront-cart")
    page.get_by_role("link", name="去结算").click()
    page.get_by_label("用户名或手机号").fill(CONSUMER)  # checkout asks an anonymous shopper to sign in first
    page.get_by_label("密码").fill(site.passwords[CONSUMER])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(site.url + "/checkout")
    page.get_by_label("快递配送").check()
    assert page.get_by_label("取货门店").is_hidden()
    page.get_by_label("收货区").select_option(label="佛山市顺德区")
    page.get_by_label("详细地址").fill("大良街道演示路 3 号")
    page.get_by_label("收货人").fill("演示顾客")
    page.get_by_label("联系电话").fill("13800000000")
    screenshot(page, "storefront-checkout")
    page.get_by_role("button", name=re.compile("提交订单")).click()
    page.wait_for_url(re.compile(r".*/orders/\d+/pay$"))
    screenshot(page, "storefront-pay")
    page.get_by_role("button", name="支付成功").click()
    page.wait_for_url(re.compile(r".*/orders/\d+$"))
    assert page.locator("#order-status").inner_text() == "已支付"
    assert re.fullmatch(r"¥\d+\.\d\d 归属于 雷波县 \d+ 户|本单收益归属于少于 3 户（不公布金额与县）",
                        page.locator("#impact").inner_text())
    screenshot(page, "storefront-order")
    page.get_by_role("link", name="我的订单").click()
    screenshot(page, "storefront-orders")
    assert errors == []


def _ime_types(page, box, text: str) -> None:
    """Type `text` into `box` as a Chinese IME commits it (full-width digits, one insertion)."""
    box.click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.press("Backspace")
    page.keyboard.insert_text(text)


def test_quantities_typed_in_full_width_digits_by_an_ime_reach_the_cart_as_the_till_reads_them(site, phone):
    page = phone.new_page()
    errors = _no_errors(page)
    page.goto(site.url + "/p/ZJ-KQM-1KG")

    _ime_types(page, page.get_by_label(re.compile("^数量")), "３")
    assert page.get_by_label(re.compile("^数量")).input_value() == "３"
    page.get_by_role("button", name="加入购物车").click()
    page.wait_for_url(site.url + "/cart")
    assert page.get_by_label("数量", exact=True).input_value() == "3"

    _ime_types(page, page.get_by_label("数量", exact=True), "１２")
    page.get_by_role("button", name="更新").click()
    page.wait_for_url(site.url + "/cart")
    assert page.get_by_label("数量", exact=True).input_value() == "12"
    assert errors == []

    _ime_types(page, page.get_by_label("数量", exact=True), "１０００００１")  # one over the bound: the page says so
    page.get_by_role("button", name="更新").click()
    assert page.get_by_role("alert").inner_text() == "数量必须是 0 到 1000000 之间的整数。"
    assert page.get_by_label("数量", exact=True).input_value() == "１０００００１"  # as typed, beside the message
    screenshot(page, "storefront-cart-full-width")
