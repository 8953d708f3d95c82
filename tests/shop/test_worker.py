"""Tasks run as one transaction each with Python's cyclic collector paused, and leave it as they found it."""
from __future__ import annotations

import gc

import pytest

from shop.worker import collector_paused


def test_a_task_runs_with_the_collector_paused_and_resumes_it_after(app):
    celery = app.extensions["celery"]

    @celery.task(name="tests.collector_state")
    def collector_state() -> bool:
        return gc.isenabled()

    @celery.task(name="tests.failing")
    def failing() -> None:
        raise RuntimeError("boom")

    assert gc.isenabled()
    assert collector_state.delay().get() is False
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        failing.delay().get()
    assert gc.isenabled()


def test_only_the_outermost_pause_resumes_the_collector():
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()  # an eager task inside another task's pause leaves it paused
    assert gc.isenabled()
