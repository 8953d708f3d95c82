"""In a real browser: an amount or a count never breaks across two lines ("¥39.8" above "0"), at the till's sizes
and on a phone, and the till's cart fits a phone without scrolling the page sideways."""
from __future__ import annotations

import json
from datetime import date

from sqlalchemy import select

from catalog import inventory
from catalog.models import Location, Product
from catalog.service import create_product
from orders.checkout import service as checkout
from orders.counter import service as counter
from orders.payments import service as payments
from orders.stores import service as stores
from shop.auth.service import find_user
from shop.db import db
from shop.fields import MAX_PRICE_FEN
from suppliers.models import Supplier
from tests.suppliers.factories import HouseholdFactory
from tests.web.conftest import screenshot, sign_in
from web.filters import yuan
from web.till import service as till

TILL_SIZES = ({"width": 1024, "height": 768}, {"width": 1280, "height": 800}, {"width": 390, "height": 844})
BROKEN_NUMBERS = """selector => [...document.querySelectorAll(selector)].filter(node => {
  const range = document.createRange();
  range.selectNodeContents(node);
  return new Set([...range.getClientRects()].map(rect => Math.round(rect.bottom))).size > 1;
}).map(node => node.textContent.trim())"""
SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _open_shift_and_fill_the_cart(page, site) -> int:
    """Sign the 顺德 clerk in, open a shift if none is open, scan every product the store holds; their count."""
    sign_in(page, site, "staff-shunde")
    page.wait_for_url(site.url + "/till")
    if page.get_by_label("备用金（元）").count():
        page.get_by_label("备用金（元）").fill("500")
        page.get_by_role("button", name="开班").click()
    products = json.loads(page.locator("#till-data").inner_text())["products"]
    scan = page.get_by_label("扫描追溯码或输入 SKU")
    for product in products:
        for _ in range(product["available"]):
            scan.fill(product["sku"])
            scan.press("Enter")
    return len(products)


def test_the_tills_amounts_stay_on_one_line_and_its_cart_fits_a_phone(site, browser):
    for size in TILL_SIZES:
        context = browser.new_context(viewport=size, locale="zh-CN", has_touch=size["width"] < 600)
        page = context.new_page()
        products = _open_shift_and_fill_the_cart(page, site)
        assert page.locator("#cart-lines tr").count() == products > 5
        screenshot(page, "till-cart")
        assert page.evaluate(BROKEN_NUMBERS, "#cart-lines td.num, #total") == [], size
        assert page.evaluate(SIDEWAYS) == 0, size
        assert page.locator("#cart-lines tr").last.locator("button.remove").is_visible()
        context.close()


def _checkout_of(page, site, quantity: str) -> None:
    """Sign in as the demo buyer, put `quantity` of LB-QC-5KG in the cart and open the checkout."""
    sign_in(page, site, "13800000000")
    page.wait_for_url(site.url + "/")
    page.goto(site.url + "/p/LB-QC-5KG")
    page.get_by_label("数量").fill(quantity)
    page.get_by_role("button", name="加入购物车").click()
    page.wait_for_url(site.url + "/cart")
    page.goto(site.url + "/checkout")


def test_a_large_checkout_total_stays_on_one_line_on_a_phone(site, phone):
    page = phone.new_page()
    _checkout_of(page, site, "12658")  # the most units of ¥79 that one payment carries (¥999,999.99)
    assert page.get_by_text("¥999,982.00").first.is_visible()
    screenshot(page, "checkout-large")
    assert page.evaluate(BROKEN_NUMBERS, ".num, .price") == []
    assert page.evaluate(SIDEWAYS) == 0


NARROW = {"width": 360, "height": 740}
CLIPPED_TABLES = """() => [...document.querySelectorAll(".table-wrap")]
  .filter(wrap => wrap.scrollWidth - wrap.clientWidth > 1).map(wrap => wrap.querySelector("table").className)"""


