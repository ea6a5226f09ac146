"""The love board on a phone: a purchase made elsewhere appears without a reload."""

import pytest

from shop.demo import seed_demo
from tests.live_server import live_server

pytestmark = pytest.mark.browser


def buy_on_another_phone(page, base_url: str) -> None:
    page.goto(base_url + "/p/raspberry-wine")
    page.get_by_role("button", name="立即购买").click()
    page.wait_for_url("**/checkout")
    page.fill("input[name=name]", "欧阳秀英")
    page.fill("input[name=phone]", "13912345678")
    page.fill("textarea[name=address]", "陕西省西安市幸福路88号")
    page.get_by_role("radio", name="昵称").check()
    page.fill("input[name=nickname]", "树莓花开")
    page.get_by_role("button", name="提交订单并用支付宝付款").click()
    page.wait_for_url("**/sandbox/alipay/**")
    page.get_by_role("button", name="确认付款").click()
    page.wait_for_url("**/orders/*/return*")
    page.get_by_text("支付成功").wait_for()


def test_love_board_shows_a_new_purchase_without_reloading(app, browser, phone, output_dir):
    seed_demo()
    with live_server(app) as base_url:
        phone.goto(base_url + "/board?poll=1000")
        phone.get_by_role("heading", name="爱心榜").wait_for()
        before = phone.locator(".stats > div").first.inner_text()
        phone.evaluate("window.__notReloaded = true")
        phone.screenshot(path=output_dir / "1-board-before.png", full_page=True)

        buyer_context = browser.new_context(viewport={"width": 390, "height": 844})
        try:
            buy_on_another_phone(buyer_context.new_page(), base_url)
        finally:
            buyer_context.close()

        newest = phone.locator(".feed .purchase.new").first
        newest.wait_for(timeout=20_000)
        assert "树莓花开" in newest.inner_text()
        assert "树莓果酒" in newest.inner_text()
        assert "SJ-" in newest.inner_text()  # the households it reached, by code
        assert phone.evaluate("window.__notReloaded") is True
        assert phone.locator(".stats > div").first.inner_text() != before
        body = phone.content()
        assert "欧阳秀英" not in body and "13912345678" not in body
        phone.screenshot(path=output_dir / "2-board-after.png", full_page=True)
