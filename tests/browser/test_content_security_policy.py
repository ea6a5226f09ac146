"""A real browser walks the shop's main pages under its Content-Security-Policy and sees
no violation — and every page still does its job: the cashier pays, the love board
updates live, the results chart is drawn, the console saves, the CSV preview shows."""

import pytest
from sqlalchemy import select

from shop.catalog.models import Product
from shop.demo import DEMO_LOGINS, seed_demo
from shop.extensions import db
from shop.households.models import Household
from shop.orders.models import Order
from shop.orders.services import apply_payment
from tests.browser.conftest import log_in
from tests.builders import buyer, make_order
from tests.live_server import live_server

pytestmark = pytest.mark.browser

# Collects every violation the page reports; added before any page script runs.
LISTEN = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') +
                           ' at ' + e.sourceFile + ':' + e.lineNumber);
});
"""
CSV = (
    "日期,商品,数量,单价(元),付款方式,购买人,爱心榜展示,单位\r\n"
    "2026-01-20,树莓果酒,2,158,微信,,匿名,\r\n"
)


@pytest.fixture
def watched(phone):
    """The phone, with every CSP report from its console and its pages collected."""
    reports: list[str] = []
    phone.add_init_script(LISTEN)
    phone.on(
        "console",
        lambda message: reports.append(f"console: {message.text}")
        if "Content Security Policy" in message.text
        else None,
    )
    phone.on("pageerror", lambda error: reports.append(f"script error: {error}"))

    def check(where: str) -> None:
        found = phone.evaluate("window.__violations || []")
        assert not found and not reports, f"{where}: {found + reports}"

    phone.check_csp = check
    return phone


def _login(page, base_url, username, password):
    # Demo staff are not enrolled in two-factor login yet: this walks the enrolment page
    # (its QR code is a data: image, which the policy must allow).
    log_in(page, base_url, username, password)
    page.check_csp("two-factor enrolment")


def test_the_main_pages_work_with_no_csp_violation(app, watched, tmp_path):
    page = watched
    seed_demo()
    household_code = db.session.scalars(select(Household.code).order_by(Household.id)).first()
    staff = next((u, p) for u, p, role in DEMO_LOGINS if role == "staff")
    app.config["BOARD_POLL_MS"] = 500
    with live_server(app) as base_url:
        page.goto(base_url + "/")
        page.locator("a[href='/p/raspberry-wine']").first.wait_for()
        page.check_csp("home")

        page.goto(base_url + "/p/raspberry-wine")
        page.fill("input[name=quantity]", "1")
        page.check_csp("product")
        page.get_by_role("button", name="立即购买").click()
        page.wait_for_url("**/checkout")
        page.check_csp("checkout")
        page.goto(base_url + "/cart")
        page.check_csp("cart")
        page.goto(base_url + "/checkout")
        page.fill("input[name=name]", "王小明")
        page.fill("input[name=phone]", "13812345678")
        page.fill("textarea[name=address]", "陕西省西安市雁塔区科技路1号")
        page.get_by_role("button", name="提交订单并用支付宝付款").click()

        page.wait_for_url("**/sandbox/alipay/**")
        page.check_csp("sandbox cashier")
        page.get_by_role("button", name="确认付款").click()
        page.wait_for_url("**/orders/*/return*")
        page.get_by_text("支付成功").wait_for()
        page.check_csp("payment return")
        page.get_by_role("link", name="查看订单").click()
        page.get_by_text("已支付").first.wait_for()
        page.check_csp("order page")

        db.session.expire_all()
        order = db.session.scalar(select(Order).where(Order.status == "paid"))
        page.goto(base_url + f"/trace/{order.token}")
        page.check_csp("trace")

        page.goto(base_url + "/board")
        before = page.locator("#board-live .purchase").count()
        # A sale elsewhere: the open board shows it without a reload (polling script).
        wine = db.session.get(Product, order.lines[0].product_id)
        other = make_order([(wine, 1)], buyer(board_display="anonymous"))
        apply_payment(other.order_no, f"T{other.order_no}", other.total_fen, paid=True)
        page.locator("#board-live .purchase.new").first.wait_for(timeout=20_000)
        assert page.locator("#board-live .purchase").count() >= before
        page.check_csp("love board")

        page.goto(base_url + "/results")
        page.locator("svg").first.wait_for()
        page.check_csp("results board")
        page.goto(base_url + f"/households/{household_code}")
        page.check_csp("household page")

        _login(page, base_url, *staff)
        page.goto(base_url + "/console/products")
        page.locator(f"a[href='/console/products/{wine.id}']").first.click()
        page.wait_for_url(f"**/console/products/{wine.id}")
        page.check_csp("console product editor")
        page.locator("form.product-form button[type=submit]").click()
        page.locator(".flash-success").first.wait_for()
        page.check_csp("console product saved")

        csv_file = tmp_path / "展销会.csv"
        csv_file.write_bytes(CSV.encode("utf-8"))
        page.goto(base_url + "/console/offline/")
        page.select_option("select[name=channel]", "event")
        page.fill("input[name=session_name]", "年货展销会")
        page.fill("input[name=starts_on]", "2026-01-20")
        page.fill("input[name=ends_on]", "2026-01-29")
        page.set_input_files("input[name=file]", str(csv_file))
        page.get_by_role("button", name="上传并预览").click()
        page.wait_for_url("**/console/offline/batches/*")
        page.get_by_text("树莓果酒").first.wait_for()
        page.check_csp("offline CSV preview")