def test_the_refund_cash_up_and_lots_pages_fit_a_360_px_phone_without_scrolling_sideways(site, browser):
    with site.app.app_context():
        clerk = find_user(username="staff-shunde")
        store = till.store_of(clerk)
        shift = till.current_shift(store) or stores.start_shift(actor=clerk, store_id=store.id, float_fen=50000)
        free = next(row for row in inventory.location_stock(location_id=store.location_id, limit=100,
                                                             cursor=None)["items"] if row.on_hand > row.reserved)
        sale = counter.sell(actor=clerk, store_id=clerk.store_id, shift_id=shift.id,
                            lines=[{"sku": free.lot.product.sku, "quantity": 1}], payment={"method": "card"})
        db.session.commit()
        order_id, shift_id = sale.id, shift.id
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, site, "staff-shunde")
    page.wait_for_url(site.url + "/till")
    for path, name in ((f"/till/orders/{order_id}/refund", "till-refund"), (f"/till/shifts/{shift_id}", "till-shift")):
        page.goto(site.url + path)
        screenshot(page, name)
        assert page.evaluate(SIDEWAYS) == 0 and page.evaluate(CLIPPED_TABLES) == [], path
    context.clear_cookies()
    sign_in(page, site, "coop-zhaojue", path="/login?next=/coop/lots")
    page.wait_for_url(site.url + "/coop/lots")
    screenshot(page, "coop-lots")
    assert page.evaluate(SIDEWAYS) == 0 and page.evaluate(CLIPPED_TABLES) == [], "/coop/lots"
    context.close()


NARROW_CELLS = """selector => [...document.querySelectorAll(selector)]
  .filter(cell => cell.getBoundingClientRect().width < 96).map(cell => cell.textContent.trim())"""


def test_a_short_line_of_a_million_units_keeps_its_product_column_readable_on_a_360_px_phone(site, browser):
    """The most units one payment carries (12,658 of ¥79), its amount and the out-of-stock note leave the product's
    name at least 6 characters wide (it was squeezed to one character a line), and nothing scrolls sideways."""
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    _checkout_of(page, site, "12658")
    page.get_by_label("取货门店").select_option(index=1)
    page.get_by_role("button", name="提交订单并支付").click()
    assert page.locator("tr.short").count() == 1 and page.get_by_text("库存不足").first.is_visible()
    screenshot(page, "checkout-short")
    assert page.evaluate(NARROW_CELLS, ".checkout tbody td:first-child") == []
    assert page.evaluate(BROKEN_NUMBERS, ".checkout .num, .checkout .price") == []
    assert page.evaluate(SIDEWAYS) == 0 and page.evaluate(CLIPPED_TABLES) == []
    context.close()


def test_the_account_page_of_a_consumer_has_the_storefront_links_on_a_360_px_phone(site, browser):
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, site, "13800000000")
    page.wait_for_url(site.url + "/")
    page.goto(site.url + "/p/LB-QC-GIFT")
    page.get_by_role("button", name="加入购物车").click()
    page.wait_for_url(site.url + "/cart")
    page.goto(site.url + "/account")
    screenshot(page, "account")
    header = page.locator("header.site")
    assert header.get_by_role("link", name="购物车").is_visible()
    count = header.locator(".cart-count")
    assert count.inner_text() == "1" and count.evaluate("badge => getComputedStyle(badge).color") == "rgb(29, 29, 31)"
    assert header.get_by_role("link", name="我的订单").is_visible()
    assert page.evaluate(SIDEWAYS) == 0
    context.close()


def test_a_household_without_a_bank_account_fits_a_360_px_phone_and_so_does_its_period_error(site, browser):
    """The facts of a household without an account ("未登记（收益留在账上，不能转账）") wrap within the screen, on its
    page and on the page shown again with a wrong period."""
    with site.app.app_context():
        supplier_id = find_user(username="coop-zhaojue").supplier_id
        household_id = HouseholdFactory(supplier=db.session.get(Supplier, supplier_id), bank_account=None).id
        db.session.commit()
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, site, "coop-zhaojue", path=f"/login?next=/coop/households/{household_id}")
    page.wait_for_url(site.url + f"/coop/households/{household_id}")
    for path, name in ((f"/coop/households/{household_id}", "coop-household-no-account"),
                       (f"/coop/households/{household_id}/statement?from=2026-02-30", "coop-household-period-error")):
        page.goto(site.url + path)
        assert page.get_by_text("未登记（收益留在账上，不能转账）").is_visible(), path
        screenshot(page, name)
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"], path
    context.close()


def test_the_public_trace_pages_fit_a_360_px_phone_with_the_longest_codes_and_names(site, browser):
    """A lot code, village and product name as long as they may be, and a trace code of 64 characters that is no
    lot's, wrap inside the page instead of widening it."""
    with site.app.app_context():
        product = db.session.scalar(select(Product).order_by(Product.id))
        product.name = "大凉山高山生态" * 8
        lot = inventory.add_lot(product=product, location=db.session.scalar(select(Location).order_by(Location.id)),
                                lot_code="TBK-LONG-" + "X" * 50, harvested_on=date(2026, 9, 1), packed_on=None,
                                village="W" * 64, quantity=1)
        db.session.commit()
        trace_code = lot.trace_code
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    for path, name in ((f"/t/{trace_code}", "trace-long"), ("/t/" + "A" * 64, "trace-not-found-long")):
        page.goto(site.url + path)
        screenshot(page, name)
        assert page.evaluate(SIDEWAYS) == 0, path
    context.close()


