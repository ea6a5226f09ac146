"""Absolute addresses of the shop's own pages, for what leaves the browser: QR codes,
Alipay's notify and return URLs, links in e-mail.

They are built from ``PUBLIC_BASE_URL`` (the address buyers and Alipay reach the shop
at), never from the request's host, which a client chooses.
"""

from flask import current_app, url_for


def public_base_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/")


def public_url(endpoint: str, **values) -> str:
    """``PUBLIC_BASE_URL`` + the path of ``endpoint`` (``url_for``'s arguments)."""
    return public_base_url() + url_for(endpoint, **values)
