"""The pairing report and the public county disclosure (DESIGN.md, "Money and attribution rules").

Both group by SALE date (Asia/Shanghai, `from` inclusive, `to` exclusive): a line counts in the period of its
`line_paid` transaction's sale date, and its later refunds are netted into that period (units and sales are the
line's units still sold; the household postings of all its transactions are summed). `attributed_fen` is the
sum of household postings (premium and dividend); households reached are the distinct households whose net
attribution is not zero. Public outputs never show a figure concerning fewer than 3 households.
"""
from __future__ import annotations

import csv
import io
import unicodedata
from datetime import MAXYEAR, date, datetime, timedelta
from xml.sax.saxutils import escape

from flask import current_app
from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import and_, case, exists, false, func, literal, or_, select, true, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from orders.counter.service import OFFLINE_MAX_AGE
from orders.ledger import rollups
from orders.ledger.errors import LedgerCode
from orders.ledger.models import DisclosureNotice, LedgerTransaction, Posting
from orders.ledger.rollups import PairingRollupHousehold, PairingRollupMonth, PairingRollupSales
from orders.models import Order, OrderLine, Refund, RefundLine
from orders.outbox import sale_date_of
from shop.clock import SHANGHAI
from shop.db import among, db, lock_row, utcnow
from shop.errors import Conflict, NotFound, ShopCode
from shop.exports import append_row, csv_cell
from shop.public import MIN_HOUSEHOLDS, households_reached, withheld
from shop.regions.models import Pairing, Region
from shop.regions.service import get_region, is_recipient_county
from suppliers.models import Household

HOUSEHOLD_COMPONENTS = ("premium", "dividend")
OTHER_VILLAGES = "其他村"
LAST_MONTH = date(MAXYEAR, 12, 1)
CSV_COLUMNS = ("donor_code", "donor_name", "county_code", "county_name", "paired", "orders", "units", "sales_fen",
               "households_reached", "attributed_fen")


def sold_lines(*on_sale_date):
    """CTE: each attributed line sold on the sale dates matching `on_sale_date` — its sale date, order, donor,
    county, units still sold (net of the refunds that gave the money back: a refund still pending at the provider
    holds its units off the line, and gives them back if it fails, with no ledger transaction to recompute the day
    by), their value, and whether a pairing of its donor and county was valid that day (materialised on PostgreSQL,
    so that pairing check runs once a line, not once a posting)."""
    sale_date = LedgerTransaction.sale_date
    paired = exists().where(
        Pairing.donor_code == Order.donor_code, Pairing.recipient_code == OrderLine.county_code,
        Pairing.valid_from <= sale_date, or_(Pairing.valid_until.is_(None), Pairing.valid_until >= sale_date))
    refunded = (select(func.coalesce(func.sum(RefundLine.quantity), 0))
                .join(Refund, Refund.id == RefundLine.refund_id)
                .where(RefundLine.order_line_id == OrderLine.id, Refund.status == "succeeded").scalar_subquery())
    units = OrderLine.quantity - refunded
    return (select(OrderLine.id.label("line_id"), sale_date.label("sale_date"), Order.id.label("order_id"),
                   Order.donor_code.label("donor"), OrderLine.county_code.label("county"), units.label("units"),
                   (units * OrderLine.unit_price_fen).label("sales_fen"),
                   case((paired, true()), else_=false()).label("paired"))
            .join(Order, Order.id == OrderLine.order_id)
            .join(LedgerTransaction, and_(LedgerTransaction.order_line_id == OrderLine.id,
                                          LedgerTransaction.kind == "line_paid"))
            .where(*on_sale_date).cte("sold").prefix_with("MATERIALIZED", dialect="postgresql"))


def _in_period(column, from_date: date | None, to_date: date | None) -> list:
    """Conditions: `column` within [from_date, to_date), either end open when None."""
    return ([] if from_date is None else [column >= from_date]) + ([] if to_date is None else [column < to_date])