OVERFLOWING_CELLS = """() => [...document.querySelectorAll("th, td")]
  .filter(cell => cell.scrollWidth - cell.clientWidth > 1).map(cell => cell.textContent.trim())"""


def _product_free_at(location_id: int) -> Product:
    """A product with a unit neither sold nor reserved at the location."""
    return next(row.lot.product for row in inventory.location_stock(location_id=location_id, limit=100, cursor=None)[
        "items"] if row.on_hand > row.reserved)


def test_a_long_unbroken_product_name_wraps_in_the_tills_refund_and_transfer_rows_on_a_phone(site, browser):
    """A product name with a long unbroken Latin run wraps inside its row's header cell on the refund and transfer
    pages, as in every other cell, instead of running past the card's edge, cut off."""
    with site.app.app_context():
        clerk, admin = find_user(username="staff-shunde"), find_user(username="admin")
        store = till.store_of(clerk)
        shift = till.current_shift(store) or stores.start_shift(actor=clerk, store_id=store.id, float_fen=50000)
        sold = _product_free_at(store.location_id)
        sent = _product_free_at(inventory.find_location("FS-WH").id)
        for product in (sold, sent):
            product.name = "DALIANGSHANORGANIC" * 3 + "高山苦荞"
        order_id = counter.sell(actor=clerk, store_id=store.id, shift_id=shift.id,
                                lines=[{"sku": sold.sku, "quantity": 1}], payment={"method": "card"}).id
        stores.create_transfer(actor=admin, from_location="FS-WH",
                               to_location=db.session.get(Location, store.location_id).code,
                               lines=[{"sku": sent.sku, "quantity": 1}])
        db.session.commit()
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, site, "staff-shunde")
    page.wait_for_url(site.url + "/till")
    for path, name in ((f"/till/orders/{order_id}/refund", "till-refund-long-name"),
                       ("/till/transfers", "till-transfers-long-name")):
        page.goto(site.url + path)
        assert page.get_by_text("高山苦荞").first.is_visible(), path
        screenshot(page, name)
        assert page.evaluate(OVERFLOWING_CELLS) == [] and page.evaluate(SIDEWAYS) == 0, path
    context.close()


BROKEN_TIMES = """() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const broken = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.data.matchAll(/\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      if (new Set([...range.getClientRects()].map(rect => Math.round(rect.bottom))).size > 1) broken.push(match[0]);
    }
  }
  return broken;
}"""


def test_a_time_never_breaks_across_two_lines_on_a_360_px_phone(site, browser):
    """"2026-" above "11-29 19:24" reads as two things: every time shown, after a channel and a store's name or in a
    sentence, stays whole."""
    with site.app.app_context():
        clerk = find_user(username="staff-shunde")
        store = till.store_of(clerk)
        shift = till.current_shift(store) or stores.start_shift(actor=clerk, store_id=store.id, float_fen=50000)
        db.session.commit()
        shift_id = shift.id
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    pages = {"13800000000": ["/orders", "/orders/1", "/orders/2", "/orders/3"],
             "staff-shunde": [f"/till/shifts/{shift_id}", "/till/shifts", "/till/pickups"],
             "coop-zhaojue": ["/coop", "/coop/uploads/1"]}
    for username, paths in pages.items():
        context.clear_cookies()
        sign_in(page, site, username)
        page.wait_for_load_state()
        for path in paths:
            page.goto(site.url + path)
            assert page.evaluate(BROKEN_TIMES) == [], path
    context.close()


