"""Till pages."""
from __future__ import annotations

from flask import render_template

from web.pages import page_blueprint, signed_in

bp = page_blueprint("till", __name__, url_prefix="/till")


@bp.route("")
@signed_in("store_staff")
def home():
    """The till."""
    return render_template("till/home.html")
