"""`checkout`: paid orders/s and p99 of the create → paid round on PostgreSQL, beside the floor.

Production-shaped: the app runs under gunicorn (2 sync workers) with Redis as its broker and cache, one Celery
worker (concurrency 2) on the default queue processing the payment events and one (concurrency 2) on the `outbox`
queue delivering the money events to the ledger, as a deployment does (payments never wait behind attribution). 32
clients (threads, keep-alive connections) each loop: `POST /api/v1/orders` (one unit of a random hot SKU, delivery)
and `POST /api/v1/payments/sandbox/<pi>/confirm`, which signs the event and hands it to the webhook's handler: it is
stored and acknowledged, and the worker pays the order. An order counts when it is paid (its units allocated to
lots): throughput is the `paid` transitions made within the measured window, and a round's latency runs from the
client sending the create to the worker recording `paid` (both clocks are this machine's). Rounds started in the
window that are not paid once the queue has drained are failures; the outbox is drained too before the next run
(`ledger_drained_after_s`: how long after the window the ledger had attributed every paid line). The floor is a
minimal Flask app (`floor_app` below) under the same gunicorn settings doing the same stock decrement and inserts
(order, line, allocation, outbox row) in one transaction through a bare psycopg connection per worker; its round is
that one request. Beside each figure the run records the CPU per paid order (per round, for the floor) of the
web, the payment and ledger workers, PostgreSQL and the clients (`bench.cpu`), and splits the app's round into the
client's two requests and the worker's delay after them. Run over 100 hot SKUs, then 5 (contention). Afterwards
the stock is checked: nothing oversold, every paid unit allocated, nothing negative. BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/shop_bench_checkout) is rebuilt and BENCH_REDIS_URL (default
redis://127.0.0.1:6379/8) flushed.
"""
from __future__ import annotations

import gc
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

import psycopg
from flask import Flask, request

from bench import BenchError, benchmark, cpu, load, progress, servers
from bench.databases import app_context, migrate, reset_postgres
from bench.results import Result, Row

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/shop_bench_checkout"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
WORKER_CONCURRENCY = 2
LEDGER_CONCURRENCY = 2
DRAIN_SECONDS = 60
CLIENTS = 32
WARMUP_SECONDS = 3
STOCK_PER_LOT = 4_000
LOTS_PER_PRODUCT = 3
PRICE_FEN = 1990
# the processes whose CPU is counted (`bench.cpu`), by what their session leader's command line holds
APP_ROLES = {"web": "bench.wsgi:app", "payments": "-Q celery", "ledger": "-Q outbox"}
FLOOR_ROLES = {"web": "checkout:floor_app"}
ADDRESS = {"district_code": "440604", "detail": "基准路 1 号", "recipient": "基准收件人", "phone": "13800000000"}


# --- the floor ---------------------------------------------------------------------------------------

floor_app = Flask(__name__)
_floor_connection: dict[str, psycopg.Connection] = {}

FLOOR_SQL = (
    """UPDATE stock SET on_hand = on_hand - 1 WHERE id = (
         SELECT id FROM stock WHERE location_id = %(location)s AND product_id = %(product)s AND on_hand > reserved
         ORDER BY id LIMIT 1 FOR UPDATE) RETURNING lot_id""",
    """INSERT INTO orders (channel, status, consumer_id, location_id, donor_code, address_enc, total_fen,
         payment_method, late_entry, paid_at, sale_date, created_at, updated_at)
       VALUES ('delivery', 'paid', %(user)s, %(location)s, '440604', 'x', %(price)s, 'stripe', false, now(),
         current_date, now(), now()) RETURNING id""",
    """INSERT INTO order_lines (order_id, product_id, sku, name, supplier_id, county_code, quantity, unit_price_fen,
         platform_fee_bp, store_commission_bp, household_premium_bp, dividend_bp, refunded_quantity)
       VALUES (%(order)s, %(product)s, 'FLOOR', 'floor', %(supplier)s, '513431', 1, %(price)s, 500, 800, 1000, 300, 0)
       RETURNING id""",
    """INSERT INTO allocations (order_line_id, location_id, lot_id, quantity, state, refunded)
       VALUES (%(line)s, %(location)s, %(lot)s, 1, 'allocated', 0)""",
    """INSERT INTO outbox_events (kind, order_id, order_line_id, amount_fen, payload, occurred_at, sale_date,
         created_at, delivered_at) VALUES ('line_paid', %(order)s, %(line)s, %(price)s, '{}', now(), current_date,
         now(), now())""",
)


