"""Attribution of 200,000 paid order lines on PostgreSQL beside a bare COPY of the same ledger rows.

Seeded with COPY: 10,000 households, 100 suppliers (one product each, 0–12 dividend shareholders, 5 on
average), 1,000 lots with 1–6 contributing households (3 on average), 100,000 orders of two lines (delivery,
pickup and counter), 30% of the lines allocated to two lots, and one undelivered `line_paid` outbox event per
line. The attribution is the production path: the outbox delivery task (`orders.deliver_outbox`, as the
sweeper queues it for a backlog, `outbox.DELIVERY_BATCH` events a task), each task one transaction.
The floor writes the same transactions and postings into the same tables with COPY, with the same indexes
and triggers (so it links them too, as the append-only triggers demand), in the same run. Then the pairing
report's rollups refreshed from scratch (beside the bare SQL grouping the household postings they are built from),
then for the last few transactions, and the report over the whole period read from them. BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/shop_bench_a)
is rebuilt.
"""
from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

import psycopg

from bench import BenchError, benchmark, progress
from bench.databases import app_context, migrate, reset_postgres
from bench.results import Result, Row

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/shop_bench_a"
HOUSEHOLDS, SUPPLIERS, LOTS_PER_SUPPLIER, ORDERS, LINES_PER_ORDER = 10_000, 100, 10, 100_000, 2
CONTRIBUTORS = (1, 2, 3, 4, 5, 6, 2, 1)  # per lot, cycled: 3 on average
SHAREHOLDERS = (0, 12, 5, 3, 7, 4, 6, 2, 8, 3)  # per supplier, cycled: 5 on average
TWO_LOTS = 0.3
COUNTIES = ("513428", "513429", "513430", "513431", "513432", "513434", "513435", "513436", "513437", "513423")
DONORS = ("440604", "440605", "440606", "440607", "440608")
FIRST_SALE, SALE_DAYS = date(2026, 1, 1), 300
TARGET_RATIO, TARGET_SECONDS, REPORT_TARGET_SECONDS = 4, 90, 1
WORKERS = int(os.environ.get("BENCH_ATTRIBUTION_WORKERS", "2"))  # delivery processes, as Celery workers


