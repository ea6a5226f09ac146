"""Security headers on every kind of response, cookies, and the client behind a proxy."""

import pytest
from flask import request

from shop import create_app
from shop.boards.charts import COLOURS
from shop.console.services import add_product_photo
from shop.extensions import db
from tests.builders import image_bytes, make_product


def _policy(response) -> dict[str, str]:
    directives = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


@pytest.mark.parametrize(
    "path",
    ["/", "/board", "/results", "/api/v1/products", "/api/v1/board", "/healthz",
     "/no-such-page", "/api/v1/orders/nope", "/open-data/love-board.csv"],
)  # fmt: skip
def test_every_kind_of_response_carries_the_headers(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in response.headers["Permissions-Policy"]
    policy = _policy(response)
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert policy["script-src"].startswith("'self' 'nonce-")
    # Plain http: no HSTS (a browser would pin a scheme the site does not serve).
    assert "Strict-Transport-Security" not in response.headers


def test_media_and_static_files_carry_them_too(client, app):
    product = make_product()
    photo = add_product_photo(product.id, image_bytes())
    for path in ["/static/site.css", "/static/js/site.js", f"/media/{photo.filename()}"]:
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" in response.headers


def test_each_request_gets_its_own_nonce_and_the_pages_scripts_carry_it(client):
    first, second = client.get("/board"), client.get("/board")
    nonce = _policy(first)["script-src"].split("'nonce-")[1].rstrip("'")
    assert nonce != _policy(second)["script-src"].split("'nonce-")[1].rstrip("'")
    html = first.get_data(as_text=True)
    assert f'nonce="{nonce}"' in html
    # No inline script, no inline handler, no inline style anywhere on the page.
    assert "<script>" not in html and " onclick=" not in html and " style=" not in html


def test_forms_may_post_only_here_and_to_the_alipay_gateway(app, client):
    app.config["ALIPAY_GATEWAY_URL"] = "https://openapi.alipay.com/gateway.do"
    assert _policy(client.get("/"))["form-action"] == "'self' https://openapi.alipay.com"


def test_hsts_and_secure_cookies_over_https(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://shop.example.org")
    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
         "UPLOAD_FOLDER": str(tmp_path / "u")}
    )  # fmt: skip
    with app.app_context():
        client = app.test_client()
        response = client.get("/login", base_url="https://shop.example.org")
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        client.post(
            "/cart/add", data={"product_id": "1", "quantity": "1"},
            base_url="https://shop.example.org",
        )  # fmt: skip
        cookie = client.get_cookie("session", domain="shop.example.org")
        assert cookie is not None and cookie.secure and cookie.http_only
        assert cookie.same_site == "Lax"
        assert app.config["REMEMBER_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_HTTPONLY"]
        db.session.remove()
        db.engine.dispose()


def test_session_cookie_is_httponly_and_lax_on_http(client, app):
    make_product()
    client.post("/cart/add", data={"product_id": "1", "quantity": "1"})
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure


def _app_reporting_the_client(database_url, tmp_path, proxies: int):
    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
         "UPLOAD_FOLDER": str(tmp_path / "u"), "TRUSTED_PROXIES": proxies}
    )  # fmt: skip

    @app.route("/_who")
    def who():
        return {"addr": request.remote_addr, "scheme": request.scheme}

    return app


SPOOFED = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}


def test_forwarded_headers_from_a_client_are_ignored_when_no_proxy_is_trusted(
    database_url, tmp_path
):
    app = _app_reporting_the_client(database_url, tmp_path, proxies=0)
    response = app.test_client().get("/_who", headers=SPOOFED)
    assert response.json == {"addr": "127.0.0.1", "scheme": "http"}
    assert "Strict-Transport-Security" not in response.headers


def test_behind_one_trusted_proxy_the_client_and_https_come_from_it(database_url, tmp_path):
    app = _app_reporting_the_client(database_url, tmp_path, proxies=1)
    # nginx appends the address it saw; a client's own forged entry comes before it.
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9", "X-Forwarded-Proto": "https"}
    response = app.test_client().get("/_who", headers=headers)
    assert response.json == {"addr": "203.0.113.9", "scheme": "https"}
    assert "Strict-Transport-Security" in response.headers


def test_the_chart_colours_in_css_match_the_chart(client):
    css = client.get("/static/site.css").get_data(as_text=True)
    for channel, colour in COLOURS.items():
        assert f".swatch-{channel} {{ background: {colour}; }}" in css
