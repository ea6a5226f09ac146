"""Security headers on every response, and reading the client through a trusted proxy.

**Content-Security-Policy.** Every response carries a policy with a fresh nonce: scripts
run only from this origin's static files (or a ``<script nonce>`` the page sets), never
inline handlers or ``javascript:`` links; styles only from the stylesheet (or a
``<style nonce>``, as the sandbox cashier, a page of its own, carries); no plug-ins; no
page may frame this one. Forms may post to this origin and to the Alipay gateway
(checkout and "pay again" answer with a redirect there, which ``form-action`` governs).
Templates put the nonce on their ``<script>`` tags with ``csp_nonce()``.

**The rest**: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
strict-origin-when-cross-origin`` (order tokens in URLs never leave in a Referer), a
Permissions-Policy that turns off what the shop never uses, ``X-Frame-Options: DENY``
for old browsers, and HSTS when the request came over https.

**Caching.** Every page with personal or staff-only data answers ``Cache-Control:
no-store`` — one rule, :func:`is_private`: the staff and admin areas, the account and
order-token pages, and anything a logged-in person is shown; anonymous public pages keep
their caching (and the page cache, :mod:`shop.page_cache`, serves only them).

**Behind a proxy** (``TRUSTED_PROXIES`` = how many proxies in front set
``X-Forwarded-For`` / ``-Proto`` / ``-Host``): werkzeug's ProxyFix takes the client
address and scheme from the last that many hops. With 0 (the default) those headers are
ignored, so a client cannot spoof its address for rate limits, logs and audit records.
"""

import secrets
from urllib.parse import urlsplit

from flask import Flask, abort, g, request
from flask_login import current_user
from werkzeug.exceptions import SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix

PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=()"
)
HSTS = "max-age=31536000; includeSubDomains"


def csp_nonce() -> str:
    """This request's script nonce (made on first use)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


def content_security_policy(nonce: str, gateway_url: str | None) -> str:
    form_targets = ["'self'"]
    if gateway_url:
        parts = urlsplit(gateway_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            form_targets.append(f"{parts.scheme}://{parts.netloc}")
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action " + " ".join(dict.fromkeys(form_targets)),
        ]
    )


# Pages with personal or staff-only data: no shared cache, proxy or browser history may
# keep them (an order page shows the buyer's address; the console, households' cards).
# One rule, by where a page is and who asked (see :func:`is_private`).
PRIVATE_PREFIXES = ("/console", "/admin", "/account", "/orders/", "/api/v1/orders/", "/sandbox")
PRIVATE_BLUEPRINTS = frozenset({"console", "offline", "admin", "approvals", "audit"})
PRIVATE_ENDPOINTS = frozenset(
    {
        "orders.show", "payments.payment_return", "api.get_order", "checkout.checkout",
        "cart.show", "auth.login_code", "auth.two_factor_setup", "auth.change_password",
    }
)  # fmt: skip
# What a logged-in person may still let caches keep: the same bytes for everyone.
SHARED_ENDPOINTS = frozenset({"static", "media.photo"})


def _under(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def is_private(response) -> bool:
    """Whether this request's answer must not be stored (``Cache-Control: no-store``):

    - every answer under the staff and admin areas (``/console``, ``/admin``), the
      account pages, a buyer's order-token pages (``/orders/…`` and the API's
      ``/api/v1/orders/…``) and the pretend Alipay — 404s, redirects to the login page
      and downloads included, whether or not a route matched;
    - the order, cart and checkout pages and the login steps, by endpoint, wherever
      they are mounted;
    - every answer to a logged-in person (their name and menu are on every page),
      except static files and answers their view declared ``public`` (a product photo,
      a QR code: the same bytes for everyone).

    Anonymous public pages (the storefront, the boards, open data) keep their caching.
    """
    if any(_under(request.path, prefix) for prefix in PRIVATE_PREFIXES):
        return True
    if request.blueprint in PRIVATE_BLUEPRINTS or request.endpoint in PRIVATE_ENDPOINTS:
        return True
    if request.endpoint in SHARED_ENDPOINTS or response.cache_control.public:
        return False
    return bool(current_user and current_user.is_authenticated)


def init_app(app: Flask) -> None:
    """Install ProxyFix (when proxies are trusted), the nonce helper and the headers."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.before_request
    def refuse_nul_characters():
        # No token, code, slug or search the shop issues holds a NUL, and PostgreSQL's
        # text type refuses one: any lookup with it would be a 500. A path with one names
        # nothing (404); a query value with one is a bad request (400).
        if "\x00" in request.path:
            abort(404)
        if any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            abort(400)

    @app.errorhandler(SecurityError)
    def untrusted_host(error):
        # A Host outside TRUSTED_HOSTS: routing never ran, so there are no URLs to build
        # a page with — and nothing of the request's host is repeated back.
        response = app.response_class(
            "400 Bad Request: this shop does not answer to that host name.\n",
            status=400,
            mimetype="text/plain",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.before_request
    def new_nonce() -> None:
        # Fresh for every request (``g`` can outlive one where an app context was
        # pushed around several, as in the tests).
        g.csp_nonce = secrets.token_urlsafe(18)

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers["Content-Security-Policy"] = content_security_policy(
            csp_nonce(), app.config.get("ALIPAY_GATEWAY_URL")
        )
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
        headers["Permissions-Policy"] = PERMISSIONS_POLICY
        headers["X-Frame-Options"] = "DENY"
        if request.is_secure:
            headers["Strict-Transport-Security"] = HSTS
        if is_private(response):
            headers["Cache-Control"] = "no-store"
        return response
