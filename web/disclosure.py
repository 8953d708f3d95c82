"""The public disclosure pages (公示): the recipient counties, and a county's published month as the JSON route
gives it (per village, small villages merged, no personal data), a month at a time."""
from __future__ import annotations

from datetime import date, timedelta

from flask import render_template, request, url_for
from marshmallow import EXCLUDE, ValidationError

from orders.counter.service import OFFLINE_MAX_AGE
from orders.ledger import reports
from orders.ledger.errors import LedgerCode
from orders.ledger.reports_api import DisclosureQuery, disclosure_limit
from shop.blueprint import query_args
from shop.db import commit
from shop.errors import Conflict, NotFound
from shop.fields import EARLIEST_DATE, LATEST_DATE
from shop.regions.service import is_recipient_county, recipient_counties
from web.pages import error_page, page_blueprint

bp = page_blueprint("disclosure", __name__)


def _month_url(code: str, month: date) -> str:
    """The county's page of `month`."""
    return url_for(".county", code=code, month=f"{month:%Y-%m}")


def _other_month(month: date, step: int) -> date:
    """The first day of the month before (`step` -1) or after (+1) `month`."""
    return (month - timedelta(days=1) if step < 0 else month + timedelta(days=32)).replace(day=1)


@bp.get("/disclosure")
def counties():
    """The recipient counties, by prefecture, each linking to its disclosure."""
    by_prefecture: dict[str, list] = {}
    for county, prefecture in recipient_counties():
        by_prefecture.setdefault(prefecture, []).append(county)
    return render_template("web/disclosure_counties.html", by_prefecture=by_prefecture,
                           delay_days=OFFLINE_MAX_AGE.days)


@bp.get("/disclosure/<code>")
@disclosure_limit
def county(code: str):
    """A county's published month (`?month=YYYY-MM`, by default the latest), with links to the months beside it."""
    if not is_recipient_county(code):
        return error_page(404, "没有这个县的公示：请从公示页的县名单进入。", link=(url_for(".counties"), "全部县"))
    try:
        month = DisclosureQuery().load(query_args(request.args), unknown=EXCLUDE).get("month")
    except ValidationError:
        return error_page(422, f"月份有误：请写成 2026-10 这样的年-月（{EARLIEST_DATE.year}—{LATEST_DATE.year} 年）。",
                          link=(url_for(".county", code=code), "看最近一期"))
    first, latest = reports.disclosure_months(code=code)
    page = {"code": code, "first": first, "latest": latest, "delay_days": OFFLINE_MAX_AGE.days}
    try:
        disclosure = reports.county_disclosure(code=code, month=month)
    except Conflict as exc:
        if exc.code != LedgerCode.DISCLOSURE_NOT_PUBLISHED:
            raise
        return error_page(409, f"{month:%Y年%m月}的公示尚未发布：每月结束 {OFFLINE_MAX_AGE.days} 天后发布，"
                               f"最近一期是{latest:%Y年%m月}。", link=(_month_url(code, latest), "看最近一期"))
    except NotFound as exc:
        if exc.code != LedgerCode.DISCLOSURE_BEFORE_FIRST_MONTH:
            raise
        if month is None:
            return render_template("web/disclosure_county.html", d=None, **page)
        return error_page(404, f"{month:%Y年%m月}在本县首次结对和商城首笔销售之前，没有可公示的内容。",
                          link=(url_for(".county", code=code), "看最近一期"))
    commit()  # a month's first reading publishes it, as through the JSON route
    shown = date.fromisoformat(f"{disclosure['month']}-01")
    earlier = _other_month(shown, -1)
    later = _other_month(shown, 1)
    return render_template("web/disclosure_county.html", d=disclosure, **page,
                           earlier=_month_url(code, earlier) if first and earlier >= first else None,
                           later=_month_url(code, later) if later <= latest else None)
