"""Sweepers: every queued task is recoverable, whatever happened to its message.

Work that must happen after a commit (an upload's import, later the orders outbox) is queued
from an after-commit hook; when the broker is down, or a worker dies holding a claim, the
message is lost but the row that describes the work is committed. A domain registers a
sweeper `(name, function)` at start-up: the function finds its rows that are due (pending past
a grace period, or claimed too long ago), marks them re-queued (`flush()` only) and queues their
tasks with `after_commit`; it returns how many it re-queued. The `shop.sweep` task (on the beat
schedule every minute, or the embedded scheduler's timer) runs each registered sweeper in its own
transaction, so one sweeper's failure neither rolls back nor stops the others.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask

Sweeper = Callable[[], int]
SWEEP_EVERY_SECONDS = 60.0


def register_sweeper(app: Flask, name: str, sweeper: Sweeper) -> None:
    """Add a domain's sweeper, run by the `shop.sweep` task; names are unique (`<domain>.<what>`)."""
    sweepers = app.extensions.setdefault("sweepers", {})
    if name in sweepers:
        raise ValueError(f"A sweeper named {name!r} is already registered.")
    sweepers[name] = sweeper


def registered_sweepers(app: Flask) -> dict[str, Sweeper]:
    """The app's sweepers by name, in registration order."""
    return dict(app.extensions.get("sweepers", {}))
