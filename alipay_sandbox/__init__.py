"""The built-in sandbox gateway: a pretend Alipay ``gateway.do`` on this machine.

It speaks Alipay's protocol for real, so the shop's provider (the official SDK) cannot
tell it from Alipay: requests must carry the merchant's RSA2 signature, notifications
and API answers are RSA2-signed with the sandbox's own key, notifications are delivered
by a real HTTP POST. Trades are unique per (app_id, out_trade_no), refunds per
out_request_no and transfers per out_biz_no, so repeating a request returns the first
answer and moves no money twice.

The shop never imports this package (a test walks every module of ``shop/`` and
``ledger/`` to keep it so) and talks to it only over HTTP, as it talks to Alipay. The
app factory mounts it by the module name in ``SANDBOX_GATEWAY`` when ``ALIPAY_SANDBOX``
is on, calling :func:`init_app`. What it needs from the shop is small: the key files it
plays Alipay against (``shop.payments.keys``), the database session and the shop's
helpers for money, time and migrations.

Modules: ``protocol`` (keys, signatures, parameters), ``cashier`` (page and wap pay),
``notifications``, ``trades`` (query, close), ``refunds``, ``transfers`` (bank cards),
``api`` (the method table), ``routes``, ``models``; its tables come from its own
Alembic branch in ``migrations/versions`` (label ``sandbox``).
"""

from pathlib import Path

from flask import Flask

from alipay_sandbox.routes import bp
from shop.schema_migrations import add_version_location

URL_PREFIX = "/sandbox/alipay"
GATEWAY_PATH = URL_PREFIX + "/gateway.do"
MIGRATION_VERSIONS = Path(__file__).parent / "migrations" / "versions"


def init_app(app: Flask) -> None:
    """Mount the pretend Alipay on ``app``: its pages and ``gateway.do`` under
    /sandbox/alipay (gateway.do checks RSA signatures instead of CSRF tokens), its
    migration branch (so ``flask db upgrade`` creates its tables), and
    ``ALIPAY_GATEWAY_URL`` pointing at it unless one is configured."""
    app.register_blueprint(bp, url_prefix=URL_PREFIX)
    add_version_location(app, MIGRATION_VERSIONS)
    if not app.config.get("ALIPAY_GATEWAY_URL"):
        app.config["ALIPAY_GATEWAY_URL"] = app.config["PUBLIC_BASE_URL"] + GATEWAY_PATH
