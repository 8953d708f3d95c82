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
from datetime import date
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import and_, case, exists, func, literal, or_, select, text

from orders.ledger.models import LedgerTransaction, Posting
from orders.models import Order, OrderLine
from shop.db import db, utcnow
from shop.regions.models import Pairing, Region
from shop.regions.service import get_region
from suppliers.models import Household

HOUSEHOLD_COMPONENTS = ("premium", "dividend")
MIN_HOUSEHOLDS = 3
OTHER_VILLAGES = "其他村"
CSV_COLUMNS = ("donor_code", "donor_name", "county_code", "county_name", "paired", "orders", "units", "sales_fen",
               "households_reached", "attributed_fen")


def _sold_lines(from_date: date | None, to_date: date | None):
    """CTE: each attributed line sold in the period — its order, donor, county, units still sold, their value, and
    whether a pairing of its donor and county was valid on its sale date."""
    sale_date = LedgerTransaction.sale_date
    paired = exists().where(
        Pairing.donor_code == Order.donor_code, Pairing.recipient_code == OrderLine.county_code,
        Pairing.valid_from <= sale_date, or_(Pairing.valid_until.is_(None), Pairing.valid_until >= sale_date))
    units = OrderLine.quantity - OrderLine.refunded_quantity
    query = (select(OrderLine.id.label("line_id"), Order.id.label("order_id"), Order.donor_code.label("donor"),
                    OrderLine.county_code.label("county"), units.label("units"),
                    (units * OrderLine.unit_price_fen).label("sales_fen"),
                    case((paired, literal(1)), else_=literal(0)).label("paired"))
             .join(Order, Order.id == OrderLine.order_id)
             .join(LedgerTransaction, and_(LedgerTransaction.order_line_id == OrderLine.id,
                                           LedgerTransaction.kind == "line_paid")))
    if from_date:
        query = query.where(sale_date >= from_date)
    if to_date:
        query = query.where(sale_date < to_date)
    return query.cte("sold")


def _household_totals(lines, *keys):
    """Subquery: per `keys` of the sold lines and household, the net household postings of those lines (premium and
    dividend postings name their household; an index holds exactly these, by line)."""
    return (select(*keys, Posting.household_id.label("household_id"), func.sum(Posting.amount_fen).label("net"))
            .select_from(lines).join(Posting, Posting.order_line_id == lines.c.line_id)
            .where(Posting.household_id.is_not(None), Posting.component.in_(HOUSEHOLD_COMPONENTS))
            .group_by(*keys, Posting.household_id)).subquery("per_household")


def pairing_report(*, from_date: date | None = None, to_date: date | None = None) -> dict:
    """Per (donor district, recipient county, paired): orders, units, sales, households reached and the amount
    attributed to households, for the lines sold in the period (net of refunds), with when it was computed."""
    computed_at = utcnow()
    _aggregate_in_memory()
    lines = _sold_lines(from_date, to_date)
    keys = (lines.c.donor, lines.c.county, lines.c.paired)
    sales = (select(*keys, func.count(func.distinct(case((lines.c.units > 0, lines.c.order_id)))).label("orders"),
                    func.sum(lines.c.units).label("units"), func.sum(lines.c.sales_fen).label("sales_fen"))
             .group_by(*keys).subquery("sales"))
    per_household = _household_totals(lines, *keys)
    reached = (select(per_household.c.donor, per_household.c.county, per_household.c.paired,
                      func.count(case((per_household.c.net != 0, per_household.c.household_id))).label("households"),
                      func.sum(per_household.c.net).label("attributed"))
               .group_by(per_household.c.donor, per_household.c.county, per_household.c.paired).subquery("reached"))
    found = db.session.execute(
        select(sales.c.donor, sales.c.county, sales.c.paired, sales.c.orders, sales.c.units, sales.c.sales_fen,
               reached.c.households, reached.c.attributed)
        .outerjoin(reached, and_(reached.c.donor == sales.c.donor, reached.c.county == sales.c.county,
                                 reached.c.paired == sales.c.paired))).all()
    names = _region_names({code for row in found for code in row[:2]})
    rows = []
    for donor, county, paired, orders, units, sales_fen, households, attributed in sorted(
            found, key=lambda row: (row[0], row[1], -row[2])):
        if not (units or attributed):
            continue  # fully refunded: counts nowhere
        rows.append({"donor_code": donor, "donor_name": names.get(donor, ""), "county_code": county,
                     "county_name": names.get(county, ""), "paired": bool(paired), "orders": int(orders or 0),
                     "units": int(units or 0), "sales_fen": int(sales_fen or 0),
                     "households_reached": int(households or 0), "attributed_fen": int(attributed or 0)})
    totals = {name: sum(row[name] for row in rows) for name in ("units", "sales_fen", "attributed_fen")}
    return {"from": from_date, "to": to_date, "computed_at": computed_at, "rows": rows, "totals": totals}


