"""Coalesced wake-ups: one queued run of a draining task, however many commits gave it work meanwhile.

A task that drains a table of pending rows (the orders outbox, say) need not be queued once per commit: a
commit that finds a run already queued and not yet started leaves it to that run. The mark is a Redis key
set with `NX` when a run is queued and deleted by the run first thing (`started`), before it reads any row:
work committed before the delete is seen by the run's read, work committed after it finds no mark and
queues the next run. A short `gather_seconds` delay lets a busy shop's commits share one run. A lost
message leaves the mark to expire after MARK_SECONDS (the domain's sweeper catches up meanwhile). With
eager tasks (the embedded default) every wake-up simply runs the task.
"""
from __future__ import annotations

import redis
from celery import Task
from flask import current_app

MARK_SECONDS = 30


def wake(task: Task, *, gather_seconds: float = 0.0) -> None:
    """Queue a run of `task` (it takes no arguments) unless one is queued and not yet started; the run starts
    `gather_seconds` later, so that the commits of that moment share it."""
    client = _redis()
    if client is None:
        task.delay()
    elif client.set(_mark(task.name), 1, nx=True, ex=MARK_SECONDS):
        task.apply_async(countdown=gather_seconds or None)


def started(task_name: str) -> None:
    """Called by the draining task before it reads: any later commit queues another run."""
    client = _redis()
    if client is not None:
        client.delete(_mark(task_name))


def _mark(task_name: str) -> str:
    """The Redis key marking a queued run of `task_name`."""
    return f"shop:wakeup:{task_name}"


def _redis() -> redis.Redis | None:
    """The broker's Redis (one client per app), or None when tasks run eagerly."""
    app = current_app._get_current_object()
    if app.config["CELERY"].get("task_always_eager") or not app.config.get("REDIS_URL"):
        return None
    client = app.extensions.get("wakeup_redis")
    if client is None:
        client = app.extensions["wakeup_redis"] = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=2)
    return client
