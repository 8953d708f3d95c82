"""In a real browser, the counter till of the 顺德 store: a shift with two scanned trace codes paid in cash, the
receipt, the cash-up at ¥0 difference; two sales taken offline that arrive exactly once; a stock-gone offline
sale shown as a conflict; a pickup handed over by its code; a refund within the shift; another store's clerk
kept out. The sales go through the till's own script and the JSON API, checked here through the services."""
from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import func, select

from catalog import inventory
from catalog.service import ProductChanges, get_product, update_product
from orders.checkout import service as checkout
from orders.counter import service as counter
from orders.ledger.verify import verify_ledger
from orders.models import Order, SaleConflict, Shift, Store
from orders.payments import service as payments
from orders.stores import service as stores
from shop.auth.security import issue_token
from shop.auth.service import UserChanges, create_user, find_user, update_user
from shop.db import db
from shop.idempotency import IdempotencyKey
from tests.web.conftest import PHONE, screenshot, sign_in
from web.filters import local_time

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CLERK, OTHER_CLERK, CONSUMER, STORE_LOCATION = "staff-shunde", "staff-nanhai", "13800000000", "FS-SD-ST"
PICKUP_SKU = "ZJ-KQM-1KG"  # 昭觉苦荞米: its lots reach 昭觉县 households
WAIT_MS = 20_000
TABLET = {"width": 820, "height": 1180}


@dataclass(frozen=True)
class Item:
    """A product in stock at the store: its SKU, price, units free and one lot's trace code."""

    sku: str
    price_fen: int
    available: int
    trace_code: str


def _store() -> Store:
    """The 顺德 store."""
    location = inventory.find_location(STORE_LOCATION)
    return db.session.scalar(select(Store).where(Store.location_id == location.id))


def _stock() -> list[Item]:
    """The store's products with units free, one lot each, by SKU."""
    page = inventory.location_stock(location_id=_store().location_id, limit=100, cursor=None)
    items: dict[str, Item] = {}
    for row in page["items"]:
        free = row.on_hand - row.reserved
        product = get_product(sku=row.lot.product.sku)
        if free > 0 and product.sku not in items:
            items[product.sku] = Item(product.sku, product.price_fen, free, row.lot.trace_code)
    return sorted(items.values(), key=lambda item: item.sku)


def _open_shift() -> Shift | None:
    """The store's open shift, if any."""
    return db.session.scalar(select(Shift).where(Shift.store_id == _store().id, Shift.closed_at.is_(None)))


def _close_open_shift() -> None:
    """Close the store's open shift (the demo's) with exactly the cash expected, so the till starts a new one."""
    shift = _open_shift()
    if shift is not None:
        clerk = find_user(username=CLERK)
        cash = stores.shift_report(actor=clerk, shift_id=shift.id).methods[0]["expected_fen"]
        stores.close_shift(actor=clerk, shift_id=shift.id, counted_cash_fen=cash)
        db.session.commit()


def _ensure_open_shift() -> Shift:
    """The store's open shift, opened with a ¥500 float if there is none."""
    shift = _open_shift()
    if shift is None:
        shift = stores.start_shift(actor=find_user(username=CLERK), store_id=_store().id, float_fen=50000)
        db.session.commit()
    return shift


def _name(site, sku: str) -> str:
    """A product's name."""
    with site.app.app_context():
        return get_product(sku=sku).name


def _queue(page, store_id: int) -> list[dict]:
    """The sales waiting in the till's local queue."""
    return page.evaluate("key => JSON.parse(localStorage.getItem(key) || '[]')", f"till:{store_id}:queue")


def _yuan(fen: int) -> str:
    """Fen as the till shows it."""
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def _till_on_an_open_shift(site, desktop):
    """The clerk's till page, signed in on an open shift, and the first product the store holds."""
    with site.app.app_context():
        _ensure_open_shift()
        item = _stock()[0]
    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.wait_for_url(site.url + "/till")
    return page, item


def _sell_by_typing(page, sku: str, *, card: bool) -> None:
    """Type a SKU into the scan field, then take the sale by card or with exactly the total in cash."""
    page.get_by_label("扫描追溯码或输入 SKU").fill(sku)
    page.get_by_label("扫描追溯码或输入 SKU").press("Enter")
    if card:
        page.get_by_label("刷卡", exact=True).check()
    else:
        page.get_by_label("现金", exact=True).check()
        page.get_by_label("实收现金（元）").fill(page.locator("#total").inner_text().lstrip("¥").replace(",", ""))
    page.get_by_role("button", name="完成收款").click()


