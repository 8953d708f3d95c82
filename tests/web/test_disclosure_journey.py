"""In a real browser: a visitor goes from the storefront's footer to the disclosure (公示) of 昭觉县 for the month
the demo's sales were dated in, and from a lot's trace page to its county's disclosure; no console error (a CSP
violation is one), no sideways scrolling at phone size; screenshots at phone and desktop size."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from catalog.models import Lot, Product
from orders import outbox
from orders.ledger import reports
from shop.db import db, utcnow
from tests.web.conftest import screenshot


def _no_errors(page) -> list[str]:
    """Collect the page's console errors (a CSP violation, a resource answered 404)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors


def test_a_visitor_reads_a_countys_disclosure_from_the_storefront_and_from_a_trace_page(site, phone, desktop,
                                                                                         monkeypatch):
    month = outbox.sale_date_of(utcnow())
    later = utcnow() + timedelta(days=40)  # this month, with the demo's sales, is then published
    monkeypatch.setattr(reports, "utcnow", lambda: later)
    with site.app.app_context():
        trace_code = db.session.scalar(select(Lot.trace_code).join(Product, Product.id == Lot.product_id)
                                       .where(Product.county_code == "513431").order_by(Lot.id))
        db.session.remove()
    heading = re.compile(f"昭觉县 · {month:%Y年%m月}收益公示")
    for context in (phone, desktop):
        page = context.new_page()
        errors = _no_errors(page)
        page.goto(site.url + "/")
        page.get_by_role("link", name="消费帮扶收益公示").click()
        page.wait_for_url(site.url + "/disclosure")
        assert page.get_by_role("heading", name="凉山彝族自治州").is_visible()
        screenshot(page, "disclosure-counties")
        page.get_by_role("link", name="昭觉县").click()
        assert page.get_by_role("heading", name=re.compile("昭觉县 · .*收益公示")).is_visible()
        page.get_by_label("月份", exact=True).fill(f"{month:%Y-%m}")
        page.get_by_role("button", name="查看").click()
        assert page.get_by_role("heading", name=heading).is_visible()
        assert page.get_by_role("row", name=re.compile("全县合计")).is_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "disclosure-county")

        page.goto(f"{site.url}/t/{trace_code}")
        page.get_by_role("link", name="昭觉县消费帮扶收益公示").click()
        page.wait_for_url(f"{site.url}/disclosure/513431")
        assert page.get_by_role("heading", name=re.compile("昭觉县 · .*收益公示")).is_visible()
        assert errors == []
        page.close()


TEXT_LEFT = """selector => {
  const range = document.createRange();
  range.selectNodeContents(document.querySelector(selector));
  return range.getBoundingClientRect().left;
}"""


def test_a_month_without_sales_says_so_from_the_rows_left_edge_on_a_phone(site, phone):
    """The note across the row of a month without sales starts at the table's left edge, as the county total's name
    does; it started after the 7.5rem a column's name takes, as if beside a name left blank."""
    page = phone.new_page()
    page.goto(site.url + "/disclosure/513431?month=2026-01")
    assert page.get_by_role("cell", name="本月没有惠及农户的销售。").is_visible()
    screenshot(page, "disclosure-no-sales")
    note = page.evaluate(TEXT_LEFT, ".disclosure-table tbody td[colspan]")
    total = page.evaluate(TEXT_LEFT, ".disclosure-table tfoot th")
    assert abs(note - total) <= 1
    page.close()
