"""The limits on wrong pickup codes, shared by the API and the till page: per clerk and store a minute's, an hour's and
a day's (a clerk's per-minute limit alone let one try ~14,400 codes a day), and per store, whichever clerks try, an
hour's and a day's set higher, so that one clerk's codes (or a stolen till session's) stop that clerk, not the store."""
from __future__ import annotations

from collections.abc import Callable

from orders.errors import OrderCode
from shop.attempts import failure_limit

# A busy store hands over a few hundred pickups a day; a clerk's real mistakes (a mistyped code, an old one shown) are a
# few an hour. 30 an hour and 100 a day per clerk leave them room and cap one clerk's guessing at ~100 codes a day; the
# store's 100 an hour and 300 a day leave room for all its clerks' mistakes and cap guessing through several accounts
# at ~300 codes a day: with 50 orders waiting, one hit in ~70 days (each hand-over records its clerk).
CLERK_PICKUP_CODE_LIMITS = ("10 per minute", "30 per hour", "100 per day")
STORE_PICKUP_CODE_LIMITS = ("100 per hour", "300 per day")


def _wrong_code(response) -> bool:
    """Only a wrong pickup code counts against the limit (the API's `pickup_code_invalid`, the till page's 409), not a
    409 of the Idempotency-Key (reused, or its request still running): no code was tried."""
    if response.status_code != 409:
        return False
    return not response.is_json or response.get_json()["error"]["code"] == OrderCode.PICKUP_CODE_INVALID


def attempts_key(store_id: int, user_id: int) -> str:
    """The one count of wrong codes of a clerk at a store, whichever view they came through."""
    return f"pickup:{store_id}:{user_id}"


def pickup_code_limit(who: Callable[[], tuple[int, int]]):
    """Decorate a hand-over view with the limits on wrong codes; `who` gives the request's store and clerk ids, so
    both views share the counts: the clerk's at the store (`attempts_key`), checked first (a clerk over theirs takes
    nothing of the store's), and the store's."""

    def decorator(view):
        for limit in STORE_PICKUP_CODE_LIMITS:
            view = failure_limit(limit, scope="pickup-code", counts=_wrong_code,
                                 key_func=lambda: f"pickup:{who()[0]}")(view)
        for limit in CLERK_PICKUP_CODE_LIMITS:
            view = failure_limit(limit, scope="pickup-code", counts=_wrong_code,
                                 key_func=lambda: attempts_key(*who()))(view)
        return view

    return decorator
