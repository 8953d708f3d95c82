"""Password hashing, signed expiring bearer tokens and the role/scope checks views use."""
from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, has_request_context, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, select

from shop.auth.models import User
from shop.auth.passwords import password_form
from shop.config import TOKEN_TTL_MAX
from shop.db import db
from shop.errors import Forbidden, ShopCode, Unauthorized
from shop.fields import MAX_ID

_hasher = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
_test_hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
_DUMMY_HASH = _hasher.hash("timing-equaliser")
TOKEN_SALT = "access-token"
_USER = select(User).where(User.id == bindparam("id"))  # built once: every authenticated request runs it


def _current_hasher() -> PasswordHasher:
    """The hasher new hashes are made with (cheap parameters only when the app is under test)."""
    return _test_hasher if current_app.config.get("TESTING") else _hasher


def hash_password(password: str) -> str:
    """An argon2id hash of `password`'s one form (`password_form`) with the current parameters."""
    return _current_hasher().hash(password_form(password))


def needs_rehash(password_hash: str) -> bool:
    """Whether `password_hash` was made with other parameters than the current ones (so a sign-in should rehash it)."""
    try:
        return _current_hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def matched_spelling(password_hash: str | None, password: str) -> str | None:
    """The spelling of `password` that `password_hash` is of, or None: its one form (`password_form`), else as typed
    (hashes made before passwords were normalised; a sign-in rehashes those). Both are checked against a dummy hash
    when there is no such user, so an unknown username costs the same argon2 work as a wrong password."""
    for spelling in dict.fromkeys((password_form(password), password)):
        try:
            if _hasher.verify(password_hash or _DUMMY_HASH, spelling) and password_hash is not None:
                return spelling
        except (VerificationError, InvalidHashError):
            continue
    return None


def _serializer() -> URLSafeTimedSerializer:
    """The token signer keyed by the app's secret."""
    return _signer(current_app.config["SECRET_KEY"])


@functools.lru_cache(maxsize=8)
def _signer(secret_key: str) -> URLSafeTimedSerializer:
    """The token signer of `secret_key`, built once (every authenticated request checks a token with it)."""
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def issue_token(user: User, ttl: int | None = None, *, page_session: bool = False) -> tuple[str, datetime]:
    """A signed token for `user` and the moment it expires (after `ttl` seconds, at most the configured lifetime); a
    token a page asked for (`page_session`) also ends when the user signs out of the pages."""
    ttl = min(ttl or current_app.config["TOKEN_TTL_SECONDS"], current_app.config["TOKEN_TTL_SECONDS"])
    claims = {"uid": user.id, "tv": user.token_version, "ttl": ttl}
    token = _serializer().dumps(claims | ({"sv": user.session_version} if page_session else {}))
    return token, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl)


def _is_count(value: object, limit: int) -> bool:
    """Whether a token claim is a whole number from 0 to `limit` (not a bool, a float or a string)."""
    return type(value) is int and 0 <= value <= limit


def token_claims(token: str) -> dict:
    """A token's claims if it is well signed, well formed and not expired (no database read), or `Unauthorized`;
    checked once per request (the body guard and the view both ask)."""
    checked = g.get("token_claims") if has_request_context() else None
    if checked is not None and checked[0] == token:
        return checked[1]
    claims = _checked_claims(token)
    if has_request_context():
        g.token_claims = (token, claims)
    return claims


def _checked_claims(token: str) -> dict:
    """`token_claims` without the request's memory."""
    try:
        lifetime = current_app.config["TOKEN_TTL_SECONDS"]
        claims, issued = _serializer().loads(token, max_age=lifetime, return_timestamp=True)
    except SignatureExpired as exc:
        raise Unauthorized("The access token has expired.", code=ShopCode.TOKEN_EXPIRED) from exc
    except BadSignature as exc:
        raise Unauthorized("The access token is not valid.", code=ShopCode.INVALID_TOKEN) from exc
    if not (isinstance(claims, dict) and _is_count(claims.get("uid"), MAX_ID) and _is_count(claims.get("tv"), MAX_ID)
            and _is_count(claims.get("ttl"), TOKEN_TTL_MAX) and _is_count(claims.get("sv", 0), MAX_ID)):
        raise Unauthorized("The access token is not valid.", code=ShopCode.INVALID_TOKEN)
    if datetime.now(UTC) - issued > timedelta(seconds=claims["ttl"]):
        raise Unauthorized("The access token has expired.", code=ShopCode.TOKEN_EXPIRED)
    return claims


def user_from_token(token: str) -> User:
    """The active user a token names, or `Unauthorized` if it is bad, expired or revoked (a page's token also once its
    user signed out of the pages)."""
    claims = token_claims(token)
    user = db.session.execute(_USER, {"id": claims["uid"]}).scalar()
    if (user is None or not user.active or user.token_version != claims["tv"]
            or claims.get("sv", user.session_version) != user.session_version):
        raise Unauthorized("The access token is no longer valid.", code=ShopCode.INVALID_TOKEN)
    return user


def current_user() -> User:
    """The authenticated user of this request (after `require_role`)."""
    return g.user


def _bearer_token() -> str:
    """The request's bearer token, or `Unauthorized` (missing_token)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send `Authorization: Bearer <token>`.", code=ShopCode.MISSING_TOKEN)
    return token.strip()


def carries_a_valid_token() -> bool:
    """Whether the request carries a well-signed, unexpired bearer token (its user is not read)."""
    try:
        token_claims(_bearer_token())
    except Unauthorized:
        return False
    return True


def may_use(roles: tuple[str, ...]) -> bool:
    """Whether the request's bearer token names an active user (not revoked) whose role is one of `roles` (reads the
    user; `require_role` decides the same)."""
    try:
        return user_from_token(_bearer_token()).role in roles
    except Unauthorized:
        return False


def authenticate() -> User:
    """Authenticate the request's bearer token and remember the user on `g`."""
    g.user = user_from_token(_bearer_token())
    return g.user


def require_role(*roles: str):
    """Decorate a view: a valid token whose role is one of `roles` (403 otherwise)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = authenticate()
            if user.role not in roles:
                raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")
            return view(*args, **kwargs)
        wrapper.required_roles = roles  # the body guard lets a request without credentials or role get its 401/403
        return wrapper

    return decorator

