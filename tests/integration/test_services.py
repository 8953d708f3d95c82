"""Round trips through real PostgreSQL, Redis and a Celery worker."""
from __future__ import annotations

import time

import pytest
import redis
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shop.db import db
from shop.extensions import cache
from tests.factories import UserFactory
from tests.shop.test_auth import sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_postgres_serves_the_pairings_and_stores_users(pg_app):
    assert db.engine.dialect.name == "postgresql"
    client = pg_app.test_client()
    items = client.get("/api/v1/pairings?donor=440606").json["items"]
    assert sorted(p["recipient"]["name"] for p in items) == sorted(["美姑县", "金阳县", "雷波县"])
    user = UserFactory(role="consumer")
    db.session.commit()
    token = sign_in(client, user.username).json["access_token"]
    listed = client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 403


def test_postgres_schema_from_migrations_matches_the_models(pg_app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def test_redis_backs_the_cache_and_the_rate_limiter(redis_app, redis_url):
    assert redis_app.config["CACHE_TYPE"] == "RedisCache"
    cache.set("round-trip", {"凉山": 1})
    assert cache.get("round-trip") == {"凉山": 1}
    client = redis_app.test_client()
    user = UserFactory()
    db.session.commit()
    statuses = [sign_in(client, user.username, "wrong password").status_code for _ in range(6)]
    assert statuses[-1] == 429
    keys = redis.Redis.from_url(redis_url).keys("LIMITS*")
    assert keys, "the rate limiter should keep its counters in Redis"


def test_a_real_worker_executes_a_task_through_redis(celery_worker_process, redis_app):
    from shop.tasks import check_health

    assert redis_app.extensions["celery"].conf.task_always_eager is False
    started = time.monotonic()
    result = check_health.delay()
    assert result.get(timeout=60) == {"ok": True, "regions": 78}
    assert time.monotonic() - started < 60


def test_check_worker_reports_a_real_workers_answer(celery_worker_process, redis_app):
    result = redis_app.test_cli_runner().invoke(args=["check-worker", "--timeout", "60"])
    assert result.exit_code == 0 and result.output == "worker answered: {'ok': True, 'regions': 78}\n", result.output


def test_after_the_database_drops_its_connections_one_request_answers_503_and_the_next_is_served(pg_app):
    """No ping per request: a dead pooled connection costs one 503 (nothing written), then the pool is renewed."""
    from sqlalchemy import text

    client = pg_app.test_client()
    assert client.get("/api/v1/products/NO-SUCH-SKU").status_code == 404  # a pooled connection now exists
    db.session.remove()
    with db.engine.pool._creator() as admin:  # a connection outside the pool
        admin.autocommit = True
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    first, second = (client.get("/api/v1/products/NO-SUCH-SKU") for _ in range(2))
    db.session.remove()
    assert (first.status_code, first.json["error"]["code"]) == (503, "service_unavailable")
    assert second.status_code == 404
    assert db.session.execute(text("SELECT 1")).scalar() == 1
