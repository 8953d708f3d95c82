"""Browser tests: the real app on the embedded default (SQLite, eager tasks, sandbox payments) with the demo
world seeded, served by a threaded server, driven by Playwright through Debian's Chromium.

Screenshots go to `test-output/screenshots/` (git-ignored) so a reviewer can look at every page.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import IN_CI, check_books, make_app

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
_PASSWORD_LINE = re.compile(r"(?:user|clerk) (\S+) (?:\([^)]*\) )?password: (\S+)")


@dataclass
class Site:
    """A running demo site: its base URL, the demo users' passwords and the app (for direct checks)."""

    url: str
    passwords: dict[str, str]
    app: object

    def cancel_unpaid_orders(self, username: str) -> None:
        """Cancel what a buyer left unpaid in earlier tests of the module (a buyer holds at most 5 unpaid orders)."""
        from sqlalchemy import select

        from orders.checkout.service import cancel_order
        from orders.models import Order
        from shop.auth.models import User
        from shop.db import db

        with self.app.app_context():
            buyer = db.session.scalar(select(User).where(User.username == username))
            for order_id in db.session.scalars(select(Order.id).where(Order.consumer_id == buyer.id,
                                                                      Order.status == "pending_payment")).all():
                cancel_order(actor=buyer, order_id=order_id)
            db.session.commit()
            db.session.remove()


@pytest.fixture(scope="module")
def site(sqlite_template, tmp_path_factory, request):
    """The app with the demo world, served on a free loopback port by a threaded server for this module."""
    folder = tmp_path_factory.mktemp("site")
    shutil.copy(sqlite_template, folder / "shop.db")
    app = make_app(folder)
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    passwords = {m.group(1): m.group(2) for m in _PASSWORD_LINE.finditer(result.output)}
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(f"http://127.0.0.1:{server.server_port}", passwords, app)
    server.shutdown()
    thread.join(timeout=10)
    with app.app_context():  # what the module's pages did to the money
        check_books(request)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, launched by its executable path (fails under CI=true when missing)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
        if IN_CI:
            pytest.fail(f"CI=true and {message}: the browser tests must run.", pytrace=False)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser):
    """A fresh phone-sized browser context (its own cookies), zh-CN."""
    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    yield context
    context.close()


@pytest.fixture
def desktop(browser):
    """A fresh desktop-sized browser context (its own cookies), zh-CN."""
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    yield context
    context.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as test-output/screenshots/<name>-<width>.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{page.viewport_size['width']}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, site: Site, username: str, path: str = "/login") -> None:
    """Sign `username` in through the sign-in page with its demo password."""
    page.goto(site.url + path)
    page.get_by_label("用户名或手机号").fill(username)
    page.get_by_label("密码").fill(site.passwords[username])
    page.get_by_role("button", name="登录").click()
