"""Input from someone trying to break the shop (issue "Proven under attack").

Every one of these once answered 500 or stored junk. Pages must answer with a message in
the buyer's language, the API with a 4xx ``{"error": {"code", "message"}}`` — and neither
may write an order, a cart line or a byte of stock.
"""

import re

import pytest
from sqlalchemy import func, select

from shop.cart.models import CartItem
from shop.catalog.models import Product
from shop.db import MAX_ROW_ID
from shop.extensions import db
from shop.orders.models import Order
from shop.orders.services import MAX_LINES_PER_ORDER, MAX_QUANTITY_PER_LINE
from tests.builders import make_product, make_user
from tests.functional.test_api import order_body

EMPTY_CART = "购物车是空的"
HUGE_IDS = [2**31, 2**63 - 1, 2**63, 2**64, 10**30]
GOOD_ADDRESS = "陕西省汉中市城固县某路8号"


def orders_written() -> int:
    return db.session.scalar(select(func.count()).select_from(Order))


def cart_lines() -> int:
    return db.session.scalar(select(func.count()).select_from(CartItem))


def stock_of(product) -> int:
    db.session.expire_all()
    return db.session.get(Product, product.id).stock


def assert_api_refused(response, status=422, code=None):
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def page_after(client, response) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get(response.headers["Location"]).get_data(as_text=True)


@pytest.fixture
def buyer_client(client, app):
    """A logged-in buyer: their cart is in ``cart_item``, so ids reach the database."""
    make_user(username="buyer-h", password="buyer-pass-1")
    response = client.post("/login", data={"username": "buyer-h", "password": "buyer-pass-1"})
    assert response.status_code == 302
    return client


# 1 and 5: quantities that are digits to str.isdigit() but not numbers people type in ASCII.

STRANGE_DIGITS = ["²", "³", "¹", "３", "٣", "۳", "१", "𝟑", "2²", "①"]


@pytest.mark.parametrize("quantity", STRANGE_DIGITS)
@pytest.mark.parametrize("logged_in", [False, True])
def test_strange_digits_in_cart_quantities_get_a_message(client, app, quantity, logged_in):
    if logged_in:
        make_user(username="buyer-q", password="buyer-pass-1")
        client.post("/login", data={"username": "buyer-q", "password": "buyer-pass-1"})
    wine = make_product()
    page = page_after(
        client, client.post("/cart/add", data={"product_id": wine.id, "quantity": quantity})
    )
    assert "数量" in page and "半角数字" in page, quantity
    assert EMPTY_CART in client.get("/cart").get_data(as_text=True)

    client.post("/cart/add", data={"product_id": wine.id, "quantity": "2"})
    response = client.post("/cart/update", data={"product_id": wine.id, "quantity": quantity})
    assert "半角数字" in page_after(client, response), quantity
    assert 'value="2"' in client.get("/cart").get_data(as_text=True)  # unchanged


@pytest.mark.parametrize("quantity", [*STRANGE_DIGITS, "2", " 2 ", "1.0", "0x2"])
def test_api_quantity_must_be_a_json_integer(client, app, quantity):
    wine = make_product(stock=10)
    response = client.post("/api/v1/orders", json=order_body(wine.id, quantity))
    error = assert_api_refused(response)
    assert error["field"] == "quantity"
    assert orders_written() == 0 and stock_of(wine) == 10


def test_api_quantity_bounds(client, app):
    wine = make_product(stock=2000)
    for quantity in (0, -1, MAX_QUANTITY_PER_LINE + 1, 2**63, 10**400, True, None, [1], 1.0):
        response = client.post("/api/v1/orders", json=order_body(wine.id, quantity))
        assert_api_refused(response)
    assert orders_written() == 0 and stock_of(wine) == 2000
    # The largest line the API parses; a buyer may hold that many unpaid units only
    # where the shop raised the hoarding limit (shop/orders/holds.py) to allow it.
    app.config["UNPAID_UNITS_PER_BUYER"] = app.config["UNPAID_UNITS_PER_CLIENT"] = 999
    ok = client.post("/api/v1/orders", json=order_body(wine.id, MAX_QUANTITY_PER_LINE))
    assert ok.status_code == 201


# 2: ids no INTEGER column holds.


@pytest.mark.parametrize("product_id", HUGE_IDS)
def test_huge_product_ids_in_the_cart_are_unknown_products(buyer_client, product_id):
    client = buyer_client
    make_product()
    for url in ("/cart/add", "/cart/update"):
        response = client.post(url, data={"product_id": str(product_id), "quantity": "1"})
        assert "商品不存在或已下架" in page_after(client, response), url
    assert client.post("/cart/remove", data={"product_id": str(product_id)}).status_code == 302
    assert cart_lines() == 0


