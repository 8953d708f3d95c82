"""Absolute links that leave the service (a QR code printed on a label, the address Stripe sends a buyer back to)."""
from __future__ import annotations

from flask import current_app, url_for


def external_url(endpoint: str, **values) -> str:
    """The absolute URL of `endpoint`: under `PUBLIC_URL` when set, so that no request's Host header chooses it;
    from the request otherwise (a development server)."""
    base = current_app.config["PUBLIC_URL"]
    if base is None:
        return url_for(endpoint, _external=True, **values)
    return base + url_for(endpoint, **values)
