"""Idempotency keys: a retried write with the same key and body gets the first response back.

The key row is written first, in the same transaction as the work and then the response it
produced, so all three commit or none does. A concurrent request with the same key waits on the
key's unique index before doing any work, and once the first commits it replays that response;
a different body under a used key is a 409. Error responses are not kept: nothing was written.
"""
from __future__ import annotations

import functools
import hashlib
from datetime import datetime

from flask import current_app, request
from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from shop.auth.security import current_user
from shop.db import UTCDateTime, db, defer_commit, utcnow
from shop.errors import AppError, Conflict

HEADER = "Idempotency-Key"


class IdempotencyKey(db.Model):
    """A key a user sent with a write, the fingerprint of that request and the response it got."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),)


def _fingerprint() -> str:
    """What makes two requests "the same": method, path and body."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _replay(record: IdempotencyKey, fingerprint: str):
    """The stored response of an earlier request with this key, if it was the same request."""
    if record.request_hash != fingerprint:
        raise Conflict("This Idempotency-Key was used for a different request.", code="idempotency_key_reused")
    response = current_app.response_class(record.response_body, status=record.status_code,
                                          mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _stored(user_id: int, key: str) -> IdempotencyKey | None:
    """The committed record of `key` for the user, if any."""
    return db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id,
                                                          IdempotencyKey.key == key))


def idempotent(view):
    """Decorate a write view (inside `require_role`): honour an `Idempotency-Key` header."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255:
            raise AppError("The Idempotency-Key must have 1 to 255 characters.", code="invalid_idempotency_key")
        user_id, fingerprint = current_user().id, _fingerprint()
        record = _stored(user_id, key)
        if record is not None:
            return _replay(record, fingerprint)
        record = IdempotencyKey(user_id=user_id, key=key, request_hash=fingerprint)
        db.session.add(record)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            return _replay(_stored(user_id, key), fingerprint)
        try:
            with defer_commit():
                response = view(*args, **kwargs)
        except BaseException:
            db.session.rollback()
            raise
        if response.status_code >= 400:
            db.session.rollback()
            return response
        record.status_code, record.response_body = response.status_code, response.get_data(as_text=True)
        db.session.commit()
        return response

    return wrapper