def test_a_clerk_sells_prints_closes_the_shift_and_sells_offline_exactly_once(site, desktop, phone):
    with site.app.app_context():
        _close_open_shift()
        store_id = _store().id
        first, second, third, fourth = _stock()[:4]
    page = desktop.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page, site, CLERK)
    page.wait_for_url(site.url + "/till")
    screenshot(page, "till-open-shift")
    tablet = phone.browser.new_context(viewport=TABLET, locale="zh-CN", has_touch=True)
    tablet_page = tablet.new_page()
    sign_in(tablet_page, site, CLERK)
    screenshot(tablet_page, "till-open-shift")

    page.get_by_label("备用金（元）").fill("500")
    page.get_by_role("button", name="开班").click()
    scan = page.get_by_label("扫描追溯码或输入 SKU")
    for item in (first, second):  # the scanner types the code and Enter
        scan.fill(item.trace_code)
        scan.press("Enter")
    expect(page.locator("#cart-lines tr")).to_have_count(2)
    total = first.price_fen + second.price_fen
    expect(page.locator("#total")).to_have_text(_yuan(total))
    tendered = -(-total // 10000) * 10000  # ¥100 notes covering the total
    page.get_by_label("实收现金（元）").fill(str(tendered // 100))
    expect(page.locator("#change")).to_have_text(_yuan(tendered - total))
    screenshot(page, "till-sell")
    page.get_by_role("button", name="完成收款").click()
    expect(page.locator("#last-sale")).to_contain_text(f"找零 {_yuan(tendered - total)}")
    expect(page.locator("#cart-lines tr")).to_have_count(0)

    page.get_by_role("link", name="打印小票").click()
    receipt = page.locator("article.receipt")
    expect(receipt).to_contain_text(first.trace_code)
    expect(receipt).to_contain_text(second.trace_code)
    expect(receipt).to_contain_text(_yuan(total))
    expect(receipt.locator(".row", has_text="找零")).to_contain_text(_yuan(tendered - total))
    expect(receipt.locator(".impact")).to_contain_text("户")
    screenshot(page, "till-receipt")
    page.emulate_media(media="print")
    screenshot(page, "till-receipt-print")
    page.emulate_media(media="screen")

    page.get_by_role("link", name="班次与交班").click()
    expect(page.locator("[data-expected=cash]")).to_have_text(_yuan(50000 + total))
    page.get_by_label("清点的现金（元）").fill(f"{(50000 + total) / 100:.2f}")
    page.get_by_role("button", name="交班").click()
    expect(page.get_by_text("已交班")).to_be_visible()
    expect(page.locator("[data-difference=cash]")).to_have_text("¥0.00")
    screenshot(page, "till-shift-closed")
    with site.app.app_context():
        closed = db.session.scalar(select(Shift).where(Shift.store_id == store_id).order_by(Shift.id.desc()))
        assert closed.closed_at is not None and closed.counted_cash_fen == 50000 + total
    page.get_by_role("link", name="班次记录").click()
    closed_row = page.locator(f"tr[data-shift='{closed.id}']")
    expect(closed_row.locator("td[data-label=现金清点]")).to_have_text(_yuan(50000 + total))
    expect(closed_row.locator("td[data-label=现金差额]")).to_have_text("¥0.00")
    screenshot(page, "till-shifts")

    page.goto(site.url + "/till")
    page.get_by_label("备用金（元）").fill("500.00")
    page.get_by_role("button", name="开班").click()
    expect(page.locator("#till-net")).to_have_text("在线")
    with site.app.app_context():
        shift_id = _open_shift().id
        sales_before = db.session.scalar(select(func.count(Order.id)).where(Order.channel == "counter"))

    desktop.set_offline(True)
    expect(page.locator("#till-net")).to_have_text("离线")
    _sell_by_typing(page, third.sku, card=True)
    expect(page.locator("#last-sale")).to_contain_text("已离线记录")
    _sell_by_typing(page, fourth.sku, card=False)
    expect(page.locator("#till-queue")).to_have_text("2 笔待发送")
    screenshot(page, "till-offline")
    queued = _queue(page, store_id)
    keys = [sale["key"] for sale in queued]
    assert len(set(keys)) == 2
    assert all(json.loads(sale["payload"])["client_created_at"] for sale in queued)

    desktop.set_offline(False)
    expect(page.locator("#till-queue")).to_have_text("0 笔待发送", timeout=WAIT_MS)
    expect(page.locator("#sent-list a")).to_have_count(2)
    assert _queue(page, store_id) == []

    with site.app.app_context():
        orders = list(db.session.scalars(select(Order).where(Order.shift_id == shift_id).order_by(Order.id)))
        assert [order.total_fen for order in orders] == [third.price_fen, fourth.price_fen]
        assert all(order.client_created_at is not None and order.status == "fulfilled" for order in orders)
        recorded = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.scope == f"store:{store_id}",
                                                                   IdempotencyKey.key.in_(keys))).all()
        assert sorted(json.loads(row.response_body)["id"] for row in recorded) == [order.id for order in orders]
        headers = {"Authorization": f"Bearer {issue_token(find_user(username=CLERK))[0]}",
                   "Content-Type": "application/json"}
        client = site.app.test_client()
        for sale in queued:  # the till sends a sale again (say, the answer was lost): the same sale comes back
            again = client.post(f"/api/v1/stores/{store_id}/counter-sales", data=sale["payload"],
                                headers={**headers, "Idempotency-Key": sale["key"]})
            assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        db.session.expire_all()
        after = db.session.scalar(select(func.count(Order.id)).where(Order.channel == "counter"))
        assert after == sales_before + 2
        assert verify_ledger()["ok"] is True
    assert errors == []
    tablet.close()


def test_the_cash_tendered_box_reads_an_amount_as_the_servers_cash_boxes_do(site, desktop):
    """¥38.80, 38.80元, ￥３８.８０ or Arabic-Indic digits are the amount, as the shift's cash boxes and the
    storefront's price filter read them; a superscript or circled number, 1 000 or 1e3 is no amount (no change)."""
    page, item = _till_on_an_open_shift(site, desktop)
    page.get_by_label("扫描追溯码或输入 SKU").fill(item.sku)
    page.get_by_label("扫描追溯码或输入 SKU").press("Enter")
    page.get_by_label("现金", exact=True).check()
    total = page.locator("#total").inner_text().lstrip("¥").replace(",", "")
    wide = total.translate(str.maketrans("0123456789.", "０１２３４５６７８９．"))
    arabic = total.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for spelling in (f"¥{total}", f"{total}元", f"￥{wide}", arabic):
        page.get_by_label("实收现金（元）").fill(spelling)
        expect(page.locator("#change")).to_have_text("¥0.00")
    for spelling in ("²00000", "①00000", "1 000", "1e3", "1_000", "-0"):
        page.get_by_label("实收现金（元）").fill(spelling)
        expect(page.locator("#change")).to_have_text("—")
    page.close()


def test_a_stock_gone_offline_sale_is_shown_to_the_clerk_as_a_conflict(site, desktop):
    with site.app.app_context():
        shift = _ensure_open_shift()
        store_id, shift_id = _store().id, shift.id
        item = [item for item in _stock() if item.sku != PICKUP_SKU][-1]
    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.wait_for_url(site.url + "/till")
    desktop.set_offline(True)
    page.get_by_label("扫描追溯码或输入 SKU").fill(item.sku)
    page.get_by_label("扫描追溯码或输入 SKU").press("Enter")
    if item.available > 1:
        page.get_by_label(f"{_name(site, item.sku)} 数量").fill(str(item.available))
        page.get_by_label(f"{_name(site, item.sku)} 数量").press("Tab")
    page.get_by_label("刷卡", exact=True).check()
    page.get_by_role("button", name="完成收款").click()
    expect(page.locator("#till-queue")).to_have_text("1 笔待发送")
    key = _queue(page, store_id)[0]["key"]
    with site.app.app_context():  # meanwhile another till sells the last units
        counter.sell(actor=find_user(username=CLERK), store_id=store_id, shift_id=shift_id,
                     lines=[{"sku": item.sku, "quantity": item.available}], payment={"method": "card"})
        db.session.commit()

    desktop.set_offline(False)
    conflicts = page.locator("#till-conflicts")
    expect(conflicts).to_be_visible(timeout=WAIT_MS)
    expect(conflicts).to_contain_text("库存不足")
    expect(page.locator("#till-queue")).to_have_text("0 笔待发送")
    screenshot(page, "till-conflict")
    with site.app.app_context():
        recorded = db.session.scalar(select(SaleConflict).where(SaleConflict.idempotency_key == key))
        assert recorded is not None and recorded.code == "insufficient_stock" and recorded.store_id == store_id
        conflict_id = recorded.id

    expect(conflicts.locator("li")).to_contain_text("已记录给店长")
    conflicts.get_by_role("link", name="去处理").click()  # the manager deals with it on the server's record
    card = page.locator(f"#conflict-{conflict_id}")
    expect(card).to_contain_text(f"冲突 {conflict_id}：库存不足")
    expect(card).to_contain_text(_name(site, item.sku))
    screenshot(page, "till-conflicts")
    small = desktop.browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN").new_page()
    sign_in(small, site, CLERK)
    small.goto(site.url + "/till/conflicts")
    assert small.evaluate("document.documentElement.scrollWidth") <= 360  # never scrolls sideways
    screenshot(small, "till-conflicts")
    small.context.close()
    card.get_by_label("处理方式").fill("顾客改买其他商品，已重新收款")
    card.get_by_role("button", name="标记为已处理").click()
    expect(page.get_by_role("status").filter(has_text=f"冲突 {conflict_id} 已处理")).to_be_visible()
    expect(page.locator(f"#conflict-{conflict_id}")).to_have_count(0)
    with site.app.app_context():
        db.session.expire_all()
        resolved = db.session.get(SaleConflict, conflict_id)
        assert resolved.resolved_at is not None and resolved.resolved_by == find_user(username=CLERK).id
        assert resolved.resolution_note == "顾客改买其他商品，已重新收款"
    page.goto(site.url + "/till")
    expect(conflicts.locator("li")).to_contain_text(f"已记录给店长（冲突 {conflict_id}）")
    page.get_by_role("button", name="不再显示").click()  # the till stops showing it; the server keeps its record
    expect(conflicts).to_be_hidden()


def test_a_consumers_pickup_is_handed_over_by_its_code_and_the_order_page_says_collected(site, desktop, phone):
    with site.app.app_context():
        _ensure_open_shift()
        consumer, store = find_user(username=CONSUMER), _store()
        order = checkout.place_order(actor=consumer, channel="pickup", store_id=store.id,
                                     lines=[{"sku": PICKUP_SKU, "quantity": 2}])
        db.session.commit()
        payment = checkout.start_payment(order=order.order)
        db.session.commit()
        payments.sandbox_confirm(actor=consumer, intent_id=payment.intent_id, outcome="succeeded")
        db.session.commit()
        order_id = order.id
    buyer = phone.browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True).new_page()
    sign_in(buyer, site, CONSUMER)
    buyer.goto(site.url + f"/orders/{order_id}")
    code = buyer.locator("#pickup-code").inner_text()  # what the customer shows at the counter

    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.get_by_role("link", name="自提核销").click()
    expect(page.locator("table")).to_contain_text(str(order_id))
    wrong = "000000" if code != "000000" else "111111"
    page.get_by_label("取货码（6 位数字）").fill(wrong)
    page.get_by_role("button", name="核销交货").click()
    expect(page.get_by_role("alert")).to_have_text("本店没有使用此取货码的待取订单。")
    page.get_by_label("取货码（6 位数字）").fill(code)
    screenshot(page, "till-pickups")
    second_tab = page.context.new_page()  # the same hand-over, already open in a second tab
    second_tab.goto(site.url + "/till/pickups")
    page.get_by_role("button", name="核销交货").click()
    expect(page.get_by_role("status").filter(has_text="已交给顾客")).to_contain_text(f"订单 {order_id}")
    assert page.url == f"{site.url}/till/pickups?handed={order_id}"  # a refresh does not post the code again
    page.reload()
    expect(page.get_by_role("status").filter(has_text="已交给顾客")).to_contain_text(f"订单 {order_id}")
    second_tab.goto(site.url + f"/till/orders/{order_id}/refund")  # an online order: refunded by an admin
    expect(second_tab.locator("#online-refund")).to_contain_text("在线支付。网上订单的退款由管理员在后台处理")
    expect(second_tab.get_by_role("button", name="确认退款")).to_have_count(0)
    second_tab.goto(site.url + "/till/pickups")
    second_tab.get_by_label("取货码（6 位数字）").fill(code)
    second_tab.get_by_role("button", name="核销交货").click()
    expect(second_tab.get_by_role("alert")).to_have_text(re.compile(
        rf"该订单（单号 {order_id}）已于 \d\d:\d\d 交货，无需再次核销。"))

    buyer.reload()
    expect(buyer.locator("#order-status")).to_have_text("已取货")
    expect(buyer.locator("#impact")).to_contain_text("归属于 昭觉县")
    with site.app.app_context():
        assert db.session.get(Order, order_id).status == "fulfilled"
        assert verify_ledger()["ok"] is True
    buyer.context.close()
    small = phone.new_page()
    sign_in(small, site, CLERK)
    small.goto(site.url + "/till/pickups")
    screenshot(small, "till-pickups")