def test_the_tills_waiting_pickups_fit_a_360_px_phone_with_their_amounts_in_view(site, browser):
    """Each order waiting for pickup shows its number, time, products and amount within the screen; the amount was
    cut off at the card's edge, to be found only by scrolling the table sideways."""
    with site.app.app_context():
        consumer, store = find_user(username="13800000000"), till.store_of(find_user(username="staff-shunde"))
        product = _product_free_at(store.location_id)
        placed = checkout.place_order(actor=consumer, channel="pickup", store_id=store.id,
                                      lines=[{"sku": product.sku, "quantity": 1}])
        db.session.commit()
        payment = checkout.start_payment(order=placed.order)
        db.session.commit()
        payments.sandbox_confirm(actor=consumer, intent_id=payment.intent_id, outcome="succeeded")
        db.session.commit()
        order_id, amount = placed.id, yuan(placed.order.total_fen)
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, site, "staff-shunde")
    page.wait_for_url(site.url + "/till")
    page.goto(site.url + "/till/pickups")
    row = page.locator(f"tr[data-order='{order_id}']")
    screenshot(page, "till-pickups-waiting")
    assert row.get_by_text(amount).is_visible()
    assert row.get_by_text(amount).evaluate("cell => cell.getBoundingClientRect().right") <= NARROW["width"]
    assert page.evaluate(SIDEWAYS) == 0 and page.evaluate(CLIPPED_TABLES) == []
    context.close()


def test_a_product_at_the_highest_price_fits_the_tills_cart_on_a_360_px_phone(site, browser):
    """A unit at the highest price (¥1,000,000.00) with its line's amount stays within a 360 px phone: the line's
    price and amount go on two lines when they do not fit on one, instead of widening the page past the screen."""
    with site.app.app_context():
        clerk, admin = find_user(username="staff-shunde"), find_user(username="admin")
        store = till.store_of(clerk)
        till.current_shift(store) or stores.start_shift(actor=clerk, store_id=store.id, float_fen=50000)
        product = create_product(actor=admin, sku="TOP-PRICE-1", name="大凉山高山苦荞礼盒", category="粮油", unit="box",
                                 net_weight_g=1000, price_fen=MAX_PRICE_FEN, county_code="513431", status="active",
                                 supplier_id=find_user(username="coop-zhaojue").supplier_id)
        inventory.add_lot(product=product, location=db.session.get(Location, store.location_id),
                          lot_code="TOP-PRICE-1-L1", harvested_on=date(2026, 9, 1), packed_on=None, village="火普村",
                          quantity=2)
        db.session.commit()
    context = browser.new_context(viewport=NARROW, locale="zh-CN", is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, site, "staff-shunde")
    page.wait_for_url(site.url + "/till")
    page.get_by_label("扫描追溯码或输入 SKU").fill("TOP-PRICE-1")
    page.get_by_label("扫描追溯码或输入 SKU").press("Enter")
    assert page.locator("#cart-lines tr").get_by_text("¥1,000,000.00").first.is_visible()
    screenshot(page, "till-cart-top-price")
    assert page.evaluate(BROKEN_NUMBERS, "#cart-lines td.num, #total") == []
    assert page.evaluate(SIDEWAYS) == 0
    context.close()


def test_codes_dates_and_short_words_stay_whole_beside_the_longest_names_in_the_coops_tables_on_a_pc(site, browser):
    """A head of household and a village of 64 characters, or a product name of 100, take the room they need by
    wrapping; they no longer squeeze the household code, the harvest date, the trace code, the status and the
    statement link of every row into columns one or two characters wide ("DEM / O-ZJ- / 001", "2026 / -10- / 01")."""
    with site.app.app_context():
        supplier = db.session.get(Supplier, find_user(username="coop-zhaojue").supplier_id)
        household = HouseholdFactory(supplier=supplier, code="LONG-NAMES-1", head_name="阿" * 64, village="长" * 64)
        product = create_product(actor=find_user(username="admin"), sku="LONG-NAME-LOT", name="凉山高山苦荞礼盒" * 12,
                                 category="粮油", unit="box", net_weight_g=1000, price_fen=3980, county_code="513431",
                                 status="active", supplier_id=supplier.id)
        inventory.add_lot(product=product, location=inventory.find_location("FS-WH"), lot_code="LONG-NAME-LOT-1",
                          harvested_on=date(2026, 9, 1), packed_on=None, village="长" * 64, quantity=1)
        db.session.commit()
        code = household.code
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    sign_in(page, site, "coop-zhaojue", path=f"/login?next=/coop/households?code={code}")
    page.wait_for_url(f"**/coop/households?code={code}")
    screenshot(page, "coop-households-long-names")
    short_cells = "td[data-label='农户编号'], td[data-label='状态'], td[data-label='对账单']"
    assert page.evaluate(BROKEN_NUMBERS, short_cells) == []
    page.goto(site.url + "/coop/lots")
    assert page.get_by_text("LONG-NAME-LOT-1").is_visible()
    screenshot(page, "coop-lots-long-names")
    assert page.evaluate(BROKEN_NUMBERS, "td[data-label='采收日期'], td[data-label='溯源页']") == []
    context.close()
