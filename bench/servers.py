"""Servers under load: gunicorn on a free loopback port, always stopped afterwards."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import BenchError, progress
from shop.config import SECRETS, fresh_secrets

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
WORKER_CLASS = "sync"
START_TIMEOUT = 30
STOP_TIMEOUT = 10
# The app's own settings are decided by each benchmark, never inherited from the shell.
_APP_VARIABLES = ("DATABASE_URL", "REDIS_URL", "SHOP_ENV", "STRIPE_API_KEY", "PAYMENTS", *SECRETS)
# one set of keys per run, shared by everything of that run that opens the database: seeding, apps and workers
RUN_SECRETS = fresh_secrets("bench")


def child_environment(env: dict[str, str]) -> dict[str, str]:
    """The environment of a process of the run: this one's without the app's settings, the run's keys, `env`."""
    return {key: value for key, value in os.environ.items() if key not in _APP_VARIABLES} | RUN_SECRETS | env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, timeout: float = 5) -> bytes:
    """The body of a 200 response to GET `url`."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        if response.status != 200:
            raise BenchError(f"GET {url} answered {response.status}.")
        return response.read()


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` (with any status)."""
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _stop(process: subprocess.Popen) -> None:
    """Stop gunicorn gracefully, then kill whatever is left of its process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(STOP_TIMEOUT)


@contextmanager
def gunicorn(label: str, wsgi: str, *, env: dict[str, str], ready_path: str = "/", workers: int = WORKERS,
             worker_class: str = WORKER_CLASS, threads: int = 1) -> Iterator[str]:
    """Serve `wsgi` ("module:app") with gunicorn on loopback and yield its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child_env = child_environment(env)
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", worker_class,
               "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
               "--no-control-socket", wsgi]
    progress(f"starting {label} under gunicorn ({workers} {worker_class} workers) on {base}…")
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _answers(base + ready_path):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise BenchError(f"{label} did not start under gunicorn:\n{log.read()[-3000:]}")
                time.sleep(0.2)
            yield base
        finally:
            progress(f"stopping {label}…")
            _stop(process)


@contextmanager
def floor_server(payload: bytes) -> Iterator[str]:
    """Serve the JSON `payload` at every path from the minimal floor app; yield its base URL."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as folder:
        path = Path(folder) / "payload.json"
        path.write_bytes(payload)
        with gunicorn("the floor app", "bench.floor_app:app", env={"BENCH_FLOOR_JSON": str(path)}) as base:
            if json.loads(fetch(base + "/")) != json.loads(payload):
                raise BenchError("The floor app does not serve the captured JSON.")
            yield base


def settings() -> dict:
    """The server settings every gunicorn benchmark records."""
    return {"server": "gunicorn", "workers": WORKERS, "worker_class": WORKER_CLASS}