def household_totals(lines, *keys):
    """Subquery: per `keys` of the sold lines and household, the net household postings of those lines (premium and
    dividend postings name their household; an index holds exactly these, by line)."""
    return (select(*keys, Posting.household_id.label("household_id"), func.sum(Posting.amount_fen).label("net"))
            .select_from(lines).join(Posting, Posting.order_line_id == lines.c.line_id)
            .where(Posting.household_id.is_not(None), Posting.component.in_(HOUSEHOLD_COMPONENTS))
            .group_by(*keys, Posting.household_id)).subquery("per_household")


def pairing_report(*, from_date: date | None = None, to_date: date | None = None) -> dict:
    """Per (donor district, recipient county, paired): orders, units, sales, households reached and the amount
    attributed to households, for the lines sold in the period (net of refunds), read from the rollups; with when
    it was computed and the time the rollups are fresh as of. In the embedded default (tasks run eagerly, no
    worker) stale rollups are refreshed first, in this request's transaction."""
    state = rollups.read_state()
    if current_app.config["CELERY"].get("task_always_eager") and rollups.is_stale(state):
        rollups.refresh_rollups()
        state = rollups.read_state()
    computed_at = utcnow()
    sales_rows = PairingRollupSales
    sales_keys = (sales_rows.donor_code, sales_rows.county_code, sales_rows.paired)
    sales = (select(*sales_keys, func.sum(sales_rows.orders).label("orders"), func.sum(sales_rows.units).label("units"),
                    func.sum(sales_rows.sales_fen).label("sales_fen"))
             .where(*_in_period(sales_rows.sale_date, from_date, to_date)).group_by(*sales_keys).subquery("sales"))
    nets = _household_nets(from_date, to_date)
    keys = (nets.c.donor_code, nets.c.county_code, nets.c.paired)
    per_household = (select(*keys, func.sum(nets.c.net_fen).label("net"))
                     .group_by(*keys, nets.c.household_id).subquery("per_household"))
    reached = (select(per_household.c.donor_code, per_household.c.county_code, per_household.c.paired,
                      func.count(case((per_household.c.net != 0, literal(1)))).label("households"),
                      func.sum(per_household.c.net).label("attributed"))
               .group_by(per_household.c.donor_code, per_household.c.county_code, per_household.c.paired)
               .subquery("reached"))
    found = db.session.execute(
        select(sales.c.donor_code, sales.c.county_code, sales.c.paired, sales.c.orders, sales.c.units,
               sales.c.sales_fen, reached.c.households, reached.c.attributed)
        .outerjoin(reached, and_(reached.c.donor_code == sales.c.donor_code,
                                 reached.c.county_code == sales.c.county_code,
                                 reached.c.paired == sales.c.paired))).all()
    names = _region_names({code for row in found for code in row[:2]})
    rows = []
    for donor, county, paired, orders, units, sales_fen, households, attributed in sorted(
            found, key=lambda row: (row[0], row[1], not row[2])):
        if not (units or attributed):
            continue  # fully refunded: counts nowhere
        rows.append({"donor_code": donor, "donor_name": names.get(donor, ""), "county_code": county,
                     "county_name": names.get(county, ""), "paired": bool(paired), "orders": int(orders or 0),
                     "units": int(units or 0), "sales_fen": int(sales_fen or 0),
                     "households_reached": int(households or 0), "attributed_fen": int(attributed or 0)})
    totals = {name: sum(row[name] for row in rows) for name in ("units", "sales_fen", "attributed_fen")}
    return {"from": from_date, "to": to_date, "computed_at": computed_at,
            "fresh_as_of": state.fresh_as_of if state else None, "rows": rows, "totals": totals}


