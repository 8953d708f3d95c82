"""Server-rendered pages for the people the shop serves: the storefront, the counter till, the co-op portal.

Pages call the same domain services as the JSON routes; they hold no business logic of their own.
"""
from __future__ import annotations

from flask import Blueprint, Flask, send_from_directory

from shop.errors import register_error_page
from shop.fields import MAX_PHONE_INPUT, MAX_QUANTITY
from web.pages import csrf, error_page_for, page_url, web_user

assets = Blueprint("web_static", __name__, static_folder="static", static_url_path="/static/web")
ICON_MAX_AGE = 7 * 86400


@assets.get("/favicon.ico")
def favicon():
    """The site's icon, where a browser looks for it on every page (cached for a week)."""
    return send_from_directory(assets.static_folder, "favicon.ico", max_age=ICON_MAX_AGE)


def init_app(app: Flask) -> None:
    """Register the pages, their static files, CSRF protection (checked on page posts only) and the error page of
    every path outside the API."""
    from web import account, coop, disclosure, storefront, till

    csrf.init_app(app)
    app.jinja_env.globals["web_user"] = web_user
    app.jinja_env.globals["page_url"] = page_url
    app.jinja_env.globals["max_quantity"] = MAX_QUANTITY  # the API's bound, for the till's quantity boxes
    app.jinja_env.globals["max_phone_input"] = MAX_PHONE_INPUT  # the API's bound, for the phone boxes
    register_error_page(app, error_page_for)
    app.register_blueprint(assets)
    for part in (account, storefront, disclosure, till, coop):
        app.register_blueprint(part.bp)
