"""The Celery app, built from the Flask config; `celery -A shop.worker worker|beat` runs it."""
from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from celery import Celery, Task
from flask import Flask

from shop.db import db
from shop.sweeper import SWEEP_EVERY_SECONDS


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for one batch task, a bounded transaction (a ledger batch builds some
    100,000 short-lived objects, and the collector walking them cost a fifth of its CPU); what it leaves is
    collected after. Resumed only by the pause that stopped it (eager tasks share a process)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app whose tasks each run in an app context as one transaction."""

    class FlaskTask(Task):
        pauses_collector = False  # a batch task (`@shared_task(pauses_collector=True)`) runs with it paused

        def __call__(self, *args, **kwargs):
            with app.app_context(), collector_paused() if self.pauses_collector else nullcontext():
                try:
                    result = self.run(*args, **kwargs)
                    db.session.commit()
                    return result
                except BaseException:
                    db.session.rollback()
                    raise

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    eager = app.config["CELERY"].get("task_always_eager")  # `make run`'s console: a task's failure, not each success
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING if eager else logging.NOTSET)
    celery_app.conf.beat_schedule = app.config.setdefault("CELERY_BEAT_SCHEDULE", {})
    celery_app.conf.beat_schedule["shop.sweep"] = {"task": "shop.sweep", "schedule": SWEEP_EVERY_SECONDS}
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


_celery: Celery | None = None


def __getattr__(name: str) -> Celery:
    """Give the Celery CLI (`-A shop.worker`) an app built from the environment, once."""
    global _celery
    if name not in ("app", "celery"):
        raise AttributeError(name)
    if _celery is None:
        from shop import create_app

        _celery = create_app().extensions["celery"]
        gc.freeze()  # the app's startup objects live as long as the process: the collector need not walk them
    return _celery
