"""Forms that must act once: each rendered form carries a key, claimed in the same transaction as its write.

A second submission of the same form (a double click, a resent request) finds the key claimed and does nothing;
on PostgreSQL a concurrent one waits on the unique key until the first commits, then finds it. A write that fails
rolls its claim back with it, so the corrected form can be sent again.
"""
from __future__ import annotations

import re
import secrets

from sqlalchemy.exc import IntegrityError

from shop.auth.models import User
from shop.db import db
from shop.idempotency import IdempotencyKey
from web.pages import PageError

KEY_PATTERN = re.compile(r"[0-9a-f]{32}")


def new_form_key() -> str:
    """A fresh key for one rendered form."""
    return secrets.token_hex(16)


def is_form_key(text: str) -> bool:
    """Whether `text` is a key a page could have made."""
    return bool(KEY_PATTERN.fullmatch(text or ""))


def claim_form(*, user: User, purpose: str, key: str) -> bool:
    """Claim `key` for `user`'s form of `purpose` in the open transaction; False if the form was submitted before.
    A key no page made is refused (400): the form is stale or forged."""
    if not is_form_key(key):
        raise PageError("表单已过期，请返回刷新页面后重试。", status=400)
    record = IdempotencyKey(user_id=user.id, scope=f"page-{purpose}:{user.id}", key=key, request_hash="",
                            status_code=200)
    try:
        with db.session.begin_nested():
            db.session.add(record)
    except IntegrityError:
        return False
    return True
