"""A shopper's catalog traffic, random over 20,000 products / 200,000 lots on PostgreSQL, beside the same-SQL floor.

The mix: 35% product pages with live stock, 5% trace JSON of random lots, 30% searches (Chinese, full
pinyin, initials, with and without a number, a fifth matching nothing), 20% county lists and 10% donor
lists (half of the lists a random deeper page through a cursor). Every request draws its path at random
from a list sampled over the whole data set, so the cache cannot hide the database. Production shape: the
cache in Redis (BENCH_REDIS_URL, flushed first). The floor (`bench.catalog_floor`) answers the same paths
with the plain SQL of each kind through one psycopg connection per worker and `json.dumps`.

`catalog_mix` measures the mix and each kind alone; `catalog_scaling` the mix at 1, 2 and 4 workers,
sync and gthread.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import redis

from bench import BenchError, benchmark, load, progress, servers
from bench.benchmarks.products import COUNTIES, DEFAULT_DATABASE_URL, LOTS, NAMES, PRODUCTS, generate
from bench.databases import app_context, migrate, reset_postgres
from bench.results import Result, Row

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
DONORS = ("440604", "440605", "440606", "440607", "440608")
MIX = (("product", 35), ("trace", 5), ("search", 30), ("county", 20), ("donor", 10))
PATHS = 20_000
PAGE = 20
CHECKED_PER_KIND = 25
ROUNDS = 5  # each figure: app and floor measured in 5 alternating slices of BENCH_SECONDS / 5
SEED = 20261126
API = "/api/v1"
# (workers, worker class, threads per worker) of the scaling curve
SCALING = ((1, "sync", 1), (2, "sync", 1), (4, "sync", 1), (1, "gthread", 4), (2, "gthread", 4), (4, "gthread", 4))

Pair = tuple[str, str]  # (the app's path, the floor's path)


def _list_pair(query: str, ids: list[int], rng: random.Random, cursor_for) -> Pair:
    """A list path: the first page, or (half the time) a random deeper page through a cursor."""
    pages = max(1, -(-len(ids) // PAGE))
    page = 0 if pages == 1 or rng.random() < 0.5 else rng.randrange(1, pages)
    path = f"{API}/products?{query}&limit={PAGE}"
    if page == 0:
        return path, path
    after = ids[page * PAGE - 1]
    return f"{path}&cursor={cursor_for(path, after)}", f"{path}&after={after}"


def _search_terms(rng: random.Random, count: int) -> list[str]:
    """What shoppers type: common terms (35%), a name with a number (45%), or nothing that exists (20%)."""
    from catalog.service import pinyin_keys

    keys = {name: pinyin_keys(name) for name in NAMES}
    terms = []
    for _ in range(count):
        name = NAMES[rng.randrange(len(NAMES))]
        full, initials = keys[name]
        roll = rng.random()
        if roll < 0.35:
            terms.append(rng.choice((name, name[:2], full, full[: max(2, len(full) // 2)], initials)))
        elif roll < 0.8:
            terms.append(rng.choice((name, full, initials)) + str(rng.randrange(1, PRODUCTS // 10)))
        else:
            terms.append(rng.choice(("v" + "".join(rng.choice("abcdefghjkmnpqrstwxyz") for _ in range(4)),
                                     f"海鲜{rng.randrange(1000)}")))
    return terms


def sample_paths(database_url: str, folder: Path) -> dict[str, list[Pair]]:
    """Per kind, paths sampled over the whole data set, each with the floor's spelling of it."""
    from catalog.models import Product
    from shop.pagination import encode_cursor

    rng = random.Random(SEED)
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        skus = [sku for (sku,) in conn.execute("SELECT sku FROM products WHERE status = 'active'")]
        codes = [code for (code,) in conn.execute("SELECT trace_code FROM lots")]
        by_county = {county: [i for (i,) in conn.execute(
            "SELECT id FROM products WHERE status = 'active' AND county_code = %s ORDER BY id", (county,))]
            for county in COUNTIES}
        by_donor = {donor: [i for (i,) in conn.execute(
            "SELECT id FROM products WHERE status = 'active' AND county_code IN (SELECT recipient_code FROM "
            "pairings WHERE donor_code = %s AND valid_from <= current_date AND (valid_until IS NULL OR "
            "valid_until >= current_date)) ORDER BY id", (donor,))] for donor in DONORS}
    with app_context(database_url, folder) as app:
        def cursor_for(path: str, product_id: int) -> str:
            """The app's own cursor of the list at `path` after `product_id` (what its next_cursor says)."""
            with app.test_request_context(path):
                return encode_cursor([product_id], [Product.id])

        weights = dict(MIX)
        total = sum(weights.values())
        count = {kind: PATHS * weight // total for kind, weight in weights.items()}
        paths: dict[str, list[Pair]] = {
            "product": [(f"{API}/products/{sku}",) * 2 for sku in rng.choices(skus, k=count["product"])],
            "trace": [(f"{API}/trace/{code}",) * 2 for code in rng.choices(codes, k=count["trace"])],
            "search": [(f"{API}/products?q={quote(term)}&limit={PAGE}",) * 2
                       for term in _search_terms(rng, count["search"])],
        }
        counties, donors = rng.choices(COUNTIES, k=count["county"]), rng.choices(DONORS, k=count["donor"])
        paths["county"] = [_list_pair(f"county={c}", by_county[c], rng, cursor_for) for c in counties]
        paths["donor"] = [_list_pair(f"donor={d}", by_donor[d], rng, cursor_for) for d in donors]
    return paths


def _body(base: str, path: str) -> dict:
    """The JSON the server at `base` answers for `path`."""
    try:
        return json.loads(servers.fetch(base + path))
    except urllib.error.HTTPError as exc:
        raise BenchError(f"GET {path} answered {exc.code}.") from exc


def _comparable(body: dict) -> dict:
    """A body without what may differ between the app and the floor: the spelling of the next cursor."""
    if "next_cursor" in body:
        return {**body, "next_cursor": body["next_cursor"] is not None}
    return body


def check_same_answers(app_base: str, floor_base: str, paths: dict[str, list[Pair]]) -> None:
    """The floor answers a sample of every kind exactly as the app does (lists: the same products)."""
    progress("checking that the floor answers as the app does…")
    for kind, pairs in paths.items():
        for app_path, floor_path in pairs[:CHECKED_PER_KIND]:
            if _comparable(_body(app_base, app_path)) != _comparable(_body(floor_base, floor_path)):
                raise BenchError(f"The floor answers {floor_path} ({kind}) unlike the app answers {app_path}.")


def _warm_up(label: str, base: str, paths: list[str]) -> None:
    """Load the server at `base` with `paths` for the harness's warm-up seconds."""
    progress(f"warming up {label} ({load.WARMUP_SECONDS}s)…")
    with load.random_paths(paths) as script:
        load.run_wrk(base + "/", duration=load.WARMUP_SECONDS, script=script)


def _measure_all(app_base: str, floor_base: str, paths: dict[str, list[Pair]]) -> dict[str, dict]:
    """The mix, each kind alone, then the mix again (caches fuller): the app and the floor in alternating
    slices, so both see the same load from the rest of the machine."""
    mixes = [[pair[side] for pairs in paths.values() for pair in pairs] for side in (0, 1)]
    runs = [("mix", mixes), *((kind, [[pair[side] for pair in pairs] for side in (0, 1)])
                              for kind, pairs in paths.items()), ("mix again", mixes)]
    for label, base, side in (("the app", app_base, 0), ("the floor", floor_base, 1)):
        _warm_up(label, base, mixes[side])
    results: dict[str, dict] = {"app": {}, "floor": {}}
    for name, (app_paths, floor_paths) in runs:
        progress(f"measuring {name}…")
        measured = load.measure_alternating({"app": (app_base, app_paths), "floor": (floor_base, floor_paths)},
                                            rounds=ROUNDS)
        results["app"][name], results["floor"][name] = measured["app"], measured["floor"]
    return results


def flush_redis(redis_url: str) -> None:
    """Empty the benchmark's Redis database, so no earlier run's entries are served."""
    try:
        redis.Redis.from_url(redis_url).flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"Cannot reach Redis at {redis_url}: {exc}") from exc