def test_a_clerk_refunds_a_sale_of_the_open_shift_and_sees_every_till_screen_on_a_phone(site, desktop, phone):
    with site.app.app_context():
        shift = _ensure_open_shift()
        item = _stock()[0]
        sale = counter.sell(actor=find_user(username=CLERK), store_id=_store().id, shift_id=shift.id,
                            lines=[{"trace_code": item.trace_code, "quantity": 1}],
                            payment={"method": "cash", "tendered_fen": item.price_fen})
        db.session.commit()
        order_id, shift_id = sale.id, shift.id
    small = phone.new_page()
    sign_in(small, site, CLERK)
    for name, path in (("till-sell", "/till"), ("till-shift", f"/till/shifts/{shift_id}"),
                       ("till-receipt", f"/till/receipts/{order_id}"),
                       ("till-refund", f"/till/orders/{order_id}/refund")):
        small.goto(site.url + path)
        screenshot(small, name)

    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.get_by_role("link", name="班次与交班").click()
    screenshot(page, "till-shift")
    page.locator(f"a[href='/till/orders/{order_id}/refund']").click()
    screenshot(page, "till-refund")
    page.get_by_label("退款原因").fill("顾客不要了")
    page.get_by_role("button", name="确认退款").click()  # no units named: refused, nothing refunded
    expect(page.get_by_role("alert")).to_contain_text("请至少填写一行的退货数量")
    page.locator("input.qty").first.fill("1")
    page.get_by_label("退款原因").fill("顾客不要了")
    page.get_by_role("button", name="确认退款").click()
    expect(page.locator("article.receipt")).to_contain_text("已退 1")
    refunded = re.compile(rf"已退款\s*-{re.escape(_yuan(item.price_fen))}\s*实付\s*¥0\.00")
    expect(page.locator("article.receipt")).to_contain_text(refunded)  # the amount given back, and the net
    screenshot(page, "till-receipt-refunded")
    with site.app.app_context():
        assert db.session.get(Order, order_id).status == "refunded"
        report = stores.shift_report(actor=find_user(username=CLERK), shift_id=shift_id)
        assert report.methods[0]["refunds_fen"] == item.price_fen
        assert verify_ledger()["ok"] is True
    page.get_by_role("link", name="班次与交班").click()
    sold = page.locator("tr").filter(has=page.get_by_role("link", name=str(order_id), exact=True))
    expect(sold).to_contain_text("已全部退款")


