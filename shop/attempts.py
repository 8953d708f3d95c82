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


def failure_limit(limit: str | Callable[[], str], *, scope: str, counts: Callable[[Response], bool],
                  key_func: Callable[[], str] = client_address):
    """Decorate a view: each POST claims one attempt of `limit` (e.g. "5 per minute") per `key_func()` before the view
    runs, 429 `rate_limited` once they are used up, and gives it back when `counts(response)` is false."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if request.method == "POST":
                item = parse(limit() if callable(limit) else limit)
                key, seconds = item.key_for(scope, key_func()), item.get_expiry()
                if claim(key, seconds=seconds) > item.amount:
                    retry_after = math.ceil(limiter.storage.get_expiry(key) - time.time())
                    raise TooManyRequests(str(item), retry_after=max(retry_after, 1))

                @after_this_request
                def _give_back_unless_it_counts(response: Response) -> Response:
                    if not counts(response):
                        give_back(key, seconds=seconds)
                    return response
            return view(*args, **kwargs)
        return wrapper

    return decorator
