"""In a real browser: the sign-in page works with the keyboard alone and leads each role to its page."""
from __future__ import annotations

import re

from tests.web.conftest import screenshot, sign_in


def test_a_consumer_signs_in_with_the_keyboard_and_lands_on_the_storefront(site, phone):
    page = phone.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(site.url + "/login")
    screenshot(page, "login")
    page.keyboard.type("13800000000")  # the username field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(site.passwords["13800000000"])
    page.keyboard.press("Enter")
    page.wait_for_url(site.url + "/")
    assert page.get_by_text("138****0000").is_visible()  # the header names who is signed in, the phone masked
    assert errors == []  # no CSP violation, no script error


def test_a_wrong_password_says_so_and_a_clerk_reaches_the_till(site, desktop):
    page = desktop.new_page()
    page.goto(site.url + "/login")
    page.get_by_label("用户名或手机号").fill("staff-shunde")
    page.get_by_label("密码").fill("not-the-password")
    page.get_by_role("button", name="登录").click()
    assert page.get_by_role("alert").inner_text() == "用户名或密码错误。"
    sign_in(page, site, "staff-shunde")
    page.wait_for_url(site.url + "/till")


def test_a_double_tap_on_register_sends_the_form_once_and_signs_the_consumer_in(site, phone):
    page = phone.new_page()
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.goto(site.url + "/register")
    page.get_by_label("手机号").fill("13912345600")
    page.get_by_label("密码（至少 8 位）").fill("long enough pw")
    page.get_by_label("再次输入密码").fill("long enough pw")
    page.get_by_role("button", name="注册并登录").dblclick()
    page.wait_for_url(site.url + "/")
    assert len(posts) == 1 and page.get_by_text("139****5600").is_visible()


def test_reloading_the_account_page_after_a_password_change_shows_it_changed_and_sends_nothing_again(site, phone):
    """The page that says the password was changed is one a reload (or back, then forward) shows again: the change
    is not sent a second time, and the consumer is not told their form expired."""
    page = phone.new_page()
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.goto(site.url + "/register")
    page.get_by_label("手机号").fill("13912345601")
    page.get_by_label("密码（至少 8 位）").fill("first long pw")
    page.get_by_label("再次输入密码").fill("first long pw")
    page.get_by_role("button", name="注册并登录").click()
    page.wait_for_url(site.url + "/")
    page.goto(site.url + "/account")
    page.get_by_label("当前密码").fill("first long pw")
    page.get_by_label("新密码（至少 8 位）").fill("second long pw")
    page.get_by_label("再次输入新密码").fill("second long pw")
    page.get_by_role("button", name="修改密码").click()
    page.get_by_role("status").filter(has_text="密码已修改").wait_for()

    reloaded = page.reload()

    assert reloaded.status == 200 and len(posts) == 2  # the registration and the change, once each
    assert page.get_by_role("heading", name="我的账户").is_visible() and page.get_by_role("alert").count() == 0


def test_a_clerk_past_the_addresss_sign_in_limit_keeps_the_form_and_is_told_how_long_to_wait(site, browser):
    """Wrong passwords from a store's shared connection use up its address's limit: on a 360 px phone the clerk still
    sees the form with their username, the wait in seconds, and goes on to the till once it is over."""
    from shop.extensions import limiter

    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN", is_mobile=True)
    page = context.new_page()
    with site.app.app_context():
        limiter.reset()  # the module's earlier wrong passwords are forgotten
    try:
        page.goto(site.url + "/login?next=/till")
        for attempt in range(int(site.app.config["LOGIN_RATE_LIMIT"].split()[0])):  # colleagues' mistyped names
            page.get_by_label("用户名或手机号").fill(f"staff-nobody{attempt}")
            page.get_by_label("密码").fill("not-the-password")
            page.get_by_role("button", name="登录").click()
            assert page.get_by_role("alert").inner_text() == "用户名或密码错误。"
        page.get_by_label("用户名或手机号").fill("staff-shunde")
        page.get_by_label("密码").fill(site.passwords["staff-shunde"])
        page.get_by_role("button", name="登录").click()
        assert re.fullmatch(r"尝试次数过多，请 \d+ 秒后再试。", page.get_by_role("alert").inner_text())
        assert page.get_by_label("用户名或手机号").input_value() == "staff-shunde"
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        screenshot(page, "login-address-limit")
        with site.app.app_context():
            limiter.reset()  # the minute is over
        page.get_by_label("密码").fill(site.passwords["staff-shunde"])
        page.get_by_role("button", name="登录").click()
        page.wait_for_url(site.url + "/till")
    finally:
        with site.app.app_context():
            limiter.reset()
        context.close()
