"""Coalesced wake-ups on a real Redis broker: however many commits give the outbox drain work while a run is
queued, one message waits in its queue; once the run has started, the next commit queues another."""
from __future__ import annotations

import json

import pytest
import redis

from orders import outbox
from orders.payments import service as payments
from shop import wakeups

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def queued_drains(redis_url: str) -> int:
    """Messages waiting in the broker's `outbox` queue."""
    return redis.Redis.from_url(redis_url).llen("outbox")


def test_commits_while_a_drain_is_queued_share_it(redis_app, redis_url):
    for _ in range(5):
        outbox.wake_drain()

    assert queued_drains(redis_url) == 1


def test_a_commit_after_the_drain_started_queues_the_next_run(redis_app, redis_url):
    outbox.wake_drain()
    wakeups.started("orders.drain_outbox")  # what the drain does first, before it reads a row

    outbox.wake_drain()
    outbox.wake_drain()

    assert queued_drains(redis_url) == 2


def test_a_lost_message_holds_the_mark_only_for_a_while(redis_app, redis_url):
    outbox.wake_drain()
    client = redis.Redis.from_url(redis_url)
    (mark,) = client.keys("*shop:wakeup:orders.drain_outbox")  # in the shared cache, under its key prefix
    ttl = client.ttl(mark)

    assert 0 < ttl <= wakeups.MARK_SECONDS < outbox.REQUEUE_AFTER.total_seconds()  # the sweeper's grace is longer


def test_a_wake_up_whose_cache_connection_drops_never_leaves_a_mark_without_its_lifetime(redis_app, redis_url,
                                                                                         monkeypatch):
    """A mark without its lifetime would hold back every later wake-up of its drain for good: it is written with its
    lifetime in one command, so a connection lost after it cannot leave it bare."""
    def dropped(*_args, **_kwargs):
        raise redis.ConnectionError("connection lost")

    monkeypatch.setattr(redis.Redis, "expire", dropped)
    payments.wake()
    client = redis.Redis.from_url(redis_url)

    assert [0 < client.ttl(mark) <= wakeups.MARK_SECONDS
            for mark in client.keys("*shop:wakeup:orders.drain_payment_events")] == [True]


def test_the_payment_drain_is_queued_to_start_at_once(redis_app, redis_url):
    """A buyer waits for this run: no countdown (a Celery ETA task added some 80 ms to every payment)."""
    payments.wake()
    (message,) = redis.Redis.from_url(redis_url).lrange("celery", 0, -1)
    headers = json.loads(message)["headers"]
    assert (headers["task"], headers["eta"]) == ("orders.drain_payment_events", None)


def test_the_ledger_drain_gathers_the_commits_of_a_moment(redis_app, redis_url):
    outbox.wake_drain()
    (message,) = redis.Redis.from_url(redis_url).lrange("outbox", 0, -1)
    assert json.loads(message)["headers"]["eta"] is not None


def test_a_run_that_could_not_be_queued_leaves_no_mark_to_hold_back_the_next(redis_app, redis_url, monkeypatch):
    """A publish that failed (the broker refusing for a moment) left the mark of a run never queued, so for
    MARK_SECONDS every commit's wake-up was skipped and its work waited for the sweeper."""
    from kombu.exceptions import OperationalError

    from orders.tasks import drain_outbox

    def broker_refuses(*args, **kwargs):
        raise OperationalError("broker refused the message")

    with monkeypatch.context() as outage:
        outage.setattr(drain_outbox, "apply_async", broker_refuses)
        with pytest.raises(OperationalError):
            outbox.wake_drain()

    outbox.wake_drain()

    assert queued_drains(redis_url) == 1


def test_the_broker_publishes_every_message_through_one_redis_client(redis_app, redis_url, monkeypatch):
    """Kombu built a new redis-py client for every message it published (about a millisecond of a web worker's CPU
    per payment confirmed, as much as the rest of the publish); one client of the channel's pool publishes them all,
    and every message arrives."""
    payments.wake()  # the broker connection and its channel are set up by the first message
    built, real_init = [], redis.Redis.__init__
    monkeypatch.setattr(redis.Redis, "__init__", lambda self, *a, **k: built.append(1) or real_init(self, *a, **k))
    for _ in range(3):
        wakeups.started("orders.drain_payment_events")
        payments.wake()
    monkeypatch.undo()

    assert built == []
    assert redis.Redis.from_url(redis_url).llen("celery") == 4
