"""A co-op's 100,000-row inventory file (5,000 households, 500 lots) imported on PostgreSQL, beside a bare COPY.

The import runs the Celery task's own code (`catalog.tasks.run_import`) (read, validate every row,
write lots, contributions and stock in one transaction). The floor writes the same lots,
contributions and stock rows with COPY into the same tables, in the same run.
BENCH_IMPORT_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/shop_bench_import) is rebuilt.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg

from bench import benchmark, progress
from bench.databases import app_context, migrate, reset_postgres
from bench.results import Result, Row

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/shop_bench_import"
HOUSEHOLDS, LOTS, PER_LOT = 5_000, 500, 200
COUNTY = "513431"
SKUS = ("IMP-KQM-1KG", "IMP-KQC-250G", "IMP-KQMT-500G", "IMP-KQF-1KG", "IMP-KQJ-500G")
TARGET_SECONDS = 15


def _households_copy(supplier_id: int):
    """COPY rows of 5,000 synthetic households (encrypted ID numbers and their look-up hashes)."""
    from shop import crypto
    from suppliers.demo import synthetic_id_number

    now = datetime.now(UTC)
    for n in range(1, HOUSEHOLDS + 1):
        number = synthetic_id_number(COUNTY, n)
        yield (n, f"IMP-{n:05d}", COUNTY, f"基准户{n:05d}", crypto.encrypt(number, field="id_number"),
               crypto.lookup_hash(number), f"基准{n % 40:02d}村", 3, date(2026, 1, 5), "书面同意书（基准）", True,
               supplier_id, now, now)


def _setup(database_url: str, folder: Path) -> int:
    """A co-op with five products, a warehouse and 5,000 linked households; the supplier id."""
    from catalog import inventory, service
    from shop.auth.service import create_user
    from shop.db import db
    from suppliers import service as suppliers
    from suppliers.demo import synthetic_uscc

    with app_context(database_url, folder):
        admin = create_user(username="bench-admin", password="bench password", role="admin")
        supplier_id = suppliers.create_supplier(name="基准导入合作社", kind="cooperative",
                                                uscc=synthetic_uscc(COUNTY, 90), county_code=COUNTY).id
        for sku in SKUS:
            service.create_product(actor=admin, supplier_id=supplier_id, sku=sku, name=f"苦荞{sku[-4:]}",
                                   description="", category="粮油", unit="bag", net_weight_g=500, price_fen=2000,
                                   county_code=COUNTY, status="active", images=[], platform_fee_bp=500,
                                   store_commission_bp=800, household_premium_bp=1000, dividend_bp=300)
        inventory.create_location(code="XC-WH", name="西昌仓", kind="warehouse", region_code="513401")
        db.session.commit()
        progress(f"copying {HOUSEHOLDS:,} households with purchase links…")
        connection = db.session.connection().connection.driver_connection
        with connection.cursor() as cursor:
            with cursor.copy("COPY households (id, code, county_code, head_name, id_number_enc, id_number_hash, "
                             "village, members, consent_on, consent_basis, active, registered_by_id, created_at, "
                             "updated_at) FROM STDIN") as copy:
                for row in _households_copy(supplier_id):
                    copy.write_row(row)
            now = datetime.now(UTC)
            with cursor.copy("COPY supplier_households (supplier_id, household_id, created_at) FROM STDIN") as copy:
                for n in range(1, HOUSEHOLDS + 1):
                    copy.write_row((supplier_id, n, now))
            with cursor.copy("COPY benefit_links (supplier_id, household_id, kind, valid_from, created_at) "
                             "FROM STDIN") as copy:
                for n in range(1, HOUSEHOLDS + 1):
                    copy.write_row((supplier_id, n, "purchase", date(2026, 1, 1), now))
            cursor.execute("SELECT setval(pg_get_serial_sequence('households', 'id'), "
                           "(SELECT max(id) FROM households))")
        db.session.commit()
    return supplier_id


def _rows() -> list[tuple]:
    """100,000 contributions: 500 lots of 200 households each, spread over the 5,000 households."""
    return [(SKUS[lot % len(SKUS)], f"IMP-LOT-{lot:04d}", date(2026, 9, 1 + lot % 28), "XC-WH",
             f"IMP-{1 + (lot * PER_LOT + k) % HOUSEHOLDS:05d}", 1 + (lot + k) % 9)
            for lot in range(LOTS) for k in range(PER_LOT)]


def _csv(rows: list[tuple]) -> bytes:
    """The rows as a co-op's CSV with Chinese headers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["产品编码", "批次号", "采收日期", "存放地点", "农户编号", "交售数量"])
    writer.writerows((sku, lot, harvested.isoformat(), location, code, qty)
                     for sku, lot, harvested, location, code, qty in rows)
    return out.getvalue().encode("utf-8")