def _floor_db() -> psycopg.Connection:
    """This worker's connection (a sync worker serves one request at a time: a pool of one)."""
    if "conn" not in _floor_connection or _floor_connection["conn"].closed:
        _floor_connection["conn"] = psycopg.connect(os.environ["BENCH_FLOOR_DSN"])
    return _floor_connection["conn"]


@floor_app.post("/floor/orders")
def floor_order():
    """Sell one unit of a product: the stock decrement and the order's inserts in one transaction."""
    body = request.get_json()
    params = {"product": body["product_id"], "location": int(os.environ["BENCH_FLOOR_LOCATION"]),
              "user": int(os.environ["BENCH_FLOOR_USER"]), "supplier": int(os.environ["BENCH_FLOOR_SUPPLIER"]),
              "price": PRICE_FEN}
    conn = _floor_db()
    with conn.transaction(), conn.cursor() as cursor:
        row = cursor.execute(FLOOR_SQL[0], params).fetchone()
        if row is None:
            return {"error": "insufficient_stock"}, 409
        params["lot"] = row[0]
        params["order"] = cursor.execute(FLOOR_SQL[1], params).fetchone()[0]
        params["line"] = cursor.execute(FLOOR_SQL[2], params).fetchone()[0]
        cursor.execute(FLOOR_SQL[3], params)
        cursor.execute(FLOOR_SQL[4], params)
    return {"id": params["order"], "status": "paid"}, 201


gc.freeze()  # as the app's entry points do (bench.wsgi, shop.worker): same settings for the floor


# --- the world ---------------------------------------------------------------------------------------

def seed(database_url: str, folder: Path) -> dict:
    """A supplier, 100 active products with three lots each in one warehouse, and 32 consumers with tokens."""
    from catalog import inventory
    from catalog.models import Product
    from catalog.service import pinyin_keys
    from shop.auth.models import User
    from shop.auth.security import hash_password, issue_token
    from shop.db import db
    from suppliers import service as suppliers
    from suppliers.demo import synthetic_uscc

    with app_context(database_url, folder):
        supplier = suppliers.create_supplier(name="基准测试合作社", kind="cooperative",
                                             uscc=synthetic_uscc("513431", 77), county_code="513431")
        warehouse = inventory.create_location(code="BENCH-WH", name="基准仓", kind="warehouse", region_code="513401")
        products = []
        for n in range(100):
            name = f"苦荞米{n}"
            full, initials = pinyin_keys(name)
            product = Product(sku=f"BENCH-{n:04d}", name=name, name_pinyin=full, name_initials=initials,
                              description="", category="粮油", unit="bag", net_weight_g=500, price_fen=PRICE_FEN,
                              county_code="513431", supplier_id=supplier.id, status="active", images=[],
                              platform_fee_bp=500, store_commission_bp=800, household_premium_bp=1000,
                              dividend_bp=300, certificate_number=f"凉扶认基准{n:04d}", certificate_issuer="凉山州",
                              certificate_valid_from=date(2026, 1, 1), certificate_valid_until=date(2099, 12, 31))
            db.session.add(product)
            db.session.flush()
            for lot in range(LOTS_PER_PRODUCT):
                inventory.add_lot(product=product, location=warehouse, lot_code=f"B{n:04d}-{lot}",
                                  harvested_on=date(2026, 1, 1 + lot), packed_on=None, village="基准村",
                                  quantity=STOCK_PER_LOT)
            products.append((product.id, product.sku))
        users = [User(username=f"bench-buyer-{i}", password_hash=hash_password("bench-password-1"), role="consumer")
                 for i in range(CLIENTS)]
        db.session.add_all(users)
        db.session.commit()
        tokens = [issue_token(user)[0] for user in users]
        return {"products": products, "tokens": tokens, "warehouse": warehouse.id, "supplier": supplier.id,
                "user": users[0].id}