@pytest.mark.parametrize("product_id", ["-1", "0", "１", "٣", "²", "1e3", "9" * 5000, "\x00"])
def test_odd_product_ids_in_the_cart_are_unknown_products(buyer_client, product_id):
    client = buyer_client
    make_product()
    response = client.post("/cart/add", data={"product_id": product_id, "quantity": "1"})
    assert "商品不存在或已下架" in page_after(client, response)
    assert cart_lines() == 0


@pytest.mark.parametrize("product_id", HUGE_IDS)
def test_huge_product_ids_in_the_api_are_422(client, app, product_id):
    make_product()
    error = assert_api_refused(client.post("/api/v1/orders", json=order_body(product_id)))
    assert error["field"] == "items"
    assert orders_written() == 0


def test_the_largest_row_id_is_still_an_id(client, app):
    make_product()
    response = client.post("/api/v1/orders", json=order_body(MAX_ROW_ID))
    assert_api_refused(response, code="unknown_product")


# 3 and 5: text no database column should hold.


def raw_order(product_id, name='"李四"', address=f'"{GOOD_ADDRESS}"', extra_buyer=""):
    """An order body as raw JSON text, so escapes like ``\\ud800`` reach the parser as sent."""
    return (
        f'{{"items": [{{"product_id": {product_id}, "quantity": 1}}],'
        f' "buyer": {{"name": {name}, "phone": "13912345678"{extra_buyer}}},'
        f' "shipping": {{"address": {address}}}, "channel": "wap"}}'
    )


def post_raw(client, text):
    return client.post(
        "/api/v1/orders", data=text.encode(), headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    "where",
    [
        {"name": r'"李\ud800四"'},
        {"name": r'"\udfff"'},
        {"address": r'"陕西省汉中市\ud83d城固县某路8号"'},
        {"extra_buyer": r', "organization": "爱心\udc00企业"'},
        {"extra_buyer": r', "board_name": "\ud800"'},
    ],
)
def test_lone_surrogates_in_an_api_order_are_422(client, app, where):
    wine = make_product(stock=5)
    error = assert_api_refused(post_raw(client, raw_order(wine.id, **where)))
    assert error["field"] in {"name", "address", "organization", "nickname"}
    assert orders_written() == 0 and stock_of(wine) == 5


def test_a_real_emoji_written_as_a_surrogate_pair_is_fine(client, app):
    wine = make_product(stock=5)
    response = post_raw(client, raw_order(wine.id, name=r'"李四\ud83c\udf53"'))
    assert response.status_code == 201, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "buyer, shipping, field",
    [
        ({"name": "李\x00四"}, {}, "name"),
        ({"name": "\x00"}, {}, "name"),
        ({}, {"address": GOOD_ADDRESS + "\x00"}, "address"),
        ({"phone": "13912345678\x00"}, {}, "phone"),
        ({"organization": "爱心\x00企业"}, {}, "organization"),
        ({"board_name": "小\x00明"}, {}, "nickname"),
        ({"name": "李\x07四"}, {}, "name"),
    ],
)
def test_nul_and_control_characters_in_api_text_are_422(client, app, buyer, shipping, field):
    wine = make_product(stock=5)
    body = order_body(wine.id)
    body["buyer"].update(buyer)
    body["shipping"].update(shipping)
    error = assert_api_refused(client.post("/api/v1/orders", json=body))
    assert error["field"] == field
    assert orders_written() == 0 and stock_of(wine) == 5


def test_an_address_may_keep_its_line_breaks(client, app):
    wine = make_product(stock=5)
    body = order_body(wine.id)
    body["shipping"]["address"] = "陕西省汉中市\r\n城固县某路8号\t2单元"
    assert client.post("/api/v1/orders", json=body).status_code == 201


@pytest.mark.parametrize(
    "field, value",
    [("name", "王\x00小明"), ("address", "陕西省西安市\x00某路1号"), ("nickname", "小\x00明")],
)
def test_nul_characters_on_the_checkout_page_get_a_message(client, app, field, value):
    wine = make_product(stock=5)
    client.post("/cart/add", data={"product_id": wine.id, "quantity": "1"})
    data = {
        "name": "王小明",
        "phone": "13912345678",
        "address": "陕西省西安市某路1号",
        "board_display": "nickname",
        "nickname": "小明",
    }
    data[field] = value
    response = client.post("/checkout", data=data)
    assert response.status_code == 200
    assert "不能包含控制字符" in response.get_data(as_text=True)
    assert orders_written() == 0 and stock_of(wine) == 5


# 4: JSON nested deeper than any parser's stack.


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"items": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "[" * 100_000,
    ],
)
def test_deeply_nested_json_is_a_4xx(client, app, text):
    make_product()
    assert_api_refused(post_raw(client, text), code="invalid_json")
    assert orders_written() == 0


