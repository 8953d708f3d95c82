"""The embedded scheduler: the beat schedule's tasks run in-process when due, driven here by a fake clock."""
from __future__ import annotations

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
