"""The village team sees its buyers (issue 16): caring units by total, repeat buyers,
and a contact export — contact details to staff only, formula-safe in the CSV."""

import csv
import io

import pytest

from shop.orders.services import apply_payment
from tests.builders import buyer, make_order, make_product, make_user
from tests.conftest import STAFF_PASSWORD, login

_trade = iter(range(1, 1000))


def bought(wine, quantity=1, **details):
    order = make_order([(wine, quantity)], buyer(**details))
    trade_no = f"T20261204{next(_trade):08d}"
    assert apply_payment(order.order_no, trade_no, order.total_fen, paid=True).verdict == "paid"
    return order


@pytest.fixture
def staff(app):
    make_user(username="desk-b", password=STAFF_PASSWORD, role="staff")
    client = app.test_client()
    login(client, "desk-b", STAFF_PASSWORD)
    return client


def test_units_and_repeat_buyers_and_the_contact_export(app, client, staff):
    wine = make_product(price_fen=10000, stock=100)
    for _ in range(3):
        bought(wine, name="王小明", phone="13812345678", organization="某某科技有限公司")
    bought(wine, 2, name="李四", phone="13912340001", organization="某某科技有限公司")
    bought(wine, name='=HYPERLINK("x")', phone="13912340002", email="a@example.com")
    make_order([(wine, 5)], buyer(name="未付款", phone="13912340003"))  # unpaid: not counted
    page = staff.get("/console/buyers").get_data(as_text=True)
    assert "某某科技有限公司" in page and "¥500.00" in page  # 3 + 2 units at ¥100
    assert "4 单，2 人" in page
    assert "王小明" in page and "13812345678" in page and "3 单" in page
    assert "李四" not in page.split("回头客")[1]  # one order: not a repeat buyer
    rows = list(csv.reader(io.StringIO(staff.get("/console/buyers.csv").get_data(as_text=True))))
    assert rows[0][0].lstrip("\ufeff") == "姓名" and len(rows) == 4
    names = {row[0]: row for row in rows[1:]}
    assert names["王小明"][1] == "13812345678" and names["王小明"][4] == "3"
    assert '\'=HYPERLINK("x")' in names  # a formula-like name stays text
    assert "未付款" not in names
    # Nobody else sees any of it.
    assert client.get("/console/buyers").status_code == 302
    assert client.get("/console/buyers.csv").status_code == 302