# --- the load ----------------------------------------------------------------------------------------

class _Client:
    """One keep-alive HTTP connection posting JSON."""

    def __init__(self, base: str, token: str | None):
        host, port = base.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        """POST `body`; the status and the JSON answer."""
        self.connection.request("POST", path, body=json.dumps(body), headers=self.headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")


def _app_round(client: _Client, sku: str, _product_id: int) -> int | None:
    """Create an order and confirm its payment through the sandbox; the order's id once the event is accepted
    (the worker pays it), else None."""
    status, order = client.post("/api/v1/orders", {"channel": "delivery", "address": ADDRESS,
                                                   "lines": [{"sku": sku, "quantity": 1}]})
    if status != 201:
        return None
    intent_id = order["payment"]["client_secret"].split("_secret_")[0]
    status, _ = client.post(f"/api/v1/payments/sandbox/{intent_id}/confirm", {"outcome": "succeeded"})
    return order["id"] if status == 200 else None


def _floor_round(client: _Client, _sku: str, product_id: int) -> bool:
    """The floor's whole round: one request."""
    status, _ = client.post("/floor/orders", {"product_id": product_id})
    return status == 201


def drive(base: str, tokens: list[str], products: list[tuple[int, str]], round_fn,
          roles: dict[str, str]) -> tuple[float, float, list, list]:
    """32 clients looping rounds: warm-up, then BENCH_SECONDS measured; the window's wall-clock start and stop,
    the rounds started in it, each (started, finished, what `round_fn` returned), wall-clock seconds, and the CPU
    used by `roles` (`bench.cpu.snapshot`) at the window's start and stop."""
    duration = load.seconds()
    start = time.time() + WARMUP_SECONDS
    stop = start + duration
    rounds: list[tuple[float, float, object]] = []
    lock = threading.Lock()
    snapshots: list[dict[str, float]] = []

    def meter() -> None:
        for moment in (start, stop):
            time.sleep(max(0.0, moment - time.time()))
            snapshots.append(cpu.snapshot(roles))

    def run(i: int) -> None:
        client, rng, mine = _Client(base, tokens[i]), random.Random(i), []
        while (now := time.time()) < stop:
            product_id, sku = products[rng.randrange(len(products))]
            try:
                outcome = round_fn(client, sku, product_id)
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                outcome = None
                client = _Client(base, tokens[i])
            if now >= start:
                mine.append((now, time.time(), outcome))
        with lock:
            rounds.extend(mine)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)] + [threading.Thread(target=meter)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return start, stop, rounds, snapshots


def _p99(latencies: list[float]) -> float:
    """The 99th percentile of `latencies` (ms), NaN for none."""
    latencies = sorted(latencies)
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")


def floor_figures(start: float, stop: float, rounds: list, snapshots: list) -> dict:
    """The floor's rounds/s and p99 (a round is paid when its one request answered 201), with the CPU per round
    by role and the cores kept busy."""
    ok = sum(bool(outcome) for _, _, outcome in rounds)
    return {"paid_per_s": round(ok / (stop - start), 1), "p99_ms": round(_p99([(end - begin) * 1000
                                                                               for begin, end, _ in rounds]), 1),
            "paid": ok, "failed": len(rounds) - ok, "cpu_ms_per_round": cpu.per_unit(*snapshots, ok),
            "busy_cores": cpu.busy_cores(*snapshots, stop - start)}


def _drain(conninfo: str, pending: str) -> float:
    """Wait until the query `pending` finds nothing left (or DRAIN_SECONDS passed); when (wall clock)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if not conn.execute(pending).fetchone():
                break
            time.sleep(0.2)
    return time.time()


def app_figures(database_url: str, start: float, stop: float, rounds: list, snapshots: list) -> dict:
    """The app's paid orders/s (`paid` transitions within the window) and the p99 of create → paid over the
    rounds started in the window; a round not paid once the queue drained is a failure (latency: until then).
    Beside them, what a round is made of: the client's two requests (their mean is clients ÷ rounds/s: the loop
    never pauses) and the payment worker's delay after the confirm answered; and the CPU per paid order by role
    with the cores kept busy."""
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    drained = _drain(conninfo, "SELECT 1 FROM payment_events WHERE status = 'pending' LIMIT 1")
    # the ledger's attributions are no part of a round, but they must keep up too: how long after the window
    # the last one was made (the next run starts with an empty outbox)
    attributed = _drain(conninfo, "SELECT 1 FROM outbox_events WHERE delivered_at IS NULL LIMIT 1")
    ids = [outcome for _, _, outcome in rounds if outcome]
    with psycopg.connect(conninfo) as conn:
        in_window = conn.execute(
            "SELECT count(*) FROM order_transitions WHERE to_status = 'paid' AND created_at >= to_timestamp(%s) "
            "AND created_at < to_timestamp(%s)", (start, stop)).fetchone()[0]
        paid_at = dict(conn.execute(
            "SELECT order_id, extract(epoch FROM created_at)::float8 FROM order_transitions "
            "WHERE to_status = 'paid' AND order_id = ANY(%s)", (ids,)).fetchall())
    latencies, requests, delays, failed = [], [], [], 0
    for begin, answered, order_id in rounds:
        end = paid_at.get(order_id) if order_id else None
        failed += end is None
        latencies.append(((end or drained) - begin) * 1000)
        if end is not None:
            requests.append((answered - begin) * 1000)
            delays.append((end - answered) * 1000)
    return {"paid_per_s": round(in_window / (stop - start), 1), "p99_ms": round(_p99(latencies), 1),
            "paid": in_window, "failed": failed, "drained_after_s": round(drained - stop, 1),
            "ledger_drained_after_s": round(attributed - stop, 1),
            "requests_mean_ms": round(sum(requests) / len(requests), 1) if requests else None,
            "requests_p99_ms": round(_p99(requests), 1), "worker_delay_p99_ms": round(_p99(delays), 1),
            "cpu_ms_per_paid": cpu.per_unit(*snapshots, in_window),
            "busy_cores": cpu.busy_cores(*snapshots, stop - start)}


@contextmanager
def celery_workers(env: dict[str, str]) -> Iterator[None]:
    """The app's Celery workers on `env`'s broker, as a deployment runs them: one (concurrency
    WORKER_CONCURRENCY) for the default queue, where payment events are processed, and one (concurrency
    LEDGER_CONCURRENCY) for the outbox queue, where the ledger attributes paid lines; waited for and always
    stopped."""
    child_env = servers.child_environment(env)
    progress(f"starting the Celery workers (payments: concurrency {WORKER_CONCURRENCY}, "
             f"outbox: concurrency {LEDGER_CONCURRENCY})…")
    with ExitStack() as stack:
        log = stack.enter_context(tempfile.TemporaryFile("w+"))
        processes = []
        for queue, concurrency in (("celery", WORKER_CONCURRENCY), ("outbox", LEDGER_CONCURRENCY)):
            command = [sys.executable, "-m", "celery", "-A", "shop.worker", "worker", "-Q", queue, "-n",
                       f"{queue}@%h", "--concurrency", str(concurrency), "--loglevel", "warning", "--without-gossip",
                       "--without-mingle", "--without-heartbeat"]
            process = subprocess.Popen(command, cwd=servers.ROOT, env=child_env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            stack.callback(servers._stop, process)
            processes.append(process)
        stack.callback(progress, "stopping the Celery workers…")
        deadline = time.monotonic() + servers.START_TIMEOUT
        while _ping(env) < len(processes):
            if any(process.poll() is not None for process in processes) or time.monotonic() > deadline:
                log.seek(0)
                raise BenchError(f"the Celery workers did not start:\n{log.read()[-3000:]}")
            time.sleep(0.5)
        yield


def _ping(env: dict[str, str]) -> int:
    """How many Celery workers on `env`'s broker answer a ping."""
    from celery import Celery

    probe = Celery(broker=env["REDIS_URL"])
    try:
        return len(probe.control.ping(timeout=0.5) or [])
    finally:
        probe.close()


