"""Idempotency keys: a retried write with the same key and body gets the first response back.

The key row is written first, in the same transaction as the work and then the response it
produced, so all three commit or none does. A concurrent request with the same key waits on the
key's unique index before doing any work, and once the first commits it replays that response;
a different body under a used key is a 409. Error responses are not kept: nothing was written. Nor is an answer
the view marks not final (`answer_not_final`: a refund the provider has not confirmed yet): a retry with the key
asks again, and gets the outcome.
A write that commits part of its work early (`shop.db.commit_now`, e.g. a stock reservation before
the payment provider is called) commits its key as "in progress": a retry waits for the final
response (or gets 409 `idempotency_key_in_progress` after a few seconds); if the write fails, its key is
freed. A key still in progress after ABANDONED_AFTER belongs to a request that died between its two
commits (a killed worker): nobody got its response, so a retry frees the key and does the work afresh
(what the dead request committed early is left to its own expiry, as an unpaid order's reservation is).

Keys belong to a scope: by default the user who sent them; a view may name another (a counter
sale's key belongs to the store, so a till's queue resent after a clerk hand-over is still one
sale per key). A stored response may hold personal data (an order's delivery address), so it is
encrypted like any other personal field; keys are kept KEEP_FOR (24 hours, as Stripe keeps its own),
then swept away: a retry comes within minutes, not days.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask, current_app, g, request
from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from shop import crypto
from shop.auth.models import User
from shop.auth.security import current_user
from shop.bodies import json_body
from shop.db import UTCDateTime, db, defer_commit, utcnow
from shop.errors import AppError, Conflict, ShopCode, register_unique_conflicts
from shop.fields import is_blank
from shop.sweeper import register_sweeper

HEADER = "Idempotency-Key"
PARAMETER = {"name": HEADER, "in": "header", "required": False,
             "description": "Retrying with the same key and body returns the first response (`Idempotent-Replayed: "
                            "true`); the same key with another body is a 409.",
             "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"}}
IN_PROGRESS_WAIT_SECONDS = 3.0  # how long a retry waits for a two-phase write (`commit_now`) to finish
# longer than any two-phase write lives (the payment provider's client gives up well within it)
ABANDONED_AFTER = timedelta(minutes=5)
IN_PROGRESS_POLL_SECONDS = 0.05
IN_PROGRESS_RETRY_SECONDS = 1  # the Retry-After of `idempotency_key_in_progress`
KEEP_FOR = timedelta(hours=24)
REPLAYED = "Idempotent-Replayed"  # the header of an answer given again
RESPONSE_FIELD = "idempotency_keys.response_body"
NOT_FINAL = "idempotency.answer_not_final"
SCOPE = "idempotency.scope"


class IdempotencyKey(db.Model):
    """A key a user sent with a write, the fingerprint of that request and the response it got."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body_enc: Mapped[str | None] = mapped_column("response_body", Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),)

    @property
    def response_body(self) -> str | None:
        """The response first given, decrypted."""
        return crypto.decrypt(self.response_body_enc, field=RESPONSE_FIELD) if self.response_body_enc else None

    @response_body.setter
    def response_body(self, value: str | None) -> None:
        self.response_body_enc = crypto.encrypt(value, field=RESPONSE_FIELD) if value is not None else None


def init_app(app: Flask) -> None:
    """Sweep away keys past KEEP_FOR with the other sweepers; a key's duplicate is the decorator's to handle."""
    register_sweeper(app, "shop.idempotency_keys", forget_old_keys)
    register_unique_conflicts(app, {"uq_idempotency_keys_scope_key": None})


def forget_old_keys() -> int:
    """Delete the keys older than KEEP_FOR (answered, or abandoned by a request that died); how many."""
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEEP_FOR))
    return result.rowcount


