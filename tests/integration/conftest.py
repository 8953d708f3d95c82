"""Fixtures of the integration suite: a real Celery worker process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture
def celery_worker_process(redis_app, _pg_migrated, redis_url, tmp_path):
    """A real `celery -A shop.worker worker` against the test PostgreSQL and Redis (its log in tmp_path)."""
    env = {**os.environ, "DATABASE_URL": _pg_migrated, "REDIS_URL": redis_url}
    with open(tmp_path / "worker.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "shop.worker", "worker", "--pool=solo",
             "--concurrency=1", "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        yield process
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