def _household_nets(from_date: date | None, to_date: date | None):
    """Subquery: the household rollup rows covering the period — the months wholly inside it, and the days of
    its partial months."""
    days, months = PairingRollupHousehold, PairingRollupMonth
    if from_date is not None and from_date > LAST_MONTH:  # no whole month starts after it
        return select(*_net_columns(days)).where(*_in_period(days.sale_date, from_date, to_date)).subquery("nets")
    first_month = None if from_date is None else (
        from_date if from_date.day == 1 else rollups.next_month(from_date.replace(day=1)))
    end_month = None if to_date is None else to_date.replace(day=1)
    if first_month is not None and end_month is not None and first_month >= end_month:
        return select(*_net_columns(days)).where(*_in_period(days.sale_date, from_date, to_date)).subquery("nets")
    edges = []
    if first_month is not None:
        edges.append(and_(*_in_period(days.sale_date, from_date, first_month)))
    if end_month is not None:
        edges.append(and_(*_in_period(days.sale_date, end_month, to_date)))
    whole = select(*_net_columns(months)).where(*_in_period(months.month, first_month, end_month))
    if not edges:
        return whole.subquery("nets")
    return union_all(whole, select(*_net_columns(days)).where(or_(*edges))).subquery("nets")


def _net_columns(model) -> tuple:
    """A household rollup's (donor, county, paired, household, net) columns."""
    return model.donor_code, model.county_code, model.paired, model.household_id, model.net_fen


def _region_names(codes: set[str]) -> dict[str, str]:
    """Region code → name for `codes`."""
    if not codes:
        return {}
    return dict(db.session.execute(select(Region.code, Region.name).where(Region.code.in_(codes))).all())