def test_another_stores_clerk_cannot_see_this_stores_shift_receipt_or_refund(site, desktop):
    with site.app.app_context():
        shift = _ensure_open_shift()
        order_id = db.session.scalar(select(Order.id).where(Order.shift_id == shift.id).limit(1))
        if order_id is None:
            item = _stock()[0]
            order_id = counter.sell(actor=find_user(username=CLERK), store_id=_store().id, shift_id=shift.id,
                                    lines=[{"sku": item.sku, "quantity": 1}], payment={"method": "card"}).id
            db.session.commit()
        shift_id = shift.id
    page = desktop.new_page()
    sign_in(page, site, OTHER_CLERK)
    page.wait_for_url(site.url + "/till")
    expect(page.locator(".till-store")).to_contain_text("南海")
    for path in (f"/till/shifts/{shift_id}", f"/till/receipts/{order_id}", f"/till/orders/{order_id}/refund"):
        response = page.goto(site.url + path)
        assert response.status == 404, path
        expect(page.locator("h1")).to_have_text("404")
        expect(page.locator("main")).not_to_contain_text("顺德")


def test_a_sale_made_after_the_session_ended_is_not_sent_nor_queued_until_the_clerk_signs_in_again(site, desktop):
    with site.app.app_context():
        shift_id = _ensure_open_shift().id
        store_id = _store().id
        item = _stock()[0]
        before = db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id))
    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.wait_for_url(site.url + "/till")
    stale = page.get_by_role("link", name="登录已过期，请重新登录以发送")
    expect(stale).to_be_hidden()
    desktop.clear_cookies()  # the page session ends (signed out elsewhere, or expired)
    _sell_by_typing(page, item.sku, card=True)
    expect(page.locator("#pay-error")).to_have_text("登录已失效，销售未发送，请重新登录。")
    expect(stale).to_be_visible()
    expect(page.locator("#till-queue")).to_have_text("0 笔待发送")
    assert _queue(page, store_id) == [] and page.locator("#last-sale").inner_text() == ""
    page.get_by_role("button", name="完成收款").click()  # no sale is taken while signed out
    expect(page.locator("#pay-error")).to_have_text("登录已失效，销售未发送，请重新登录。")
    assert _queue(page, store_id) == []

    other_tab = desktop.new_page()  # the clerk signs in again in another tab: this one's stale link goes
    sign_in(other_tab, site, CLERK)
    other_tab.wait_for_url(site.url + "/till")
    expect(stale).to_be_hidden(timeout=WAIT_MS)
    page.get_by_role("button", name="完成收款").click()  # the cart was kept: the sale goes now
    expect(page.locator("#last-sale")).to_contain_text("收款成功", timeout=WAIT_MS)
    with site.app.app_context():
        assert db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id)) == before + 1


