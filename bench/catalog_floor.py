"""The floor of `catalog_mix`: a minimal Flask app answering the catalog mix with plain SQL and `json.dumps`.

One psycopg connection per worker (per thread under gthread), autocommit, on BENCH_FLOOR_DATABASE_URL;
the same schema and indexes as the app. It answers what the app answers for the same paths, except that
a list's deeper page is asked for with `after=<last product id>` instead of the app's signed cursor.
"""
from __future__ import annotations

import json
import os
import threading
from datetime import date, datetime
from zoneinfo import ZoneInfo

import psycopg
from flask import Flask, Response, request

SHANGHAI = ZoneInfo("Asia/Shanghai")
PAGE = 20
PRODUCT_SELECT = """
SELECT p.id, p.sku, p.name, p.description, p.category, p.unit, p.net_weight_g, p.price_fen, p.status,
       p.county_code, r.name, p.supplier_id, s.name, p.images, p.platform_fee_bp, p.store_commission_bp,
       p.household_premium_bp, p.dividend_bp, p.certificate_number, p.certificate_issuer,
       p.certificate_valid_from, p.certificate_valid_until
FROM products p JOIN regions r ON r.code = p.county_code JOIN suppliers s ON s.id = p.supplier_id
"""
STOCK_SQL = ("SELECT location_id, sum(on_hand - reserved) FROM stock WHERE product_id = %s "
             "GROUP BY location_id ORDER BY location_id")
DONOR_FILTER = ("p.county_code IN (SELECT recipient_code FROM pairings WHERE donor_code = %s AND valid_from <= %s "
                "AND (valid_until IS NULL OR valid_until >= %s))")
LOT_SQL = ("SELECT l.id, l.trace_code, l.lot_code, l.harvested_on, l.packed_on, l.village, l.attributed_fen, "
           "l.product_id FROM lots l WHERE l.trace_code = %s")
TRACE_PRODUCT_FIELDS = ("sku", "name", "category", "unit", "county", "certified", "certificate")
VILLAGES_SQL = "SELECT village, count(*) FROM lot_contributions WHERE lot_id = %s GROUP BY village"

app = Flask(__name__)
_local = threading.local()


def connection() -> psycopg.Connection:
    """This worker's (this thread's) connection, opened on first use."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(os.environ["BENCH_FLOOR_DATABASE_URL"], autocommit=True)
    return conn


def _json(value) -> Response:
    """`value` as a JSON response (dates in ISO 8601, Chinese unescaped)."""
    body = json.dumps(value, ensure_ascii=False, default=lambda v: v.isoformat())
    return Response(body, mimetype="application/json")


def _not_found() -> Response:
    """The API's 404 shape."""
    return Response(json.dumps({"error": {"code": "not_found", "message": "Not found.", "details": {}}}),
                    status=404, mimetype="application/json")


def _product(row: tuple, on: date) -> dict:
    """A product row as the API shows it."""
    (_, sku, name, description, category, unit, weight, price, status, county_code, county_name, supplier_id,
     supplier_name, images, platform, store, premium, dividend, number, issuer, valid_from, valid_until) = row
    certified = (number is not None and valid_until is not None and valid_until >= on
                 and (valid_from is None or valid_from <= on))
    return {"sku": sku, "name": name, "description": description, "category": category, "unit": unit,
            "net_weight_g": weight, "price_fen": price, "status": status,
            "county": {"code": county_code, "name": county_name},
            "supplier": {"id": supplier_id, "name": supplier_name}, "images": images or [],
            "platform_fee_bp": platform, "store_commission_bp": store, "household_premium_bp": premium,
            "dividend_bp": dividend, "certified": certified,
            "certificate": {"number": number, "issuer": issuer, "valid_from": valid_from,
                            "valid_until": valid_until} if certified else None}


@app.get("/api/v1/products/<sku>")
def product(sku: str) -> Response:
    """A product by SKU with its stock summed per location."""
    with connection().cursor() as cursor:
        row = cursor.execute(PRODUCT_SELECT + "WHERE p.sku = %s AND p.status = 'active'", (sku,)).fetchone()
        if row is None:
            return _not_found()
        stock = cursor.execute(STOCK_SQL, (row[0],)).fetchall()
    return _json({**_product(row, datetime.now(SHANGHAI).date()),
                  "stock": [{"location_id": location, "available": int(n)} for location, n in stock]})


@app.get("/api/v1/products")
def products() -> Response:
    """A page of active products by county, donor or `q`, ordered by id, after `after`."""
    on = datetime.now(SHANGHAI).date()
    conditions, params = ["p.status = 'active'"], []
    if county := request.args.get("county"):
        conditions.append("p.county_code = %s")
        params.append(county)
    if donor := request.args.get("donor"):
        conditions.append(DONOR_FILTER)
        params += [donor, on, on]
    if q := request.args.get("q"):
        text = q.strip()
        letters = "".join(text.split()).lower()
        like = [f"%{text}%"]
        match = "p.name LIKE %s"
        if letters.isascii() and letters.isalnum():
            match += " OR p.name_pinyin LIKE %s OR p.name_initials LIKE %s"
            like += [f"%{letters}%", f"%{letters}%"]
        conditions.append(f"({match})")
        params += like
    if after := request.args.get("after"):
        conditions.append("p.id > %s")
        params.append(int(after))
    sql = f"{PRODUCT_SELECT} WHERE {' AND '.join(conditions)} ORDER BY p.id LIMIT {PAGE + 1}"
    with connection().cursor() as cursor:
        rows = cursor.execute(sql, params).fetchall()
    items = [_product(row, on) for row in rows[:PAGE]]
    return _json({"items": items, "next_cursor": str(rows[PAGE - 1][0]) if len(rows) > PAGE else None})


@app.get("/api/v1/trace/<code>")
def trace(code: str) -> Response:
    """A lot's public trace: the lot, its product and supplier, its households' villages."""
    on = datetime.now(SHANGHAI).date()
    with connection().cursor() as cursor:
        lot = cursor.execute(LOT_SQL, (code,)).fetchone()
        if lot is None:
            return _not_found()
        lot_id, trace_code, lot_code, harvested_on, packed_on, village, attributed_fen, product_id = lot
        row = cursor.execute(PRODUCT_SELECT + "WHERE p.id = %s", (product_id,)).fetchone()
        villages = cursor.execute(VILLAGES_SQL, (lot_id,)).fetchall()
    view = _product(row, on)
    count = sum(n for _, n in villages)
    households = ({"count": count, "villages": sorted(v for v, n in villages if n >= 3)} if count >= 3
                  else {"count": None, "fewer_than": 3})
    shown = {key: view[key] for key in TRACE_PRODUCT_FIELDS}
    result = {"trace_code": trace_code, "product": shown,
              "lot": {"code": lot_code, "harvested_on": harvested_on, "packed_on": packed_on, "village": village},
              "supplier": view["supplier"], "households": households}
    if count >= 3:
        result["attributed_fen"] = attributed_fen
    return _json(result)
