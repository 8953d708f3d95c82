"""Cache generations and finished-JSON caching of public reads, with the database as the fallback.

A namespace (e.g. "catalog", "regions", "suppliers") has a generation id in the cache; a cached read
is stored with the generations of the namespaces it depends on and served only while they are still
current, so starting a new generation after a write commits makes every earlier entry stale at once,
in every process sharing the cache. A read fetches the generations and the entry in one round trip.

Every cache call goes through `cache_get`/`cache_set`/`cache_add`/`cache_delete`: when the cache
is down they answer "not cached" (reads then come from the database), and the outage is logged
once when it starts and once when it ends, not per request.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from cachelib.redis import RedisCache
from flask import Response, current_app, request
from marshmallow import Schema, ValidationError
from redis.exceptions import RedisError

from shop.blueprint import given_once, query_args
from shop.db import after_commit
from shop.extensions import cache

log = logging.getLogger(__name__)

CACHE_ERRORS = (RedisError, OSError)


def _guarded(operation: Callable[[], Any], fallback: Any) -> Any:
    """Run one cache operation; on a cache error answer `fallback` (logging the outage once per app)."""
    outage = current_app.extensions.setdefault("shop.cache_outage", {"down": False})
    try:
        result = operation()
    except CACHE_ERRORS as exc:
        if not outage["down"]:
            outage["down"] = True
            log.warning("cache unavailable (%s); serving from the database until it is back",
                        exc.__class__.__name__)
        return fallback
    if outage["down"]:
        outage["down"] = False
        log.warning("cache available again")
    return result


def cache_get(key: str) -> Any:
    """The cached value under `key`, or None (also when the cache is down)."""
    return _guarded(lambda: cache.get(key), None)


def cache_set(key: str, value: Any, timeout: int | None = None) -> bool:
    """Store `value` under `key`; False if the cache is down."""
    return bool(_guarded(lambda: cache.set(key, value, timeout=timeout), False))


def cache_add(key: str, value: Any, timeout: int | None = None) -> bool:
    """Store `value` under `key` unless it is there; False if it was there or the cache is down."""
    return bool(_guarded(lambda: _add(key, value, timeout), False))


def _add(key: str, value: Any, timeout: int | None) -> Any:
    """The cache's add; on Redis one `SET … NX EX` (its own add is SETNX then EXPIRE: two round trips, and a
    connection lost between them leaves the key with no lifetime)."""
    backend = cache.cache
    if not isinstance(backend, RedisCache):
        return cache.add(key, value, timeout=timeout)
    lifetime = backend._normalize_timeout(timeout)  # -1: none (a timeout of 0)
    return backend._write_client.set(f"{backend._get_prefix()}{key}", backend.serializer.dumps(value), nx=True,
                                     ex=None if lifetime == -1 else lifetime)


def cache_delete(key: str) -> bool:
    """Remove `key`; False if the cache is down."""
    return bool(_guarded(lambda: cache.delete(key), False))


def generation(namespace: str) -> str | None:
    """The namespace's current cache generation (created on first use; None while the cache is down)."""
    key = f"{namespace}:generation"
    current = cache_get(key)
    if current is None:
        cache_add(key, uuid.uuid4().hex[:12], timeout=0)
        current = cache_get(key)
    return current


def new_generation(namespace: str) -> None:
    """Start a new generation now, so no cached read of the namespace survives."""
    cache_set(f"{namespace}:generation", uuid.uuid4().hex[:12], timeout=0)


_starters: dict[str, Callable[[], None]] = {}


def invalidate_after_commit(namespace: str) -> None:
    """Start a new generation of the namespace once the current transaction commits (once per transaction)."""
    after_commit(_starters.setdefault(namespace, functools.partial(new_generation, namespace)))


@dataclass(frozen=True)
class CacheKey:
    """Where a cached read lives, and the namespaces whose writes make it stale."""

    name: str
    namespaces: tuple[str, ...]


def cache_key(namespace: str, kind: str, *parts: object, depends_on: tuple[str, ...] = ()) -> CacheKey:
    """The key of the namespace's read that `parts` identify; stale with each new generation of the namespace
    and of the namespaces it `depends_on`."""
    digest = hashlib.sha1(repr(parts).encode()).hexdigest()
    return CacheKey(f"{namespace}:{kind}:{digest}", (namespace, *depends_on))


def cached_read(key: CacheKey) -> tuple[Any, tuple | None]:
    """The value under `key` if it was stored in the current generations of its namespaces, and those
    generations (the stamp to store a fresh value with), in one round trip; (None, None) while the cache is down."""
    found = _guarded(lambda: cache.get_many(*(f"{ns}:generation" for ns in key.namespaces), key.name), None)
    if found is None:
        return None, None
    *current, stored = found
    if None in current:  # a namespace's first use: start its generation
        current, stored = [generation(namespace) for namespace in key.namespaces], None
        if None in current:
            return None, None
    stamp = tuple(current)
    if isinstance(stored, tuple) and len(stored) == 2 and stored[0] == stamp:
        return stored[1], stamp
    return None, stamp


def cache_stamped(key: CacheKey, stamp: tuple, value: Any) -> bool:
    """Store `value` under `key` as read in the generations `stamp`; False if the cache is down."""
    return cache_set(key.name, (stamp, value))


def _iso(value: object) -> str:
    """Dates and times in JSON: ISO 8601."""
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_response(value: Any) -> Response:
    """`value` as the API's JSON (UTF-8 unescaped, compact, dates in ISO 8601), for a read whose service already
    returns the documented shape: no schema pass."""
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_iso)
    return current_app.response_class(body, mimetype="application/json")


def parsed_query(schema: Schema) -> tuple | None:
    """The query string as `schema` loads it (normalised; an unknown parameter does not load), sorted, for a
    cache key; None if it does not load (the view then answers the validation error, uncached)."""
    try:
        args = query_args(request.args)
        given_once(args, schema)
        loaded = schema.load(args)
    except ValidationError:
        return None
    return tuple(sorted(loaded.items()))


def public_json(key: Callable[[], CacheKey | None]):
    """Serve anonymous reads of a view as finished JSON from the cache under `key()` (None: run the view)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            cached_under = None if request.headers.get("Authorization") else key()
            if cached_under is None:
                return view(*args, **kwargs)
            body, stamp = cached_read(cached_under)
            if body is not None:
                return current_app.response_class(body, mimetype="application/json")
            response = view(*args, **kwargs)
            if response.status_code == 200 and stamp is not None:
                cache_stamped(cached_under, stamp, response.get_data())
            return response

        return wrapper

    return decorator