def _import(database_url: str, folder: Path, supplier_id: int, data: bytes) -> tuple[float, int]:
    """Run the upload service as the task does; (seconds, lots created)."""
    from catalog import uploads
    from catalog.tasks import run_import
    from shop.db import db

    with app_context(database_url, folder):
        started = time.perf_counter()
        upload, _ = uploads.submit_upload(actor=None, supplier_id=supplier_id, filename="bench.csv", data=data,
                                          max_bytes=len(data), queue_import=False)
        db.session.commit()
        reported = []
        result = run_import(upload.id, progress=lambda done, total: reported.append(done))
        seconds = time.perf_counter() - started
        if result.status != "succeeded":
            raise RuntimeError(f"the benchmark file did not import: {result.errors[:3]}")
        progress(f"imported {result.rows_total:,} rows into {result.lots_created} lots in {seconds:.2f} s "
                 f"({len(reported)} progress reports)")
        return seconds, result.lots_created


def _copy_floor(conninfo: str, supplier_id: int, rows: list[tuple]) -> float:
    """Write the same lots, contributions and stock with bare COPY (after emptying them); seconds."""
    from shop.fields import code_skeleton

    with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
        cursor.execute("TRUNCATE stock, lot_contributions, lots, inventory_uploads RESTART IDENTITY CASCADE")
        products = dict(cursor.execute("SELECT sku, id FROM products").fetchall())
        location_id = cursor.execute("SELECT id FROM locations WHERE code = 'XC-WH'").fetchone()[0]
        conn.commit()
        lots: dict[str, tuple] = {}
        for sku, lot, harvested, _, _, qty in rows:
            first = lots.setdefault(lot, [len(lots) + 1, products[sku], harvested, 0])
            first[3] += qty
        now = datetime.now(UTC)
        started = time.perf_counter()
        with cursor.copy("COPY lots (id, supplier_id, product_id, lot_code, skeleton, trace_code, harvested_on, "
                         "village, quantity, attributed_fen, created_at) FROM STDIN") as copy:
            for code, (lot_id, product_id, harvested, quantity) in lots.items():
                copy.write_row((lot_id, supplier_id, product_id, code, code_skeleton(code), f"T{lot_id:09d}",
                                harvested, "基准村", quantity, 0, now))
        with cursor.copy("COPY lot_contributions (lot_id, household_id, quantity, village) FROM STDIN") as copy:
            for _, lot, _, _, code, qty in rows:
                copy.write_row((lots[lot][0], int(code[4:]), qty, "基准村"))
        with cursor.copy("COPY stock (location_id, lot_id, product_id, on_hand, reserved) FROM STDIN") as copy:
            for lot_id, product_id, _, quantity in lots.values():
                copy.write_row((location_id, lot_id, product_id, quantity, 0))
        conn.commit()
        return time.perf_counter() - started


@benchmark("inventory_import")
def inventory_import() -> Result:
    """Rows/s of a 100,000-row upload import beside the same rows written by COPY."""
    database_url = os.environ.get("BENCH_IMPORT_DATABASE_URL", DEFAULT_DATABASE_URL)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        reset_postgres(database_url)
        migrate(database_url, Path(folder))
        supplier_id = _setup(database_url, Path(folder))
        rows = _rows()
        data = _csv(rows)
        progress(f"importing a {len(data) / 1e6:.1f} MB file of {len(rows):,} rows through the upload service…")
        seconds, lots = _import(database_url, Path(folder), supplier_id, data)
        progress("writing the same rows with bare COPY…")
        floor_seconds = _copy_floor(database_url.replace("postgresql+psycopg://", "postgresql://"), supplier_id,
                                    rows)
    return Result(
        name="inventory_import",
        rows=[Row("rows/s", len(rows) / seconds, "rows/s", len(rows) / floor_seconds),
              Row("whole import", seconds, "s", floor_seconds)],
        settings={"rows": len(rows), "households": HOUSEHOLDS, "lots": lots, "file_bytes": len(data),
                  "database": "postgresql", "target_seconds": TARGET_SECONDS},
        details={"import_seconds": round(seconds, 3), "copy_seconds": round(floor_seconds, 3)},
    )
