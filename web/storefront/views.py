"""Storefront pages."""
from __future__ import annotations

from flask import render_template

from web.pages import page_blueprint

bp = page_blueprint("storefront", __name__)


@bp.route("/")
def home():
    """The storefront's home page."""
    return render_template("storefront/home.html")
