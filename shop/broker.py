"""Celery's Redis transport with one publishing client per channel.

Kombu's Redis channel builds a new redis-py client (over its shared connection pool) for every message it publishes
or every queue it inspects; building one cost about a millisecond of CPU, as much as the rest of the publish. Here
the channel keeps the client it built for as long as its pool lives (a fork or a disconnect replaces the pool, and so
the client). A redis-py client is thread-safe: each command takes a connection of the pool, as before.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kombu.transport import redis


class Channel(redis.Channel):
    """A Redis channel whose commands without a client of their own share one client of the current pool."""

    _shared_client = None

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        """`client`, or the channel's client of its current pool (built once per pool)."""
        if not client:
            pool = self.pool
            if self._shared_client is None or self._shared_client.connection_pool is not pool:
                self._shared_client = self._create_client()
            client = self._shared_client
        yield client


class Transport(redis.Transport):
    """The Redis transport (redis://) with `Channel`."""

    Channel = Channel
