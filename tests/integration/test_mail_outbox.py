"""The buyer's e-mails, through a real SMTP server (aiosmtpd on 127.0.0.1).

Each order event — placed, paid, shipped, refunded — writes one outbox row in the
transaction of the change; the jobs worker's ``deliver_mail`` sends it. With SMTP down
nothing is lost; two workers never send one message twice; a rolled-back change sends
nothing.
"""

import socket
import threading
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from shop.db import utcnow
from shop.extensions import db
from shop.mail.delivery import deliver_due
from shop.mail.models import OutboxMessage
from shop.orders.services import OutOfStock, apply_payment, mark_shipped
from tests.builders import buyer, in_app_thread, make_order, make_product

ADDRESS = "wang.xiaoming@example.com"


class Inbox:
    """What the SMTP server received: parsed messages, in order."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(app):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_STARTTLS=False)
    yield inbox
    controller.stop()


def body_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def outbox_rows() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def paid_order(product, locale="zh_Hans_CN", email=ADDRESS, trade_no="T2026120400000001"):
    order = make_order([(product, 2)], buyer(email=email), locale=locale)
    outcome = apply_payment(order.order_no, trade_no, order.total_fen, paid=True)
    assert outcome.verdict == "paid"
    return order


def test_each_order_event_sends_exactly_one_email_in_the_buyers_language(app, smtp):
    wine = make_product(name="树莓果酒", price_fen=15800, stock=10)
    order = paid_order(wine)
    assert mark_shipped(order.id, "顺丰速运", "SF1234567890")
    # Alipay re-sends its notification; the worker runs twice.
    assert apply_payment(order.order_no, "T2026120400000001", order.total_fen, paid=True).verdict
    assert deliver_due().sent == 3
    assert deliver_due().sent == 0
    assert [rcpt for rcpt, _m in smtp.messages] == [[ADDRESS]] * 3
    placed, paid, shipped = (m for _r, m in smtp.messages)
    assert order.order_no in placed["Subject"] and "30 分钟内付款" in placed["Subject"]
    assert "¥316.00" in body_of(placed) and "树莓果酒 × 2" in body_of(placed)
    assert f"/orders/{order.token}" in body_of(placed)
    assert "已收到订单" in paid["Subject"] and f"/trace/{order.token}" in body_of(paid)
    assert "已发货" in shipped["Subject"]
    assert "顺丰速运" in body_of(shipped) and "SF1234567890" in body_of(shipped)
    assert len({m["Message-ID"] for _r, m in smtp.messages}) == 3
    assert {row.status for row in outbox_rows()} == {"sent"}


def test_an_english_buyer_gets_english_email(app, smtp):
    wine = make_product(name="树莓果酒", price_fen=15800, stock=10)
    order = paid_order(wine, locale="en")
    deliver_due()
    placed, paid = (m for _r, m in smtp.messages)
    assert placed["Subject"].startswith("Order ") and "within 30 minutes" in placed["Subject"]
    assert "We have received the payment" in body_of(paid)
    assert order.order_no in paid["Subject"]
    assert "Content-Language" in paid and paid["Content-Language"] == "en"


def test_with_smtp_down_nothing_is_lost_and_it_is_sent_when_smtp_returns(app, smtp):
    wine = make_product(stock=10)
    smtp_port = app.config["SMTP_PORT"]
    app.config["SMTP_PORT"] = free_port()  # nothing listens there
    paid_order(wine)
    now = utcnow()
    report = deliver_due(now=now)
    assert report.sent == 0 and report.retrying == 2
    rows = outbox_rows()
    assert {(row.status, row.attempts) for row in rows} == {("pending", 1)}
    assert all(row.next_attempt_at > now for row in rows)
    assert "Connection" in rows[0].last_error or "refused" in rows[0].last_error.lower()
    # Not due again before its back-off; due after it, and SMTP is back.
    app.config["SMTP_PORT"] = smtp_port
    assert deliver_due(now=now).sent == 0
    later = now + timedelta(seconds=app.config["MAIL_RETRY_SECONDS"] + 1)
    assert deliver_due(now=later).sent == 2
    assert len(smtp.messages) == 2
    assert {(row.status, row.attempts) for row in outbox_rows()} == {("sent", 2)}


def test_back_off_doubles_and_gives_up_after_the_last_attempt(app, smtp):
    wine = make_product(stock=10)
    app.config.update(SMTP_PORT=free_port(), MAIL_MAX_ATTEMPTS=3, MAIL_RETRY_SECONDS=60)
    make_order([(wine, 1)], buyer(email=ADDRESS))
    now = utcnow()
    delays = []
    for _attempt in range(3):
        deliver_due(now=now)
        row = outbox_rows()[0]
        delays.append(round((row.next_attempt_at - now).total_seconds()))
        now = row.next_attempt_at
    assert delays[:2] == [60, 120]
    assert outbox_rows()[0].status == "failed" and outbox_rows()[0].attempts == 3


def test_a_permanent_refusal_fails_at_once(app, smtp):
    async def refuse(server, session, envelope, address, rcpt_options):
        return "550 5.1.1 no such mailbox"

    smtp.handle_RCPT = refuse
    make_order([(make_product(stock=5), 1)], buyer(email="nobody@example.com"))
    report = deliver_due()
    assert report.failed == 1
    row = outbox_rows()[0]
    assert row.status == "failed" and "550" in row.last_error


def test_two_workers_never_send_the_same_message_twice(app, smtp):
    wine = make_product(stock=100)
    for n in range(12):
        make_order([(wine, 1)], buyer(email=f"buyer{n}@example.com", phone=f"1391234{n:04d}"))
    start = threading.Barrier(2)
    reports = []

    def worker():
        start.wait(timeout=30)
        reports.append(deliver_due())

    threads = [threading.Thread(target=in_app_thread, args=(app, worker)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(r.sent for r in reports) == 12
    recipients = [rcpt[0] for rcpt, _m in smtp.messages]
    assert sorted(recipients) == sorted(f"buyer{n}@example.com" for n in range(12))


def test_a_change_that_rolls_back_records_no_email(app, smtp):
    wine = make_product(stock=1)
    with pytest.raises(OutOfStock):
        make_order([(wine, 2)], buyer(email=ADDRESS))
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert deliver_due().sent == 0 and smtp.messages == []


def test_no_address_no_email_and_the_address_is_encrypted_at_rest(app, smtp):
    wine = make_product(stock=10)
    make_order([(wine, 1)], buyer())
    assert outbox_rows() == []
    make_order([(wine, 1)], buyer(email=ADDRESS, phone="13912340000"))
    raw = db.session.execute(db.text("SELECT to_address, to_masked FROM outbox_message")).one()
    assert ADDRESS not in raw.to_address and raw.to_masked == "w***@example.com"
    raw_order = db.session.execute(
        db.text("SELECT email FROM shop_order WHERE email IS NOT NULL")
    ).scalar_one()
    assert ADDRESS not in raw_order


def test_development_without_smtp_writes_the_message_to_the_log(app, caplog):
    app.config["SMTP_HOST"] = None
    make_order([(make_product(stock=5), 1)], buyer(email=ADDRESS))
    with caplog.at_level("INFO", logger="shop.mail"):
        assert deliver_due().sent == 1
    assert ADDRESS in caplog.text and "30" in caplog.text


def test_checkout_form_takes_the_address_and_refuses_a_bad_one(client, app, smtp):
    wine = make_product(stock=10)
    details = {
        "name": "王小明", "phone": "13912345678", "address": "陕西省西安市某路1号",
        "board_display": "masked",
    }  # fmt: skip
    client.post("/cart/add", data={"product_id": str(wine.id), "quantity": "1"})
    refused = client.post("/checkout", data={**details, "email": "not an address"})
    assert refused.status_code == 200
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    client.get("/lang/en")
    placed = client.post("/checkout", data={**details, "email": ADDRESS})
    assert placed.status_code == 302
    deliver_due()
    ((_rcpt, message),) = smtp.messages
    assert message["Subject"].startswith("Order ")


def test_a_refund_through_alipay_sends_one_refund_email(app, client, smtp):
    """Over real HTTP to the sandbox gateway, as a refund is made in the console."""
    from shop.payments.refunds import request_refund
    from tests.alipay_helpers import pay_in_sandbox
    from tests.live_server import live_server

    with live_server(app):
        order = make_order([(make_product(price_fen=15800, stock=5), 2)], buyer(email=ADDRESS))
        assert pay_in_sandbox(app, client, order).status_code == 302
        refund = request_refund(order.id, 5000, "少发一瓶")
        assert refund.status == "succeeded"
    deliver_due()
    subjects = [m["Subject"] for _r, m in smtp.messages]
    assert len(subjects) == 3 and "已退款 ¥50.00" in subjects[2]
    refunded = smtp.messages[2][1]
    assert "¥50.00" in body_of(refunded) and "累计退款 ¥50.00" in body_of(refunded)
