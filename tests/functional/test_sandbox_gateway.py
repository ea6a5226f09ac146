"""The built-in sandbox gateway as a buyer and as the shop's notify endpoint see it.

The full flow runs over real HTTP (a live server): the buyer's browser is urllib with a
cookie jar, the sandbox POSTs its signed notification to the shop for real.
"""

import base64
import logging
import re
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import parse_qsl, urlsplit

import pytest
import rsa
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa
from sqlalchemy import select

from alipay_sandbox.models import SandboxTrade
from shop.extensions import db
from shop.payments import keys
from shop.payments.models import PaymentNotification
from tests.alipay_helpers import fresh, open_cashier, pay_in_sandbox, pay_url_for
from tests.builders import make_order, make_product
from tests.integration.test_alipay_provider import signed_notification
from tests.live_server import client_transport, live_server


def notify(client, params):
    response = client.post("/payments/alipay/notify", data=params)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def verdicts():
    db.session.expire_all()
    return [n.verdict for n in db.session.scalars(select(PaymentNotification))]


class Browser:
    """urllib with cookies, following redirects, like a buyer's browser."""

    def __init__(self):
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, url):
        with self.opener.open(url, timeout=30) as response:
            return response.geturl(), response.read().decode()

    def post(self, url, data):
        body = urllib.parse.urlencode(data).encode()
        with self.opener.open(url, data=body, timeout=30) as response:
            return response.geturl(), response.read().decode()


# --- the whole flow -----------------------------------------------------------------------


def test_buyer_pays_in_the_sandbox_and_the_notification_marks_the_order_paid(app):
    order = make_order([(make_product(price_fen=15800, name="洋县黑米"), 2)])
    with live_server(app) as base_url:
        url = pay_url_for(app, order)
        assert url.startswith(base_url + "/sandbox/alipay/gateway.do?")
        browser = Browser()
        _, cashier = browser.get(url)
        assert "¥316.00" in cashier and "洋县黑米" in cashier
        action = re.search(r'action="([^"]*/pay)"', cashier).group(1)
        ticket = re.search(r'name="ticket" value="([^"]+)"', cashier).group(1)

        landed, page = browser.post(base_url + action, {"ticket": ticket})

    # The notification came over HTTP, was verified and applied once.
    assert fresh(order).status == "paid"
    assert verdicts() == ["paid"]
    notification = db.session.scalar(select(PaymentNotification))
    trade = db.session.scalar(select(SandboxTrade))
    assert notification.trade_no == trade.trade_no == fresh(order).trade_no
    assert notification.total_amount == "316.00"

    # The browser came back to the shop's return page with Alipay's signed parameters.
    assert landed.startswith(f"{base_url}/orders/{order.token}/return?")
    returned = dict(parse_qsl(urlsplit(landed).query))
    assert returned["method"] == "alipay.trade.page.pay.return"
    assert returned["out_trade_no"] == order.order_no
    assert returned["total_amount"] == "316.00"
    content = get_sign_content(
        {k: v for k, v in returned.items() if k not in ("sign", "sign_type")}
    )
    sandbox_public = rsa.PublicKey.load_pkcs1_openssl_pem(
        keys.public_key_pem(keys.alipay_public_key_file(app)).encode()
    )
    signature = base64.b64decode(returned["sign"])
    assert rsa.verify(content.encode(), signature, sandbox_public) == "SHA-256"
    assert "支付成功" in page and "¥316.00" in page


def test_cancel_returns_without_paying(app, client):
    order = make_order([(make_product(), 1)])
    action, ticket = open_cashier(client, pay_url_for(app, order))
    response = client.post(action.replace("/pay", "/cancel"), data={"ticket": ticket})
    assert response.status_code == 302
    assert response.location.endswith(f"/orders/{order.token}/return")
    assert fresh(order).status == "pending_payment"
    assert db.session.scalar(select(SandboxTrade)).status == "WAIT_BUYER_PAY"


def test_pay_twice_notifies_once(app, client):
    app.extensions["sandbox_notify_transport"] = client_transport(app)
    order = make_order([(make_product(), 1)])
    action, ticket = open_cashier(client, pay_url_for(app, order))
    first = client.post(action, data={"ticket": ticket})
    second = client.post(action, data={"ticket": ticket})
    assert first.status_code == second.status_code == 302
    assert first.location.split("&timestamp")[0] == second.location.split("&timestamp")[0]
    assert verdicts() == ["paid"]
    assert fresh(order).status == "paid"
    # A paid trade cannot be paid again from a fresh pay URL.
    response = client.get(pay_url_for(app, order))
    assert response.status_code == 400 and "已经支付" in response.get_data(as_text=True)


def test_notifications_are_retried_until_the_shop_says_success(app, client, caplog, monkeypatch):
    # Alembic's logging set-up (run by the migrated-database fixture) disables loggers
    # that existed before it; this test reads the sandbox's log, so switch it back on.
    monkeypatch.setattr(logging.getLogger("shop.payments.sandbox"), "disabled", False)
    app.config["SANDBOX_NOTIFY_RETRY_SECONDS"] = 0
    deliver = client_transport(app)
    calls = []

    def flaky(url, data, timeout):
        calls.append(data["notify_id"])
        if len(calls) < 3:
            return 500, "oops"
        return deliver(url, data, timeout)

    app.extensions["sandbox_notify_transport"] = flaky
    order = make_order([(make_product(), 1)])
    with caplog.at_level(logging.INFO, logger="shop.payments.sandbox"):
        assert pay_in_sandbox(app, client, order).status_code == 302
    assert len(calls) == 3 and len(set(calls)) == 3
    assert fresh(order).status == "paid"
    attempts = [r.getMessage() for r in caplog.records if "sandbox notify" in r.getMessage()]
    assert any("attempt 1/3: HTTP 500" in line for line in attempts)
    assert any("attempt 3/3: success" in line for line in attempts)


