"""Sign-in, sign-out, consumer registration and the account page (password change): the same services, throttle
and rate limits as the API."""
from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

from flask import flash, get_flashed_messages, redirect, render_template, request, session, url_for
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import TooManyRequests

from shop.auth import service
from shop.auth.api import auth_limit, login_limit, password_limit, register_limit, sign_in_attempt
from shop.auth.models import User
from shop.auth.passwords import password_form
from shop.auth.schemas import PasswordChange, RegisterRequest, TokenRequest
from shop.auth.throttle import TooManyAttempts
from shop.db import commit, db
from shop.errors import AppError, ShopCode, Unauthorized
from shop.extensions import client_address, limiter
from web.pages import page_blueprint, safe_next, sign_in_session, signed_in, web_user

bp = page_blueprint("account", __name__)

MAX_FORM_FIELD = 129  # one past the longest password, so a longer one is refused by its schema, never cut short
# the API's `Password` and the service's username rule
PASSWORD_RULE = ("密码需 8 至 128 位，不能只有空格，不能含换行、制表符等控制字符，不能包含手机号或用户名，"
                 "也不能是 12345678、password 这类常见密码或 aaaaaaaa、abcdefgh 这类有规律的密码。")
PHONE_RULE = "手机号格式不正确：请填写 11 位中国大陆手机号（可带 +86）。"  # the API's `MobileNumber`


def _field(name: str) -> str:
    """A form field, bounded (the service validates the rest)."""
    return request.form.get(name, "")[:MAX_FORM_FIELD]


def _login_form(error: str) -> str:
    """The sign-in form again with `error`, the username typed and the page to go back to kept."""
    return render_template("web/login.html", next_url=request.values.get("next", "")[:512],
                           username=_field("username"), error=error)


def _register_form(error: str) -> str:
    """The registration form again with `error`, the phone typed and the page to go back to kept."""
    return render_template("web/register.html", phone=_field("phone"), next_url=request.values.get("next", "")[:512],
                           error=error)


def _account_form(error: str) -> str:
    """The signed-in user's account page again with `error`."""
    user = web_user()
    return render_template("web/account.html", error=error, user=user, role_name=ROLE_NAMES.get(user.role, user.role))


def _too_many(form: Callable[[str], str], retry_after: int):
    """`form` again, saying how many seconds to wait (`retry_after`), in its Retry-After too (429)."""
    return form(f"尝试次数过多，请 {retry_after} 秒后再试。"), 429, {"Retry-After": str(retry_after)}


def _seconds_to_wait(exc: TooManyRequests) -> int:
    """How long a post refused by an address limit waits, as the response's Retry-After will say: the later of
    the refusal's own wait and the end of the limiter's current window."""
    limit = limiter.current_limit
    window = limit.reset_at - time.time() if limit is not None else 0
    return max(math.ceil(max(exc.retry_after or 0, window)), 1)


def _form_when_limited(form: Callable[[str], str]):
    """Decorate a page whose posts the per-address limits guard (`auth_limit`, `login_limit`, `register_limit`,
    `password_limit`): a post they refuse gets its `form` again saying how many seconds to wait, as the per-username
    backoff does, rather than the bare 429 page."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except TooManyRequests as exc:
                return _too_many(form, _seconds_to_wait(exc))

        return wrapper

    return decorator


@bp.route("/login", methods=["GET", "POST"])
@_form_when_limited(_login_form)
@auth_limit
@login_limit
def login():
    """The sign-in form, its fields judged as the API's token request judges them; on success a fresh session and the
    user's home page (or the page they came from)."""
    next_url = request.values.get("next", "")[:512]
    if request.method == "GET":
        user = web_user()
        if user is not None:
            return redirect(safe_next(next_url, user))
        return render_template("web/login.html", next_url=next_url)
    try:
        credentials = TokenRequest().load({"username": _field("username"), "password": _field("password")})
        user = service.check_credentials(address=client_address(), **credentials)
    except (ValidationError, Unauthorized):  # a username no user can have (a control character …) is no user's
        return _login_form("用户名或密码错误。"), 401
    except TooManyAttempts as exc:
        return _too_many(_login_form, exc.retry_after)
    sign_in_session(user)  # from the row the password was checked against: a reset committed meanwhile ends it
    commit()
    return redirect(safe_next(next_url, user))


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out: the session is emptied, and every page session of the user signed in before ends too (a copied
    cookie stays signed by the app, so it must stop matching the user); API tokens are not affected."""
    user = web_user()
    if user is not None:
        service.sign_out_of_pages(user=user)
        commit()
    session.clear()
    return redirect(url_for("storefront.home"))


logout.signs_out = True  # sent again with a stale form once signed out (another tab): home, not an error


def _signed_in_as_registered_before(phone: str, password: str) -> User | None:
    """Sign in the consumer this very form registered already (a double tap, a resent request): the phone is taken
    and the password is theirs; None if the phone is someone else's (a wrong password counts as a failed sign-in,
    of the phone and of the address's budget the sign-in page spends: once that is spent, no password is checked)."""
    db.session.rollback()
    try:
        attempt = sign_in_attempt()
    except TooManyRequests:
        return None
    wrong = False
    try:
        user = service.check_credentials(username=phone, password=password, address=client_address())
    except (Unauthorized, TooManyAttempts) as exc:
        wrong = isinstance(exc, Unauthorized)
        return None
    finally:
        attempt.settle(counted=wrong)
    if user.role == "consumer":
        sign_in_session(user)  # from the row the password was checked against, as the sign-in page does
    commit()
    return user if user.role == "consumer" else None


