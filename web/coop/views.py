"""Co-op portal pages."""
from __future__ import annotations

from flask import render_template

from web.pages import page_blueprint, signed_in

bp = page_blueprint("coop", __name__, url_prefix="/coop")


@bp.route("")
@signed_in("coop")
def home():
    """The co-op portal's home page."""
    return render_template("coop/home.html")
