"""Unpaid orders cannot empty the shop (shop/orders/holds.py).

An unpaid order reserves stock for ORDER_EXPIRY_MINUTES. Found when tried from outside:
40 anonymous checkouts in a few seconds took a product from 400 units to 22. These tests
play that script — through the JSON API and the checkout page — and check that what one
phone, one account or one client address holds stays within the limits, that the
refusal says why, that nothing is written for a refused order, and that a real buyer
elsewhere still buys. The per-request rate limiter is off in tests (TestingConfig), so
what holds here is the database-backed limit alone.
"""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shop.catalog.models import Product
from shop.db import utcnow
from shop.extensions import db
from shop.orders.holds import Requester
from shop.orders.models import Order, OrderLine
from shop.orders.services import TooManyUnpaid, apply_payment, cancel_order
from tests.builders import buyer, in_app_thread, make_order, make_product, make_user
from tests.functional.test_api import order_body

HOARDER = {"REMOTE_ADDR": "203.0.113.66"}
NEIGHBOUR = {"REMOTE_ADDR": "198.51.100.7"}


def stock_of(product_id: int) -> int:
    db.session.expire_all()
    return db.session.get(Product, product_id).stock


def unpaid_units_held() -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(OrderLine.quantity), 0))
        .join(Order)
        .where(Order.status == "pending_payment")
    )


def orders_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Order))


def test_a_thousand_unpaid_api_orders_from_one_client_hold_no_more_than_the_limit(client, app):
    wine = make_product(stock=400)
    limit_orders = app.config["UNPAID_ORDERS_PER_CLIENT"]
    limit_units = app.config["UNPAID_UNITS_PER_CLIENT"]
    statuses = {}
    for n in range(1000):
        # A new phone number every time: the script knows the per-phone limit.
        body = order_body(wine.id, quantity=10)
        body["buyer"]["phone"] = f"139{n:08d}"
        response = client.post("/api/v1/orders", json=body, environ_base=HOARDER)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 429:
            error = response.get_json()["error"]
            assert error["code"] == "too_many_unpaid_orders" and "未付款" in error["message"]
    placed = statuses.get(201, 0)
    assert set(statuses) == {201, 429}
    assert placed == min(limit_orders, limit_units // 10)
    assert unpaid_units_held() == 10 * placed <= limit_units
    assert stock_of(wine.id) == 400 - 10 * placed
    # Everyone else still buys.
    response = client.post("/api/v1/orders", json=order_body(wine.id, 2), environ_base=NEIGHBOUR)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert stock_of(wine.id) == 400 - 10 * placed - 2


def test_one_phone_from_many_addresses_holds_at_most_its_limit(client, app):
    wine = make_product(stock=100)
    limit = app.config["UNPAID_ORDERS_PER_BUYER"]
    codes = [
        client.post(
            "/api/v1/orders", json=order_body(wine.id), environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}
        ).status_code
        for n in range(1, limit + 3)
    ]
    assert codes == [201] * limit + [429, 429]
    assert stock_of(wine.id) == 100 - limit


def test_units_are_limited_even_within_few_orders(client, app):
    wine = make_product(stock=900)
    too_many = app.config["UNPAID_UNITS_PER_BUYER"] + 1
    response = client.post("/api/v1/orders", json=order_body(wine.id, too_many))
    assert response.status_code == 429
    error = response.get_json()["error"]
    assert error["max_unpaid_units"] == too_many - 1 and error["unpaid_units"] == 0
    assert orders_count() == 0 and stock_of(wine.id) == 900


def checkout(client):
    return client.post(
        "/checkout",
        data={
            "name": "王小明", "phone": "13912345678", "address": "陕西省西安市某路1号",
            "board_display": "masked",
        },
    )  # fmt: skip


def test_a_logged_in_buyer_is_told_on_the_cart_page_and_nothing_is_written(client, app):
    make_user(username="buyer-hoard", password="buyer-pass-1")
    client.post("/login", data={"username": "buyer-hoard", "password": "buyer-pass-1"})
    wine = make_product(stock=50)
    limit = app.config["UNPAID_ORDERS_PER_BUYER"]
    for n in range(limit):
        client.post("/cart/add", data={"product_id": str(wine.id), "quantity": "1"})
        response = checkout(client)
        assert response.status_code == 302 and "/cart" not in response.headers["Location"], n
    client.post("/cart/add", data={"product_id": str(wine.id), "quantity": "1"})
    refused = checkout(client)
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/cart")
    page = client.get("/cart").get_data(as_text=True)
    assert f"已有 {limit} 个未付款的订单" in page and "30 分钟后自动取消" in page
    assert orders_count() == limit and stock_of(wine.id) == 50 - limit
    assert wine.name in page  # the cart is kept for when the buyer has paid


def test_paying_cancelling_or_expiry_frees_the_room(app):
    wine = make_product(stock=100)
    door = Requester("203.0.113.9")
    limit = app.config["UNPAID_ORDERS_PER_BUYER"]
    start = utcnow()
    orders = [make_order([(wine, 1)], requester=door, now=start) for _ in range(limit)]
    with pytest.raises(TooManyUnpaid):
        make_order([(wine, 1)], requester=door, now=start)
    paid = apply_payment(orders[0].order_no, "T2026120400001", orders[0].total_fen, paid=True)
    assert paid.verdict == "paid"
    make_order([(wine, 1)], requester=door, now=start)  # the paid order no longer counts
    with pytest.raises(TooManyUnpaid):
        make_order([(wine, 1)], requester=door, now=start)
    assert cancel_order(orders[1].id, "closed")
    make_order([(wine, 1)], requester=door, now=start)
    # Past the expiry time an order stops counting even before the expiry job has run.
    later = start + timedelta(minutes=app.config["ORDER_EXPIRY_MINUTES"] + 1)
    make_order([(wine, 1)], requester=door, now=later)


def test_staff_tools_and_tests_without_a_requester_are_not_limited(app):
    wine = make_product(stock=100)
    for _ in range(app.config["UNPAID_ORDERS_PER_BUYER"] + 2):
        make_order([(wine, 1)], buyer())
    assert orders_count() == app.config["UNPAID_ORDERS_PER_BUYER"] + 2


@pytest.mark.postgres_only
def test_simultaneous_checkouts_of_one_phone_cannot_overshoot_on_postgres(app):
    """Twelve workers at the same instant, one phone, different addresses: the advisory
    lock makes them count one after another, so exactly the limit is placed."""
    wine = make_product(stock=100)
    wine_id = wine.id
    limit = app.config["UNPAID_ORDERS_PER_BUYER"]
    start = threading.Barrier(12)
    results = []

    def attempt(n):
        start.wait(timeout=30)
        try:
            from shop.orders.services import RequestedLine, place_order

            place_order(
                [RequestedLine(wine_id, 1)],
                buyer(),
                "api",
                30,
                requester=Requester(f"10.1.0.{n}"),
            )
            results.append("placed")
        except TooManyUnpaid:
            results.append("refused")

    threads = [
        threading.Thread(target=in_app_thread, args=(app, attempt, n)) for n in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["placed"] * limit + ["refused"] * (12 - limit)
    assert stock_of(wine_id) == 100 - limit
