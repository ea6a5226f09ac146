"""Forged, oversized and replayed Alipay notifications change nothing.

A forged notification (a bad signature, another merchant's app_id, a malformed body) is
refused before the database is touched — no row written, no row locked — so a flood of
them costs one signature check each and cannot queue genuine notifications behind locks.
"""

import pytest
from alipay.aop.api.util.SignatureUtils import sign_with_rsa
from sqlalchemy import event, func, select

from ledger import Transaction
from shop.extensions import db
from shop.payments.models import PaymentNotification
from shop.payments.refunds import request_refund
from tests.alipay_helpers import fresh, pay_in_sandbox
from tests.builders import make_order, make_product
from tests.integration.test_alipay_provider import signed_notification
from tests.live_server import live_server


@pytest.fixture
def order(app):
    return make_order([(make_product(price_fen=15800), 1)])


class StatementLog:
    """Every SQL statement the app sends while it is active."""

    def __init__(self):
        self.statements: list[str] = []

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, *_args):
        self.statements.append(statement)

    @property
    def writes_or_locks(self) -> list[str]:
        words = ("INSERT", "UPDATE", "DELETE", "FOR UPDATE", "BEGIN IMMEDIATE")
        return [s for s in self.statements if any(w in s.upper() for w in words)]


def notify(client, params):
    return client.post("/payments/alipay/notify", data=params)


@pytest.mark.parametrize(
    ("how", "overrides"),
    [
        ("bad signature", {"sign": "AAAA" * 86}),
        ("SHA-1 signature", {"sign": sign_with_rsa}),
        ("another merchant's app_id", {"app_id": "2021000000000999"}),
        ("malformed amount", {"total_amount": "158.000"}),
    ],
)
def test_a_forged_notification_is_refused_before_any_write_or_lock(
    app, client, order, how, overrides
):
    overrides = dict(overrides)  # the parameter is shared by both databases' runs
    sign = overrides.pop("sign", None)
    if callable(sign):
        params = signed_notification(app, sign=sign, out_trade_no=order.order_no)
    else:
        params = signed_notification(app, out_trade_no=order.order_no, **overrides)
        if sign:
            params["sign"] = sign
    with StatementLog() as log:
        response = notify(client, params)
    assert response.get_data(as_text=True) == "fail", how
    assert log.writes_or_locks == [], f"{how}: {log.writes_or_locks[:3]}"
    assert fresh(order).status == "pending_payment"
    assert db.session.scalar(select(func.count()).select_from(PaymentNotification)) == 0


def test_a_genuine_notification_after_a_flood_of_forged_ones_still_pays(app, client, order):
    for n in range(50):
        forged = signed_notification(app, out_trade_no=order.order_no, notify_id=f"f{n}")
        forged["sign"] = "A" * 344
        assert notify(client, forged).get_data(as_text=True) == "fail"
    genuine = signed_notification(app, out_trade_no=order.order_no)
    assert notify(client, genuine).get_data(as_text=True) == "success"
    assert fresh(order).status == "paid"


def test_an_oversized_notification_body_is_refused_unread(app, client, order):
    params = signed_notification(app, out_trade_no=order.order_no)
    params["padding"] = "x" * (10 * 1024 * 1024)
    response = notify(client, params)
    assert response.status_code == 413
    assert fresh(order).status == "pending_payment"


def test_replays_and_contradictions_change_nothing(app, client, order):
    paid = signed_notification(app, out_trade_no=order.order_no)
    assert notify(client, paid).get_data(as_text=True) == "success"
    postings = db.session.scalar(select(func.count()).select_from(Transaction))
    # A TRADE_CLOSED after TRADE_SUCCESS: the order stays paid, nothing is reversed.
    closed = signed_notification(app, out_trade_no=order.order_no, trade_status="TRADE_CLOSED")
    notify(client, closed)
    assert fresh(order).status == "paid"
    # The same genuine notification again (Alipay retries): one posting, not two.
    assert notify(client, paid).get_data(as_text=True) == "success"
    assert db.session.scalar(select(func.count()).select_from(Transaction)) == postings


def test_a_replayed_payment_after_a_refund_does_not_pay_again(app, client):
    order = make_order([(make_product(price_fen=15800), 1)])
    with live_server(app):  # the sandbox plays Alipay over HTTP: a real trade to refund
        pay_in_sandbox(app, client, order)
        assert fresh(order).status == "paid"
        request_refund(order.id, order.total_fen, "退货")
    assert fresh(order).status == "refunded"
    postings = db.session.scalar(select(func.count()).select_from(Transaction))
    replay = signed_notification(
        app, out_trade_no=order.order_no, trade_no=fresh(order).trade_no
    )
    notify(client, replay)
    assert fresh(order).status == "refunded"
    assert db.session.scalar(select(func.count()).select_from(Transaction)) == postings
