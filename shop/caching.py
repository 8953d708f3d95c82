"""Cache generations and finished-JSON caching of public reads.

A namespace (e.g. "catalog", "regions") has a generation id in the cache; every key of the
namespace includes it, so starting a new generation after a write commits makes every
earlier entry unreachable at once, in every process sharing the cache.
"""
from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable

from flask import current_app, request

from shop.db import after_commit, db
from shop.extensions import cache


def generation(namespace: str) -> str:
    """The namespace's current cache generation (created on first use)."""
    key = f"{namespace}:generation"
    current = cache.get(key)
    if current is None:
        cache.add(key, uuid.uuid4().hex[:12], timeout=0)
        current = cache.get(key)
    return current


def new_generation(namespace: str) -> None:
    """Start a new generation now, so no cached read of the namespace survives."""
    cache.set(f"{namespace}:generation", uuid.uuid4().hex[:12], timeout=0)


_starters: dict[str, Callable[[], None]] = {}


def invalidate_after_commit(namespace: str) -> None:
    """Start a new generation of the namespace once the current transaction commits (once per transaction)."""
    start = _starters.setdefault(namespace, functools.partial(new_generation, namespace))
    if start not in db.session.info.get("after_commit", []):
        after_commit(start)


def cache_key(namespace: str, kind: str, *parts: object) -> str:
    """A key in the namespace's current generation for what `parts` identify."""
    digest = hashlib.sha1(repr(parts).encode()).hexdigest()
    return f"{namespace}:{kind}:{generation(namespace)}:{digest}"


def public_json(key: Callable[[], str | None]):
    """Serve anonymous reads of a view as finished JSON from the cache under `key()` (None: run the view)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            cached_under = None if request.headers.get("Authorization") else key()
            if cached_under is None:
                return view(*args, **kwargs)
            body = cache.get(cached_under)
            if body is not None:
                return current_app.response_class(body, mimetype="application/json")
            response = view(*args, **kwargs)
            if response.status_code == 200:
                cache.set(cached_under, response.get_data())
            return response

        return wrapper

    return decorator
