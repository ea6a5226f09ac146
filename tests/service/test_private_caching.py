"""Pages with personal or staff-only data are never stored by a cache or a browser's
history (``Cache-Control: no-store``); public pages keep their caching."""

from shop.orders.services import apply_payment
from tests.builders import make_household, make_order, make_product


def test_private_pages_say_no_store(app, client, admin_client):
    household = make_household()
    order = make_order([(make_product(), 1)])
    apply_payment(order.order_no, "2026120322001400000000777", order.total_fen, paid=True)
    anonymous = app.test_client()
    for who, url in [
        (anonymous, f"/orders/{order.token}"),
        (anonymous, f"/api/v1/orders/{order.token}"),
        (anonymous, "/cart"),
        (admin_client, "/admin/households"),
        (admin_client, f"/admin/households/{household.id}/edit"),
        (admin_client, f"/console/orders/{order.order_no}"),
        (admin_client, "/console/offline/"),
        (admin_client, "/admin/proposals/"),
        (admin_client, "/admin/audit/"),
        (admin_client, "/account/two-factor"),
    ]:
        response = who.get(url)
        assert response.status_code == 200, url
        assert response.headers.get("Cache-Control") == "no-store", url


def test_public_pages_keep_their_caching(app, client):
    product = make_product()
    for url in ("/", f"/p/{product.slug}", "/board", "/results", "/changes"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" not in (response.headers.get("Cache-Control") or ""), url
    photo_like = client.get(f"/qr/products/{product.slug}.svg")
    assert "max-age=86400" in photo_like.headers["Cache-Control"]
