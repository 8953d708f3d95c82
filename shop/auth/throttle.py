"""Failed sign-ins slow down per username, with exponential backoff; a spike across all users is logged.

After `FREE_FAILURES` failures in a row, a username waits 1 s, 2 s, 4 s … (at most
`LOGIN_BACKOFF_MAX_SECONDS`) after each further failure before it may try again; a success
clears it. Each attempt counts as a failure before its password is checked (`shop.attempts`),
and one past the free failures must also move the username's deadline on with one atomic
increment, which only one of several parallel attempts can do: a burst gets no more passwords
checked than attempts made one after another would. Counters live in the rate limiter's storage,
so every process shares them when `REDIS_URL` is set (in-process memory in the embedded mode);
keys hold a digest of the username, never the username. The per-address limit is `LOGIN_RATE_LIMIT`.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from datetime import UTC, datetime

from flask import current_app

from shop import attempts
from shop.errors import AppError, ShopCode
from shop.extensions import limiter

log = logging.getLogger(__name__)

FREE_FAILURES = 3
FAILURES_KEPT_SECONDS = 24 * 3600  # a failure streak is forgotten a day after it began


class TooManyAttempts(AppError):
    """A username is waiting out its sign-in backoff."""

    status, code = 429, ShopCode.TOO_MANY_ATTEMPTS

    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed sign-ins for this username; try again in {retry_after} s.",
                         details={"retry_after_seconds": retry_after})
        self.retry_after = retry_after


def _now() -> float:
    """The current Unix time (one place, so tests can move the clock)."""
    return time.time()


def _key(kind: str, username: str) -> str:
    """A storage key for `username` that does not contain it."""
    return f"signin:{kind}:{hashlib.sha256(username.encode()).hexdigest()[:32]}"


def backoff_seconds(failures: int) -> int:
    """How long a username waits after its `failures`-th failure in a row (0 for the first few)."""
    if failures < FREE_FAILURES:
        return 0
    return min(2 ** min(failures - FREE_FAILURES, 32), current_app.config["LOGIN_BACKOFF_MAX_SECONDS"])


def claim(username: str) -> None:
    """Count an attempt on `username` as a failure before its password is checked (a success clears it);
    `TooManyAttempts`, counting nothing, while it waits out its backoff or a parallel attempt took the turn."""
    failures = _key("failures", username)
    wait = backoff_seconds(attempts.claim(failures, seconds=FAILURES_KEPT_SECONDS))
    if not wait:
        return
    storage, until = limiter.storage, _key("until", username)
    deadline = storage.get(until)
    if deadline <= _now():
        step = math.ceil(_now()) + wait - deadline  # the deadline moves on only if nobody else moved it meanwhile
        if storage.incr(until, FAILURES_KEPT_SECONDS, amount=step) == deadline + step:
            return
        storage.incr(until, FAILURES_KEPT_SECONDS, amount=-step)
    attempts.give_back(failures, seconds=FAILURES_KEPT_SECONDS)
    raise TooManyAttempts(max(math.ceil(storage.get(until) - _now()), 1))


def clear(username: str) -> None:
    """Forget `username`'s failures and wait (after a success or a password reset)."""
    limiter.storage.clear(_key("failures", username))
    limiter.storage.clear(_key("until", username))


def record_failure() -> None:
    """Count a failed sign-in towards the spike alarm (`claim` counted it against the username already): one WARNING
    in a minute whose failed sign-ins (all users) pass `LOGIN_FAILURE_ALERT_PER_MINUTE`."""
    threshold = current_app.config["LOGIN_FAILURE_ALERT_PER_MINUTE"]
    minute = int(_now() // 60)
    if limiter.storage.incr(f"signin:failures-in-minute:{minute}", 120) == threshold + 1:
        started = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M")
        log.warning("failed sign-ins are spiking: more than %d in the minute from %s UTC", threshold, started)