@contextmanager
def _data_set() -> Iterator[tuple[str, str, dict, dict]]:
    """The generated data set: database URL, Redis URL, paths per kind and the copy timings."""
    load.prepare()
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as folder:
        reset_postgres(database_url)
        migrate(database_url, Path(folder))
        timings = generate(database_url, Path(folder))
        progress("sampling paths over the data set…")
        paths = sample_paths(database_url, Path(folder))
        flush_redis(redis_url)
        yield database_url, redis_url, paths, timings


def _servers(database_url: str, redis_url: str, **gunicorn):
    """The app's and the floor's gunicorn contexts under the same settings."""
    ready = f"{API}/products?limit=1"
    app = servers.gunicorn("the app", "bench.wsgi:app", env={"DATABASE_URL": database_url, "REDIS_URL": redis_url},
                           ready_path=ready, **gunicorn)
    floor = servers.gunicorn("the floor app", "bench.catalog_floor:app",
                             env={"BENCH_FLOOR_DATABASE_URL": database_url}, ready_path=ready, **gunicorn)
    return app, floor


def _settings(paths: dict[str, list[Pair]], redis_url: str) -> dict:
    """What the run's figures depend on."""
    return {"database": "postgresql", "cache": "redis", "products": PRODUCTS, "lots": LOTS,
            "mix_percent": dict(MIX), "paths_per_kind": {kind: len(pairs) for kind, pairs in paths.items()},
            "distinct_paths": {kind: len({app for app, _ in pairs}) for kind, pairs in paths.items()},
            "redis_db": redis_url.rsplit("/", 1)[-1], **servers.settings(), **load.settings()}


