"""A buyer on a phone buys raspberry wine and pays on the (sandbox) Alipay page."""

import pytest
from sqlalchemy import select

from shop.demo import seed_demo
from shop.extensions import db
from shop.orders.models import Order
from tests.live_server import live_server

pytestmark = pytest.mark.browser


def test_phone_buyer_pays_with_alipay_and_sees_the_paid_order(app, phone, output_dir):
    seed_demo()
    with live_server(app) as base_url:
        phone.goto(base_url + "/p/raspberry-wine")
        phone.fill("input[name=quantity]", "2")
        phone.get_by_role("button", name="立即购买").click()
        phone.wait_for_url("**/checkout")

        phone.fill("input[name=name]", "王小明")
        phone.fill("input[name=phone]", "13812345678")
        phone.fill("textarea[name=address]", "陕西省西安市雁塔区科技路1号")
        phone.get_by_label("爱心人士（匿名）").check()
        phone.screenshot(path=output_dir / "1-checkout.png", full_page=True)
        phone.get_by_role("button", name="提交订单并用支付宝付款").click()

        # The sandbox cashier: it only shows this page for a correctly signed request.
        phone.wait_for_url("**/sandbox/alipay/**")
        assert "¥316.00" in phone.content()
        phone.screenshot(path=output_dir / "2-alipay.png", full_page=True)
        phone.get_by_role("button", name="确认付款").click()

        phone.wait_for_url("**/orders/*/return*")
        phone.get_by_text("支付成功").wait_for()
        phone.screenshot(path=output_dir / "3-paid.png", full_page=True)
        phone.get_by_role("link", name="查看订单").click()
        phone.get_by_text("已支付").first.wait_for()
        assert "爱心人士" in phone.content()
        phone.screenshot(path=output_dir / "4-order.png", full_page=True)

    db.session.expire_all()
    order = db.session.scalar(select(Order))
    assert (order.status, order.total_fen, order.channel) == ("paid", 31600, "wap")
    assert order.trade_no
