"""Batch tasks run with Python's cyclic collector paused, and every task leaves it as it found it."""
from __future__ import annotations

import gc

import pytest

from shop.worker import collector_paused


def test_a_batch_task_runs_with_the_collector_paused_and_resumes_it_after(app):
    celery = app.extensions["celery"]

    @celery.task(name="tests.batch_collector_state", pauses_collector=True)
    def batch_collector_state() -> bool:
        return gc.isenabled()

    @celery.task(name="tests.collector_state")
    def collector_state() -> bool:
        return gc.isenabled()

    @celery.task(name="tests.failing_batch", pauses_collector=True)
    def failing_batch() -> None:
        raise RuntimeError("boom")

    assert batch_collector_state.delay().get() is False
    assert gc.isenabled()
    assert collector_state.delay().get() is True  # other tasks (an upload's rows, a payout build) keep it
    with pytest.raises(RuntimeError):
        failing_batch.delay().get()
    assert gc.isenabled()


def test_the_ledger_and_payment_drains_are_batch_tasks(app):
    from orders.payments.tasks import drain_payment_events
    from orders.tasks import deliver_outbox, drain_outbox

    assert all(task.pauses_collector for task in (deliver_outbox, drain_outbox, drain_payment_events))


def test_only_the_outermost_pause_resumes_the_collector():
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()  # an eager task inside another task's pause leaves it paused
    assert gc.isenabled()


def test_a_worker_that_loses_redis_cancels_its_unacknowledged_tasks_without_a_deprecation_warning(tmp_path):
    """Celery warns on every reconnect until the choice is made; acks_late tasks are redelivered, so running the
    old copy on would do them twice at once."""
    from shop import create_app
    from shop.config import load_config
    from tests.conftest import TEST_SECRETS

    config = load_config({**TEST_SECRETS, "REDIS_URL": "redis://cache.internal:6379/0"}, str(tmp_path))
    celery = create_app({**config, "TESTING": True}).extensions["celery"]
    assert celery.conf.worker_cancel_long_running_tasks_on_connection_loss is True


def test_long_work_is_queued_apart_from_payments_and_the_ledger(app):
    """An inventory import, a full verification or a payout batch can take a worker for many seconds: a deployment
    gives the `bulk` queue its own workers, and payment events never wait behind them."""
    router = app.extensions["celery"].amqp.router

    def queue_of(task: str) -> str:
        return router.route({}, task)["queue"].name

    assert {task: queue_of(task) for task in ("catalog.import_inventory", "ledger.run_ledger_verification",
                                              "ledger.build_payout_batch")} == dict.fromkeys(
        ("catalog.import_inventory", "ledger.run_ledger_verification", "ledger.build_payout_batch"), "bulk")
    assert queue_of("orders.drain_payment_events") == "celery"
    assert queue_of("orders.drain_outbox") == "outbox"


def test_mail_is_queued_apart_from_payments(app):
    """A notification's mail waits on the mail server (10 s a step when it is out of reach, a sweep's batch in turn):
    on the `celery` queue it held the workers that process payment events."""
    router = app.extensions["celery"].amqp.router
    assert {task: router.route({}, task)["queue"].name for task in ("orders.send_notification",
                                                                    "orders.send_notifications")} == dict.fromkeys(
        ("orders.send_notification", "orders.send_notifications"), "bulk")
