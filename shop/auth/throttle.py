"""Failed sign-ins slow down per username, with exponential backoff; a spike across all users is logged.

After `FREE_FAILURES` failures in a row, a username waits 1 s, 2 s, 4 s … (at most
`LOGIN_BACKOFF_MAX_SECONDS`) after each further failure before it may try again; a success
clears it. Counters live in the rate limiter's storage, so every process shares them when
`REDIS_URL` is set (in-process memory in the embedded mode); keys hold a digest of the
username, never the username. The per-address limit is the limiter's own (`LOGIN_RATE_LIMIT`).
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from datetime import UTC, datetime

from flask import current_app

from shop.errors import AppError, ShopCode
from shop.extensions import limiter

log = logging.getLogger(__name__)

FREE_FAILURES = 3
FAILURES_KEPT_SECONDS = 24 * 3600  # a failure streak is forgotten a day after it began
_WAIT_KEY_SLACK_SECONDS = 60       # the stored deadline decides; its key merely outlives it


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


def check(username: str) -> None:
    """Raise `TooManyAttempts` while `username` is waiting out its backoff."""
    remaining = math.ceil(limiter.storage.get(_key("until", username)) - _now())
    if remaining > 0:
        raise TooManyAttempts(remaining)


def record_failure(username: str) -> None:
    """Count a failed sign-in against `username` (starting its wait) and towards the spike alarm."""
    storage = limiter.storage
    wait = backoff_seconds(storage.incr(_key("failures", username), FAILURES_KEPT_SECONDS))
    if wait:
        until = _key("until", username)
        storage.clear(until)
        storage.incr(until, wait + _WAIT_KEY_SLACK_SECONDS, amount=math.ceil(_now()) + wait)
    _count_towards_alarm()


def clear(username: str) -> None:
    """Forget `username`'s failures and wait (after a success or a password reset)."""
    limiter.storage.clear(_key("failures", username))
    limiter.storage.clear(_key("until", username))


def _count_towards_alarm() -> None:
    """Log one WARNING in a minute whose failed sign-ins (all users) pass `LOGIN_FAILURE_ALERT_PER_MINUTE`."""
    threshold = current_app.config["LOGIN_FAILURE_ALERT_PER_MINUTE"]
    minute = int(_now() // 60)
    if limiter.storage.incr(f"signin:failures-in-minute:{minute}", 120) == threshold + 1:
        started = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M")
        log.warning("failed sign-ins are spiking: more than %d in the minute from %s UTC", threshold, started)