@bp.route("/register", methods=["GET", "POST"])
@_form_when_limited(_register_form)
@auth_limit
@register_limit
def register():
    """Consumer registration by mobile number and password; signed in at once. The same form sent twice (a double
    tap) signs the new consumer in rather than failing on the taken phone number. Sent from the sign-in page, it goes
    on to the page the visitor came from (`next`, as signing in does); someone signed in already goes there at once."""
    next_url = request.values.get("next", "")[:512]
    if request.method == "GET":
        user = web_user()
        if user is not None:
            return redirect(safe_next(next_url, user))
        return render_template("web/register.html", next_url=next_url)
    phone = _field("phone")
    if password_form(_field("password")) != password_form(_field("password_again")):
        return render_template("web/register.html", phone=phone, next_url=next_url, error="两次输入的密码不一致。"), 422
    try:
        data = RegisterRequest().load({"phone": phone, "password": _field("password")})
        user = service.register_consumer(**data)
        commit()
    except ValidationError as exc:
        problem = PHONE_RULE if "phone" in exc.messages else PASSWORD_RULE
        return render_template("web/register.html", phone=phone, next_url=next_url, error=problem), 422
    except (AppError, IntegrityError) as exc:
        if isinstance(exc, AppError) and exc.code == ShopCode.VALIDATION_ERROR:  # the password holds the phone
            return render_template("web/register.html", phone=phone, next_url=next_url, error=PASSWORD_RULE), 422
        if isinstance(exc, AppError) and exc.code != ShopCode.USERNAME_TAKEN:
            raise
        user = _signed_in_as_registered_before(data["phone"], data["password"])
        if user is None:
            return render_template("web/register.html", phone=phone, next_url=next_url, taken=True,
                                   error="该手机号已注册，请登录。"), 409
        return redirect(safe_next(next_url, user))
    sign_in_session(user)
    return redirect(safe_next(next_url, user))


ROLE_NAMES = {"consumer": "顾客", "store_staff": "门店店员", "coop": "合作社", "admin": "管理员", "auditor": "审计"}
PASSWORD_CHANGED = "password-changed"  # the flash category of the message the account page shows after a change


@bp.route("/account", methods=["GET", "POST"])
@signed_in()  # first: a visitor signed out is sent to sign in, spending nothing of the limits
@_form_when_limited(_account_form)
@auth_limit
@password_limit
def account():
    """The signed-in user's account: a new password ends every other sign-in; this browser stays signed in (and is
    sent to the page again, so a reload shows the change made rather than sending it twice)."""
    user = web_user()
    shown = {"user": user, "role_name": ROLE_NAMES.get(user.role, user.role)}
    if request.method == "GET":
        done = get_flashed_messages(category_filter=[PASSWORD_CHANGED])
        return render_template("web/account.html", done=done[0] if done else None, **shown)
    if password_form(_field("new_password")) != password_form(_field("new_password_again")):
        return render_template("web/account.html", error="两次输入的新密码不一致。", **shown), 422
    try:
        data = PasswordChange().load({"current_password": _field("current_password"),
                                      "new_password": _field("new_password")})
        service.change_own_password(user=user, address=client_address(), **data)
        sign_in_session(user)  # with the new password's versions as written, before anything else may move them
        commit()
    except ValidationError as exc:
        problem = "请输入当前密码。" if "current_password" in exc.messages else f"新{PASSWORD_RULE}"
        return render_template("web/account.html", error=problem, **shown), 422
    except TooManyAttempts as exc:
        return _too_many(_account_form, exc.retry_after)
    except AppError as exc:
        if exc.code == ShopCode.INVALID_TOKEN:  # signed out (or re-keyed) elsewhere while this was being checked
            session.clear()
            return redirect(url_for("account.login", next=url_for("account.account")))
        if exc.code == ShopCode.WRONG_PASSWORD:
            problem = "当前密码不正确。"
        elif password_form(data["new_password"]) == password_form(data["current_password"]):
            problem = "新密码不能与当前密码相同。"
        else:  # it holds the username
            problem = f"新{PASSWORD_RULE}"
        return render_template("web/account.html", error=problem, **shown), exc.status
    flash("密码已修改。其他设备上的登录（包括 API 令牌）已失效。", PASSWORD_CHANGED)
    return redirect(url_for("account.account"), 303)
