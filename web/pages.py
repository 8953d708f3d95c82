"""The pages' one idiom: `page_blueprint` gives a blueprint with cookie sign-in, CSRF on every form post and the
Content-Security-Policy; `error_page_for` renders every error outside the API; `signed_in(*roles)` guards a page
by role.

The JSON API never reads the session cookie (it takes bearer tokens only), so it needs no CSRF token; a page
that must call the API (the till) asks `/till/token` for a short-lived bearer token.
"""
from __future__ import annotations

import functools
import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect

from shop.auth.models import User
from shop.blueprint import query_args
from shop.db import db
from shop.errors import AppError, ShopCode
from shop.fields import CONTROL_CHARACTERS, ID_OR_CARD_IN_TEXT, PHONE_IN_REASON
from shop.pagination import InvalidCursor

csrf = CSRFProtect()

HTTP_MESSAGES = {400: "请求有误，请检查后重试。", 401: "请先登录。", 403: "没有权限进行此操作。", 404: "页面不存在",
                 405: "不支持此操作", 409: "操作与当前状态冲突，请刷新页面后重试。", 413: "文件太大",
                 422: "填写的内容有误，请检查后重试。", 429: "尝试次数过多，请稍后再试。",
                 500: "出错了，请稍后再试。", 503: "服务暂时不可用，请稍后再试。"}
HOME_BY_ROLE = {"consumer": "storefront.home", "store_staff": "till.home", "coop": "coop.home"}
QUERY_GIVEN_TWICE = "网址中的参数“{name}”出现了不止一次，每个参数只能有一个值。"
CONTROLS_REFUSED = "不能含换行、制表符等控制字符或改变文字方向的符号（常见于从表格或网页复制来的文字），请删去后重试。"
ID_OR_CARD_REFUSED = "请不要在这里填写身份证号或银行卡号（原因里也不要写手机号）：这里的文字会原样给他人看到。"


class PageError(AppError):
    """A refusal worded for the page's reader (in Chinese): shown as it is, unlike a domain error's English."""

    status, code = 422, ShopCode.VALIDATION_ERROR


def seconds_left_signed_in() -> int:
    """How many seconds this session's sign-in has left of `WEB_SESSION_SECONDS` (a lifetime from signing in: activity
    never extends it); 0 once it ended, or for a sign-in time that is missing or in the future."""
    signed_in_at = session.get("at")
    if not isinstance(signed_in_at, int) or signed_in_at > time.time():
        return 0
    return max(int(current_app.permanent_session_lifetime.total_seconds() - (time.time() - signed_in_at)), 0)


def web_user() -> User | None:
    """The active user signed in to this browser session, if any (a deactivated or re-keyed user, one who signed
    out of the pages since, or a sign-in older than its lifetime, is signed out, their cart put aside unseen for when
    they sign in again: `sign_in_session`)."""
    user = db.session.get(User, session["uid"]) if isinstance(session.get("uid"), int) else None
    if user is not None and (not user.active or user.token_version != session.get("tv")
                             or user.session_version != session.get("sv") or not seconds_left_signed_in()):
        cart = session.get("cart")
        session.clear()
        if cart:
            session.update(kept_cart=cart, cart_of=user.id)
        return None
    return user


def sign_in_session(user: User) -> None:
    """Start a fresh session for `user` (a new cookie, so a fixated one is useless), dated now; the cart put aside by
    their own sign-in that ended comes back, the lines filled before signing in added to it as adding them would
    (`cart.merge`, saying what was left out), but a cart another user left here is dropped."""
    from web.storefront import cart  # the cart's rules read the signed-in user's prices: it imports this module

    filled = cart.well_formed(session.get("cart") if session.get("uid") in (None, user.id) else None)
    kept = cart.well_formed(session.get("kept_cart") if session.get("cart_of") == user.id else None)
    session.clear()
    session.permanent = True
    session.update(uid=user.id, tv=user.token_version, sv=user.session_version, at=int(time.time()),
                   **({"cart": kept or filled} if kept or filled else {}))
    if kept:
        cart.merge(filled)


def page_url(cursor: str | None) -> str:
    """This list page again, from `cursor` (None: its first page), its query string kept as it came: a list's cursor is
    bound to the query it was issued for, whatever the page itself ignores of it."""
    args = request.args.copy()
    args.poplist("cursor")
    if cursor is not None:
        args["cursor"] = cursor
    return url_for(request.endpoint, **(request.view_args or {}), **args.to_dict(flat=False))


def safe_next(target: str | None, user: User) -> str:
    """Where to go after signing in: a local path only (never another host), else the role's home page.
    Backslashes, whitespace and control characters are refused outright: browsers drop or fold them, so that
    `/\\host` or `/<tab>/host` would become `//host`."""
    plain = target and not any(ch == "\\" or ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in target)
    if plain and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for(HOME_BY_ROLE.get(user.role, "storefront.home"))


