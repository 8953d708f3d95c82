"""Users: sign-in, consumer registration and the admin's user management."""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm.attributes import set_committed_value

from shop.auth import throttle
from shop.auth.models import USERNAME_PATTERN, USERNAME_RULE, User, UserChange
from shop.auth.passwords import HOLDS_USERNAME, holds_username, password_form
from shop.auth.security import hash_password, issue_token, matched_spelling, needs_rehash
from shop.changes import UNSET, Changes
from shop.db import after_commit, db, lock_on_sqlite, utcnow
from shop.errors import Conflict, Forbidden, NotFound, ShopCode, Unauthorized, ValidationError
from shop.fields import code_skeleton, holds_personal_number, mainland_mobile, normalise_username
from shop.pagination import paginate, paginate_committed, recorded_in

SCOPE_FIELDS = {"store_staff": "store_id", "coop": "supplier_id"}


def find_user(*, username: str) -> User | None:
    """The user with `username` in any spelling, or None."""
    return db.session.scalar(select(User).where(User.username == normalise_username(username)))


def _verified(*, username: str, password: str, address: str) -> User:
    """The active user these credentials name, under the sign-in backoff of `username` at `address`; the same
    error for unknown users and bad passwords."""
    username = normalise_username(username)
    throttle.claim(username, address)
    user = find_user(username=username)
    spelling = matched_spelling(user.password_hash if user else None, password)
    if spelling is None or not user.active:
        throttle.record_failure()
        raise Unauthorized("Wrong username or password.", code=ShopCode.INVALID_CREDENTIALS)
    throttle.clear(username, address)
    _rehash_if_outdated(user, password, spelling=spelling)
    return user


def _rehash_if_outdated(user: User, password: str, *, spelling: str) -> None:
    """Store a new hash of the password just checked if its hash has outdated parameters or is of another `spelling`
    than the password's one form (in this request's transaction), unless a password change took its place
    meanwhile."""
    old_hash = user.password_hash
    if not needs_rehash(old_hash) and spelling == password_form(password):
        return
    new_hash = hash_password(password)
    rehashed = db.session.execute(update(User).where(User.id == user.id, User.password_hash == old_hash)
                                  .values(password_hash=new_hash).execution_options(synchronize_session=False))
    if rehashed.rowcount:
        set_committed_value(user, "password_hash", new_hash)


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


def _signed_in_as(user: User) -> tuple[int, bool]:
    """What a request's token or session was checked against: the user's token version and active flag."""
    return user.token_version, user.active


def _still_signed_in(user: User, *, checked: tuple[int, bool]) -> User:
    """`user`, the signed-in user of this request, read afresh with its row locked, so that what one user does to
    their own credentials takes turns with every other change of them (`_locked`); `Unauthorized` (invalid_token) if
    a sign-out, a password change or an admin's change ended the request's token or session since it was `checked`
    (`_signed_in_as`), as the next request with it would be."""
    _locked(user)
    if _signed_in_as(user) != checked:
        raise Unauthorized("The access token is no longer valid.", code=ShopCode.INVALID_TOKEN)
    return user


def sign_out_everywhere(*, user: User) -> None:
    """End every bearer token, till token and page session the user holds (a token carries no id of its own);
    audited as `signed_out`."""
    _still_signed_in(user, checked=_signed_in_as(user)).token_version += 1
    _record(user, "signed_out", user)
    db.session.flush()


def sign_out_of_pages(*, user: User) -> None:
    """End every page session the user holds (a copied cookie stops matching); API tokens are not affected; audited
    as `signed_out` (nothing, if they ended meanwhile: a sign-out of pages elsewhere, a password change)."""
    versions = (user.token_version, user.session_version)
    _locked(user)
    if (user.token_version, user.session_version) != versions:
        return
    user.session_version += 1
    _record(user, "signed_out", user)
    db.session.flush()


def _check_scope(*, role: str, store_id: int | None, supplier_id: int | None) -> None:
    """A staff user needs exactly a store, a co-op user exactly a supplier (that exists; its domain's check may refuse
    one that takes no new users, e.g. an inactive store), others neither: checked when a user is created, moved or
    enabled."""
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


Scope = tuple[str, int | None, int | None]  # a user's role, store_id and supplier_id


def _scope(user: User) -> Scope:
    """The user's role and scope ids."""
    return user.role, user.store_id, user.supplier_id