def _aggregate_in_memory() -> None:
    """On PostgreSQL, let this transaction group the period's household postings (about ten a line) by hash in
    memory rather than sort them on disk, and skip JIT compilation, which costs more than it saves here."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL work_mem = '256MB'"))
        db.session.execute(text("SET LOCAL jit = off"))


def _region_names(codes: set[str]) -> dict[str, str]:
    """Region code → name for `codes`."""
    if not codes:
        return {}
    return dict(db.session.execute(select(Region.code, Region.name).where(Region.code.in_(codes))).all())


def pairing_report_csv(report: dict) -> str:
    """The report as CSV (UTF-8 with a BOM, so spreadsheet programs read the Chinese names)."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in report["rows"]:
        writer.writerow([str(row[name]).lower() if name == "paired" else row[name] for name in CSV_COLUMNS])
    return buffer.getvalue()


def pairing_report_xlsx(report: dict) -> bytes:
    """The report as an XLSX workbook: one sheet of rows (amounts in fen) and when it was computed."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "pairings"
    sheet.append(CSV_COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in report["rows"]:
        sheet.append([row[name] for name in CSV_COLUMNS])
    sheet.append([])
    sheet.append(["computed_at", report["computed_at"].isoformat()])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def pairing_report_svg(report: dict) -> str:
    """The report as an SVG bar chart: per row, sales and the amount attributed to households (yuan)."""
    rows, bar, label_width, chart_width = report["rows"], 18, 260, 520
    largest = max((row["sales_fen"] for row in rows), default=0) or 1
    height = 40 + len(rows) * (2 * bar + 14)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + chart_width + 120}" '
             f'height="{height}" font-family="sans-serif" font-size="12">',
             '<text x="4" y="16">销售额（灰）与农户所得（绿），单位：元</text>']
    y = 32
    for row in rows:
        label = f"{row['donor_name']} → {row['county_name']}{'' if row['paired'] else '（未结对）'}"
        parts.append(f'<text x="4" y="{y + bar}">{escape(label)}</text>')
        for offset, (fen, colour) in enumerate(((row["sales_fen"], "#999"), (row["attributed_fen"], "#2a2"))):
            width = max(fen, 0) * chart_width // largest
            top = y + offset * bar
            parts.append(f'<rect x="{label_width}" y="{top}" width="{width}" height="{bar - 2}" fill="{colour}"/>')
            parts.append(f'<text x="{label_width + width + 4}" y="{top + bar - 5}">{_yuan(fen)}</text>')
        y += 2 * bar + 14
    parts.append("</svg>")
    return "\n".join(parts)


def _yuan(fen: int) -> str:
    """Fen as yuan with two decimals (integer arithmetic)."""
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


# --- public disclosure -------------------------------------------------------------------------------------

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
    return rows, {"village": OTHER_VILLAGES, "villages": len(merged),
                  **public_figures(households, sum(villages[name][1] for name in merged))}


def public_figures(households: int, attributed_fen: int) -> dict:
    """A group's households and amount, or "fewer than 3 households" with neither (DESIGN.md, public outputs)."""
    if households < MIN_HOUSEHOLDS:
        return {"households": None, "fewer_than": MIN_HOUSEHOLDS, "attributed_fen": None}
    return {"households": households, "attributed_fen": attributed_fen}


def county_disclosure(*, code: str, from_date: date | None = None, to_date: date | None = None) -> dict:
    """The public (公示) figures of a county's households: per village, households reached and the amount
    attributed to them (lines sold in the period, net of refunds), small villages merged; no personal data."""
    region = get_region(code)
    computed_at = utcnow()
    lines = _sold_lines(from_date, to_date)
    per_household = _household_totals(lines)
    rows = db.session.execute(
        select(Household.village, func.count(per_household.c.household_id), func.sum(per_household.c.net))
        .join(Household, Household.id == per_household.c.household_id)
        .where(Household.county_code == region.code, per_household.c.net != 0)
        .group_by(Household.village))
    villages = {village: (int(households), int(fen)) for village, households, fen in rows}
    shown, other = merge_villages(villages)
    total = public_figures(sum(h for h, _ in villages.values()), sum(fen for _, fen in villages.values()))
    return {"county": {"code": region.code, "name": region.name}, "from": from_date, "to": to_date,
            "computed_at": computed_at, "villages": shown, "other_villages": other, "total": total}
