"""The embedded default's beat: the Celery beat schedule run on a timer inside the serving process.

Without `REDIS_URL` there is no broker and no `celery beat`, and tasks run eagerly. So that the
periodic tasks (the sweep, certificate flags, and later reservation expiry and the outbox drain)
still run, the first request served starts one daemon thread that checks the same
`CELERY_BEAT_SCHEDULE` with the schedule objects' own `is_due()` and calls the same tasks.
It never starts under `TESTING`, nor in CLI commands (they serve no request), nor with a broker.
"""
from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from celery.schedules import maybe_schedule
from flask import Flask

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60.0
MIN_WAIT_SECONDS = 1.0
_start_lock = threading.Lock()


def _utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


class EmbeddedScheduler:
    """The beat schedule's entries, each with its last run; `tick()` runs the ones that are due."""

    def __init__(self, app: Flask, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.app = app
        self.celery = app.extensions["celery"]
        self.now = now
        self.stopped = threading.Event()
        self.entries = {}
        for name, entry in app.config["CELERY_BEAT_SCHEDULE"].items():
            schedule = maybe_schedule(copy.copy(entry["schedule"]), app=self.celery)
            schedule.nowfun = now
            self.entries[name] = (entry, schedule)
        started = now()
        self.last_run = {name: started for name in self.entries}

    def tick(self) -> float:
        """Run every entry that is due now, each isolated from the others' failures (its schedule's as well as its
        task's: an exception ending the timer thread would stop every periodic task for good); seconds to wait."""
        wait = MAX_WAIT_SECONDS
        for name, (entry, schedule) in self.entries.items():
            try:
                due, next_in = schedule.is_due(self.last_run[name])
                if due:
                    self.last_run[name] = self.now()
                    self._run(name, entry)
                wait = min(wait, next_in)
            except Exception:  # noqa: BLE001 - the timer must outlive a failing schedule
                log.exception("periodic schedule %s failed", name)
        return max(wait, MIN_WAIT_SECONDS)

    def _run(self, name: str, entry: dict) -> None:
        """Call the entry's task in this process, as a worker would (its own app context and commit)."""
        try:
            self.celery.tasks[entry["task"]].apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}),
                                                   throw=True)
        except Exception:  # noqa: BLE001 - the timer must outlive a failing task
            log.exception("periodic task %s failed", name)

    def run_forever(self) -> None:
        """Tick until stopped."""
        while not self.stopped.is_set():
            self.stopped.wait(self.tick())

    def stop(self) -> None:
        """Ask the timer thread to end after its current tick."""
        self.stopped.set()


def start_embedded_scheduler(app: Flask) -> EmbeddedScheduler | None:
    """Start the timer thread once per process in the embedded default (eager Celery, not TESTING);
    the running scheduler, or None where periodic tasks belong to `celery beat` or to the test."""
    if app.config.get("TESTING") or not app.config["CELERY"].get("task_always_eager"):
        return None
    with _start_lock:
        scheduler = app.extensions.get("embedded_scheduler")
        if scheduler is None:
            scheduler = app.extensions["embedded_scheduler"] = EmbeddedScheduler(app)
            threading.Thread(target=scheduler.run_forever, name="embedded-scheduler", daemon=True).start()
    return scheduler


def install_embedded_scheduler(app: Flask) -> None:
    """Start the embedded scheduler lazily, on the first request this process serves."""
    if not app.config["CELERY"].get("task_always_eager"):
        return

    @app.before_request
    def _start_periodic_tasks() -> None:
        if "embedded_scheduler" not in app.extensions:
            start_embedded_scheduler(app)
