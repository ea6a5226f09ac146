"""The buyer's whole journey on a phone (issue 16): register, buy, pay in the sandbox,
find the order under "my orders", the household under "my impact" — and the e-mails,
through a real SMTP server, in the order they were caused."""

import socket
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from shop.demo import seed_demo
from shop.extensions import db
from shop.mail.delivery import deliver_due
from shop.orders.models import Order
from tests.live_server import live_server

pytestmark = [pytest.mark.browser, pytest.mark.single_backend]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def test_register_buy_pay_and_see_my_orders_my_impact_and_the_emails(app, phone, output_dir):
    seed_demo()
    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_STARTTLS=False)
    try:
        with live_server(app) as base_url:
            phone.goto(base_url + "/register")
            phone.fill("input[name=username]", "li.hua")
            phone.fill("input[name=password]", "li-hua-pass-1")
            phone.fill("input[name=confirm]", "li-hua-pass-1")
            phone.locator("form button[type=submit]").last.click()
            phone.wait_for_load_state()
            phone.goto(base_url + "/p/raspberry-wine")
            phone.get_by_role("button", name="立即购买").click()
            phone.wait_for_url("**/checkout")
            phone.fill("input[name=name]", "李华")
            phone.fill("input[name=phone]", "13712345678")
            phone.fill("textarea[name=address]", "陕西省汉中市城固县某路8号")
            phone.fill("input[name=email]", "li.hua@example.com")
            phone.get_by_role("button", name="提交订单并用支付宝付款").click()
            phone.wait_for_url("**/sandbox/alipay/**")
            phone.get_by_role("button", name="确认付款").click()
            phone.wait_for_url("**/orders/*/return*")
            phone.get_by_text("支付成功").wait_for()

            phone.get_by_role("link", name="我的订单").first.click()
            phone.wait_for_url("**/account/orders")
            order = db.session.scalar(select(Order).order_by(Order.id.desc()))
            assert order.order_no in phone.content() and "已支付" in phone.content()
            phone.screenshot(path=output_dir / "1-my-orders.png", full_page=True)

            phone.get_by_role("link", name="我帮到的农户").click()
            phone.wait_for_url("**/account/impact")
            reached = phone.locator(".feed li")
            assert reached.count() >= 1
            phone.screenshot(path=output_dir / "2-my-impact.png", full_page=True)
            first = reached.first.locator("a")
            code = first.get_attribute("href").rsplit("/", 1)[-1]
            first.click()
            phone.wait_for_url(f"**/households/{code}")
            overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0
        assert deliver_due().sent == 2
    finally:
        smtp.stop()
    placed, paid = inbox.messages
    assert placed["To"] == "li.hua@example.com" and order.order_no in placed["Subject"]
    assert "已收到订单" in paid["Subject"]
    assert f"/trace/{order.token}" in paid.get_body(("plain",)).get_content()
