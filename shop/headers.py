"""The security headers of every response: no sniffing, no referrer to other sites, no storing in any cache of what was
answered to a signed-in caller (an order's address, a revealed ID number) or to a write (a new token), https only in
production once a request came over it, `Retry-After` only on an answer that asks to wait, and for any HTML (pages,
the public trace page, printable statements, error pages) a Content-Security-Policy that runs only the app's own
scripts and forbids framing. A page's own inline stylesheets are allowed by their SHA-256, nothing else inline."""
from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask, Response, current_app, g, request

STRIPE_JS = "https://js.stripe.com"
HSTS_SECONDS = 365 * 24 * 3600  # production is served over https only (PUBLIC_URL): browsers keep to it
INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def content_security_policy() -> str:
    """Only the app's own scripts, styles and images; Stripe.js from Stripe's host only when Stripe is on."""
    stripe = current_app.config["PAYMENTS"] == "stripe"
    script = "'self'" + (f" {STRIPE_JS}" if stripe else "")
    frames = f"{STRIPE_JS} https://hooks.stripe.com" if stripe else "'none'"
    connect = "'self'" + (" https://api.stripe.com" if stripe else "")
    return (f"default-src 'self'; script-src {script}; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; frame-src {frames}; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'; object-src 'none'")


def policy_with_styles_of(html: str) -> str:
    """The CSP, also allowing exactly the page's own inline stylesheets (by their SHA-256)."""
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"
                      for css in INLINE_STYLE.findall(html))
    return content_security_policy().replace("style-src 'self'", f"style-src 'self' {hashes}".rstrip(), 1)


def secure_headers(response: Response) -> Response:
    """Add the headers above to a response that does not set its own."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if "Authorization" in request.headers or request.method not in ("GET", "HEAD"):  # a token, an account made
        response.headers.setdefault("Cache-Control", "private, no-store")
    if request.is_secure and current_app.config["SHOP_ENV"] == "production":
        response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_SECONDS}")
    if (response.mimetype == "text/html" and "Content-Security-Policy" not in response.headers
            and not response.direct_passthrough):
        response.headers["Content-Security-Policy"] = policy_with_styles_of(response.get_data(as_text=True))
    return response


def retry_after_only_when_waiting(response: Response) -> Response:
    """`Retry-After` only on an answer that asks to wait: a limit (429), an outage (503), or an error naming its own
    wait (`AppError.retry_after`: a verification or a request under the same key still running), which it then
    states; the rate limiter adds one to every answer of a limited route, where a client honouring it would wait
    after a success or a conflict (409 `insufficient_stock`) that waiting does not change."""
    if "retry_after" in g:
        response.headers["Retry-After"] = str(g.pop("retry_after"))
    elif response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def init_app(app: Flask) -> None:
    """Send the security headers with every response; `Retry-After` checked after the rate limiter's own hook."""
    app.after_request(secure_headers)
    app.after_request_funcs.setdefault(None, []).insert(0, retry_after_only_when_waiting)
