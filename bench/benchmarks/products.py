"""`GET /api/v1/products?county=…&limit=20` over 20,000 products and 200,000 lots on PostgreSQL, beside the floor.

BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/shop_bench) is rebuilt; with
BENCH_REDIS_URL set the app runs in production shape, its product cache in Redis (in-process otherwise).
"""
from __future__ import annotations

import json
import os
import random
import secrets
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from bench import benchmark, load, progress, servers
from bench.databases import app_context, migrate, reset_postgres
from bench.results import Result, Row

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/shop_bench"
PRODUCTS = 20_000
LOTS = 200_000
COUNTY = "513431"
PATH = f"/api/v1/products?county={COUNTY}&limit=20"
COUNTIES = ("513422", "513423", "513428", "513429", "513430", "513431", "513432", "513434", "513435", "513436",
            "513437")
NAMES = ("苦荞米", "黑苦荞茶", "苦荞面条", "苦荞粉", "乌洋芋", "苹果", "脐橙", "青花椒", "山羊肉", "岩鹰鸡", "松茸",
         "贡椒", "核桃", "蜂蜜", "腊肉", "土鸡蛋", "燕麦", "花椒油", "石榴", "老腊肉")
CATEGORIES = ("粮油", "水果", "调味", "肉禽", "蔬菜", "菌菇")
UNITS = ("kg", "box", "bag", "piece")
TRACE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
PRODUCT_COLUMNS = ("id", "sku", "name", "name_folded", "name_key", "name_pinyin", "name_initials", "description",
                   "category", "unit", "net_weight_g", "price_fen", "county_code", "supplier_id", "status", "images",
                   "platform_fee_bp", "store_commission_bp", "household_premium_bp", "dividend_bp",
                   "certificate_number", "certificate_issuer", "certificate_valid_from", "certificate_valid_until",
                   "created_at", "updated_at")
LOT_COLUMNS = ("id", "supplier_id", "product_id", "lot_code", "trace_code", "harvested_on", "packed_on", "village",
               "quantity", "attributed_fen", "created_at")
STOCK_COLUMNS = ("location_id", "lot_id", "product_id", "on_hand", "reserved")


def _setup_rows(database_url: str, folder: Path) -> tuple[dict[str, list[int]], list[int]]:
    """Suppliers (two per county) and two warehouses, through the services; their ids."""
    from catalog import inventory
    from shop.db import db
    from suppliers import service as suppliers
    from suppliers.demo import synthetic_uscc

    with app_context(database_url, folder):
        by_county = {county: [suppliers.create_supplier(
            name=f"基准测试合作社{county}-{n}", kind="cooperative", uscc=synthetic_uscc(county, 50 + n),
            county_code=county).id for n in range(2)] for county in COUNTIES}
        locations = [inventory.create_location(code=code, name=name, kind="warehouse", region_code=region).id
                     for code, name, region in (("XC-WH", "西昌仓", "513401"), ("FS-WH", "佛山仓", "440604"))]
        db.session.commit()
    return by_county, locations


def _copy(cursor, table: str, columns: tuple[str, ...], rows) -> int:
    """COPY `rows` into `table`; how many were written."""
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _product_rows(by_county: dict[str, list[int]], rng: random.Random):
    """20,000 plausible products spread over the counties, 90% active."""
    from catalog.service import pinyin_keys
    from shop.fields import name_key, name_search_key

    keys = {name: pinyin_keys(name) for name in NAMES}
    now = datetime.now(UTC)
    for product_id in range(1, PRODUCTS + 1):
        county = COUNTIES[product_id % len(COUNTIES)]
        base = NAMES[rng.randrange(len(NAMES))]
        full, initials = keys[base]
        lapsed = product_id % 17 == 0
        yield (product_id, f"BENCH-{product_id:06d}", f"{base}{product_id}", name_search_key(f"{base}{product_id}"),
               name_key(f"{base}{product_id}"), f"{full}{product_id}",
               f"{initials}{product_id}", "基准测试产品", CATEGORIES[product_id % len(CATEGORIES)],
               UNITS[product_id % len(UNITS)], 250 * (1 + product_id % 20), 500 + rng.randrange(50_000), county,
               by_county[county][product_id % 2], "draft" if product_id % 10 == 0 else "active", "[]", 500, 800,
               1000, 300, f"凉扶认基准{product_id:06d}", "凉山州乡村振兴局", date(2026, 1, 1),
               date(2026, 6, 30) if lapsed else date(2027, 12, 31), now, now)


