"""Public traceability: a lot's trace as JSON, an HTML page and a QR code, with no personal data."""
from __future__ import annotations

import re

from flask import Blueprint, current_app, render_template, url_for

from catalog import queries
from catalog.errors import CatalogCode
from catalog.schemas import TraceProduct
from catalog.service import on_sale, row_view
from shop.clock import today
from shop.errors import NotFound
from shop.fields import normalise_identifier
from shop.links import external_url
from shop.public import MIN_HOUSEHOLDS, households_reached, withheld
from shop.qr import svg_qr

MAX_TRACE_CODE_INPUT = 64  # longer path segments cannot spell a trace code
TRACE_PRODUCT_FIELDS = tuple(TraceProduct().fields)

pages = Blueprint("catalog_pages", __name__, template_folder="templates")


def _households(rows: list) -> dict:
    """Contributing households (the lot's rows, one per village): a count and the villages of at least 3 of them,
    or only "fewer than 3"."""
    count = sum(row.households for row in rows)
    if count < MIN_HOUSEHOLDS:
        return {"count": None, "fewer_than": MIN_HOUSEHOLDS}
    villages = sorted(row.household_village for row in rows if row.households >= MIN_HOUSEHOLDS)
    return {"count": count, "villages": villages}


def _product(row) -> dict:
    """The product as the public trace shows it, and whether its shop page exists (`on_sale`): a draft is the
    co-op's unpublished work, so only its SKU, unit and origin county, never its name, category or certificate."""
    product = {name: value for name, value in row_view(row, on=today()).items() if name in TRACE_PRODUCT_FIELDS}
    if row.status == "draft":
        product |= {"name": None, "category": None, "certified": False, "certificate": None}
    return product | {"on_sale": on_sale(row.status, row.supplier_active)}


def _lot_trace(trace_code: str) -> tuple[dict, int]:
    """The public trace of the lot with `trace_code` and how many households delivered it, or `NotFound`. Its
    amount is shown only when both the deliverers and the households it reached are at least 3 (or it reached none
    yet: 0): the deliverers' count is public, and an amount that went to 1 or 2 households (a few fen of premium,
    one shareholder's dividend) would be theirs; `reached` says which, as every public impact output does."""
    code = normalise_identifier(trace_code) if len(trace_code) <= MAX_TRACE_CODE_INPUT else ""
    rows = queries.lot_trace(code) if re.fullmatch(r"[A-Z0-9]{1,16}", code) else []
    if not rows:
        raise NotFound(f"No lot with trace code {trace_code[:MAX_TRACE_CODE_INPUT]}.",
                       code=CatalogCode.TRACE_CODE_NOT_FOUND)
    row = rows[0]
    households = _households(rows)
    result = {
        "trace_code": row.trace_code,
        "product": _product(row),
        "lot": {"code": row.lot_code, "harvested_on": row.harvested_on, "packed_on": row.packed_on,
                "village": row.village},
        "prefecture": {"code": row.prefecture_code, "name": row.prefecture_name} if row.prefecture_code else None,
        "supplier": {"id": row.supplier_id, "name": row.supplier_name},
        "households": households,
    }
    reached, fen = (0, 0)
    if households["count"] is not None and row.attributed_fen:  # nothing attributed yet reached no one
        reached, fen = queries.lot_reach(row.lot_id)
    result["reached"] = households_reached(reached, fen) if households["count"] is not None else withheld()
    if result["reached"]["households"] is not None:
        result["attributed_fen"] = fen
    return result, sum(row.households for row in rows)


def trace(*, trace_code: str) -> dict:
    """The public trace of the lot with `trace_code`, or `NotFound`."""
    return _lot_trace(trace_code)[0]


@pages.get("/t/<code>")
def trace_page(code: str):
    """The printable, mobile-friendly trace page of a lot (Chinese): a lot no household delivered says so (none
    reveals nothing about anyone), one of 1 or 2 households only that they were fewer than 3; its amount likewise
    says whether none reached households yet or it reached fewer than 3."""
    try:
        data, delivered = _lot_trace(code)
    except NotFound:
        return render_template("trace_not_found.html", code=code[:MAX_TRACE_CODE_INPUT]), 404
    return render_template("trace.html", t=data, no_household=delivered == 0,
                           qr_url=url_for(".trace_qr", code=data["trace_code"]),
                           disclosure_url=url_for("disclosure.county", code=data["product"]["county"]["code"]),
                           product_url=url_for("storefront.product", sku=data["product"]["sku"])
                           if data["product"]["on_sale"] else None)


@pages.get("/t/<code>/qr.svg")
def trace_qr(code: str):
    """An SVG QR code of the trace page's absolute URL, for labels."""
    try:
        data = trace(trace_code=code)
    except NotFound:
        return render_template("trace_not_found.html", code=code[:MAX_TRACE_CODE_INPUT]), 404
    headers = {"Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"}
    if current_app.config["PUBLIC_URL"] is None:  # the link is then the request's host
        headers["Vary"] = "Host"
    return svg_qr(external_url(".trace_page", code=data["trace_code"])), 200, headers