def test_a_deactivated_clerks_sale_says_the_sign_in_ended_and_is_not_queued(site, desktop):
    with site.app.app_context():
        shift_id = _ensure_open_shift().id
        store_id = _store().id
        item = _stock()[0]
        clerk = create_user(username="staff-shunde-temp", password="temporary-pass-1", role="store_staff",
                            store_id=store_id)
        db.session.commit()
        clerk_id = clerk.id
        before = db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id))
    page = desktop.new_page()
    page.goto(site.url + "/login")
    page.get_by_label("用户名或手机号").fill("staff-shunde-temp")
    page.get_by_label("密码").fill("temporary-pass-1")
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(site.url + "/till")
    page.evaluate("() => fetch('/till/token', {method: 'POST', headers: {'X-CSRFToken': "
                  "JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']}})")
    _sell_by_typing(page, item.sku, card=True)  # the till holds a bearer token now
    expect(page.locator("#last-sale")).to_contain_text("收款成功", timeout=WAIT_MS)
    with site.app.app_context():
        update_user(user_id=clerk_id, changes=UserChanges(active=False))  # an admin deactivates the clerk meanwhile
        db.session.commit()
    _sell_by_typing(page, item.sku, card=True)
    expect(page.locator("#pay-error")).to_have_text("登录已失效，销售未发送，请重新登录。", timeout=WAIT_MS)
    expect(page.get_by_role("link", name="登录已过期，请重新登录以发送")).to_be_visible()
    expect(page.locator("#till-queue")).to_have_text("0 笔待发送")
    assert _queue(page, store_id) == []
    with site.app.app_context():
        assert db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id)) == before + 1


def test_after_a_price_change_the_till_prices_the_sale_again_and_says_the_new_total(site, desktop):
    page, item = _till_on_an_open_shift(site, desktop)
    page.get_by_label("扫描追溯码或输入 SKU").fill(item.sku)
    page.get_by_label("扫描追溯码或输入 SKU").press("Enter")
    expect(page.locator("#total")).to_have_text(_yuan(item.price_fen))
    with site.app.app_context():  # an admin reprices the product while it is in the till's cart
        update_product(actor=find_user(username="admin"), sku=item.sku,
                       changes=ProductChanges(price_fen=item.price_fen + 100))
        db.session.commit()
    try:
        page.get_by_label("刷卡", exact=True).check()
        page.get_by_role("button", name="完成收款").click()
        new_total = _yuan(item.price_fen + 100)
        expect(page.locator("#pay-error")).to_contain_text(f"已按最新价格重新计价，合计 {new_total}")
        expect(page.locator("#total")).to_have_text(new_total)
        page.get_by_role("button", name="完成收款").click()
        expect(page.locator("#last-sale")).to_contain_text("收款成功", timeout=WAIT_MS)
    finally:
        with site.app.app_context():
            update_product(actor=find_user(username="admin"), sku=item.sku,
                           changes=ProductChanges(price_fen=item.price_fen))
            db.session.commit()


def test_a_sale_whose_answer_is_lost_is_sent_again_as_it_was_and_made_once(site, desktop):
    with site.app.app_context():
        shift_id = _ensure_open_shift().id
        store_id = _store().id
        item = _stock()[0]
        before = db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id))
    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.wait_for_url(site.url + "/till")

    def lose_the_answer(route):
        route.fetch()  # the server takes the sale ...
        with contextlib.suppress(sync_api.Error):  # (unless the till left the page meanwhile)
            route.abort()  # ... and its answer never reaches the till
    page.route("**/counter-sales", lose_the_answer)
    _sell_by_typing(page, item.sku, card=True)
    expect(page.locator("#last-sale")).to_contain_text("网络中断")
    queued = _queue(page, store_id)
    assert len(queued) == 1 and "client_created_at" not in json.loads(queued[0]["payload"])  # kept as it was sent
    with site.app.app_context():
        assert db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id)) == before + 1

    page.get_by_role("link", name="班次与交班").click()  # closing now would leave the sale out of the cash-up
    warning = page.locator("#close-queue-warning")
    expect(warning).to_have_text("还有 1 笔离线销售待发送，请恢复网络发送后再交班。")
    expect(warning).to_be_visible()

    page.unroute_all(behavior="wait")  # a resend under way still loses its answer
    expect(page.locator("#till-queue")).to_have_text("0 笔待发送", timeout=WAIT_MS)
    expect(warning).to_be_hidden()
    page.get_by_role("link", name="收银").click()
    expect(page.locator("#sent-list a")).to_have_count(1)
    with site.app.app_context():
        assert db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id)) == before + 1
        assert verify_ledger()["ok"] is True