def pairing_report_csv(report: dict) -> str:
    """The report as CSV (UTF-8 with a BOM, so spreadsheet programs read the Chinese names); after the rows, an
    empty line, the totals row and the note rows of when it was computed and how fresh its figures are."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in report["rows"]:
        writer.writerow([str(row[name]).lower() if name == "paired" else csv_cell(row[name]) for name in CSV_COLUMNS])
    writer.writerow([])
    writer.writerow([csv_cell(value) for value in _totals_row(report)])
    writer.writerows(_freshness(report))
    return buffer.getvalue()


def _totals_row(report: dict) -> list:
    """The report's totals under their columns (units, sales, attributed), labelled `total` / 合计; the other
    columns empty (households reached do not add up: one household may be reached in several rows)."""
    labels = {"donor_code": "total", "donor_name": "合计", **report["totals"]}
    return [labels.get(name, "") for name in CSV_COLUMNS]


def _freshness(report: dict) -> list[tuple[str, str]]:
    """The note rows: the period (`from` inclusive, `to` exclusive, empty when open), when the report was computed
    and the time its figures are fresh as of (empty if never)."""
    fresh_as_of = report["fresh_as_of"]
    return [("from", report["from"].isoformat() if report["from"] else ""),
            ("to", report["to"].isoformat() if report["to"] else ""),
            ("computed_at", report["computed_at"].isoformat()),
            ("fresh_as_of", fresh_as_of.isoformat() if fresh_as_of else "")]


def pairing_report_xlsx(report: dict) -> bytes:
    """The report as an XLSX workbook: one sheet of rows (amounts in fen), the totals row, when it was computed and
    how fresh."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "pairings"
    sheet.append(CSV_COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in report["rows"]:
        append_row(sheet, (row[name] for name in CSV_COLUMNS))
    sheet.append([])
    append_row(sheet, (value if value != "" else None for value in _totals_row(report)))
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for note in _freshness(report):
        sheet.append(note)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def pairing_report_svg(report: dict) -> str:
    """The report as an SVG bar chart: per row, sales and the amount attributed to households (yuan), and their
    totals; under the title, when it was computed and the time its figures are fresh as of."""
    rows, bar, label_width, chart_width = report["rows"], 18, 260, 520
    largest = max((row["sales_fen"] for row in rows), default=0) or 1
    height = 76 + len(rows) * (2 * bar + 14)
    notes = dict(_freshness(report))
    computed_at, fresh_as_of = _beijing_time(report["computed_at"]), _beijing_time(report["fresh_as_of"])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + chart_width + 120}" '
             f'height="{height}" font-family="sans-serif" font-size="12">',
             '<text x="4" y="16">销售额（灰）与农户所得（绿），单位：元</text>',
             f'<text x="4" y="32">期间 {notes["from"] or "开始"} 至 {notes["to"] or "今"}（不含），计算于 '
             f'{computed_at}，数据截至 {fresh_as_of or "尚未汇总"}</text>']
    y = 48
    for row in rows:
        label = f"{row['donor_name']} → {row['county_name']}{'' if row['paired'] else '（未结对）'}"
        parts.append(f'<text x="4" y="{y + bar}">{escape(label)}</text>')
        for offset, (fen, colour) in enumerate(((row["sales_fen"], "#999"), (row["attributed_fen"], "#2a2"))):
            width = max(fen, 0) * chart_width // largest
            top = y + offset * bar
            parts.append(f'<rect x="{label_width}" y="{top}" width="{width}" height="{bar - 2}" fill="{colour}"/>')
            parts.append(f'<text x="{label_width + width + 4}" y="{top + bar - 5}">{_yuan(fen)}</text>')
        y += 2 * bar + 14
    totals = report["totals"]
    parts.append(f'<text x="4" y="{y + 12}">合计：销售额 {_yuan(totals["sales_fen"])}，农户所得 '
                 f'{_yuan(totals["attributed_fen"])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _beijing_time(moment: datetime | None) -> str:
    """A moment as its readers in China tell the time: Beijing time to the minute ("" for None)."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M（北京时间）") if moment else ""


def _yuan(fen: int) -> str:
    """Fen as yuan with two decimals (integer arithmetic)."""
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


# --- public disclosure -------------------------------------------------------------------------------------

def _village(village: str) -> str:
    """A village as the disclosure groups and shows it: NFKC, so what reads alike (三岔河村１组, 三岔河村1组) is one."""
    return unicodedata.normalize("NFKC", village)


def merge_villages(villages: dict[str, tuple[int, int]]) -> tuple[list[dict], dict | None]:
    """DESIGN.md's merge rule on village → (households reached, attributed_fen): villages under 3 households go
    into "other villages"; while that row has fewer than 3 (and more than 0), the smallest shown village joins
    it, repeatedly. The shown rows (largest first) and the merged row (None if nothing was merged)."""
    shown = {name: figures for name, figures in villages.items() if figures[0] >= MIN_HOUSEHOLDS}
    merged = [name for name in villages if name not in shown]
    while merged and sum(villages[name][0] for name in merged) < MIN_HOUSEHOLDS and shown:
        smallest = min(shown, key=lambda name: (shown[name][0], shown[name][1], name))
        merged.append(smallest)
        del shown[smallest]
    rows = [{"village": name, "households": households, "attributed_fen": fen}
            for name, (households, fen) in sorted(shown.items(), key=lambda item: (-item[1][0], item[0]))]
    if not merged:
        return rows, None
    households = sum(villages[name][0] for name in merged)
    # how many villages were merged is not shown: with the households it would tell the merged villages' sizes
    return rows, {"village": OTHER_VILLAGES, **public_figures(households, sum(villages[name][1] for name in merged))}


def public_figures(households: int, attributed_fen: int) -> dict:
    """A group's households and amount as every public output shows them (0 and 0 for none), or "fewer than 3
    households" with neither (`attributed_fen` null, as the disclosure has always said it)."""
    return {"attributed_fen": None, **households_reached(households, attributed_fen)}


def latest_disclosed_month(now: datetime) -> date:
    """The first day of the last month no sale can still be dated in: ended (Asia/Shanghai) at least
    OFFLINE_MAX_AGE ago, since a till's offline sale is dated up to that far back."""
    return (sale_date_of(now - OFFLINE_MAX_AGE).replace(day=1) - timedelta(days=1)).replace(day=1)


def _next_month(month: date) -> date:
    """The first day of the month after `month` (a first day)."""
    return (month + timedelta(days=32)).replace(day=1)


def county_disclosure(*, code: str, month: date | None = None) -> dict:
    """The public (公示) figures of a county's households in a month (default: the last one disclosed): per village,
    households reached and the amount attributed to them (lines sold in the month, net of refunds), small villages
    merged; no personal data. A month is published once no sale can be dated in it in the normal course, and
    then shown as published (a public notice never changes silently), with when it was computed. A payment event
    delivered late, or a refund, can still change the month: beside the published figures, `revision` gives the
    month as the ledger has it now (or as last revised: `_revision`), by the same rules and with when it was
    computed — if the households whose figures changed since publication (and since each revision shown) are at
    least 3, and so are those in each row that changed (a village's revised figure less its published one tells
    what changed for its households; a household that moved village changes both rows), and every unchanged
    household is in the row it was published in (else the regrouped rows would tell its amount); else only that
    they are fewer than 3; null if none changed.
    Only of a recipient county (`region_not_found` for a prefecture, a province or a donor district: no household
    lives in one as its county, so its figures would read as "none reached"); `disclosure_not_published` for a
    later month; `disclosure_before_first_month` for a month before both the county's first pairing and the
    shop's first sale (no sale can be dated in it: nothing is published, nothing written)."""
    region = get_region(code)
    if not is_recipient_county(region.code):
        raise NotFound(f"No recipient county with code {region.code}.", code=ShopCode.REGION_NOT_FOUND)
    now = utcnow()
    latest = latest_disclosed_month(now)
    month = month or latest
    if month > latest:
        raise Conflict(f"{month:%Y-%m} is published {OFFLINE_MAX_AGE.days} days after it ends; the latest published "
                       f"month is {latest:%Y-%m}.", code=LedgerCode.DISCLOSURE_NOT_PUBLISHED,
                       details={"month": f"{month:%Y-%m}", "latest": f"{latest:%Y-%m}"})
    first = _first_month(region.code)
    if first is None or month < first:
        raise NotFound(f"No sale can be dated in {month:%Y-%m}: it is before the county's first pairing and the "
                       f"shop's first sale, so there is nothing to disclose.",
                       code=LedgerCode.DISCLOSURE_BEFORE_FIRST_MONTH,
                       details={"month": f"{month:%Y-%m}", "first": f"{first:%Y-%m}" if first else None})
    notice = _notice(region.code, month)
    figures = notice.figures
    return {"county": {"code": region.code, "name": region.name}, "month": f"{month:%Y-%m}", "from": month,
            "to": _next_month(month), "computed_at": notice.published_at, "checked_at": now,
            **{name: figures[name] for name in ("villages", "other_villages", "total")},
            "revision": _revision(notice, now)}


def disclosure_months(*, code: str) -> tuple[date | None, date]:
    """The first month a county's disclosure can be read for (None with neither pairing nor sale) and the latest
    month published; nothing is published yet while the first is the later."""
    return _first_month(code), latest_disclosed_month(utcnow())


def _first_month(county_code: str) -> date | None:
    """The first month a sale of the county's households can be dated in: that of the county's first pairing or
    of the shop's first sale, whichever is earlier (None with neither)."""
    starts = [db.session.scalar(select(func.min(Pairing.valid_from)).where(Pairing.recipient_code == county_code)),
              db.session.scalar(select(func.min(LedgerTransaction.sale_date))
                                .where(LedgerTransaction.kind == "line_paid"))]
    starts = [start for start in starts if start is not None]
    return min(starts).replace(day=1) if starts else None


def _notice(county_code: str, month: date) -> DisclosureNotice:
    """The county's published notice of `month`, computed and stored on its first reading, with the ledger's
    chain position read before its figures (so a transaction linked meanwhile shows in a revision, never in
    neither)."""
    published = select(DisclosureNotice).where(DisclosureNotice.county_code == county_code,
                                               DisclosureNotice.month == month)
    notice = db.session.scalar(published)
    if notice is not None:
        return notice
    seq = rollups.ledger_head()  # before the figures: a transaction linked while they are read counts as after it
    reached = _reached(county_code, month)
    notice = DisclosureNotice(county_code=county_code, month=month, published_at=utcnow(),
                              figures={**_figures(reached), "ledger_seq": seq,
                                       "members": {str(hid): village for hid, (village, _fen) in reached.items()}})
    try:
        with db.session.begin_nested():
            db.session.add(notice)
    except IntegrityError:  # published by a concurrent first reading
        return db.session.scalar(published)
    return notice


def _revision(notice: DisclosureNotice, now: datetime) -> dict | None:
    """The month's figures as the ledger has them now, if at least 3 of the county's households' figures changed
    since the notice was published and every row holds none or at least 3 of them (`_changes_hidden`), and likewise
    since each revision shown before (a reader may keep every one: two of them must not differ by what concerns 1 or
    2 households); it is then kept as shown. Else the last revision shown (it is public already), or before any only
    "fewer than 3"; None if none changed. Who changed is read again after the figures, so a change linked while
    they are read counts among the changes."""
    changed = _households_changed(notice)
    if not changed:
        return None
    shown = list(notice.revisions or [])
    last = shown[-1] if shown else None
    if last is not None and not _households_changed(notice, since=last):
        return _shown_revision(last)
    if len(changed) < MIN_HOUSEHOLDS:
        return _shown_revision(last) if last is not None else {"computed_at": now, **withheld()}
    seq = rollups.ledger_head()  # before the figures: a transaction linked while they are read counts as after it
    reached = _reached(notice.county_code, notice.month)
    revised = _figures(reached)
    bases = (notice.figures, *shown)
    villages_now = _villages_now(bases)
    for base, changed_since in zip(bases, _changes_since_each(notice, bases), strict=True):
        if not _changes_hidden(base, changed_since, revised, villages_now):
            return _shown_revision(last) if last is not None else {"computed_at": now, **withheld()}
    revision = {"computed_at": now.isoformat(), **revised, "ledger_seq": seq,
                "members": {str(hid): village for hid, (village, _fen) in reached.items()}}
    locked = lock_row(DisclosureNotice, notice.id)
    if (locked.revisions or []) != shown:  # another reading showed one meanwhile: compare with it first
        return _revision(locked, now)
    locked.revisions = [*shown, revision]
    db.session.flush()
    return _shown_revision(revision)


def _shown_revision(revision: dict) -> dict:
    """A revision kept as shown, as the disclosure shows it (its figures and when they were computed)."""
    return {"computed_at": datetime.fromisoformat(revision["computed_at"]),
            **{name: revision[name] for name in ("villages", "other_villages", "total")}}


def _villages_now(bases) -> dict[int, str]:
    """The village now of every household the figures `bases` keep as members (id → village), in one query."""
    members = {int(hid) for base in bases for hid in base.get("members", {})}
    return {hid: _village(village) for hid, village in db.session.execute(
        select(Household.id, Household.village).where(among(Household.id, members)))} if members else {}


def _changes_hidden(base: dict, changed: dict[int, str], revised: dict, villages_now: dict[int, str]) -> bool:
    """Whether each row of a figure shown before (`base`: the published notice's, or a revision's) and of the
    revision (a village, or the merged row) holds none or at least 3 of the households that changed since it: whose
    amount changed (`changed`: household id → its village now), or who moved to another village (known for figures
    that keep their members), counted in the rows of both villages; and no household that did not change is in
    another row than it was shown in (a village merged into "other villages" afresh, or shown again). Otherwise a
    row's revised figure less the one shown before would tell what changed for 1 or 2 households, or an unchanged
    household's own amount. `villages_now`: the village now of each of `base`'s members (`_villages_now`)."""
    members = {int(hid): village for hid, village in base.get("members", {}).items()}
    touched: dict[int, set[str]] = {hid: {village} for hid, village in changed.items()}
    for hid, village in members.items():
        if hid in changed or villages_now.get(hid, village) != village:
            touched.setdefault(hid, set()).update({village, villages_now.get(hid, village)})
    published = {row["village"] for row in base["villages"]}
    shown_now = {row["village"] for row in revised["villages"]}
    rows: dict[tuple, set[int]] = {}
    for hid, villages in touched.items():
        for village in villages:
            rows.setdefault(("published", village if village in published else None), set()).add(hid)
            rows.setdefault(("revised", village if village in shown_now else None), set()).add(hid)
    regrouped = any((village in published) != (village in shown_now)
                    for hid, village in members.items() if hid not in touched)
    return not regrouped and all(len(households) >= MIN_HOUSEHOLDS for households in rows.values())


def _households_changed(notice: DisclosureNotice, *, since: dict | None = None) -> dict[int, str]:
    """The county's households (id → village now) with a non-zero net of household postings on the month's lines
    posted after the notice, or after the figures `since` (a revision's, or the notice's: linked after their chain
    position; for a notice without one, posted after its publication)."""
    return _changes_since_each(notice, (since if since is not None else notice.figures,))[0]


def _changes_since_each(notice: DisclosureNotice, bases) -> list[dict[int, str]]:
    """For each of the figures `bases` (the notice's, revisions'), the households changed since them as
    `_households_changed` says: one query, a net per household and base."""
    lines = sold_lines(*_in_period(LedgerTransaction.sale_date, notice.month, _next_month(notice.month)))
    posted = aliased(LedgerTransaction)
    afters = [posted.seq > base["ledger_seq"] if base.get("ledger_seq") is not None
              else posted.posted_at > notice.published_at for base in bases]
    nets = [func.sum(case((after, Posting.amount_fen), else_=0)) for after in afters]
    changes = (select(Posting.household_id, Household.village, *nets).select_from(lines)
               .join(Posting, Posting.order_line_id == lines.c.line_id)
               .join(posted, posted.id == Posting.transaction_id)
               .join(Household, Household.id == Posting.household_id)
               .where(Posting.component.in_(HOUSEHOLD_COMPONENTS), Household.county_code == notice.county_code,
                      or_(*afters))
               .group_by(Posting.household_id, Household.village))
    rows = db.session.execute(changes).all()
    return [{row[0]: _village(row[1]) for row in rows if row[2 + i] != 0} for i in range(len(bases))]


def _reached(county_code: str, month: date) -> dict[int, tuple[str, int]]:
    """The county's households reached by the lines sold in `month`: household id → (village, net fen)."""
    lines = sold_lines(*_in_period(LedgerTransaction.sale_date, month, _next_month(month)))
    per_household = household_totals(lines)
    rows = db.session.execute(
        select(per_household.c.household_id, Household.village, per_household.c.net)
        .join(Household, Household.id == per_household.c.household_id)
        .where(Household.county_code == county_code, per_household.c.net != 0))
    return {hid: (_village(village), int(fen)) for hid, village, fen in rows}


def _figures(reached: dict[int, tuple[str, int]]) -> dict:
    """Per village of the households reached, small villages merged, and the total."""
    villages: dict[str, tuple[int, int]] = {}
    for village, fen in reached.values():
        households, total = villages.get(village, (0, 0))
        villages[village] = (households + 1, total + fen)
    shown, other = merge_villages(villages)
    total = public_figures(len(reached), sum(fen for _village, fen in reached.values()))
    return {"villages": shown, "other_villages": other, "total": total}
