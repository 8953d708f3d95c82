"""Users: sign-in, consumer registration and the admin's user management."""
from __future__ import annotations

import functools
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from shop.auth import throttle
from shop.auth.models import User
from shop.auth.security import hash_password, issue_token, verify_password
from shop.db import after_commit, db, lock_on_sqlite, utcnow
from shop.errors import Conflict, Forbidden, NotFound, ShopCode, Unauthorized, ValidationError
from shop.fields import normalise_identifier
from shop.pagination import paginate

SCOPE_FIELDS = {"store_staff": "store_id", "coop": "supplier_id"}


def normalise_username(username: str) -> str:
    """The one spelling of a username (NFKC, invisible characters removed, trimmed, lower case)."""
    return normalise_identifier(username, case="lower")


def find_user(*, username: str) -> User | None:
    """The user with `username` in any spelling, or None."""
    return db.session.scalar(select(User).where(User.username == normalise_username(username)))


def _verified(*, username: str, password: str, address: str) -> User:
    """The active user these credentials name, under the sign-in backoff of `username` at `address`; the same
    error for unknown users and bad passwords."""
    username = normalise_username(username)
    throttle.claim(username, address)
    user = find_user(username=username)
    if not verify_password(user.password_hash if user else None, password) or not user.active:
        throttle.record_failure()
        raise Unauthorized("Wrong username or password.", code=ShopCode.INVALID_CREDENTIALS)
    throttle.clear(username, address)
    return user


def check_credentials(*, username: str, password: str, address: str) -> User:
    """The active user these credentials name; the same error for unknown users and bad passwords;
    `TooManyAttempts` while the username waits out its backoff at the client's `address` (API tokens and page
    sign-ins alike)."""
    user = _verified(username=username, password=password, address=address)
    user.last_login_at = utcnow()
    return user


def sign_in(*, username: str, password: str, address: str) -> tuple[User, str, datetime]:
    """Check credentials (from the client's `address`) and issue a bearer token."""
    user = check_credentials(username=username, password=password, address=address)
    token, expires_at = issue_token(user)
    return user, token, expires_at


def _check_scope(*, role: str, store_id: int | None, supplier_id: int | None) -> None:
    """A staff user needs exactly a store, a co-op user exactly a supplier, others neither."""
    errors: dict[str, list[str]] = {}
    given = {"store_id": store_id, "supplier_id": supplier_id}
    for field, value in given.items():
        needed = SCOPE_FIELDS.get(role) == field
        if needed and value is None:
            errors[field] = [f"Required for role {role}."]
        elif not needed and value is not None:
            errors[field] = [f"Not allowed for role {role}."]
        elif needed:
            exists = current_app.extensions.get("scope_checks", {}).get(field)
            if exists is not None and not exists(value):
                errors[field] = [f"No such {field.removesuffix('_id')}."]
    if errors:
        raise ValidationError("The user's scope does not fit its role.", details=errors)


def create_user(*, username: str, password: str, role: str, store_id: int | None = None,
                supplier_id: int | None = None) -> User:
    """Create a user with a role and, for staff and co-op users, its scope."""
    _check_scope(role=role, store_id=store_id, supplier_id=supplier_id)
    username = normalise_username(username)
    if find_user(username=username) is not None:
        raise Conflict(f"The username {username!r} is taken.", code=ShopCode.USERNAME_TAKEN)
    user = User(username=username, password_hash=hash_password(password), role=role,
                store_id=store_id, supplier_id=supplier_id)
    db.session.add(user)
    db.session.flush()
    return user


def register_consumer(*, phone: str, password: str) -> User:
    """A consumer signs up with a mainland mobile number as username."""
    return create_user(username=phone, password=password, role="consumer")


def get_user(user_id: int) -> User:
    """The user with `user_id`, or `NotFound`."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.", code=ShopCode.USER_NOT_FOUND)
    return user


def list_users(*, role: str | None, limit: int, cursor: str | None) -> dict:
    """A page of users, optionally of one role."""
    query = select(User)
    if role:
        query = query.where(User.role == role)
    return paginate(query, keys=[User.id], limit=limit, cursor=cursor)


def _check_may_disable(user: User, actor: User | None) -> None:
    """An admin may not disable themselves (`cannot_disable_self`) nor the last active admin
    (`last_active_admin`): the active admins' rows are locked in id order first, so two admins disabling each
    other at once cannot both succeed."""
    if actor is not None and actor.id == user.id:
        raise Conflict("You cannot disable your own account; ask another admin.", code=ShopCode.CANNOT_DISABLE_SELF)
    if user.role != "admin":
        return
    lock_on_sqlite("UPDATE users SET id = id WHERE id = :id", id=user.id)  # SQLite has no FOR UPDATE
    active_admins = db.session.scalars(select(User.id).where(User.role == "admin", User.active.is_(True))
                                       .order_by(User.id).with_for_update()).all()
    if not set(active_admins) - {user.id}:
        raise Conflict("This is the last active admin; enable another admin first.",
                       code=ShopCode.LAST_ACTIVE_ADMIN)


def update_user(*, user_id: int, active: bool | None = None, password: str | None = None,
                actor: User | None = None) -> User:
    """Disable/enable a user or reset its password; either revokes the user's tokens, and a new password lifts the
    user's sign-in backoff at every address once committed. `actor`, the admin making the change, may not disable
    themselves, and nobody the last active admin."""
    user = get_user(user_id)
    if active is False and user.active:
        _check_may_disable(user, actor)
    if active is not None and active != user.active:
        user.active = active
        user.token_version += 1
    if password is not None:
        user.password_hash = hash_password(password)
        user.token_version += 1
        after_commit(functools.partial(throttle.clear_everywhere, user.username))
    db.session.flush()
    return user


def change_own_password(*, user: User, current_password: str, new_password: str, address: str) -> User:
    """A signed-in user sets a new password: the current one is checked as a sign-in is (the same backoff at the
    client's `address`; a wrong one is `wrong_password`, 403), and every token and page session issued before ends
    (`update_user`)."""
    try:
        _verified(username=user.username, password=current_password, address=address)
    except Unauthorized as exc:
        raise Forbidden("The current password is wrong.", code=ShopCode.WRONG_PASSWORD) from exc
    if new_password == current_password:
        raise ValidationError("The new password is the current one.",
                              details={"new_password": ["Must differ from the current password."]})
    return update_user(user_id=user.id, password=new_password)


def reset_password(*, username: str, password: str) -> User:
    """An operator sets a user's password: old tokens die and any sign-in backoff is lifted (`update_user`)."""
    user = find_user(username=username)
    if user is None:
        raise NotFound("No user with that username.", code=ShopCode.USER_NOT_FOUND)
    update_user(user_id=user.id, password=password)
    return user
