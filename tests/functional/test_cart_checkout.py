"""The cart and checkout as a buyer uses them (payment itself is in test_payment_flow)."""

import re

from sqlalchemy import func, select

from shop.extensions import db
from shop.orders.models import Order
from tests.builders import make_product


def add(client, product, quantity="1", **extra):
    return client.post(
        "/cart/add", data={"product_id": str(product.id), "quantity": quantity, **extra}
    )


def test_add_change_remove(client, app):
    wine = make_product(name="树莓果酒", price_fen=15800)
    add(client, wine, "2")
    page = client.get("/cart").get_data(as_text=True)
    assert "树莓果酒" in page and "¥316.00" in page
    client.post("/cart/update", data={"product_id": wine.id, "quantity": "3"})
    assert "¥474.00" in client.get("/cart").get_data(as_text=True)
    client.post("/cart/remove", data={"product_id": wine.id})
    assert "购物车是空的" in client.get("/cart").get_data(as_text=True)


def test_bad_quantities_get_a_message_not_an_error(client, app):
    wine = make_product()
    for quantity in ["0", "-1", "1.5", "abc", "", "99999999"]:
        response = add(client, wine, quantity)
        assert response.status_code == 302, quantity
        follow = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "数量" in follow or "最多" in follow, quantity
    assert "购物车是空的" in client.get("/cart").get_data(as_text=True)


def test_unknown_or_unpublished_products_cannot_be_added(client, app):
    draft = make_product(status="draft")
    assert add(client, draft).status_code == 302
    assert client.post("/cart/add", data={"product_id": "x", "quantity": "1"}).status_code == 302
    assert "购物车是空的" in client.get("/cart").get_data(as_text=True)


def test_price_change_is_flagged_and_checkout_waits_for_consent(client, app):
    wine = make_product(name="树莓果酒", price_fen=15800)
    add(client, wine)
    wine.price_fen = 16800
    db.session.commit()
    page = client.get("/cart").get_data(as_text=True)
    assert "价格已从 ¥158.00 变为 ¥168.00" in page
    assert "去结算" not in page
    client.post("/cart/accept-prices")
    assert "去结算" in client.get("/cart").get_data(as_text=True)


def test_out_of_stock_is_flagged(client, app):
    wine = make_product(stock=2)
    add(client, wine, "2")
    wine.stock = 1
    db.session.commit()
    assert "库存只剩 1" in client.get("/cart").get_data(as_text=True)


def test_empty_cart_checkout_goes_back_to_cart(client, app):
    response = client.get("/checkout")
    assert response.status_code == 302 and response.headers["Location"].endswith("/cart")


def test_checkout_shows_field_errors_and_writes_nothing(client, app):
    wine = make_product(stock=5)
    add(client, wine)
    page = client.post(
        "/checkout",
        data={
            "name": "王小明",
            "phone": "123",
            "address": "陕西省西安市某路1号",
            "board_display": "masked",
        },
    ).get_data(as_text=True)
    assert "请填写正确的11位手机号码" in page
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    db.session.expire_all()
    assert wine.stock == 5


def test_cart_follows_the_buyer_into_their_account(client, app):
    wine = make_product(name="桑葚果酒")
    add(client, wine, "2")
    client.post(
        "/register",
        data={"username": "buyer1", "password": "buyer-pass-1", "confirm": "buyer-pass-1"},
    )
    page = client.get("/cart").get_data(as_text=True)
    assert "桑葚果酒" in page and 'value="2"' in page
    client.post("/logout")
    assert "购物车是空的" in client.get("/cart").get_data(as_text=True)
    client.post("/login", data={"username": "buyer1", "password": "buyer-pass-1"})
    assert "桑葚果酒" in client.get("/cart").get_data(as_text=True)


def test_placing_an_order_empties_the_cart_so_a_second_checkout_reserves_nothing(client, app):
    """Regression: the cart kept its lines after an order (its nested dict was emptied
    but the session cookie not rewritten), so posting /checkout again and again
    reserved the same stock over and over. CSRF on, as in production."""
    wine = make_product(stock=20)
    add(client, wine, "3")
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/checkout").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    details = {
        "csrf_token": token, "name": "王小明", "phone": "13912345678",
        "address": "陕西省西安市某路1号", "board_display": "masked",
    }  # fmt: skip
    first = client.post("/checkout", data=details)
    assert first.status_code == 302 and "/cart" not in first.headers["Location"]
    again = client.post("/checkout", data=details)
    assert again.status_code == 302 and again.headers["Location"].endswith("/cart")
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    db.session.expire_all()
    assert db.session.get(type(wine), wine.id).stock == 17
    assert "购物车是空的" in client.get("/cart").get_data(as_text=True)