def _copy(cursor: psycopg.Cursor, table: str, columns: str, rows) -> None:
    """COPY `rows` into `table` (`columns` comma-separated)."""
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _seed(url: str) -> dict:
    """Reference parties, lots, orders, allocations and one undelivered line_paid event per line, by COPY."""
    from suppliers.demo import synthetic_uscc

    rng = random.Random(10)
    now = datetime.now(UTC)
    old = now - timedelta(hours=1)
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        progress(f"copying {SUPPLIERS} suppliers and products, {HOUSEHOLDS:,} households, stores…")
        _copy(cursor, "suppliers", "id, kind, name, name_key, uscc, county_code, active, created_at",
              ((s, "cooperative", f"基准合作社{s:03d}", f"基准合作社{s:03d}", synthetic_uscc(COUNTIES[s % 10], s),
                COUNTIES[s % 10], True, now) for s in range(1, SUPPLIERS + 1)))
        _copy(cursor, "households", "id, code, county_code, head_name, id_number_enc, id_number_hash, village, "
              "members, consent_on, consent_basis, active, registered_by_id, created_at, updated_at",
              ((h, f"B{h:05d}", COUNTIES[h % 10], f"基准户{h:05d}", "bench:not-encrypted",
                hashlib.sha256(f"bench-{h}".encode()).hexdigest(), f"基准{h % 30:02d}村", 3, date(2026, 1, 1),
                "书面同意书（基准）", True, 1 + h % SUPPLIERS, now, now) for h in range(1, HOUSEHOLDS + 1)))
        prices = {s: 500 + 37 * s for s in range(1, SUPPLIERS + 1)}
        _copy(cursor, "products", "id, sku, name, name_folded, name_key, name_pinyin, name_initials, description, "
              "category, unit, net_weight_g, price_fen, county_code, supplier_id, status, images, platform_fee_bp, "
              "store_commission_bp, household_premium_bp, dividend_bp, created_at, updated_at",
              ((s, f"BENCH-{s:03d}", f"苦荞{s:03d}", f"苦荞{s:03d}", f"苦荞{s:03d}", f"kuqiao{s:03d}", "kq", "", "粮油",
                "bag", 500, prices[s], COUNTIES[s % 10], s, "active", "[]", 500, 800, 1000, 300, now, now)
               for s in range(1, SUPPLIERS + 1)))
        _copy(cursor, "locations", "id, code, name, kind, region_code",
              [(1, "BENCH-WH", "西昌仓", "warehouse", "513401")]
              + [(1 + n, f"BENCH-ST{n}", f"体验店{n}", "store", DONORS[n - 1]) for n in range(1, len(DONORS) + 1)])
        _copy(cursor, "stores", "id, name, name_key, district_code, location_id, active, created_at",
              ((n, f"大凉山体验店{n}", f"大凉山体验店{n}", DONORS[n - 1], 1 + n, True, now)
               for n in range(1, len(DONORS) + 1)))
        progress("copying 1,000 lots with their contributions and the dividend links…")
        lots = {s: [(s - 1) * LOTS_PER_SUPPLIER + k for k in range(1, LOTS_PER_SUPPLIER + 1)]
                for s in range(1, SUPPLIERS + 1)}
        _copy(cursor, "lots", "id, supplier_id, product_id, lot_code, trace_code, harvested_on, village, quantity, "
              "attributed_fen, created_at",
              ((lot, s, s, f"L{lot:05d}", f"BENCHTRACE{lot:06d}", date(2025, 10, 1), "基准村", 10**6, 0, now)
               for s, ids in lots.items() for lot in ids))
        contributions = []
        for lot in range(1, SUPPLIERS * LOTS_PER_SUPPLIER + 1):
            for household in rng.sample(range(1, HOUSEHOLDS + 1), CONTRIBUTORS[lot % len(CONTRIBUTORS)]):
                contributions.append((lot, household, rng.randint(1, 50), "基准村"))
        _copy(cursor, "lot_contributions", "lot_id, household_id, quantity, village", contributions)
        _copy(cursor, "benefit_links", "supplier_id, household_id, kind, shares, valid_from, created_at",
              ((s, household, "dividend", rng.randint(1, 9), date(2025, 1, 1), now)
               for s in range(1, SUPPLIERS + 1)
               for household in rng.sample(range(1, HOUSEHOLDS + 1), SHAREHOLDERS[s % len(SHAREHOLDERS)])))
        progress(f"copying {ORDERS:,} orders of {LINES_PER_ORDER} lines, their allocations, payments and events…")
        orders, lines, allocations, payments, events = [], [], [], [], []
        line_id = allocation_id = 0
        for order_id in range(1, ORDERS + 1):
            channel = ("delivery", "delivery", "pickup", "pickup", "counter")[order_id % 5]
            store = 1 + order_id % len(DONORS)
            location = 1 if channel == "delivery" else 1 + store
            method = "stripe" if channel != "counter" else ("cash", "card")[order_id % 2]
            paid_at = datetime.combine(FIRST_SALE + timedelta(days=order_id % SALE_DAYS), datetime.min.time(),
                                       UTC) + timedelta(hours=4)
            sale_date = paid_at.date()
            total = 0
            for _ in range(LINES_PER_ORDER):
                line_id += 1
                supplier = rng.randint(1, SUPPLIERS)
                quantity = rng.randint(2, 4)
                price = prices[supplier]
                total += quantity * price
                lines.append((line_id, order_id, supplier, f"BENCH-{supplier:03d}", f"苦荞{supplier:03d}", supplier,
                              COUNTIES[supplier % 10], quantity, price, 500, 800, 1000, 300, 0))
                chosen = rng.sample(lots[supplier], 2 if rng.random() < TWO_LOTS else 1)
                split = [quantity] if len(chosen) == 1 else [1, quantity - 1]
                payload = []
                for lot, units in zip(chosen, split, strict=True):
                    allocation_id += 1
                    allocations.append((allocation_id, line_id, location, lot, units, "allocated", 0))
                    payload.append({"allocation_id": allocation_id, "lot_id": lot, "location_id": location,
                                    "quantity": units})
                events.append(("line_paid", order_id, line_id, quantity * price, json.dumps(
                    {"channel": channel, "donor_code": DONORS[store - 1], "unit_price_fen": price,
                     "quantity": quantity, "allocations": payload}), paid_at, sale_date, old))
            orders.append((order_id, channel, "paid", None if channel == "delivery" else store, location,
                           DONORS[store - 1], "bench:address" if channel == "delivery" else None, total, paid_at,
                           sale_date, method, False, old, old))
            if channel != "counter":
                payments.append((order_id, "sandbox", f"pi_bench_{order_id}", total, "cny", "succeeded", paid_at, old))
        _copy(cursor, "orders", "id, channel, status, store_id, location_id, donor_code, address_enc, total_fen, "
              "paid_at, sale_date, payment_method, late_entry, created_at, updated_at", orders)
        _copy(cursor, "order_lines", "id, order_id, product_id, sku, name, supplier_id, county_code, quantity, "
              "unit_price_fen, platform_fee_bp, store_commission_bp, household_premium_bp, dividend_bp, "
              "refunded_quantity", lines)
        _copy(cursor, "allocations", "id, order_line_id, location_id, lot_id, quantity, state, refunded", allocations)
        _copy(cursor, "payments", "order_id, provider, intent_id, amount_fen, currency, status, succeeded_at, "
              "created_at", payments)
        _copy(cursor, "outbox_events", "kind, order_id, order_line_id, amount_fen, payload, occurred_at, sale_date, "
              "created_at", events)
        for table in ("suppliers", "households", "products", "locations", "stores", "lots", "orders", "order_lines",
                      "allocations"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("ANALYZE")
    return {"lines": line_id, "allocations": allocation_id, "orders": ORDERS}


def _deliver(url: str, folder: str, chunks: list[list[int]]) -> tuple[float, float]:
    """One worker process: run the delivery task on each chunk of event ids; (started, finished) wall times."""
    from orders.tasks import deliver_outbox

    with app_context(url, Path(folder)):
        gc.freeze()  # as the Celery worker does after building the app (shop.worker)
        started, done = time.time(), 0
        for chunk in chunks:
            delivered = deliver_outbox(chunk)  # the task's own body and transaction, as a worker runs it
            if delivered != len(chunk):
                raise BenchError(f"a delivery task delivered {delivered} of {len(chunk)} events")
            done += delivered
            if done % 20_000 < len(chunk):
                progress(f"worker {os.getpid()}: {done:,} lines attributed ({done / (time.time() - started):,.0f}/s)")
        return started, time.time()


def _attribute(url: str, folder: Path) -> float:
    """Deliver every undelivered outbox event through the delivery task, `DELIVERY_BATCH` events a task, in
    WORKERS processes (as that many Celery workers would); the seconds from the first task to the last."""
    from orders.outbox import DELIVERY_BATCH

    with psycopg.connect(url) as connection:
        ids = [row[0] for row in connection.execute(
            "SELECT id FROM outbox_events WHERE delivered_at IS NULL ORDER BY id")]
    chunks = [ids[start:start + DELIVERY_BATCH] for start in range(0, len(ids), DELIVERY_BATCH)]
    with ProcessPoolExecutor(WORKERS, mp_context=get_context("spawn")) as pool:
        spans = list(pool.map(_deliver, [url] * WORKERS, [str(folder)] * WORKERS,
                              [chunks[worker::WORKERS] for worker in range(WORKERS)]))
    return max(end for _start, end in spans) - min(start for start, _end in spans)


def _check(cursor: psycopg.Cursor, lines: int) -> tuple[int, int]:
    """Every line attributed once, every transaction balanced and linked: (transactions, postings)."""
    cursor.execute("SELECT count(*), count(DISTINCT outbox_event_id), count(seq) FROM ledger_transactions")
    transactions, events, linked = cursor.fetchone()
    cursor.execute("SELECT count(*) FROM (SELECT transaction_id FROM ledger_postings GROUP BY transaction_id "
                   "HAVING sum(amount_fen) <> 0) AS unbalanced")
    unbalanced = cursor.fetchone()[0]
    cursor.execute("SELECT count(*) FROM outbox_events WHERE delivered_at IS NULL")
    undelivered = cursor.fetchone()[0]
    if not (transactions == events == linked == lines and unbalanced == 0 and undelivered == 0):
        raise BenchError(f"ledger check failed: {transactions} transactions for {events} events ({linked} linked) of "
                         f"{lines} lines, {unbalanced} unbalanced, {undelivered} undelivered")
    cursor.execute("SELECT count(*) FROM ledger_postings")
    return transactions, cursor.fetchone()[0]


TRANSACTION_COPY = "id, kind, outbox_event_id, order_id, order_line_id, sale_date, posted_at, memo"
POSTING_COPY = ("id, transaction_id, account_id, amount_fen, component, order_line_id, allocation_id, lot_id, "
                "household_id")


def _floor(url: str) -> tuple[float, float]:
    """The same transactions and postings written back with COPY after emptying both tables, then linked (the
    triggers require it) and committed: (seconds in all, seconds of the postings' COPY)."""
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        buffers = {}
        for name, table, columns in (("transactions", "ledger_transactions", TRANSACTION_COPY),
                                     ("postings", "ledger_postings", POSTING_COPY),
                                     ("links", "ledger_transactions", "id, seq, prev_hash, hash")):
            buffers[name] = io.BytesIO()
            with cursor.copy(f"COPY (SELECT {columns} FROM {table} ORDER BY id) TO STDOUT") as copy:
                for data in copy:
                    buffers[name].write(data)
        cursor.execute("SELECT seq, last_hash, last_transaction_id FROM ledger_chain_head")
        head = cursor.fetchone()
        cursor.execute("TRUNCATE ledger_postings, ledger_transactions CASCADE")
        connection.commit()
        progress("the floor: COPY of the same transactions and postings, linked and committed…")
        started = time.perf_counter()
        with cursor.copy(f"COPY ledger_transactions ({TRANSACTION_COPY}) FROM STDIN") as copy:
            copy.write(buffers["transactions"].getvalue())
        postings_started = time.perf_counter()
        with cursor.copy(f"COPY ledger_postings ({POSTING_COPY}) FROM STDIN") as copy:
            copy.write(buffers["postings"].getvalue())
        postings_seconds = time.perf_counter() - postings_started
        cursor.execute("CREATE TEMPORARY TABLE links (id integer, seq bigint, prev_hash varchar(64), "
                       "hash varchar(64)) ON COMMIT DROP")
        with cursor.copy("COPY links FROM STDIN") as copy:
            copy.write(buffers["links"].getvalue())
        cursor.execute("UPDATE ledger_transactions AS t SET seq = l.seq, prev_hash = l.prev_hash, hash = l.hash "
                       "FROM links AS l WHERE l.id = t.id")
        cursor.execute("INSERT INTO ledger_chain_head (id, seq, last_hash, last_transaction_id) "
                       "VALUES (1, %s, %s, %s)", head)
        connection.commit()
        return time.perf_counter() - started, postings_seconds


ROLLUP_FLOOR_SQL = """
SELECT count(*) FROM (
    SELECT t.sale_date, o.donor_code, l.county_code, p.household_id, sum(p.amount_fen)
    FROM ledger_postings AS p
    JOIN order_lines AS l ON l.id = p.order_line_id
    JOIN orders AS o ON o.id = l.order_id
    JOIN ledger_transactions AS t ON t.order_line_id = l.id AND t.kind = 'line_paid'
    WHERE p.household_id IS NOT NULL AND p.component IN ('premium', 'dividend')
    GROUP BY 1, 2, 3, 4) AS nets
"""
RECENT_TRANSACTIONS = 10  # about a busy minute's new lines, for the periodic refresh


def _rollup_floor(url: str) -> float:
    """Seconds of the bare SQL grouping every household posting by sale date, donor, county and household (what a
    full refresh must read, without writing anything)."""
    with psycopg.connect(url) as connection:
        connection.execute("SET work_mem = '256MB'")
        connection.execute("SET jit = off")
        started = time.perf_counter()
        connection.execute(ROLLUP_FLOOR_SQL).fetchone()
        return time.perf_counter() - started


def _refresh(url: str, folder: Path) -> dict:
    """The rollups built from scratch by the refresh (as the first periodic run after deploying does), then the
    refresh of the last RECENT_TRANSACTIONS transactions (the watermark set back), then one with nothing new:
    seconds and rows of each, each committed."""
    from orders.ledger.rollups import PairingRollupState, refresh_rollups
    from shop.db import db

    timings = {}
    with app_context(url, folder):
        for name in ("full", "recent", "nothing_new"):
            if name == "recent":
                db.session.get(PairingRollupState, 1).ledger_seq -= RECENT_TRANSACTIONS
                db.session.commit()
            started = time.perf_counter()
            done = refresh_rollups()
            db.session.commit()
            timings[name] = {"seconds": time.perf_counter() - started, "sale_dates": done["sale_dates"]}
    with psycopg.connect(url) as connection:
        for table in ("pairing_rollup_sales", "pairing_rollup_households", "pairing_rollup_months"):
            timings[f"{table}_rows"] = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        connection.execute("ANALYZE pairing_rollup_sales, pairing_rollup_households, pairing_rollup_months")
    return timings


def _report(url: str, folder: Path) -> tuple[float, float, int]:
    """The pairing report over the whole period, twice: (first seconds, second seconds, rows)."""
    from orders.ledger.reports import pairing_report
    from shop.db import db

    with app_context(url, folder):
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            report = pairing_report(from_date=FIRST_SALE, to_date=FIRST_SALE + timedelta(days=SALE_DAYS))
            timings.append(time.perf_counter() - started)
            db.session.rollback()
        return timings[0], timings[1], len(report["rows"])


@benchmark("attribution")
def attribution() -> Result:
    """Lines/s and postings/s of attribution beside a COPY of its rows; the rollup refresh and the pairing report."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    if not url.startswith(("postgres://", "postgresql://")):
        raise BenchError("BENCH_DATABASE_URL must be a postgresql:// URL for the attribution benchmark.")
    with tempfile.TemporaryDirectory(prefix="bench-attribution-") as folder:
        reset_postgres(url)
        migrate(url, Path(folder))
        seeded = _seed(url)
        progress(f"attributing {seeded['lines']:,} lines through the outbox delivery task…")
        seconds = _attribute(url, Path(folder))
        with psycopg.connect(url) as connection, connection.cursor() as cursor:
            transactions, postings = _check(cursor, seeded["lines"])
        floor_seconds, floor_postings_seconds = _floor(url)
        with psycopg.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            _check(cursor, seeded["lines"])
        progress("refreshing the pairing report's rollups from scratch, then the last transactions…")
        refresh = _refresh(url, Path(folder))
        refresh_floor = _rollup_floor(url)
        progress("reading the pairing report over the whole period…")
        report_first, report_second, report_rows = _report(url, Path(folder))
    lines = seeded["lines"]
    progress(f"attribution {seconds:.1f} s, floor {floor_seconds:.1f} s (target ≤ {TARGET_RATIO}× and "
             f"< {TARGET_SECONDS} s); pairing report {report_first:.2f} s / {report_second:.2f} s "
             f"(target < {REPORT_TARGET_SECONDS} s); rollup refresh {refresh['full']['seconds']:.1f} s from scratch "
             f"(bare grouping {refresh_floor:.1f} s), {refresh['recent']['seconds']:.2f} s for the last "
             f"{RECENT_TRANSACTIONS} transactions")
    return Result(
        name="attribution",
        rows=[Row("lines/s", lines / seconds, "lines/s", lines / floor_seconds),
              Row("postings/s", postings / seconds, "postings/s", postings / floor_seconds),
              Row("seconds", seconds, "s", floor_seconds),
              Row("rollup refresh", refresh["full"]["seconds"], "s", refresh_floor),
              Row("report", report_second, "s", REPORT_TARGET_SECONDS)],
        settings={"database": "postgresql", "lines": lines, "orders": seeded["orders"],
                  "allocations": seeded["allocations"], "households": HOUSEHOLDS, "suppliers": SUPPLIERS,
                  "lots": SUPPLIERS * LOTS_PER_SUPPLIER, "events_per_task": _delivery_batch(), "workers": WORKERS},
        details={"transactions": transactions, "postings": postings, "postings_per_line": postings / lines,
                 "attribution_seconds": seconds, "floor_seconds": floor_seconds,
                 "floor_postings_copy_seconds": floor_postings_seconds, "report_first_seconds": report_first,
                 "report_second_seconds": report_second, "report_rows": report_rows, "rollup_refresh": refresh,
                 "rollup_refresh_floor_seconds": refresh_floor,
                 "targets": {"ratio": TARGET_RATIO, "seconds": TARGET_SECONDS,
                             "report_seconds": REPORT_TARGET_SECONDS}},
    )


def _delivery_batch() -> int:
    """The events one delivery task applies."""
    from orders.outbox import DELIVERY_BATCH

    return DELIVERY_BATCH