def test_a_lost_sale_refused_when_resent_because_its_shift_closed_arrives_as_a_late_entry(site, desktop):
    with site.app.app_context():
        shift_id = _ensure_open_shift().id
        store_id = _store().id
        item = _stock()[0]
        before = db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id))
    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.wait_for_url(site.url + "/till")
    page.route("**/counter-sales", lambda route: route.abort("connectionrefused"))  # the request may have left
    _sell_by_typing(page, item.sku, card=True)
    expect(page.locator("#last-sale")).to_contain_text("网络中断")
    queued = _queue(page, store_id)
    assert len(queued) == 1 and "client_created_at" not in json.loads(queued[0]["payload"])
    key = queued[0]["key"]
    with site.app.app_context():  # the shift is closed meanwhile, through the API
        clerk = find_user(username=CLERK)
        cash = stores.shift_report(actor=clerk, shift_id=shift_id).methods[0]["expected_fen"]
        bearer = {"Authorization": f"Bearer {issue_token(clerk)[0]}"}
        client = site.app.test_client()
        closed = client.post(f"/api/v1/shifts/{shift_id}/close", json={"counted_cash_fen": cash}, headers=bearer)
        assert closed.status_code == 200

    page.unroute("**/counter-sales")
    page.evaluate("() => window.dispatchEvent(new Event('online'))")
    expect(page.locator("#till-queue")).to_have_text("0 笔待发送", timeout=WAIT_MS)
    expect(page.locator("#sent-list a")).to_have_count(1)
    expect(page.locator("#till-conflicts")).to_be_hidden()  # taken: nothing for the clerk to deal with
    with site.app.app_context():
        report = client.get(f"/api/v1/shifts/{shift_id}", headers=bearer).json
        assert [entry["total_fen"] for entry in report["late_entries"]] == [item.price_fen]
        late = db.session.get(Order, report["late_entries"][0]["order_id"])
        assert late.late_entry and late.client_created_at is not None
        assert db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id)) == before + 1
        assert db.session.scalars(select(SaleConflict).where(SaleConflict.idempotency_key.startswith(key))).all() == []
        taken = db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.scope == f"store:{store_id}",
                                                               IdempotencyKey.key == f"{key}-offline"))
        assert json.loads(taken.response_body)["id"] == late.id  # under a key of its own, not the live sale's
        assert verify_ledger()["ok"] is True


def test_a_lost_sale_the_server_refuses_without_recording_it_is_not_said_to_be_recorded(site, desktop):
    with site.app.app_context():
        shift_id = _ensure_open_shift().id
        store_id = _store().id
        item = _stock()[0]
        conflicts_before = db.session.scalar(select(func.count(SaleConflict.id)))
        sales_before = db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id))
    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.wait_for_url(site.url + "/till")
    page.route("**/counter-sales", lambda route: route.abort("connectionrefused"))
    _sell_by_typing(page, item.sku, card=True)
    expect(page.locator("#last-sale")).to_contain_text("网络中断")
    malformed = {**json.loads(_queue(page, store_id)[0]["payload"]), "payment": {"method": "card", "tendered_fen": 1}}
    page.evaluate("([key, payload]) => { const queue = JSON.parse(localStorage.getItem(key)); "
                  "queue[0].payload = payload; localStorage.setItem(key, JSON.stringify(queue)); }",
                  [f"till:{store_id}:queue", json.dumps(malformed)])  # a sale the server refuses either way (422)

    page.unroute("**/counter-sales")
    page.evaluate("() => window.dispatchEvent(new Event('online'))")
    conflicts = page.locator("#till-conflicts")
    expect(conflicts).to_be_visible(timeout=WAIT_MS)
    expect(conflicts.locator("li")).to_contain_text("服务器未记录此销售，请人工处理并告知店长")
    expect(conflicts.locator("li")).not_to_contain_text("已记录")
    expect(conflicts.get_by_role("button", name="已处理")).to_have_count(0)
    screenshot(page, "till-conflict-unrecorded")
    with site.app.app_context():
        assert db.session.scalar(select(func.count(SaleConflict.id))) == conflicts_before  # indeed none recorded
        assert db.session.scalar(select(func.count(Order.id)).where(Order.shift_id == shift_id)) == sales_before
    conflicts.get_by_role("button", name="已人工处理并告知店长").click()
    expect(conflicts).to_be_hidden()


def test_a_sale_after_the_shift_was_closed_elsewhere_says_to_refresh_for_a_new_shift(site, desktop):
    page, item = _till_on_an_open_shift(site, desktop)
    with site.app.app_context():  # the shift is closed from another till meanwhile
        _close_open_shift()
    _sell_by_typing(page, item.sku, card=True)
    expect(page.locator("#pay-error")).to_have_text("未能收款：班次已交班，请刷新页面开新班次")
    with site.app.app_context():
        _ensure_open_shift()


def test_a_wrong_code_scanned_before_a_sale_is_completed_is_not_left_on_the_next_sale(site, desktop):
    page, item = _till_on_an_open_shift(site, desktop)
    scan = page.get_by_label("扫描追溯码或输入 SKU")
    scan.fill(item.sku)
    scan.press("Enter")
    scan.fill("NO-SUCH-CODE")
    scan.press("Enter")
    expect(page.locator("#scan-error")).to_have_text("未找到商品：NO-SUCH-CODE（本店无货或编码有误）")
    page.get_by_label("刷卡", exact=True).check()
    page.get_by_role("button", name="完成收款").click()
    expect(page.locator("#last-sale")).to_contain_text("收款成功", timeout=WAIT_MS)
    expect(page.locator("#scan-error")).to_have_text("")


