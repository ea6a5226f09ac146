"""Orders: stock reservation, frozen lines, payment applied exactly once, expiry."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shop.catalog.models import Product
from shop.db import utcnow
from shop.extensions import db
from shop.orders.models import Order, OrderLine
from shop.orders.services import (
    OrderError,
    OutOfStock,
    PriceChanged,
    RequestedLine,
    UnknownProduct,
    apply_payment,
    cancel_order,
    order_by_number_and_phone,
    place_order,
    register_paid_hook,
)
from tests.builders import buyer, in_app_thread, make_order, make_product


def stock_of(product_id):
    db.session.expire_all()
    return db.session.get(Product, product_id).stock


def order_count():
    return db.session.scalar(select(func.count()).select_from(Order))


def test_order_reserves_stock_and_freezes_what_was_sold(app):
    wine = make_product(name="树莓果酒", price_fen=15800, beneficiary_fen_per_unit=2000, stock=10)
    order = make_order([(wine, 3)])
    assert order.status == "pending_payment"
    assert order.total_fen == 3 * 15800
    assert order.beneficiary_fen == 3 * 2000
    assert stock_of(wine.id) == 7
    # Catalogue edits later do not rewrite the order line.
    wine.name, wine.price_fen = "新名字", 19900
    db.session.commit()
    line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
    assert (line.product_name, line.unit_price_fen, line.line_total_fen) == (
        "树莓果酒",
        15800,
        47400,
    )
    assert order.order_no.startswith("LX") and len(order.token) >= 32


def test_out_of_stock_writes_nothing(app):
    wine = make_product(stock=5)
    honey = make_product(stock=1)
    with pytest.raises(OutOfStock):
        make_order([(wine, 2), (honey, 2)])
    assert stock_of(wine.id) == 5 and stock_of(honey.id) == 1
    assert order_count() == 0


@pytest.mark.parametrize("quantity", [0, -1, "1.5", "abc", "", None, True, 10**9, "1e3"])
def test_bad_quantities_are_refused(app, quantity):
    wine = make_product(stock=5)
    with pytest.raises(OrderError):
        place_order([RequestedLine(wine.id, quantity)], buyer(), "pc", 30)
    assert order_count() == 0 and stock_of(wine.id) == 5


def test_unknown_unpublished_and_changed_price(app):
    draft = make_product(status="draft")
    wine = make_product(price_fen=15800)
    with pytest.raises(UnknownProduct):
        make_order([(draft, 1)])
    with pytest.raises(UnknownProduct):
        place_order([RequestedLine(99999, 1)], buyer(), "pc", 30)
    with pytest.raises(PriceChanged):
        place_order([RequestedLine(wine.id, 1, seen_price_fen=12800)], buyer(), "pc", 30)
    with pytest.raises(OrderError):
        place_order([], buyer(), "pc", 30)
    assert order_count() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"phone": "12345"},
        {"phone": "1381234567x"},
        {"name": ""},
        {"name": "名" * 41},
        {"address": "短"},
        {"board_display": "nickname", "nickname": ""},
        {"board_display": "famous"},
        {"organization": "企" * 61},
    ],
)
def test_bad_buyer_details_are_refused(app, overrides):
    wine = make_product()
    with pytest.raises(OrderError) as caught:
        make_order([(wine, 1)], buyer(**overrides))
    assert caught.value.field
    assert order_count() == 0


def test_board_name_respects_the_buyers_choice(app):
    wine = make_product()
    assert make_order([(wine, 1)], buyer(name="王小明")).board_name == "王*"
    assert make_order([(wine, 1)], buyer(board_display="anonymous")).board_name == "爱心人士"
    nick = make_order([(wine, 1)], buyer(board_display="nickname", nickname="树莓粉"))
    assert nick.board_name == "树莓粉"


def test_buyer_pii_is_encrypted_at_rest_and_found_by_number_and_phone(app):
    wine = make_product()
    order = make_order([(wine, 1)], buyer(phone="+86 138-1234-5678"))
    raw = db.session.execute(
        db.text("SELECT buyer_name, buyer_phone, shipping_address FROM shop_order")
    ).one()
    assert "王小明" not in raw[0] and "13812345678" not in raw[1] and "科技路" not in raw[2]
    assert order_by_number_and_phone(order.order_no, "13812345678").id == order.id
    assert order_by_number_and_phone(order.order_no, "13900000000") is None


def test_payment_is_applied_once_and_repeats_change_nothing(app):
    wine = make_product(stock=3)
    order = make_order([(wine, 1)])
    first = apply_payment(order.order_no, "T1", order.total_fen, paid=True)
    assert (first.accepted, first.verdict) == (True, "paid")
    again = apply_payment(order.order_no, "T1", order.total_fen, paid=True)
    assert (again.accepted, again.verdict) == (True, "repeat")
    other = apply_payment(order.order_no, "T2", order.total_fen, paid=True)
    assert other.accepted is False
    db.session.expire_all()
    assert db.session.get(Order, order.id).trade_no == "T1"
    assert stock_of(wine.id) == 2


def test_wrong_amount_unknown_order_and_unpaid_status(app):
    wine = make_product()
    order = make_order([(wine, 1)])
    assert (
        apply_payment(order.order_no, "T1", order.total_fen - 1, paid=True).accepted is False
    )
    assert apply_payment("LX-nope", "T1", 100, paid=True).accepted is False
    waiting = apply_payment(order.order_no, "T1", order.total_fen, paid=False)
    assert waiting.accepted and waiting.verdict == "ignored"
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "pending_payment"


def test_a_failing_paid_hook_leaves_the_order_unpaid(app):
    wine = make_product()
    order = make_order([(wine, 1)])

    def broken_ledger(order):
        raise RuntimeError("ledger down")

    register_paid_hook(app, broken_ledger)
    with pytest.raises(RuntimeError):
        apply_payment(order.order_no, "T1", order.total_fen, paid=True)
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "pending_payment"
    app.extensions["order_paid_hooks"].remove(broken_ledger)
    assert apply_payment(order.order_no, "T1", order.total_fen, paid=True).verdict == "paid"


def test_cancel_returns_stock_once(app):
    wine = make_product(stock=4)
    order = make_order([(wine, 3)])
    assert cancel_order(order.id, "expired") is True
    assert cancel_order(order.id, "expired") is False
    assert stock_of(wine.id) == 4


def test_payment_after_cancellation_takes_stock_back(app):
    wine = make_product(stock=2)
    order = make_order([(wine, 2)], expiry_minutes=30)
    cancel_order(order.id, "expired", utcnow() + timedelta(minutes=31))
    assert stock_of(wine.id) == 2
    assert apply_payment(order.order_no, "T9", order.total_fen, paid=True).verdict == "paid"
    assert stock_of(wine.id) == 0


@pytest.mark.postgres_only
def test_fifty_buyers_racing_for_five_units_get_exactly_five(app):
    wine_id = make_product(stock=5).id  # plain values only: ORM objects stay in their thread

    def attempt(i):
        try:
            place_order([RequestedLine(wine_id, 1)], buyer(phone=f"139{i:08d}"), "wap", 30)
            return "ok"
        except OutOfStock:
            return "out"

    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda i: in_app_thread(app, attempt, i), range(50)))
    assert results.count("ok") == 5 and results.count("out") == 45
    assert stock_of(wine_id) == 0
    assert order_count() == 5


@pytest.mark.postgres_only
def test_ten_identical_notifications_at_once_pay_once(app):
    wine = make_product(stock=5)
    order = make_order([(wine, 1)])
    order_no, total_fen = order.order_no, order.total_fen
    calls = []

    def count_hook(order):
        calls.append(order.order_no)

    register_paid_hook(app, count_hook)

    def notify(_):
        return apply_payment(order_no, "T-RACE", total_fen, paid=True).verdict

    with ThreadPoolExecutor(max_workers=10) as pool:
        verdicts = list(pool.map(lambda i: in_app_thread(app, notify, i), range(10)))
    assert verdicts.count("paid") == 1
    assert set(verdicts) <= {"paid", "repeat"}
    assert calls == [order_no]