def _lot_rows(by_county: dict[str, list[int]], rng: random.Random):
    """200,000 lots, ten per product on average, each with a unique trace code."""
    now = datetime.now(UTC)
    codes: set[str] = set()
    for lot_id in range(1, LOTS + 1):
        product_id = 1 + (lot_id - 1) % PRODUCTS
        county = COUNTIES[product_id % len(COUNTIES)]
        code = "".join(secrets.choice(TRACE_ALPHABET) for _ in range(10))
        while code in codes:
            code = "".join(secrets.choice(TRACE_ALPHABET) for _ in range(10))
        codes.add(code)
        harvested = date(2026, 1, 1) + timedelta(days=rng.randrange(300))
        yield (lot_id, by_county[county][product_id % 2], product_id, f"B-{lot_id:07d}", code, harvested,
               harvested, "基准村", 10 + rng.randrange(90), 0, now)


def _stock_rows(locations: list[int], rng: random.Random):
    """One stock row per lot, alternating between the two warehouses, some units reserved."""
    for lot_id in range(1, LOTS + 1):
        product_id = 1 + (lot_id - 1) % PRODUCTS
        on_hand = 10 + rng.randrange(90)
        yield locations[lot_id % 2], lot_id, product_id, on_hand, rng.randrange(on_hand // 4 + 1)


def generate(database_url: str, folder: Path) -> dict:
    """Fill the migrated database with the benchmark's products, lots and stock; timings per table."""
    by_county, locations = _setup_rows(database_url, folder)
    rng = random.Random(20261123)
    timings = {}
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
        for table, columns, rows in (("products", PRODUCT_COLUMNS, _product_rows(by_county, rng)),
                                     ("lots", LOT_COLUMNS, _lot_rows(by_county, rng)),
                                     ("stock", STOCK_COLUMNS, _stock_rows(locations, rng))):
            started = time.monotonic()
            progress(f"copying {table}…")
            count = _copy(cursor, table, columns, rows)
            timings[table] = round(time.monotonic() - started, 2)
            progress(f"{count:,} {table} rows in {timings[table]} s")
        for table in ("products", "lots"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        progress("analysing…")
        cursor.execute("ANALYZE")
    return timings


@benchmark("products")
def products() -> Result:
    """Requests/s and p99 of a county's first product page, each beside the floor's."""
    load.prepare()
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL")  # production shape: the product cache in Redis
    with tempfile.TemporaryDirectory(prefix="bench-products-") as folder:
        reset_postgres(database_url)
        migrate(database_url, Path(folder))
        timings = generate(database_url, Path(folder))
        env = {"DATABASE_URL": database_url, **({"REDIS_URL": redis_url} if redis_url else {})}
        with servers.gunicorn("the app", "bench.wsgi:app", env=env, ready_path=PATH) as base:
            body = servers.fetch(base + PATH)
            app = load.measure("the app", base + PATH)
        with servers.floor_server(body) as base:
            floor = load.measure("the floor app", base + PATH)
    return Result(
        name="products",
        rows=[Row("requests/s", app.requests_per_s, "req/s", floor.requests_per_s),
              Row("p99 latency", app.p99_ms, "ms", floor.p99_ms)],
        settings={"path": PATH, "database": "postgresql", "cache": "redis" if redis_url else "in-process",
                  "products": PRODUCTS, "lots": LOTS,
                  "response_bytes": len(body), "items": len(json.loads(body)["items"]), **servers.settings(),
                  **load.settings()},
        details={"app": app.as_dict(), "floor": floor.as_dict(), "copy_seconds": timings},
    )