def test_too_many_items_are_refused_before_any_work(client, app):
    wine = make_product(stock=10)
    body = order_body(wine.id)
    body["items"] = [{"product_id": wine.id, "quantity": 1}] * (MAX_LINES_PER_ORDER + 1)
    error = assert_api_refused(client.post("/api/v1/orders", json=body))
    assert error["field"] == "items"
    assert orders_written() == 0


# The OpenAPI document says what the app enforces, so a fuzzer's conformance check holds.


def schema_errors(schema: dict, value, doc: dict, where="$") -> list[str]:
    """The JSON Schema keywords the order schema uses, checked as a fuzzer would."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    kind = schema.get("type")
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
    }
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: not an integer"]
    elif kind in types and not isinstance(value, types[kind]):
        return [f"{where}: not {kind}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: not in enum")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: too short")
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{where}: too long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: does not match {schema['pattern']}")
    if kind == "integer":
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            errors.append(f"{where}: out of bounds")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            errors.append(f"{where}: wrong number of items")
        for i, item in enumerate(value):
            errors += schema_errors(schema.get("items", {}), item, doc, f"{where}[{i}]")
    if isinstance(value, dict):
        errors += [
            f"{where}.{key}: missing" for key in schema.get("required", []) if key not in value
        ]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(sub, value[key], doc, f"{where}.{key}")
    return errors


def with_changes(product_id, buyer=None, shipping=None, item=None):
    body = order_body(product_id)
    body["buyer"].update(buyer or {})
    body["shipping"].update(shipping or {})
    body["items"][0].update(item or {})
    return body


REFUSED = [
    {"shipping": {"address": ""}},
    {"shipping": {"address": "短地址"}},
    {"buyer": {"phone": ""}},
    {"buyer": {"phone": "12345"}},
    {"buyer": {"phone": "23912345678"}},
    {"buyer": {"phone": "1３912345678"}},
    {"buyer": {"name": ""}},
    {"buyer": {"name": "李\x00四"}},
    {"shipping": {"address": GOOD_ADDRESS + "\x00"}},
    {"item": {"quantity": "2"}},
    {"item": {"quantity": 0}},
    {"item": {"quantity": MAX_QUANTITY_PER_LINE + 1}},
    {"item": {"product_id": MAX_ROW_ID + 1}},
    {"item": {"product_id": 0}},
]


@pytest.mark.parametrize("change", REFUSED)
def test_what_the_app_refuses_the_openapi_schema_refuses(client, app, change):
    doc = client.get("/api/v1/openapi.json").get_json()
    wine = make_product(stock=5)
    body = with_changes(wine.id, **change)
    assert_api_refused(client.post("/api/v1/orders", json=body))
    schema = doc["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    assert schema_errors(schema["schema"], body, doc), f"the schema accepts {change}"


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"buyer": {"phone": "+86 139-1234-5678"}},
        {"buyer": {"phone": "0086 13912345678"}},
        {"item": {"quantity": MAX_QUANTITY_PER_LINE}},
        {"buyer": {"board_name": "小明", "organization": "爱心企业"}},
        {"shipping": {"address": "陕西省\n城固县1号"}},
    ],
)
def test_what_the_app_accepts_the_openapi_schema_accepts(client, app, change):
    doc = client.get("/api/v1/openapi.json").get_json()
    wine = make_product(stock=MAX_QUANTITY_PER_LINE)
    body = with_changes(wine.id, **change)
    schema = doc["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    assert schema_errors(schema["schema"], body, doc) == []
    # The hoarding limit (not a property of the request) would refuse 999 unpaid units.
    app.config["UNPAID_UNITS_PER_BUYER"] = app.config["UNPAID_UNITS_PER_CLIENT"] = 999
    response = client.post("/api/v1/orders", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)


def test_openapi_bounds_are_the_apps_bounds(client, app):
    doc = client.get("/api/v1/openapi.json").get_json()
    item = doc["components"]["schemas"]["OrderRequest"]["properties"]["items"]
    assert item["maxItems"] == MAX_LINES_PER_ORDER
    fields = item["items"]["properties"]
    assert (fields["product_id"]["minimum"], fields["product_id"]["maximum"]) == (1, MAX_ROW_ID)
    assert (fields["quantity"]["minimum"], fields["quantity"]["maximum"]) == (
        1,
        MAX_QUANTITY_PER_LINE,
    )


# 6: a NUL in the URL, which PostgreSQL's text refuses (found by the API fuzzer).


@pytest.mark.parametrize(
    ("url", "status"),
    [("/orders/a%00b", 404), ("/orders/a%00b/return", 404), ("/trace/a%00b", 404),
     ("/households/a%00b", 404), ("/p/a%00b", 404), ("/qr/trace/a%00b.svg", 404),
     ("/search?q=a%00b", 400), ("/results?q=%00", 400), ("/api/v1/board?period=%00", 400)],
)  # fmt: skip
def test_a_nul_in_the_url_is_refused_not_a_server_error(client, app, url, status):
    response = client.get(url)
    assert response.status_code == status, url
