"""Server-rendered pages for the people the shop serves: the storefront, the counter till, the co-op portal.

Pages call the same domain services as the JSON routes; they hold no business logic of their own.
"""
from __future__ import annotations

from flask import Blueprint, Flask

from shop.errors import register_error_page
from web.pages import csrf, error_page_for, page_url, web_user

assets = Blueprint("web_static", __name__, static_folder="static", static_url_path="/static/web")


def init_app(app: Flask) -> None:
    """Register the pages, their static files, CSRF protection (checked on page posts only) and the error page of
    every path outside the API."""
    from web import account, coop, storefront, till

    csrf.init_app(app)
    app.jinja_env.globals["web_user"] = web_user
    app.jinja_env.globals["page_url"] = page_url
    register_error_page(app, error_page_for)
    app.register_blueprint(assets)
    for part in (account, storefront, till, coop):
        app.register_blueprint(part.bp)
