"""Failed sign-ins slow down per username and client address, with exponential backoff; a spike across all users is
logged.

After `FREE_FAILURES` failures in a row of a username from one address, that address waits 1 s, 2 s, 4 s … (at most
`LOGIN_BACKOFF_MAX_SECONDS`) after each further failure before it may try the username again; a success from there
clears it, a password change clears it from every address. So someone guessing elsewhere never keeps the owner out
(the per-address limit `LOGIN_RATE_LIMIT` and the spike alarm watch the guessing). Each attempt counts as a failure
before its password is checked (`shop.attempts`), and one past the free failures must also move the deadline on with
one atomic increment, which only one of several parallel attempts can do: a burst gets no more passwords checked than
attempts made one after another would. Counters live in the rate limiter's storage, so every process shares them when
`REDIS_URL` is set (in-process memory in the embedded mode); keys hold a digest keyed with the app's secret, never the
username or the address.
"""
from __future__ import annotations

import hashlib
import hmac
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
_CHANGE_KEPT_SECONDS = FAILURES_KEPT_SECONDS + 60  # outlives every streak begun before the change


class TooManyAttempts(AppError):
    """A username is waiting out its sign-in backoff at this address."""

    status, code = 429, ShopCode.TOO_MANY_ATTEMPTS

    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed sign-ins for this username; try again in {retry_after} s.",
                         details={"retry_after_seconds": retry_after}, retry_after=retry_after)


def _now() -> float:
    """The current Unix time (one place, so tests can move the clock)."""
    return time.time()


def _digest(*parts: object) -> str:
    """A digest of `parts` for storage keys, which never hold a username or an address: keyed with the app's secret,
    since a plain hash of a phone number is the number to anyone who hashes the 10⁹-odd mobile numbers through."""
    secret = current_app.config["SECRET_KEY"]
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, "\n".join(map(str, parts)).encode(), hashlib.sha256).hexdigest()[:32]


def _keys(username: str, address: str) -> tuple[str, str]:
    """The failure count and deadline keys of `username` at `address`, new after each password change."""
    changed = limiter.storage.get(f"signin:changed:{_digest(username)}")
    streak = _digest(changed, username, address)
    return f"signin:failures:{streak}", f"signin:until:{streak}"


def backoff_seconds(failures: int) -> int:
    """How long a username waits after its `failures`-th failure in a row (0 for the first few)."""
    if failures < FREE_FAILURES:
        return 0
    return min(2 ** min(failures - FREE_FAILURES, 32), current_app.config["LOGIN_BACKOFF_MAX_SECONDS"])


def claim(username: str, address: str) -> None:
    """Count an attempt on `username` from `address` as a failure before its password is checked (a success clears
    it); `TooManyAttempts`, counting nothing, while it waits out its backoff or a parallel attempt took the turn."""
    failures, until = _keys(username, address)
    wait = backoff_seconds(attempts.claim(failures, seconds=FAILURES_KEPT_SECONDS))
    if not wait:
        return
    storage = limiter.storage
    deadline = storage.get(until)
    if deadline <= _now():
        step = math.ceil(_now()) + wait - deadline  # the deadline moves on only if nobody else moved it meanwhile
        if storage.incr(until, FAILURES_KEPT_SECONDS, amount=step) == deadline + step:
            return
        storage.incr(until, FAILURES_KEPT_SECONDS, amount=-step)
    attempts.give_back(failures, seconds=FAILURES_KEPT_SECONDS)
    raise TooManyAttempts(max(math.ceil(storage.get(until) - _now()), 1))


def clear(username: str, address: str) -> None:
    """Forget the failures and wait of `username` at `address` (after a success from there)."""
    for key in _keys(username, address):
        limiter.storage.clear(key)


def clear_everywhere(username: str) -> None:
    """Forget `username`'s failures and waits at every address (after a password change): its keys start anew."""
    changed = f"signin:changed:{_digest(username)}"
    limiter.storage.clear(changed)
    limiter.storage.incr(changed, _CHANGE_KEPT_SECONDS, amount=math.ceil(_now()))


def record_failure() -> None:
    """Count a failed sign-in towards the spike alarm (`claim` counted it against the username already): one WARNING
    in a minute whose failed sign-ins (all users) pass `LOGIN_FAILURE_ALERT_PER_MINUTE`."""
    threshold = current_app.config["LOGIN_FAILURE_ALERT_PER_MINUTE"]
    minute = int(_now() // 60)
    if limiter.storage.incr(f"signin:failures-in-minute:{minute}", 120) == threshold + 1:
        started = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M")
        log.warning("failed sign-ins are spiking: more than %d in the minute from %s UTC", threshold, started)
