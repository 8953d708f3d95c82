"""The public disclosure pages (公示): the recipient counties, and a county's published month showing what the JSON
route discloses (villages merged under 3 households, no personal data); errors are pages, never a 500."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from orders import outbox
from orders.ledger.models import DisclosureNotice
from shop.db import db, utcnow
from tests.orders.ledger.test_attribution import make_world, pay_pickup, place_pickup
from tests.orders.ledger.test_reports import correct_one_household_after_publication, published_later
from tests.orders.payments.conftest import deliver, intent_event
from web.filters import yuan


def _text(response) -> str:
    """The page's visible text, tags dropped and blanks folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def test_a_county_page_shows_the_published_month_as_the_json_route_does_and_no_personal_data(client, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    h = world["h"]
    for n in (1, 3, 4, 6):
        h[n].village = "甲村"
    db.session.commit()
    pay_pickup(client, world, 3)
    month = published_later(monkeypatch)

    listing = client.get("/disclosure")
    page = client.get(f"/disclosure/513431?month={month}")
    body = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert listing.status_code == 200 and 'href="/disclosure/513431"' in listing.get_data(as_text=True)
    assert "昭觉县" in _text(listing) and "凉山彝族自治州" in _text(listing)
    assert page.status_code == 200
    text = _text(page)
    [village] = body["villages"]
    assert village["village"] == "甲村" and village["households"] == 4
    assert f"甲村 {village['households']} 户 {yuan(village['attributed_fen'])}" in text
    assert f"全县合计 {body['total']['households']} 户 {yuan(body['total']['attributed_fen'])}" in text
    assert "昭觉县" in text and f"{month[:4]}年{month[5:]}月" in text
    for n in (1, 3, 4, 6):
        assert h[n].head_name not in text and h[n].code not in text and h[n].id_number not in text
    html = page.get_data(as_text=True)
    for rel in ("prev", "next"):  # the months beside it are published (the next one: sold nothing)
        found = re.search(rf'href="([^"]+)" rel="{rel}"', html)
        if found:
            assert client.get(found.group(1).replace("&amp;", "&")).status_code == 200, rel


def test_a_revision_after_publication_shows_beside_the_published_figures(client, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 1)
    payment, _ = place_pickup(client, world, 2)
    month = published_later(monkeypatch)
    published = _text(client.get(f"/disclosure/513431?month={month}"))
    deliver(client, intent_event("payment_intent.succeeded", payment, created=int(utcnow().timestamp()) - 60))

    body = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json
    text = _text(client.get(f"/disclosure/513431?month={month}"))

    assert "发布后的更正" not in published
    revised = body["revision"]["total"]
    assert revised["attributed_fen"] > body["total"]["attributed_fen"]
    assert f"全县合计 {body['total']['households']} 户 {yuan(body['total']['attributed_fen'])}" in text
    assert "发布后的更正" in text and f"全县合计 {revised['households']} 户 {yuan(revised['attributed_fen'])}" in text


def test_a_change_concerning_fewer_than_3_households_shows_no_revised_figures_on_the_page(client, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 3)
    month = published_later(monkeypatch)
    client.get(f"/disclosure/513431?month={month}")
    correct_one_household_after_publication(world, month)

    text = _text(client.get(f"/disclosure/513431?month={month}"))

    assert "变动涉及的农户少于 3 户" in text and "更正后" not in text
    assert text.count("全县合计") == 1


def test_a_county_under_3_households_shows_no_amount_on_its_page(client, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 3)
    month = published_later(monkeypatch)

    text = _text(client.get(f"/disclosure/513432?month={month}"))  # only h2 lives there

    assert "全县合计 少于 3 户，不公示" in text and "¥" not in text
    assert world["h"][2].head_name not in text


def test_a_wrong_county_or_month_is_a_page_that_says_so_and_publishes_nothing(client, monkeypatch):
    make_world(today=outbox.sale_date_of(utcnow()))
    this_month = published_later(monkeypatch, days=0)
    cases = {"/disclosure/999999": (404, "没有这个县的公示"),
             "/disclosure/513400": (404, "没有这个县的公示"),  # a prefecture
             "/disclosure/440604": (404, "没有这个县的公示"),  # a donor district
             "/disclosure/5134310": (404, "没有这个县的公示"),
             "/disclosure/" + "5" * 5000: (404, "页面不存在"),
             "/disclosure/513431?month=2026-13": (422, "月份有误"),
             "/disclosure/513431?month=-1": (422, "月份有误"),
             "/disclosure/513431?month=99999-01": (422, "月份有误"),
             f"/disclosure/513431?month={this_month}": (409, "尚未发布"),
             "/disclosure/513431?month=%00": (422, "月份有误"),
             "/disclosure/513431?month=" + "2" * 5000: (422, "月份有误"),
             "/disclosure/513431?month=0000-01": (422, "月份有误"),
             "/disclosure/513431?month=0001-01": (422, "月份有误"),
             "/disclosure/513431?month=9999-12": (422, "月份有误"),
             "/disclosure/513431?month=2015-12": (404, "没有可公示的内容")}
    for path, (status, words) in cases.items():
        response = client.get(path)
        assert (response.status_code, response.mimetype) == (status, "text/html"), path
        assert words in _text(response), path
    unpaired = client.get("/disclosure/513433")  # 冕宁: no pairing, and the shop's first sale is this month
    assert unpaired.status_code == 200 and "本县尚无已发布的公示" in _text(unpaired)
    assert db.session.scalar(select(func.count()).select_from(DisclosureNotice)) == 0


def test_a_county_code_or_month_typed_in_full_width_digits_reads_as_the_api_reads_it(client, monkeypatch):
    make_world(today=outbox.sale_date_of(utcnow()))
    month = published_later(monkeypatch)
    wide = str.maketrans("0123456789-", "０１２３４５６７８９－")

    page = client.get(f"/disclosure/{'513431'.translate(wide)}?month={month.translate(wide)}")

    assert page.status_code == 200 and "昭觉县" in _text(page)
    assert 'action="/disclosure/513431"' in page.get_data(as_text=True)


def test_county_pages_are_rate_limited_as_the_json_route_is(app, client, monkeypatch):
    make_world(today=outbox.sale_date_of(utcnow()))
    published_later(monkeypatch)
    app.config["DISCLOSURE_RATE_LIMIT"] = "2 per minute"

    answers = [client.get("/disclosure/513431") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[-1].mimetype == "text/html" and "尝试次数过多" in _text(answers[-1])


def test_county_pages_and_the_json_route_share_one_budget_per_address(app, client, monkeypatch):
    make_world(today=outbox.sale_date_of(utcnow()))
    published_later(monkeypatch)
    app.config["DISCLOSURE_RATE_LIMIT"] = "2 per minute"

    answers = [client.get("/disclosure/513431"), client.get("/api/v1/disclosure/counties/513431"),
               client.get("/disclosure/513431"), client.get("/api/v1/disclosure/counties/513431")]

    assert [answer.status_code for answer in answers] == [200, 200, 429, 429]


def test_the_storefront_and_a_lots_trace_page_link_to_the_disclosure(client):
    world = make_world(today=outbox.sale_date_of(utcnow()))

    home = client.get("/").get_data(as_text=True)
    trace = client.get(f"/t/{world['lot1'].trace_code}").get_data(as_text=True)

    assert 'href="/disclosure"' in home
    assert f'href="/disclosure/{world["product"].county_code}"' in trace
