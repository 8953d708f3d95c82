"""The limit on wrong pickup codes: one count per clerk and store, shared by the API and the till page."""
from __future__ import annotations

from collections.abc import Callable

from orders.errors import OrderCode
from shop.attempts import failure_limit

PICKUP_CODE_LIMIT = "10 per minute"


def _wrong_code(response) -> bool:
    """Only a wrong pickup code counts against the limit (the API's `pickup_code_invalid`, the till page's 409), not a
    409 of the Idempotency-Key (reused, or its request still running): no code was tried."""
    if response.status_code != 409:
        return False
    return not response.is_json or response.get_json()["error"]["code"] == OrderCode.PICKUP_CODE_INVALID


def attempts_key(store_id: int, user_id: int) -> str:
    """The one count of wrong codes of a clerk at a store, whichever view they came through."""
    return f"pickup:{store_id}:{user_id}"


def pickup_code_limit(key_func: Callable[[], str]):
    """Decorate a hand-over view; `key_func` gives the request's `attempts_key`, so both views share a count."""
    return failure_limit(PICKUP_CODE_LIMIT, scope="pickup-code", counts=_wrong_code, key_func=key_func)
