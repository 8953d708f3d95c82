"""The embedded scheduler: the beat schedule's tasks run in-process when due, driven here by a fake clock."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from shop.periodic import EmbeddedScheduler, start_embedded_scheduler


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_due_tasks_run_once_per_interval_and_a_failing_one_does_not_stop_the_timer(app, monkeypatch, caplog):
    runs = []
    celery = app.extensions["celery"]
    monkeypatch.setattr(celery.tasks["shop.sweep"], "run", lambda: runs.append("sweep"))

    def broken():
        raise RuntimeError("task bug")

    monkeypatch.setattr(celery.tasks["catalog.flag_lapsed_certificates"], "run", broken)
    clock = Clock()
    scheduler = EmbeddedScheduler(app, now=clock)
    assert scheduler.tick() <= 60 and runs == []
    clock.now += timedelta(seconds=30)
    scheduler.tick()
    assert runs == []
    clock.now += timedelta(seconds=31)
    scheduler.tick()
    assert runs == ["sweep"]
    scheduler.tick()
    assert runs == ["sweep"]
    clock.now += timedelta(days=1)  # past 00:05 Asia/Shanghai: the nightly task runs (and fails, logged)
    scheduler.tick()
    assert runs == ["sweep", "sweep"]
    assert "periodic task catalog.flag_lapsed_certificates failed" in caplog.text


def test_never_started_under_testing_nor_with_a_broker(app):
    assert start_embedded_scheduler(app) is None
    app.config["TESTING"] = False
    app.config["CELERY"] = {**app.config["CELERY"], "task_always_eager": False}
    assert start_embedded_scheduler(app) is None


def test_started_once_by_the_first_request_not_by_cli_commands(app, client, runner):
    app.config["TESTING"] = False
    try:
        runner.invoke(args=["load-reference"])
        assert "embedded_scheduler" not in app.extensions
        client.get("/api/v1/products")
        scheduler = app.extensions["embedded_scheduler"]
        client.get("/api/v1/products")
        assert app.extensions["embedded_scheduler"] is scheduler
    finally:
        app.config["TESTING"] = True
        if "embedded_scheduler" in app.extensions:
            app.extensions["embedded_scheduler"].stop()


def test_a_schedule_that_fails_to_say_whether_it_is_due_stops_neither_the_others_nor_the_timer(app, monkeypatch,
                                                                                               caplog):
    runs = []
    celery = app.extensions["celery"]
    monkeypatch.setattr(celery.tasks["shop.sweep"], "run", lambda: runs.append("sweep"))
    monkeypatch.setattr(celery.tasks["orders.expire_reservations"], "run", lambda: runs.append("expiry"))
    clock = Clock()
    scheduler = EmbeddedScheduler(app, now=clock)

    def broken(last_run_at):
        raise ValueError("schedule bug")

    monkeypatch.setattr(scheduler.entries["shop.sweep"][1], "is_due", broken)
    clock.now += timedelta(seconds=61)
    timer = threading.Thread(target=scheduler.run_forever, daemon=True)
    timer.start()
    try:
        for _ in range(100):
            if runs:
                break
            time.sleep(0.05)
        assert runs == ["expiry"]  # the sweep's schedule failed, the expiry ran all the same
        assert "periodic schedule shop.sweep failed" in caplog.text
        assert timer.is_alive()  # waiting for the next tick
    finally:
        scheduler.stop()
        timer.join(timeout=5)