def request_fingerprint() -> str:
    """What makes two requests "the same": method, path and body; a JSON body by its content, so the same
    object with its keys in another order or spaced otherwise is the same request, and `{}` is no body."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    body = request.get_data(cache=True)
    if request.is_json and body:
        parsed = json_body()  # parsed once by the body guard; an empty object is no body, as the guard reads it
        body = b"" if parsed == {} else json.dumps(parsed, sort_keys=True, separators=(",", ":"),
                                                   ensure_ascii=False).encode()
    digest.update(body)
    return digest.hexdigest()


def _replay(record: IdempotencyKey, fingerprint: str):
    """The stored response of an earlier request with this key, if it was the same request."""
    if record.request_hash != fingerprint:
        raise Conflict("This Idempotency-Key was used for a different request.", code=ShopCode.IDEMPOTENCY_KEY_REUSED)
    response = current_app.response_class(record.response_body, status=record.status_code,
                                          mimetype="application/json")
    response.headers[REPLAYED] = "true"
    return response


def _stored(scope: str, key: str) -> IdempotencyKey | None:
    """The committed record of `key` in `scope`, if any."""
    return db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.scope == scope,
                                                          IdempotencyKey.key == key))


def _abandon(record: IdempotencyKey) -> None:
    """Roll back a failed request; if it committed part of its work early, free its key for a retry."""
    db.session.rollback()
    if db.session.info.pop("committed_early", None):
        db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == record.id,
                                                        IdempotencyKey.status_code.is_(None)))
        db.session.commit()


def request_key() -> str | None:
    """The Idempotency-Key the current request carries, if any."""
    return request.headers.get(HEADER)


def request_scope() -> str | None:
    """The scope the current request's Idempotency-Key belongs to (`idempotent`'s `scope`), if it carries one."""
    return g.get(SCOPE)


def answer_not_final() -> None:
    """Mark this request's answer as not final (the work stays pending): its key is not kept with it."""
    g.setdefault(NOT_FINAL, True)


def user_keys(user: User) -> str:
    """The scope of a user's own Idempotency-Keys: the default scope, and a service's where no store owns the keys."""
    return f"user:{user.id}"


def _user_scope(**_view_kwargs) -> str:
    """The default scope of a key: the user who sent it."""
    return user_keys(current_user())


def idempotent(view=None, *, scope: Callable[..., str] = _user_scope):
    """Decorate a write view (inside `require_role`): honour an `Idempotency-Key` header, and list it among the
    operation's parameters; `scope(**view_kwargs)` names whose keys these are (default: the user's)."""
    if view is None:
        return functools.partial(idempotent, scope=scope)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255 or not key.isprintable() or not key.isascii() or is_blank(key):
            raise AppError("The Idempotency-Key must have 1 to 255 printable ASCII characters, not only spaces.",
                           code=ShopCode.INVALID_IDEMPOTENCY_KEY)
        owner, fingerprint = scope(**kwargs), request_fingerprint()
        setattr(g, SCOPE, owner)  # this request's (a test's requests may share one app context)
        deadline = time.monotonic() + IN_PROGRESS_WAIT_SECONDS
        while True:
            record = _stored(owner, key)
            if record is not None and record.status_code is not None:
                return _replay(record, fingerprint)
            if record is not None:  # committed early by a two-phase write that is still running
                if record.request_hash != fingerprint:
                    return _replay(record, fingerprint)
                if record.created_at < utcnow() - ABANDONED_AFTER:  # its request died: this retry starts afresh
                    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == record.id,
                                                                    IdempotencyKey.status_code.is_(None)))
                    db.session.commit()
                    continue
                if time.monotonic() > deadline:
                    raise Conflict("A request with this Idempotency-Key is still being processed; retry later.",
                                   code=ShopCode.IDEMPOTENCY_KEY_IN_PROGRESS, retry_after=IN_PROGRESS_RETRY_SECONDS)
                db.session.rollback()
                time.sleep(IN_PROGRESS_POLL_SECONDS)
                continue
            record = IdempotencyKey(user_id=current_user().id, scope=owner, key=key, request_hash=fingerprint)
            db.session.add(record)
            try:
                db.session.flush()
                break
            except IntegrityError:
                db.session.rollback()
        try:
            with defer_commit():
                response = view(*args, **kwargs)
        except BaseException:
            _abandon(record)
            raise
        if response.status_code >= 400:
            _abandon(record)
            return response
        db.session.info.pop("committed_early", None)
        if g.pop(NOT_FINAL, False):  # the work stays, the key does not: a retry with it asks again
            db.session.delete(record)
            db.session.commit()
            return response
        record.status_code, record.response_body = response.status_code, response.get_data(as_text=True)
        db.session.commit()
        return response

    # documented as flask-smorest documents its own arguments: on the view's `_apidoc`, copied, not shared
    wrapper._apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
    wrapper._apidoc.setdefault("arguments", {}).setdefault("parameters", []).append(PARAMETER)
    return wrapper
