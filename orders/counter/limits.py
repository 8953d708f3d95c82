"""The limits on wrong pickup codes, shared by the API and the till page: per clerk and store a minute's, and per store
an hour's and a day's, whichever clerk tries (a clerk's per-minute limit alone let one try ~14,400 codes a day)."""
from __future__ import annotations

from collections.abc import Callable

from orders.errors import OrderCode
from shop.attempts import failure_limit

PICKUP_CODE_LIMIT = "10 per minute"
# A busy store hands over a few hundred pickups a day; its real mistakes (a mistyped code, an old one shown) are a few
# an hour. 30 an hour and 100 a day at a store leave them room, and cap guessing at ~100 codes a day: with 50 orders
# waiting, one hit in ~200 days (each hand-over records its clerk).
STORE_PICKUP_CODE_LIMITS = ("30 per hour", "100 per day")


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
    both views share the counts: the clerk's at the store (`attempts_key`) and the store's."""

    def decorator(view):
        for limit in STORE_PICKUP_CODE_LIMITS:
            view = failure_limit(limit, scope="pickup-code", counts=_wrong_code,
                                 key_func=lambda: f"pickup:{who()[0]}")(view)
        return failure_limit(PICKUP_CODE_LIMIT, scope="pickup-code", counts=_wrong_code,
                             key_func=lambda: attempts_key(*who()))(view)

    return decorator