def _record(user: User, action: str, actor: User | None, *, old: Scope | None = None,
            new: Scope | None = None) -> None:
    """Append what happened to `user`, by `actor` (None: the command line), to the user audit; `old` and `new`: its
    role and scope before and after, where they changed or were set."""
    old_role, old_store_id, old_supplier_id = old or (None, None, None)
    new_role, new_store_id, new_supplier_id = new or (None, None, None)
    db.session.add(UserChange(user_id=user.id, actor_id=actor.id if actor is not None else None, action=action,
                              old_role=old_role, old_store_id=old_store_id, old_supplier_id=old_supplier_id,
                              new_role=new_role, new_store_id=new_store_id, new_supplier_id=new_supplier_id))


def _password_hash(password: str, *, username: str, field: str = "password") -> str:
    """The hash of a new password, which must not hold the username (the `Password` field refuses the most used
    ones)."""
    if holds_username(password, normalise_username(username)):
        raise ValidationError("The password is too easy to guess: it holds the username.",
                              details={field: [HOLDS_USERNAME]})
    return hash_password(password)


def duplicate_username(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a user whose username is taken."""
    return Conflict(f"The username {row['username']!r} is taken.", code=ShopCode.USERNAME_TAKEN)


USERNAME_LOCKS = 0x75736572  # the advisory lock space ("user") of usernames being claimed, keyed by their skeleton


def _claim_username(username: str) -> None:
    """Refuse a username taken in this or a look-alike spelling (the same `code_skeleton`): `username_taken`, naming the
    user it reads as. The skeleton is locked first (an advisory lock on PostgreSQL, the write lock on SQLite), so two
    look-alikes created at once cannot both pass."""
    skeleton = code_skeleton(username)
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:skeleton))"),
                           {"space": USERNAME_LOCKS, "skeleton": skeleton})
    lock_on_sqlite("UPDATE users SET id = id WHERE username = :username", username=username)
    folded = func.replace(func.replace(User.username, ".", "-"), "_", "-")
    # without a separator only the very name reads as it: the unique index finds it (a consumer's phone number)
    same = folded == skeleton if "-" in skeleton else User.username == username
    taken = db.session.scalar(select(User.username).where(same).order_by(User.id).limit(1))
    if taken == username:
        raise duplicate_username({"username": username})
    if taken is not None:
        raise Conflict(f"The username {username!r} reads as {taken!r}, which is taken: choose one that differs by "
                       "more than . _ or -.", code=ShopCode.USERNAME_TAKEN)


def _check_username(username: str, *, role: str) -> None:
    """A consumer's username is their mainland mobile number (as registration makes it); being shown unmasked to
    admins, no other role's holds a person's number (a resident ID, a bank card or a phone number). Checked on creation
    and on a role change alike."""
    if role == "consumer":
        if mainland_mobile(username) != username:
            raise ValidationError("A consumer's username is a mainland China mobile number.",
                                  details={"username": ["A consumer's username is a mainland China mobile number."]})
    elif holds_personal_number(username):
        raise ValidationError("A username must not hold an ID, bank card or phone number: it is shown unmasked.",
                              details={"username": ["Must not hold an ID, bank card or phone number."]})


def _add_user(*, username: str, password: str, role: str, store_id: int | None, supplier_id: int | None) -> User:
    """A new user with a role and, for staff and co-op users, its scope (not yet audited). A username has only
    ASCII letters and digits parted by single `.`, `_` or `-` (a consumer's is their phone number), so none can pass
    for another in a look-alike script, nor differ from another by its separators alone (`_claim_username`); its role
    decides whether it may be a phone number (`_check_username`)."""
    _check_scope(role=role, store_id=store_id, supplier_id=supplier_id)
    username = normalise_username(username)
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise ValidationError("A username holds only letters a-z and digits, parted by single . _ or -.",
                              details={"username": [USERNAME_RULE]})
    _check_username(username, role=role)
    password_hash = _password_hash(password, username=username)  # before the name's lock (held until the commit)
    _claim_username(username)
    user = User(username=username, password_hash=password_hash, role=role, store_id=store_id,
                supplier_id=supplier_id)
    db.session.add(user)
    db.session.flush()
    return user


def create_user(*, username: str, password: str, role: str, store_id: int | None = None,
                supplier_id: int | None = None, actor: User | None = None) -> User:
    """Create a user with a role and, for staff and co-op users, its scope; audited as created by `actor`, the admin
    (None: the command line)."""
    user = _add_user(username=username, password=password, role=role, store_id=store_id, supplier_id=supplier_id)
    _record(user, "created", actor, new=_scope(user))
    return user


def register_consumer(*, phone: str, password: str) -> User:
    """A consumer signs up with a mainland mobile number as username (audited as created by themselves)."""
    user = _add_user(username=phone, password=password, role="consumer", store_id=None, supplier_id=None)
    _record(user, "created", user, new=_scope(user))
    return user


def get_user(user_id: int) -> User:
    """The user with `user_id`, or `NotFound`."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.", code=ShopCode.USER_NOT_FOUND)
    return user


def list_users(*, viewer: User, role: str | None, username: str | None, active: bool | None, limit: int,
               cursor: str | None) -> dict:
    """A page of users, optionally of one role, the one with `username` (normalised), active or disabled ones. An
    auditor, who sees personal numbers in usernames masked, may not look one up by such a number."""
    if username is not None and viewer.role == "auditor" and holds_personal_number(username):
        raise Forbidden("Auditors see phone and ID numbers in usernames masked; they cannot look users up by one.")
    query = select(User)
    if role:
        query = query.where(User.role == role)
    if username is not None:
        query = query.where(User.username == normalise_username(username))
    if active is not None:
        query = query.where(User.active.is_(active))
    return paginate(query, keys=[User.id], limit=limit, cursor=cursor)


def _check_admin_stays(user: User, actor: User | None, *, change: str) -> None:
    """Before an admin is disabled or given another role (`change` says which): an admin may not do it to themselves
    (`cannot_disable_self`) nor anyone to the last active admin (`last_active_admin`); `_locked` holds the active
    admins' rows, so two admins doing it to each other at once cannot both succeed."""
    if actor is not None and actor.id == user.id:
        raise Conflict(f"You cannot {change} your own account; ask another admin.", code=ShopCode.CANNOT_DISABLE_SELF)
    if user.role != "admin":
        return
    active_admins = db.session.scalars(select(User.id).where(User.role == "admin", User.active.is_(True))).all()
    if user.active and not set(active_admins) - {user.id}:
        raise Conflict(f"This is the last active admin; you cannot {change} it. Enable another admin first.",
                       code=ShopCode.LAST_ACTIVE_ADMIN)


@dataclass(frozen=True, kw_only=True)
class UserChanges(Changes):
    """What an admin may change on a user: active, password, role and scope (a new role clears the scope fields
    not given)."""

    active: bool = UNSET
    password: str = UNSET
    role: str = UNSET
    store_id: int | None = UNSET
    supplier_id: int | None = UNSET


def _set_password(user: User, password_hash: str, *, actor: User | None, action: str) -> None:
    """A new password (its `_password_hash`, made before the user's row is locked: hashing takes a while): the user's
    tokens and page sessions end, and its sign-in backoff at every address is lifted once committed; audited as
    `action` by `actor`."""
    user.password_hash = password_hash
    user.token_version += 1
    after_commit(functools.partial(throttle.clear_everywhere, user.username))
    _record(user, action, actor)


def _change_role(user: User, actor: User | None, *, role: str, store_id: int | None, supplier_id: int | None) -> None:
    """Give `user` a new role or scope (checked as on creation, its username too): its rights change, so its tokens
    and page sessions end; audited with the old and the new. An admin keeps their own role, and the last active admin
    stays one."""
    old, new = _scope(user), (role, store_id, supplier_id)
    if new == old:
        return
    _check_scope(role=role, store_id=store_id, supplier_id=supplier_id)
    if role != user.role:
        _check_username(user.username, role=role)
    if user.role == "admin" and role != "admin":
        _check_admin_stays(user, actor, change="demote")
    user.role, user.store_id, user.supplier_id = new
    user.token_version += 1
    _record(user, "role_changed" if role != old[0] else "scope_changed", actor, old=old, new=new)


def _locked(user: User, *, with_admins: bool = False) -> User:
    """`user` read afresh with its row locked; `with_admins`, an admin's with every active admin's, in id order, as
    the last-admin check locks them (so two admins changing each other wait, never deadlock)."""
    lock_on_sqlite("UPDATE users SET id = id WHERE id = :id", id=user.id)  # SQLite has no FOR UPDATE
    rows = User.id == user.id
    if with_admins and user.role == "admin":
        rows = or_(rows, and_(User.role == "admin", User.active.is_(True)))
    db.session.scalars(select(User).where(rows).order_by(User.id).with_for_update()
                       .execution_options(populate_existing=True)).all()
    return user


def update_user(*, user_id: int, changes: UserChanges, actor: User | None = None) -> User:
    """Disable/enable a user, reset its password or change its role or scope, each audited as done by `actor`, the
    admin (None: a script); each revokes the user's tokens. An admin may not disable or demote themselves, nor reset
    their own password (a token is not enough for that: `change_own_password` asks for the current one), and nobody
    the last active admin; a user is enabled only in a store or supplier that takes users (`_check_scope`). The
    user's row is locked first, so concurrent changes are audited in the order they happened, each from the values
    the one before left."""
    user, values = get_user(user_id), changes.given()
    if "password" in values and actor is not None and actor.id == user.id:
        raise Conflict("You cannot reset your own password here: change it with POST /api/v1/users/me/password, "
                       "which asks for the current one.", code=ShopCode.CANNOT_DISABLE_SELF)
    password_hash = _password_hash(values["password"], username=user.username) if "password" in values else None
    _locked(user, with_admins=True)
    if {"role", "store_id", "supplier_id"} & values.keys():
        role = values.get("role", user.role)
        kept = role == user.role  # a new role clears the scope fields not given
        _change_role(user, actor, role=role,
                     store_id=values.get("store_id", user.store_id if kept else None),
                     supplier_id=values.get("supplier_id", user.supplier_id if kept else None))
    active = values.get("active", user.active)
    if active != user.active:
        if active:
            _check_scope(role=user.role, store_id=user.store_id, supplier_id=user.supplier_id)
        else:
            _check_admin_stays(user, actor, change="disable")
        user.active = active
        user.token_version += 1
        _record(user, "enabled" if active else "disabled", actor)
    if password_hash is not None:
        _set_password(user, password_hash, actor=actor, action="password_reset")
    db.session.flush()
    return user


def change_own_password(*, user: User, current_password: str, new_password: str, address: str) -> User:
    """A signed-in user sets a new password: the current one is checked as a sign-in is (the same backoff at the
    client's `address`; a wrong one is `wrong_password`, 403), every token and page session issued before ends, and
    the change is audited as the user's own. The user's row is locked before the change is written: of two changes
    at once, or a change and a sign-out, the second finds the first ended its token (`invalid_token`, nothing
    changed)."""
    checked = _signed_in_as(user)
    try:
        _verified(username=user.username, password=current_password, address=address)
    except Unauthorized as exc:
        raise Forbidden("The current password is wrong.", code=ShopCode.WRONG_PASSWORD) from exc
    if password_form(new_password) == password_form(current_password):
        raise ValidationError("The new password is the current one.",
                              details={"new_password": ["Must differ from the current password."]})
    password_hash = _password_hash(new_password, username=user.username, field="new_password")
    _set_password(_still_signed_in(user, checked=checked), password_hash, actor=user, action="password_changed")
    db.session.flush()
    return user


def reset_password(*, username: str, password: str) -> User:
    """An operator on the command line sets a user's password: old tokens die and any sign-in backoff is lifted;
    audited with no actor (the command line)."""
    user = find_user(username=username)
    if user is None:
        raise NotFound("No user with that username.", code=ShopCode.USER_NOT_FOUND)
    password_hash = _password_hash(password, username=user.username)
    _set_password(_locked(user), password_hash, actor=None, action="password_reset")
    db.session.flush()
    return user


def list_user_changes(*, user_id: int | None, from_date: date | None, to_date: date | None, limit: int,
                      cursor: str | None) -> dict:
    """A page of the audited user creations and changes made in [from_date, to_date), oldest first."""
    query = select(UserChange).where(*recorded_in(UserChange.created_at, from_date=from_date, to_date=to_date))
    if user_id is not None:
        query = query.where(UserChange.user_id == user_id)
    return paginate_committed(query, model=UserChange, limit=limit, cursor=cursor,
                    filters={"user_id": user_id, "from": from_date, "to": to_date})
