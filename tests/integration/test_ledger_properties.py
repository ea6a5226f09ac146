"""Property-based: whatever buyers, Alipay and admins do, in whatever order, the books hold.

Each example gets a fresh migrated SQLite database and drives the real services: orders
placed, notifications applied (duplicated, out of order, for orders that expired),
refunds (partial and full) applied, payouts started and settled.
"""

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ledger import Account, Transaction, sale_allocations, verify_database
from ledger import payouts as ledger_payouts
from shop import create_app
from shop.benefits.services import set_product_rule
from shop.extensions import db
from shop.orders.ledger_view import sale_key
from shop.orders.models import Order, Refund
from shop.orders.services import apply_payment, cancel_order
from shop.payments.refunds import _apply_refund_success
from tests.builders import buyer, make_household, make_order, make_product, make_village

STEP = st.one_of(
    st.tuples(st.just("order"), st.integers(1, 3), st.integers(0, 2)),
    st.tuples(st.just("notify"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("expire"), st.integers(0, 9), st.just(0)),
    st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 40000)),
    st.tuples(st.just("payout"), st.integers(0, 2), st.booleans()),
)


def run_history(template: Path, steps) -> None:
    folder = Path(tempfile.mkdtemp())
    try:
        shutil.copyfile(template, folder / "db.sqlite")
        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'db.sqlite'}",
                "UPLOAD_FOLDER": str(folder / "uploads"),
            }
        )
        with app.app_context():
            check_history(steps)
            db.session.remove()
            db.engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_history(steps) -> None:
    village = make_village(code="SJ")
    households = [
        make_household(village, head_name=f"王{n}明", code=f"SJ-{n:03d}", land_mu=n)
        for n in range(1, 4)
    ]
    wine = make_product(price_fen=15800, stock=10_000)
    honey = make_product(price_fen=8850, stock=10_000)
    set_product_rule(wine.id, households, "weighted", "land", share_fen_per_unit=2000)
    set_product_rule(honey.id, households, "matched", share_basis_points=1333)
    products = [wine, honey]
    orders: list[int] = []
    for n, (action, a, b) in enumerate(steps):
        if action == "order":
            items = [(products[i % 2], a) for i in range(b + 1)]
            orders.append(make_order(items, buyer(phone=f"1390000{n:04d}")).id)
        elif action == "notify" and orders:
            order = db.session.get(Order, orders[a % len(orders)])
            trade_no = f"T{order.id}"
            apply_payment(order.order_no, trade_no, order.total_fen, paid=True)
            if b:  # Alipay repeats itself
                apply_payment(order.order_no, trade_no, order.total_fen, paid=True)
        elif action == "expire" and orders:
            cancel_order(orders[a % len(orders)], "expired")
        elif action == "refund" and orders:
            order = db.session.get(Order, orders[a % len(orders)])
            left = order.total_fen - order.refunded_fen
            if order.status in ("paid", "shipped", "completed") and left > 0:
                refund = Refund(
                    order_id=order.id,
                    out_request_no=f"{order.order_no}R{len(order.refunds) + 1:02d}",
                    amount_fen=min(b, left),
                )
                db.session.add(refund)
                db.session.commit()
                _apply_refund_success(refund.id)
                _apply_refund_success(refund.id)  # applying twice changes nothing
        elif action == "payout":
            for code, owed in ledger_payouts.households_due(db.session, 1):
                out_biz_no = f"PO{n}{code}"
                ledger_payouts.start_payout(db.session, out_biz_no, code, owed)
                ledger_payouts.settle_payout(db.session, out_biz_no, succeeded=b)
                db.session.commit()
        db.session.expire_all()
        assert_invariants(orders)


def assert_invariants(order_ids) -> None:
    audit = verify_database(db.session)
    assert audit.ok, audit.problems
    balances = db.session.scalars(select(Account.balance_fen).where(Account.kind == "household"))
    assert all(b <= 0 for b in balances)
    paid = 0
    for order in db.session.scalars(select(Order).where(Order.id.in_(order_ids))):
        if order.trade_no is None:  # never paid: nothing in the ledger names it
            memo = f"订单 {order.order_no}"
            assert db.session.scalar(select(Transaction).where(Transaction.memo == memo)) is None
            continue
        sale = db.session.scalar(
            select(Transaction).where(Transaction.key == sale_key(order.trade_no))
        )
        paid += 1
        # The households' allocations equal the order's share by its rules, exactly.
        expected = sum(
            min(2000 * line.quantity, line.line_total_fen)
            if line.unit_price_fen == 15800
            else line.line_total_fen * 1333 // 10_000
            for line in order.lines
        )
        assert sum(sale_allocations(db.session, sale).values()) == expected
    sales = db.session.scalar(
        select(func.count()).select_from(Transaction).where(Transaction.kind == "sale")
    )
    assert sales == paid  # one sale per paid order, however many notifications


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=14))
def test_any_history_keeps_the_books(sqlite_template, steps):
    run_history(sqlite_template, steps)