def test_an_unreachable_notify_url_does_not_break_the_cashier(app, client):
    app.config["SANDBOX_NOTIFY_RETRY_SECONDS"] = 0
    order = make_order([(make_product(), 1)])
    # Default transport: real HTTP to PUBLIC_BASE_URL, where nothing is listening.
    app.config["PUBLIC_BASE_URL"] = "http://127.0.0.1:9"
    response = pay_in_sandbox(app, client, order)
    assert response.status_code == 302
    assert fresh(order).status == "pending_payment"


def test_the_pay_form_carries_a_csrf_token(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    order = make_order([(make_product(), 1)])
    page = client.get(pay_url_for(app, order)).get_data(as_text=True)
    assert 'name="csrf_token"' in page
    # Same host as the pay URL, so the session cookie holding the CSRF secret is sent.
    action = "http://127.0.0.1:5000" + re.search(r'action="([^"]*/pay)"', page).group(1)
    ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)
    refused = client.post(action, data={"ticket": ticket})
    assert refused.status_code == 400 and "页面已过期" in refused.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    app.extensions["sandbox_notify_transport"] = lambda url, data, timeout: (200, "success")
    assert client.post(action, data={"ticket": ticket, "csrf_token": token}).status_code == 302


def test_a_forged_ticket_is_refused(app, client):
    order = make_order([(make_product(), 1)])
    action, _ticket = open_cashier(client, pay_url_for(app, order))
    response = client.post(action, data={"ticket": "forged"})
    assert response.status_code == 400
    assert db.session.scalar(select(SandboxTrade)).status == "WAIT_BUYER_PAY"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?method=alipay.trade.page.pay",
        "?method=alipay.trade.page.pay&app_id=2021000000000001&sign_type=RSA2&sign=%%%",
        "?method=alipay.trade.query&biz_content={",
        "?method=no.such.method",
    ],
)
def test_junk_at_the_gateway_gets_an_answer_not_a_500(client, query):
    response = client.get("/sandbox/alipay/gateway.do" + query)
    assert response.status_code in (200, 400)
    response = client.post("/sandbox/alipay/gateway.do" + query, data={"biz_content": "[]"})
    assert response.status_code in (200, 400)


def test_api_errors_are_signed_alipay_answers(client):
    body = client.post("/sandbox/alipay/gateway.do?method=alipay.trade.query").get_json()
    answer = body["alipay_trade_query_response"]
    assert answer["code"] == "40002" and answer["sub_code"] == "isv.invalid-app-id"
    assert body["sign"]


# --- the notify endpoint ------------------------------------------------------------------


@pytest.fixture
def order(app):
    return make_order([(make_product(price_fen=15800), 1)])


def test_a_valid_notification_pays_the_order_once(app, client, order):
    params = signed_notification(app, out_trade_no=order.order_no, total_amount="158.00")
    assert notify(client, params) == "success"
    assert fresh(order).status == "paid"
    assert fresh(order).trade_no == params["trade_no"]
    # Alipay repeats notifications: answered success, applied once.
    assert notify(client, params) == "success"
    again = signed_notification(app, out_trade_no=order.order_no, total_amount="158.00")
    assert notify(client, again) == "success"
    assert verdicts() == ["paid", "repeat", "repeat"]


@pytest.mark.parametrize(
    ("how", "overrides"),
    [
        ("SHA-1 signature", {"sign": sign_with_rsa}),
        ("sign_type RSA", {"sign_type": "RSA"}),
        ("another app", {"app_id": "2021000000000999"}),
        ("wrong amount", {"total_amount": "1.58"}),
        ("amount with three decimals", {"total_amount": "158.000"}),
        ("unknown order", {"out_trade_no": "LX-NO-SUCH-ORDER"}),
    ],
)
def test_a_bad_notification_is_refused(app, client, order, how, overrides):
    values = {"out_trade_no": order.order_no, "total_amount": "158.00", **overrides}
    params = signed_notification(app, **values)
    assert notify(client, params) == "fail", how
    assert fresh(order).status == "pending_payment"
    # Verified ones are recorded with their verdict; ones that fail verification are
    # not stored at all (tests/functional/test_notification_abuse.py).
    verified = how in ("wrong amount", "unknown order")
    assert verdicts() == (["rejected"] if verified else [])


def test_a_tampered_notification_is_refused(app, client, order):
    params = signed_notification(app, out_trade_no=order.order_no, total_amount="1.58")
    params["total_amount"] = "158.00"  # signature was over 1.58
    assert notify(client, params) == "fail"
    params = signed_notification(app, out_trade_no=order.order_no, total_amount="158.00")
    params["sign"] = params["sign"][:-8] + "AAAAAAA="
    assert notify(client, params) == "fail"
    params = signed_notification(app, out_trade_no=order.order_no, total_amount="158.00")
    del params["sign"]
    assert notify(client, params) == "fail"
    params = signed_notification(app, out_trade_no=order.order_no, total_amount="158.00")
    params["extra"] = "added after signing"
    assert notify(client, params) == "fail"
    assert fresh(order).status == "pending_payment"


def test_a_closed_trade_notification_does_not_pay(app, client, order):
    params = signed_notification(
        app, out_trade_no=order.order_no, total_amount="158.00", trade_status="TRADE_CLOSED"
    )
    # Accepted (so Alipay stops resending it) but it never marks the order paid.
    assert notify(client, params) == "success"
    assert fresh(order).status == "pending_payment"
    assert verdicts() == ["ignored"]
