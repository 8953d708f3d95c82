"""Coalesced wake-ups: one queued run of a draining task, however many commits gave it work meanwhile.

A task that drains a table of pending rows (the orders outbox, say) need not be queued once per commit: a
commit that finds a run already queued and not yet started leaves it to that run. The mark is a key in the
shared Redis cache, added only if absent when a run is queued and deleted by the run first thing (`started`),
before it reads any row: work committed before the delete is seen by the run's read, work committed after it
finds no mark and queues the next run. A short `gather` delay lets a busy shop's commits share one run. A
lost message (or a cache that is down) leaves the work to the domain's sweeper; a lost message's mark
expires after MARK_SECONDS. With eager tasks (the embedded default) a wake-up runs the task in this thread; a
wake-up from within that run (a drain that finds more work) makes it run again once done, in a loop, each run its
own transaction, never nested in the last (a backlog of many batches would reach the recursion limit).
"""
from __future__ import annotations

import threading
from datetime import timedelta

from celery import Task
from flask import current_app

from shop.caching import cache_add, cache_delete

MARK_SECONDS = 30
_eager_runs = threading.local()  # per task name running eagerly in this thread: whether it was woken meanwhile


def wake(task: Task, *, gather: timedelta | None = None) -> None:
    """Queue a run of `task` (it takes no arguments) unless one is queued and not yet started; the run starts
    `gather` later, so that the commits of that moment share it."""
    if _eager():
        _run_eagerly(task)
    elif cache_add(_mark(task.name), 1, timeout=MARK_SECONDS):
        try:
            task.apply_async(countdown=gather.total_seconds() if gather else None)
        except Exception:
            cache_delete(_mark(task.name))  # no run was queued: the next commit's wake-up must not wait for one
            raise


def started(task_name: str) -> None:
    """Called by the draining task before it reads: any later commit queues another run."""
    if not _eager():
        cache_delete(_mark(task_name))


def _run_eagerly(task: Task) -> None:
    """Run `task` here, and again while its runs wake it; a wake-up within a run only asks for the next one."""
    woken = _eager_runs.__dict__
    if task.name in woken:
        woken[task.name] = True
        return
    woken[task.name] = True
    try:
        while woken[task.name]:
            woken[task.name] = False
            task.delay()
    finally:
        del woken[task.name]


def _mark(task_name: str) -> str:
    """The cache key marking a queued run of `task_name`."""
    return f"shop:wakeup:{task_name}"


def _eager() -> bool:
    """Whether tasks run in-process (no broker to queue on)."""
    config = current_app.config
    return bool(config["CELERY"].get("task_always_eager") or not config.get("REDIS_URL"))
