"""`GET /api/v1/regions?level=county` on the real app beside a minimal Flask app serving the same JSON."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench import benchmark, load, servers
from bench.databases import database_kind, prepare_database
from bench.results import Result, Row

PATH = "/api/v1/regions?level=county"


@benchmark("regions")
def regions() -> Result:
    """Requests/s and p99 of the county list, each beside the floor's."""
    load.prepare()
    with tempfile.TemporaryDirectory(prefix="bench-regions-") as folder:
        database_url = prepare_database(Path(folder))
        with servers.gunicorn("the app", "bench.wsgi:app", env={"DATABASE_URL": database_url},
                              ready_path=PATH) as base:
            body = servers.fetch(base + PATH)
            app = load.measure("the app", base + PATH)
        with servers.floor_server(body) as base:
            floor = load.measure("the floor app", base + PATH)
    return Result(
        name="regions",
        rows=[Row("requests/s", app.requests_per_s, "req/s", floor.requests_per_s),
              Row("p99 latency", app.p99_ms, "ms", floor.p99_ms)],
        settings={"path": PATH, "database": database_kind(database_url), "response_bytes": len(body),
                  "items": len(json.loads(body)["items"]), **servers.settings(), **load.settings()},
        details={"app": app.as_dict(), "floor": floor.as_dict()},
    )
