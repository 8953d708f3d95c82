"""In a real browser, at 360 px and 1280 px: a consumer whose delivery arrived asks for after-sales on the order page
(a form per line, errors beside the fields in Chinese), sees the request listed as waiting, and the staff's answer."""
from __future__ import annotations

import re

from sqlalchemy import select

from orders.models import AfterSalesRequest, Order
from orders.refunds.service import reject_after_sales
from shop.auth.service import find_user
from shop.db import db
from tests.web.conftest import screenshot, sign_in
from tests.web.test_numbers_layout import CLIPPED_TABLES, NARROW, SIDEWAYS
from tests.web.test_storefront_pages import ship_and_deliver

CONSUMER = "13800000000"


def _delivered_order(page, site, sku: str, quantity: str) -> int:
    """Buy `quantity` of `sku` for delivery through the pages, pay in the sandbox; the admin ships and delivers it."""
    page.goto(site.url + f"/p/{sku}")
    page.get_by_label("数量").fill(quantity)
    page.get_by_role("button", name="加入购物车").click()
    page.wait_for_url(site.url + "/cart")
    page.goto(site.url + "/checkout")
    page.get_by_label("快递配送").check()
    page.get_by_label("收货区").select_option(label="佛山市顺德区")
    page.get_by_label("详细地址").fill("大良街道演示路 3 号")
    page.get_by_label("收货人").fill("演示顾客")
    page.get_by_label("联系电话").fill("13800000000")
    page.get_by_role("button", name=re.compile("提交订单")).click()
    page.wait_for_url(re.compile(r".*/orders/\d+/pay$"))
    order_id = int(page.url.split("/")[-2])
    page.get_by_role("button", name="支付成功").click()
    page.wait_for_url(site.url + f"/orders/{order_id}")
    return ship_and_deliver(site, order_id)


def _ask(page, site, order_id: int, name: str):
    """Open the order page: the after-sales form of its line `name`."""
    page.goto(site.url + f"/orders/{order_id}")
    return page.locator("form.ask").filter(has_text=name)


def _journey(page, site, sku: str, name: str) -> None:
    """Ask for after-sales of 2 of 3 delivered units: first refused beside the fields, then accepted and listed,
    then answered by the staff; ask again and withdraw it; the page fits the screen at every step."""
    sign_in(page, site, CONSUMER)
    page.wait_for_url(site.url + "/")
    order_id = _delivered_order(page, site, sku, "3")
    form = _ask(page, site, order_id, name)
    assert page.locator("#ask-until").is_visible() and "前提交" in page.locator("#ask-until").inner_text()
    assert form.get_by_label("退货件数").input_value() == "3"
    screenshot(page, "after-sales-form")
    assert page.evaluate(SIDEWAYS) == 0 and page.evaluate(CLIPPED_TABLES) == []

    form.get_by_label("退货件数").fill("5")
    form.get_by_label("申请原因").fill("有两袋受潮结块")
    form.get_by_role("button", name="申请售后").click()
    form = page.locator("form.ask").filter(has_text=name)
    assert form.get_by_text("最多可以申请 3 件").is_visible()
    assert form.get_by_label("退货件数").get_attribute("aria-invalid") == "true"
    assert form.get_by_label("申请原因").input_value() == "有两袋受潮结块"  # kept as typed
    screenshot(page, "after-sales-refused")
    assert page.evaluate(SIDEWAYS) == 0

    form.get_by_label("退货件数").fill("2")
    form.get_by_role("button", name="申请售后").click()
    page.wait_for_url(site.url + f"/orders/{order_id}")
    assert page.get_by_text("售后申请已提交，请等待处理结果。").is_visible()
    listed = page.locator("#after-sales")
    assert "待处理" in listed.inner_text() and f"{name} × 2" in listed.inner_text()
    assert page.locator("form.ask").count() == 0  # one request at a time
    screenshot(page, "after-sales-asked")
    assert page.evaluate(SIDEWAYS) == 0

    with site.app.app_context():
        request = db.session.scalar(select(AfterSalesRequest).where(AfterSalesRequest.order_id == order_id))
        assert (request.lines[0]["quantity"], request.reason) == (2, "有两袋受潮结块")
        assert db.session.get(Order, order_id).status == "delivered"
        reject_after_sales(actor=find_user(username="admin"), request_id=request.id, reason="请补充受潮照片后再申请")
        db.session.commit()
        db.session.remove()
    page.reload()
    assert "未通过" in page.locator("#after-sales").inner_text()
    assert page.get_by_text("答复：请补充受潮照片后再申请").is_visible()
    assert _ask(page, site, order_id, name).count() == 1  # answered: another request may be made
    screenshot(page, "after-sales-answered")
    assert page.evaluate(SIDEWAYS) == 0 and page.evaluate(CLIPPED_TABLES) == []

    form = _ask(page, site, order_id, name)  # asked again, then taken back before anyone answers
    form.get_by_label("退货件数").fill("1")
    form.get_by_label("申请原因").fill("想换成别的规格")
    form.get_by_role("button", name="申请售后").click()
    page.wait_for_url(site.url + f"/orders/{order_id}")
    page.locator("#after-sales form.withdraw").get_by_role("button", name="撤回").click()
    page.wait_for_url(site.url + f"/orders/{order_id}")
    assert page.get_by_text("售后申请已撤回。").is_visible()
    assert page.locator("#after-sales .badge.after-sales-withdrawn").inner_text() == "已撤回"
    assert page.locator("#after-sales form.withdraw").count() == 0
    assert _ask(page, site, order_id, name).count() == 1  # withdrawn: its units may be asked for again
    screenshot(page, "after-sales-withdrawn")
    assert page.evaluate(SIDEWAYS) == 0


def test_on_a_360_px_phone_a_consumer_asks_for_after_sales_of_a_delivered_order(site, browser):
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    site.cancel_unpaid_orders(CONSUMER)
    _journey(context.new_page(), site, "ZJ-KQMT-500G", "昭觉苦荞面条")
    context.close()


def test_at_desktop_size_a_consumer_asks_for_after_sales_of_a_delivered_order(site, desktop):
    site.cancel_unpaid_orders(CONSUMER)
    _journey(desktop.new_page(), site, "LB-QC-5KG", "雷波脐橙（5公斤装）")
