"""Limits on attempts that count each attempt before the work it guards, not after.

Flask-Limiter's `deduct_when` tests a limit before the view and counts the request after it, so a parallel burst all
passes the test before the first of it is counted. Here an attempt first claims its unit with one atomic increment in
the limiter's storage (Redis, or the in-process store, which increments under a lock), is refused when that unit is
over the limit, and gives the unit back once its outcome shows that it does not count (a right password or code).
"""
from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Response, after_this_request, request
from limits import parse
from werkzeug.exceptions import TooManyRequests

from shop.extensions import client_address, limiter


def claim(key: str, *, seconds: int) -> int:
    """Count one more attempt under `key` (the count is kept `seconds` from its first attempt); the new count."""
    return limiter.storage.incr(key, seconds)


def give_back(key: str, *, seconds: int) -> None:
    """Take back an attempt `claim` counted."""
    limiter.storage.incr(key, seconds, amount=-1)


IN_FLIGHT_WAIT_SECONDS = 2.0  # how long an attempt over the limit waits for attempts still being checked
IN_FLIGHT_POLL_SECONDS = 0.05


def _claim_once_settled(key: str, in_flight: str, *, amount: int, seconds: int) -> bool:
    """Claim an attempt of at most `amount`; when the limit is used up by attempts still being checked (whose outcome
    may give their claims back: right passwords), wait for them to settle, a few seconds at most, and try again.
    Whether the attempt may go ahead (it is counted, and in flight, if so)."""
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while True:
        if claim(key, seconds=seconds) <= amount:
            claim(in_flight, seconds=seconds)
            return True
        give_back(key, seconds=seconds)
        if not (limiter.storage.get(in_flight) or 0) > 0 or time.monotonic() > deadline:
            return False
        time.sleep(IN_FLIGHT_POLL_SECONDS)


@dataclass(frozen=True)
class Attempt:
    """One attempt `claim_attempt` counted (and holds in flight) until its outcome `settle`s it."""

    key: str
    in_flight: str
    seconds: int

    def settle(self, *, counted: bool) -> None:
        """The attempt's outcome is known: no longer in flight, and given back unless it `counted`."""
        give_back(self.in_flight, seconds=self.seconds)
        if not counted:
            give_back(self.key, seconds=self.seconds)


def claim_attempt(limit: str | Callable[[], str], *, scope: str,
                  key_func: Callable[[], str] = client_address) -> Attempt:
    """Claim one attempt of `limit` (e.g. "5 per minute") per `key_func()` before its work is done: `TooManyRequests`
    (429 `rate_limited`) once they are used up by attempts that counted (one over the limit first waits for those
    still being checked); the caller settles the attempt it gets once its outcome shows whether it counts."""
    item = parse(limit() if callable(limit) else limit)
    key, seconds = item.key_for(scope, key_func()), item.get_expiry()
    in_flight = f"{key}:in-flight"
    if not _claim_once_settled(key, in_flight, amount=item.amount, seconds=seconds):
        retry_after = math.ceil((limiter.storage.get_expiry(key) or time.time()) - time.time())
        raise TooManyRequests(str(item), retry_after=max(retry_after, 1))
    return Attempt(key, in_flight, seconds)


def failure_limit(limit: str | Callable[[], str], *, scope: str, counts: Callable[[Response], bool],
                  key_func: Callable[[], str] = client_address):
    """Decorate a view: each POST claims one attempt of `limit` per `key_func()` before the view runs
    (`claim_attempt`), and gives it back when `counts(response)` is false."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if request.method == "POST":
                attempt = claim_attempt(limit, scope=scope, key_func=key_func)

                @after_this_request
                def _settle(response: Response) -> Response:
                    attempt.settle(counted=counts(response))
                    return response
            return view(*args, **kwargs)
        return wrapper

    return decorator