def test_a_clerk_receives_a_transfer_by_its_lots_codes_on_a_phone_and_a_pc(site, browser, desktop):
    with site.app.app_context():
        warehouse = inventory.find_location("FS-WH")
        sku = next(row.lot.product.sku for row in inventory.location_stock(
            location_id=warehouse.id, limit=100, cursor=None)["items"] if row.on_hand - row.reserved >= 3)
        transfer = stores.create_transfer(actor=find_user(username="admin"), from_location="FS-WH",
                                          to_location=STORE_LOCATION, lines=[{"sku": sku, "quantity": 3}])
        db.session.commit()
        transfer_id, lines = transfer.id, [(line.lot_id, line.lot.lot_code, line.lot.trace_code, line.sent)
                                           for line in transfer.lines]
        name = get_product(sku=sku).name
    narrow = browser.new_context(viewport={"width": 360, "height": 780}, locale="zh-CN", is_mobile=True,
                                 has_touch=True)
    try:
        phone_page = narrow.new_page()
        sign_in(phone_page, site, CLERK, path="/login?next=/till/transfers")
        phone_page.goto(site.url + "/till/transfers")
        card = phone_page.locator(f"#transfer-{transfer_id}")
        for _, lot_code, trace_code, _ in lines:
            expect(card).to_contain_text(lot_code)
            expect(card).to_contain_text(trace_code)
        expect(card).to_contain_text(name)
        assert phone_page.evaluate("document.documentElement.scrollWidth") <= 360
        screenshot(phone_page, "till-transfers")
    finally:
        narrow.close()

    page = desktop.new_page()
    sign_in(page, site, CLERK)
    page.get_by_role("link", name="调拨收货").click()
    card = page.locator(f"#transfer-{transfer_id}")
    for lot_id, lot_code, _, sent in lines:
        card.get_by_label(f"{name} 批次 {lot_code} 实收数量").fill(str(sent - 1 if lot_id == lines[0][0] else sent))
    screenshot(page, "till-transfers")
    card.get_by_role("button", name="确认收货").click()
    expect(page.get_by_role("alert")).to_contain_text("请写明短缺原因")
    card = page.locator(f"#transfer-{transfer_id}")
    expect(card.get_by_label(f"{name} 批次 {lines[0][1]} 实收数量")).to_have_value(str(lines[0][3] - 1))
    card.get_by_label("短缺原因（实收少于发出时必填）").fill("一袋破损")
    card.get_by_role("button", name="确认收货").click()
    expect(page.get_by_text(f"调拨单 {transfer_id} 已收货")).to_be_visible()
    expect(page.locator(f"#transfer-{transfer_id}")).to_have_count(0)
    with site.app.app_context():
        received = stores.get_transfer(actor=find_user(username=CLERK), transfer_id=transfer_id)
        assert (received.status, received.receipt_note) == ("received", "一袋破损")
        assert [line.received for line in received.lines] == [sent - (lot_id == lines[0][0])
                                                               for lot_id, _, _, sent in lines]


def test_a_card_sale_says_it_was_taken_without_any_change_due_as_its_receipt_does(site, desktop):
    page, item = _till_on_an_open_shift(site, desktop)
    _sell_by_typing(page, item.sku, card=True)
    expect(page.locator("#last-sale")).to_contain_text("收款成功", timeout=WAIT_MS)
    expect(page.locator("#last-sale")).not_to_contain_text("找零")
    page.locator("#last-sale").get_by_role("link").click()
    expect(page.locator(".receipt")).to_contain_text("刷卡")
    expect(page.locator(".receipt")).not_to_contain_text("找零")


def test_a_comma_typed_for_the_decimal_point_in_the_cash_tendered_is_no_amount(site, desktop):
    page, item = _till_on_an_open_shift(site, desktop)
    page.get_by_label("扫描追溯码或输入 SKU").fill(item.sku)
    page.get_by_label("扫描追溯码或输入 SKU").press("Enter")
    tendered = page.get_by_label("实收现金（元）")
    tendered.fill("1,000")
    expect(page.locator("#change")).to_have_text(_yuan(100000 - item.price_fen))
    tendered.fill("100,5")  # ¥100.50 mistyped, never ¥1,005
    expect(page.locator("#change")).to_have_text("—")


def test_a_quantity_typed_in_full_width_digits_is_taken_and_one_that_is_no_whole_number_is_refused(site, desktop):
    """A Chinese input method types `３`: the line sells 3. `1e3`, `1.5`, `-1`, `²`, `1 2` or more than the API takes
    are refused in Chinese and the box shows again what the line sells, never a number the browser made of them."""
    page, item = _till_on_an_open_shift(site, desktop)
    page.get_by_label("扫描追溯码或输入 SKU").fill(item.sku)
    page.get_by_label("扫描追溯码或输入 SKU").press("Enter")
    box = page.get_by_label(f"{_name(site, item.sku)} 数量")
    box.fill("")
    page.keyboard.insert_text("３")  # what an input method commits
    box.press("Tab")
    expect(box).to_have_value("3")
    expect(page.locator("#total")).to_have_text(_yuan(3 * item.price_fen))
    for typed in ("1e3", "1.5", "-1", "1000001", "²", "①", " 1 2 "):  # a space inside is no number, as on the API
        box.fill(typed)
        box.press("Tab")
        expect(page.locator("#cart-error")).to_have_text("数量必须是 1 到 1,000,000 之间的整数（0 为删除）。")
        expect(box).to_have_value("3")
        expect(page.locator("#total")).to_have_text(_yuan(3 * item.price_fen))
    screenshot(page, "till-quantity-refused")
    page.set_viewport_size(PHONE)
    screenshot(page, "till-quantity-refused")
    box.fill(" 12\u200b ")
    box.press("Tab")
    expect(box).to_have_value("12")
    expect(page.locator("#cart-error")).to_have_text("")
    page.get_by_role("button", name="清空").click()


