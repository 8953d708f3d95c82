"""In a real browser: the API's interactive docs render under the app's strict Content-Security-Policy."""
from __future__ import annotations

from tests.web.conftest import screenshot
from tests.web.test_coop_journey import console_errors


def test_the_api_docs_render_their_operations_with_no_csp_violation(site, desktop):
    page = desktop.new_page()
    errors = console_errors(page)
    page.goto(site.url + "/api/v1/docs")
    page.locator(".opblock").first.wait_for(timeout=15000)
    assert page.locator(".opblock").count() > 20
    assert page.get_by_text("/api/v1/products").first.is_visible()
    screenshot(page, "api-docs")
    assert errors == []  # no CSP violation, no script error
