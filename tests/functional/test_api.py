"""The JSON API contract (design.md) and its refusals: 4xx JSON, never 500, never an order."""

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.orders.models import Order
from tests.builders import make_product


def order_body(product_id, quantity=1, **overrides):
    body = {
        "items": [{"product_id": product_id, "quantity": quantity}],
        "buyer": {
            "name": "李四",
            "phone": "13912345678",
            "board_name": "",
            "organization": "",
            "anonymous": False,
        },
        "shipping": {"address": "陕西省汉中市城固县某路8号"},
        "channel": "wap",
    }
    body.update(overrides)
    return body


def orders_written():
    return db.session.scalar(select(func.count()).select_from(Order))


def test_products_list_matches_the_contract(client, app):
    make_product(
        slug="raspberry-wine",
        name="树莓果酒",
        price_fen=15800,
        beneficiary_fen_per_unit=2000,
        stock=7,
    )
    make_product(slug="hidden", status="draft")
    data = client.get("/api/v1/products").get_json()
    assert [p["slug"] for p in data["products"]] == ["raspberry-wine"]
    product = data["products"][0]
    assert set(product) >= {
        "id",
        "slug",
        "name",
        "price_fen",
        "stock",
        "unit",
        "beneficiary_fen_per_unit",
        "image_url",
        "url",
    }
    assert (product["price_fen"], product["stock"], product["beneficiary_fen_per_unit"]) == (
        15800,
        7,
        2000,
    )
    assert product["url"].endswith("/p/raspberry-wine")


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {"items": []},
        {"items": [{"product_id": "1", "quantity": 1}]},
        {"items": [{"product_id": 1, "quantity": 0}]},
        {"items": [{"product_id": 1, "quantity": -3}]},
        {"items": [{"product_id": 1, "quantity": 1.5}]},
        {"items": [{"product_id": 1, "quantity": 10**12}]},
        {"items": [{"product_id": 1, "quantity": "two"}]},
        {"items": [{"product_id": 1, "quantity": 1}], "buyer": "x"},
        {
            "items": [{"product_id": 1, "quantity": 1}],
            "buyer": {"name": "李四", "phone": "1"},
            "shipping": {"address": "陕西省汉中市城固县某路8号"},
        },
        {
            "items": [{"product_id": 1, "quantity": 1}],
            "buyer": {"name": "李四", "phone": "13912345678", "anonymous": "yes"},
            "shipping": {"address": "某地址很长很长"},
        },
        {
            "items": [{"product_id": 1, "quantity": 1}],
            "buyer": {"name": "李" * 500, "phone": "13912345678"},
            "shipping": {"address": "某地址很长很长"},
        },
    ],
)
def test_invalid_orders_are_422_json_and_write_nothing(client, app, body):
    make_product()  # id 1
    response = client.post("/api/v1/orders", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    assert orders_written() == 0


def test_unknown_product_and_out_of_stock(client, app):
    wine = make_product(stock=1)
    assert client.post("/api/v1/orders", json=order_body(999)).status_code == 422
    response = client.post("/api/v1/orders", json=order_body(wine.id, 2))
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "out_of_stock"
    assert orders_written() == 0


def test_non_json_and_unknown_paths_answer_json(client, app):
    response = client.post(
        "/api/v1/orders", data="not json", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 422 and "error" in response.get_json()
    missing = client.get("/api/v1/nope")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/orders/unknown-token").status_code == 404
    wrong_method = client.delete("/api/v1/products")
    assert wrong_method.status_code == 405 and "error" in wrong_method.get_json()


def test_openapi_document_describes_the_calls(client, app):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {"/products", "/orders", "/orders/{token}"} <= set(doc["paths"])