def flush_redis(url: str) -> None:
    """Empty the benchmark's Redis database (the broker's queues and the app's cache)."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"Cannot reach Redis at {url}: {exc}") from exc


def check_stock(database_url: str, products: int) -> dict:
    """Nothing oversold: no negative or over-reserved row, and on hand + allocated units = what was stocked."""
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        lowest, on_hand = conn.execute("SELECT min(on_hand - reserved), sum(on_hand) FROM stock").fetchone()
        allocated = conn.execute("SELECT coalesce(sum(quantity), 0) FROM allocations WHERE state = 'allocated'"
                                 ).fetchone()[0]
        paid_units = conn.execute(
            "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id "
            "WHERE o.status = 'paid'").fetchone()[0]
    stocked = products * LOTS_PER_PRODUCT * STOCK_PER_LOT
    result = {"lowest_available": int(lowest), "on_hand": int(on_hand), "allocated": int(allocated),
              "paid_units": int(paid_units), "stocked": stocked}
    if lowest < 0 or on_hand + allocated != stocked or allocated != paid_units:
        raise BenchError(f"Oversold or lost units: {result}")
    return result


@benchmark("checkout")
def checkout() -> Result:
    """Paid orders/s and p99 of create → paid over 100 and over 5 hot SKUs, each beside the floor's round."""
    load.seconds()  # checks BENCH_SECONDS before any server starts (the load is driven here, not by wrk)
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    rows, details = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-checkout-") as folder:
        reset_postgres(database_url)
        flush_redis(redis_url)
        migrate(database_url, Path(folder))
        world = seed(database_url, Path(folder))
        env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "PAYMENTS": "sandbox"}
        floor_env = {"BENCH_FLOOR_DSN": database_url.replace("postgresql+psycopg://", "postgresql://"),
                     "BENCH_FLOOR_LOCATION": str(world["warehouse"]), "BENCH_FLOOR_USER": str(world["user"]),
                     "BENCH_FLOOR_SUPPLIER": str(world["supplier"])}
        for hot in (100, 5):
            products = world["products"][:hot]
            with (celery_workers(env),
                  servers.gunicorn("the app", "bench.wsgi:app", env=env, ready_path="/api/v1/regions") as base):
                progress(f"{CLIENTS} clients checking out over {hot} hot SKUs…")
                app = app_figures(database_url, *drive(base, world["tokens"], products, _app_round, APP_ROLES))
            details[f"app_{hot}"] = {**app, "stock": check_stock(database_url, len(world["products"]))}
            with servers.gunicorn("the floor app", "bench.benchmarks.checkout:floor_app", env=floor_env,
                                  ready_path="/floor") as base:
                progress(f"{CLIENTS} clients on the floor over {hot} hot SKUs…")
                floor = floor_figures(*drive(base, world["tokens"], products, _floor_round, FLOOR_ROLES))
            details[f"floor_{hot}"] = floor
            rows += [Row(f"paid/s {hot} SKUs", app["paid_per_s"], "orders/s", floor["paid_per_s"]),
                     Row(f"p99 {hot} SKUs", app["p99_ms"], "ms", floor["p99_ms"])]
            if app["cpu_ms_per_paid"] and floor["cpu_ms_per_round"]:  # measured where there is /proc
                rows.append(Row(f"CPU {hot} SKUs", app["cpu_ms_per_paid"]["total"], "ms",
                                floor["cpu_ms_per_round"]["total"]))
    return Result(name="checkout", rows=rows,
                  settings={"database": "postgresql", "clients": CLIENTS, "payments": "sandbox",
                            "broker": "redis",
                            "celery_workers": {"celery": WORKER_CONCURRENCY, "outbox": LEDGER_CONCURRENCY},
                            "round": "POST /orders + POST /payments/sandbox/<pi>/confirm, until the worker "
                                     "records the order paid",
                            "floor_round": "one transaction: stock decrement + order, line, allocation, outbox",
                            **servers.settings(), "seconds": load.seconds()},
                  details=details)