def signed_in(*roles: str):
    """Decorate a page: anonymous visitors go to the sign-in page (a form sent once the sign-in it was shown to ended
    says it was not sent: `_sign_in_again`); a signed-in user of another role gets 404 (as the API's scope rule: a
    page that is not yours does not exist for you)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            signed_in_before = "uid" in session
            user = web_user()
            if user is None and signed_in_before and request.method not in ("GET", "HEAD"):
                return _sign_in_again(400)  # its CSRF token still held: the sign-in ended since the form was shown
            if user is None:
                return redirect(url_for("account.login", next=request.full_path.rstrip("?")))
            if roles and user.role not in roles:
                return error_page(404, "页面不存在")
            return view(*args, **kwargs)
        wrapper.signed_in_roles = roles
        return wrapper

    return decorator


def error_page(status: int, message: str, *, link: tuple[str, str] | None = None):
    """An HTML error page with the status and, if given, a link (URL, words) to the next step, and a shopper's way back
    to the cart and orders (`_shoppers_page`; a server error's page asks the database nothing: it may be what
    failed); never kept by a cache, as pages are not (`_no_store`): it names the signed-in user, also where no page's
    blueprint answers (a path no page matches, a missing file)."""
    return render_template("web/error.html", status=status, message=message, link=link, no_user=status >= 500,
                           shopper=_shoppers_page(status)), status, {"Cache-Control": "no-store"}


def _shoppers_page(status: int) -> bool:
    """Whether an error page is a shopper's: not the till's or the co-op portal's, nor (where the database is asked)
    one signed in with another role than a consumer's."""
    if request.blueprint in ("till", "coop"):
        return False
    user = None if status >= 500 else web_user()
    return user is None or user.role == "consumer"


def _expired_form(status: int):
    """A form the session no longer takes: a sign-out sent when nobody is signed in (another tab's, after signing out
    in this one) goes home as it would have; one for signed-in users only, sent after a sign-out or an ended sign-in,
    says so and links to the sign-in page (back to the page the form was on); any other is merely stale."""
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "signs_out", False) and web_user() is None:
        return redirect(url_for("storefront.home"))
    if getattr(view, "signed_in_roles", None) is not None and web_user() is None:
        return _sign_in_again(status)
    return error_page(status, "表单已过期，请返回刷新页面后重试。")


def _sign_in_again(status: int):
    """The page of a form for signed-in users only sent once the sign-in ended (signed out, timed out, or ended on
    another device): it was not sent; a link to sign in and back to the page the form was on."""
    came_from = urlsplit(request.referrer or "")
    back = came_from.path if came_from.netloc == request.host else None
    return error_page(status, "表单未提交：您的登录已结束（已退出或超时），请重新登录后再操作。",
                      link=(url_for("account.login", next=back), "重新登录"))


def error_page_for(exc: Exception, status: int):
    """The page of an error no view handled, anywhere outside the API: a page's own words, else the status's message
    in Chinese (a 404 says no more)."""
    if isinstance(exc, PageError):
        return error_page(status, exc.message)
    if isinstance(exc, CSRFError):
        return _expired_form(status)
    if isinstance(exc, InvalidCursor):
        return error_page(status, "翻页链接无效，请回到第一页。", link=(request.path, "回到第一页"))
    return error_page(status, HTTP_MESSAGES.get(status, "操作未能完成。"))


def _from_own_pages() -> bool:
    """Whether the browser says the request was sent from this host's own pages (its `Origin`, which no other site
    can set; a browser that sends none is not taken at its word)."""
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc == request.host


def _check_csrf() -> None:
    """Every state-changing page request carries the session's CSRF token (form field or X-CSRFToken header), except
    a sign-out sent from the shop's own pages (`_from_own_pages`): a tab left open across a renewed session (a password
    changed in another tab) holds the token of the session before, and signing out must not fail on it."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if getattr(current_app.view_functions.get(request.endpoint), "signs_out", False) and _from_own_pages():
        return
    csrf.protect()


def _given_once() -> None:
    """A query parameter given more than once (`?code=A&code=B`) is a 422 page naming it, as the API refuses it
    (`shop.blueprint.given_once`), never answered as its first value: no page reads a list from its query. Those the
    API does not read (`query_args`: left blank, `utm_*`) are not given."""
    args = query_args(request.args)
    if repeated := {key: QUERY_GIVEN_TWICE.format(name=key) for key in args if len(args.getlist(key)) > 1}:
        raise PageError("".join(repeated.values()), details=repeated)


def _no_store(response):
    """Pages hold a person's data: never kept by a cache (the security headers are the app's, `shop.headers`)."""
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def page_blueprint(name: str, import_name: str, url_prefix: str | None = None) -> Blueprint:
    """A blueprint for pages: CSRF-checked posts, each query parameter given once (`_given_once`), never cached (its
    errors are pages by `error_page_for`)."""
    bp = Blueprint(name, import_name, url_prefix=url_prefix, template_folder="templates")
    bp.before_request(_check_csrf)
    bp.before_request(_given_once)
    bp.after_request(_no_store)
    return bp


def refused_for_controls(messages: dict) -> set[str]:
    """The form fields a schema refused for holding a control character or a bidirectional override (`Text`, an
    identifier), nested ones by their name."""
    found = set()
    for name, problems in messages.items():
        if isinstance(problems, dict):
            found |= refused_for_controls(problems)
        elif CONTROL_CHARACTERS in problems:
            found.add(name)
    return found


def typed_text_problem(messages: dict, otherwise: str) -> str:
    """A form's one message for a schema's refusal: a personal number's or a control character's rule where a field
    was refused for one, else `otherwise` (the form's own rule)."""
    if refused_for_numbers(messages):
        return ID_OR_CARD_REFUSED
    return CONTROLS_REFUSED if refused_for_controls(messages) else otherwise


def refused_for_numbers(messages: dict) -> set[str]:
    """The form fields a schema refused for holding an ID or bank card number (`Text`), or a reason for holding a phone
    number (`Reason`), nested ones by their name."""
    found = set()
    for name, problems in messages.items():
        if isinstance(problems, dict):
            found |= refused_for_numbers(problems)
        elif ID_OR_CARD_IN_TEXT in problems or PHONE_IN_REASON in problems:
            found.add(name)
    return found