def test_a_lots_qr_label_scanned_at_the_till_adds_that_lot_to_the_sale(site, desktop):
    """A lot's QR label carries its trace page's address (`/t/<trace code>` on the public host, however long): the
    scanner types that address, and the till takes the trace code from it, as if the code alone were scanned."""
    page, _ = _till_on_an_open_shift(site, desktop)
    with site.app.app_context():
        item = next(item for item in _stock() if item.available >= 2)  # its lot holds the two units scanned
    scan = page.get_by_label("扫描追溯码或输入 SKU")
    for label in (f"{site.url}/t/{item.trace_code}",
                  f"https://xiaofei-fupin.liangshan-dongxi-xiezuo.example.cn/t/{item.trace_code}"):
        scan.fill(label)
        scan.press("Enter")
        expect(page.locator("#scan-error")).to_have_text("")
    expect(page.locator("#cart-lines")).to_contain_text(f"追溯码 {item.trace_code}")
    expect(page.get_by_label(f"{_name(site, item.sku)} 数量")).to_have_value("2")
    scan.fill(f"{site.url}/products/{item.sku}")  # another page's address is no lot's label
    scan.press("Enter")
    expect(page.locator("#scan-error")).to_contain_text("未找到商品")
    page.get_by_label("刷卡", exact=True).check()
    page.get_by_role("button", name="完成收款").click()
    expect(page.locator("#last-sale")).to_contain_text("收款成功", timeout=WAIT_MS)
    with site.app.app_context():
        order = db.session.scalar(select(Order).where(Order.store_id == _store().id).order_by(Order.id.desc()))
        assert [(line.sku, line.quantity) for line in order.lines] == [(item.sku, 2)]
        assert order.lines[0].scanned_lot_id is not None


def test_a_sku_typed_with_look_alike_dashes_or_invisible_characters_is_found_as_the_api_reads_it(site, desktop):
    """A SKU pasted from a price list an editor autocorrected (`–`, `—`, `−` for `-`), carrying a zero-width space, in
    full-width letters or another script's digits is the SKU the API would read from it (shop.fields
    normalise_identifier), so the till finds it, and sells it under that one spelling."""
    page, item = _till_on_an_open_shift(site, desktop)
    assert "-" in item.sku
    dashes = iter("–—−‐")
    pasted = "".join(next(dashes, "–") if char == "-" else char for char in item.sku.lower())
    pasted = "\u200b" + pasted.replace("1", "١").replace("K", "Ｋ").replace("k", "ｋ") + "\u00ad "
    scan = page.get_by_label("扫描追溯码或输入 SKU")
    scan.fill(pasted)
    scan.press("Enter")
    expect(page.locator("#scan-error")).to_have_text("")
    expect(page.locator("#cart-lines")).to_contain_text(f"SKU {item.sku}")
    scan.fill("ZJ〜KQM")  # a wave dash reads as a tilde: no SKU is read from it
    scan.press("Enter")
    expect(page.locator("#scan-error")).to_contain_text("未找到商品")
    page.get_by_role("button", name="清空").click()


def test_a_till_whose_computer_keeps_another_time_zone_shows_times_in_china_time_as_its_receipts_do(site, browser):
    """A sale sent after the network came back is listed with the time it was made as every till page and receipt
    gives times (Asia/Shanghai, `2026-11-30 15:56`), whatever time zone the till's computer keeps."""
    with site.app.app_context():
        _ensure_open_shift()
        item = _stock()[0]
        store_id = _store().id
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                  timezone_id="America/New_York")
    page = context.new_page()
    sign_in(page, site, CLERK)
    page.wait_for_url(site.url + "/till")
    context.set_offline(True)
    _sell_by_typing(page, item.sku, card=True)
    expect(page.locator("#till-queue")).to_have_text("1 笔待发送")
    context.set_offline(False)
    expect(page.locator("#sent-list a")).to_have_count(1, timeout=WAIT_MS)
    [sent] = page.evaluate("key => JSON.parse(localStorage.getItem(key))", f"till:{store_id}:sent")
    made_at = datetime.fromisoformat(sent["made_at"].replace("Z", "+00:00"))
    expect(page.locator("#sent-list li")).to_have_text(
        f"小票 {sent['order_id']} · {_yuan(item.price_fen)} · 售于 {local_time(made_at)}")
    context.close()


def test_a_cash_amount_that_is_no_yuan_amount_is_told_so_not_that_the_cash_is_too_little(site, desktop):
    """0.001 or 1.2.3 is no amount (fen at most, one decimal point), as the API's money fields read it: the pay box
    says so; an empty box still asks for the cash, and a real amount short of the total says it is too little."""
    page, item = _till_on_an_open_shift(site, desktop)
    page.get_by_label("扫描追溯码或输入 SKU").fill(item.sku)
    page.get_by_label("扫描追溯码或输入 SKU").press("Enter")
    page.get_by_label("现金", exact=True).check()
    total = page.locator("#total").inner_text()
    for typed in ("0.001", "1.2.3", "abc"):
        page.get_by_label("实收现金（元）").fill(typed)
        page.get_by_role("button", name="完成收款").click()
        expect(page.locator("#pay-error")).to_have_text(
            f"实收现金「{typed}」不是有效的金额：请按元输入，最多两位小数，例如 100 或 100.50。")
    page.get_by_label("实收现金（元）").fill("0.01")
    page.get_by_role("button", name="完成收款").click()
    expect(page.locator("#pay-error")).to_have_text(f"实收现金不足：不少于合计 {total}。")
    page.get_by_label("实收现金（元）").fill("")
    page.get_by_role("button", name="完成收款").click()
    expect(page.locator("#pay-error")).to_have_text(f"请输入实收现金，不少于合计 {total}。")
    page.close()
