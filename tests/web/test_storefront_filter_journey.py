"""In a real browser on a 360 px phone: a consumer narrows the storefront to 粮油 between ¥20 and ¥30.50, cheapest
first, reads two pages in order with the filters kept by the "more" link, and a price typed as `abc` is told in
Chinese beside its field."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from catalog.models import Product
from shop.db import db
from tests.catalog.factories import ProductFactory
from tests.suppliers.factories import SupplierFactory
from tests.web.conftest import screenshot, sign_in

CONSUMER = "13800000000"
NARROW_PHONE = {"width": 360, "height": 780}


@pytest.fixture
def narrow_phone(browser):
    """A fresh 360 px wide phone context (its own cookies), zh-CN."""
    context = browser.new_context(viewport=NARROW_PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    yield context
    context.close()


def _grain_between_20_and_30_50(site) -> list[tuple[str, str]]:
    """Add 24 bags of 苦荞挂面 (¥20 to ¥30, prices repeated) to the demo's 粮油; every (name, price) of 粮油 on sale
    from ¥20 to ¥30.50, cheapest first, equal prices in the order they were added."""
    with site.app.app_context():
        supplier = SupplierFactory()
        for n in range(24):
            ProductFactory(supplier=supplier, name=f"苦荞挂面{n:02d}号", category="粮油", price_fen=2000 + n % 6 * 200)
        db.session.commit()
        rows = db.session.execute(select(Product.name, Product.price_fen).where(
            Product.category == "粮油", Product.status == "active", Product.price_fen.between(2000, 3050))
            .order_by(Product.price_fen, Product.id)).all()
        db.session.remove()
    return [(name, f"¥{price // 100}.{price % 100:02d}") for name, price in rows]


def _shown(page) -> list[tuple[str, str]]:
    """The (name, price) of each product the page lists, in order."""
    cards = page.get_by_role("list", name="商品").get_by_role("listitem")
    return [(card.locator(".name").inner_text(), card.locator(".price").inner_text()) for card in cards.all()]


def test_a_consumer_filters_by_category_and_price_sorts_cheapest_first_and_pages_with_the_filters_kept(site,
                                                                                                     narrow_phone):
    expected = _grain_between_20_and_30_50(site)
    assert len(expected) == 25 and ("布拖苦荞粉", "¥29.90") in expected
    page = narrow_phone.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)  # CSP too
    sign_in(page, site, CONSUMER)
    page.wait_for_url(site.url + "/")

    page.get_by_label("分类").select_option(label="粮油")
    page.get_by_label("最低价（元）").fill("20")
    page.get_by_label("最高价（元）").fill("30.5")
    page.get_by_label("排序").select_option(label="价格从低到高")
    page.get_by_role("button", name="筛选").click()
    page.wait_for_url(re.compile(r".*sort=price_asc"))
    assert _shown(page) == expected[:20]
    assert page.get_by_label("分类").input_value() == "粮油"
    assert page.get_by_label("最高价（元）").input_value() == "30.5"
    screenshot(page, "storefront-filter")

    page.get_by_role("link", name="更多商品").click()
    page.wait_for_url(re.compile(r".*cursor="))
    assert {"category=%E7%B2%AE%E6%B2%B9", "min_yuan=20", "max_yuan=30.5", "sort=price_asc"} <= \
        set(page.url.split("?", 1)[1].split("&"))
    assert _shown(page) == expected[20:]
    assert page.get_by_role("link", name="更多商品").count() == 0
    assert page.get_by_label("排序").input_value() == "price_asc"
    screenshot(page, "storefront-filter-more")

    page.get_by_label("最低价（元）").fill("abc")
    page.get_by_role("button", name="筛选").click()
    page.wait_for_url(re.compile(r".*min_yuan=abc"))
    message = page.get_by_text("最低价请填写以元为单位的金额，如 12.5。")
    assert message.is_visible()
    assert page.get_by_label("最低价（元）").get_attribute("aria-invalid") == "true"
    assert _shown(page)[0] == ("昭觉苦荞面条", "¥16.80")  # the other filters still hold: 粮油 up to ¥30.50
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW_PHONE["width"]  # nothing wider
    screenshot(page, "storefront-filter-error")
    assert errors == ["Failed to load resource: the server responded with a status of 422 (UNPROCESSABLE ENTITY)"]