@benchmark("catalog_mix")
def catalog_mix() -> Result:
    """Requests/s and p99 of the mix, of each kind and of the mix repeated, each beside the floor's."""
    with _data_set() as (database_url, redis_url, paths, timings):
        app_server, floor_server = _servers(database_url, redis_url)
        with app_server as app_base, floor_server as floor_base:
            check_same_answers(app_base, floor_base, paths)
            flush_redis(redis_url)
            measured = _measure_all(app_base, floor_base, paths)
    app, floor = measured["app"], measured["floor"]
    rows = []
    for name in app:
        rows += [Row(f"{name} req/s", app[name].requests_per_s, "req/s", floor[name].requests_per_s),
                 Row(f"{name} p99", app[name].p99_ms, "ms", floor[name].p99_ms)]
    return Result(name="catalog_mix", rows=rows, settings=_settings(paths, redis_url),
                  details={"app": {k: v.as_dict() for k, v in app.items()},
                           "floor": {k: v.as_dict() for k, v in floor.items()}, "copy_seconds": timings})


@benchmark("catalog_scaling")
def catalog_scaling() -> Result:
    """Requests/s and p99 of the mix at 1, 2 and 4 gunicorn workers, sync and gthread, beside the floor's."""
    rows, details = [], {}
    with _data_set() as (database_url, redis_url, paths, timings):
        for workers, worker_class, threads in SCALING:
            label = f"{workers}{'s' if worker_class == 'sync' else f'g{threads}'}"
            flush_redis(redis_url)
            app_server, floor_server = _servers(database_url, redis_url, workers=workers,
                                                worker_class=worker_class, threads=threads)
            with app_server as app_base, floor_server as floor_base:
                mixes = {name: (base, [pair[side] for pairs in paths.values() for pair in pairs])
                         for name, base, side in (("app", app_base, 0), ("floor", floor_base, 1))}
                for name, (base, mix) in mixes.items():
                    _warm_up(f"the {name} ({label})", base, mix)
                measured = load.measure_alternating(mixes, rounds=ROUNDS)
            app, floor = measured["app"], measured["floor"]
            rows += [Row(f"{label} req/s", app.requests_per_s, "req/s", floor.requests_per_s),
                     Row(f"{label} p99", app.p99_ms, "ms", floor.p99_ms)]
            details[label] = {"workers": workers, "worker_class": worker_class, "threads": threads,
                              "app": app.as_dict(), "floor": floor.as_dict()}
    return Result(name="catalog_scaling", rows=rows, settings=_settings(paths, redis_url),
                  details={**details, "copy_seconds": timings})
