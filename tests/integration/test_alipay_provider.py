"""The Alipay provider (official SDK) against the built-in sandbox gateway, over real HTTP.

Nothing here is faked: the SDK signs with the merchant key, the sandbox verifies it,
answers are RSA2-signed by the sandbox and verified by the SDK.
"""

import base64
import json
import socket
import uuid
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import rsa
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2
from sqlalchemy import func, select

from alipay_sandbox.models import SandboxRefund, SandboxTrade, SandboxTransfer
from shop.db import utcnow
from shop.extensions import db
from shop.orders.models import Refund
from shop.payments import keys
from shop.payments.provider import (
    AlipayProvider,
    NotificationRejected,
    ProviderError,
    get_provider,
)
from shop.payments.refunds import request_refund, retry_pending_refunds
from shop.payments.services import confirm_by_query, reconcile
from tests.alipay_helpers import fresh, open_cashier, pay_in_sandbox, pay_url_for
from tests.builders import make_order, make_product
from tests.live_server import live_server

# --- helpers (also used by tests/functional/test_sandbox_gateway.py) ---------------------


def signed_notification(app, sign=sign_with_rsa2, sign_type="RSA2", **overrides) -> dict:
    """A notification as Alipay sends it, really signed with the sandbox's private key
    (``sign=sign_with_rsa`` signs it with SHA-1 instead). ``None`` drops a parameter."""
    params = {
        "notify_time": "2026-11-25 10:00:00",
        "notify_type": "trade_status_sync",
        "notify_id": uuid.uuid4().hex,
        "app_id": app.config["ALIPAY_APP_ID"],
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2026112522001400000000000001",
        "out_trade_no": "LX2026112510000000000001",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "158.00",
        "receipt_amount": "158.00",
        "buyer_pay_amount": "158.00",
        "subject": "连心集市 测试",
        "gmt_create": "2026-11-25 09:59:00",
        "gmt_payment": "2026-11-25 09:59:30",
        "seller_id": "2088101000000000",
        "buyer_logon_id": "lia***@sandbox.com",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    private = keys.private_key_pkcs1_pem(keys.sandbox_private_key_file(app))
    params["sign"] = sign(private, get_sign_content(params), "utf-8")
    params["sign_type"] = sign_type
    return params


@pytest.fixture
def live(app):
    with live_server(app) as base_url:
        yield base_url


@pytest.fixture
def paid_order(app, client, live):
    order = make_order([(make_product(price_fen=15800), 2)])
    response = pay_in_sandbox(app, client, order)
    assert response.status_code == 302
    assert fresh(order).status == "paid"
    return fresh(order)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- pay URLs -----------------------------------------------------------------------------


def test_pay_url_is_signed_and_the_sandbox_accepts_it(app, client):
    order = make_order([(make_product(price_fen=15800, name="秦岭土蜂蜜"), 2)])
    url = pay_url_for(app, order)

    params = dict(parse_qsl(urlsplit(url).query))
    assert url.startswith("http://127.0.0.1:5000/sandbox/alipay/gateway.do?")
    assert params["method"] == "alipay.trade.page.pay"
    assert params["sign_type"] == "RSA2"
    assert params["notify_url"] == "http://127.0.0.1:5000/payments/alipay/notify"
    assert params["return_url"].endswith(f"/orders/{order.token}/return")
    biz = json.loads(params["biz_content"])
    assert biz["out_trade_no"] == order.order_no
    assert biz["total_amount"] == "316.00"
    assert biz["product_code"] == "FAST_INSTANT_TRADE_PAY"
    assert "秦岭土蜂蜜" in biz["subject"]
    # time_expire is the order's expiry in Asia/Shanghai (UTC+8)
    expected = (order.expires_at + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    assert biz["time_expire"] == expected

    # The signature is a real SHA256withRSA by the merchant key over every parameter but sign.
    merchant_public = rsa.PublicKey.load_pkcs1_openssl_pem(
        keys.merchant_public_key_for_sandbox(app).encode()
    )
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign")
    assert (
        rsa.verify(content.encode(), base64.b64decode(params["sign"]), merchant_public) == "SHA-256"
    )

    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "¥316.00" in html and "秦岭土蜂蜜" in html
    trade = db.session.scalar(select(SandboxTrade))
    assert (trade.out_trade_no, trade.total_fen, trade.status) == (
        order.order_no,
        31600,
        "WAIT_BUYER_PAY",
    )


def test_wap_orders_get_a_wap_pay_url(app, client):
    order = make_order([(make_product(price_fen=9900), 1)], channel="wap")
    url = pay_url_for(app, order)
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["method"] == "alipay.trade.wap.pay"
    assert json.loads(params["biz_content"])["product_code"] == "QUICK_WAP_WAY"
    assert client.get(url).status_code == 200


def _with(url: str, **changes) -> str:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    params.update(changes)
    params = {k: v for k, v in params.items() if v is not None}
    return f"{parts.path}?{urlencode(params)}"


def test_a_tampered_pay_url_is_refused(app, client):
    order = make_order([(make_product(price_fen=15800), 1)])
    url = pay_url_for(app, order)
    biz = json.loads(dict(parse_qsl(urlsplit(url).query))["biz_content"])
    cheaper = json.dumps({**biz, "total_amount": "0.01"}, separators=(",", ":"))

    for tampered in (
        _with(url, biz_content=cheaper),
        _with(url, app_id="2021000000000999"),
        _with(url, sign=None),
        _with(url, sign_type="RSA"),
        _with(url, notify_url="http://evil.example/notify"),
    ):
        response = client.get(tampered)
        assert response.status_code == 400, tampered
        assert "支付宝沙箱拒绝了这个请求" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(SandboxTrade)) == 0


def test_the_same_order_number_with_another_amount_is_refused(app, client):
    order = make_order([(make_product(price_fen=15800), 1)])
    assert client.get(pay_url_for(app, order)).status_code == 200
    with app.test_request_context():
        other = get_provider().pay_url(
            order.order_no, 100, "x", "pc", "http://x/return", "http://x/notify", order.expires_at
        )
    response = client.get(other)
    assert response.status_code == 400
    assert "金额不一致" in response.get_data(as_text=True)
    # The same request again just reopens the cashier.
    assert client.get(pay_url_for(app, order)).status_code == 200


def test_an_expired_pay_url_is_refused(app, client):
    order = make_order([(make_product(), 1)])
    with app.test_request_context():
        url = get_provider().pay_url(
            order.order_no,
            order.total_fen,
            "x",
            "pc",
            "http://x/return",
            "http://x/notify",
            utcnow() - timedelta(minutes=1),
        )
    response = client.get(url)
    assert response.status_code == 400
    assert "超时" in response.get_data(as_text=True)


# --- query, reconcile, close --------------------------------------------------------------


def test_query_recovers_a_missed_notification(app, client, live):
    app.config["SANDBOX_NOTIFY_RETRY_SECONDS"] = 0
    app.extensions["sandbox_notify_transport"] = lambda url, data, timeout: (502, "")
    order = make_order([(make_product(price_fen=2500), 2)])
    assert get_provider().query(order.order_no) is None  # Alipay has not seen it yet

    assert pay_in_sandbox(app, client, order).status_code == 302
    assert fresh(order).status == "pending_payment"  # every notification was lost

    status = get_provider().query(order.order_no)
    assert (status.trade_status, status.total_fen) == ("TRADE_SUCCESS", 5000)
    confirmed = confirm_by_query(fresh(order))
    assert confirmed.status == "paid"
    assert confirmed.trade_no == status.trade_no


def test_reconcile_pays_missed_ones_and_cancels_expired_ones(app, client, live):
    app.config["SANDBOX_NOTIFY_RETRY_SECONDS"] = 0
    app.extensions["sandbox_notify_transport"] = lambda url, data, timeout: (200, "fail")
    product = make_product(price_fen=1000, beneficiary_fen_per_unit=100, stock=10)
    paid = make_order([(product, 1)])
    opened = make_order([(product, 2)])
    never_opened = make_order([(product, 3)])
    assert pay_in_sandbox(app, client, paid).status_code == 302
    open_cashier(client, pay_url_for(app, opened))

    counts = reconcile(older_than_minutes=0, now=utcnow() + timedelta(minutes=31))

    assert counts == {"checked": 3, "paid": 1, "cancelled": 2, "errors": 0}
    assert fresh(paid).status == "paid"
    assert fresh(opened).status == "cancelled"
    assert fresh(never_opened).status == "cancelled"
    # The opened trade was closed at the gateway so it can no longer be paid.
    assert get_provider().query(opened.order_no).trade_status == "TRADE_CLOSED"
    assert client.get(pay_url_for(app, opened)).status_code == 400
    assert db.session.get(type(product), product.id).stock == 9


def test_close(app, client, live, paid_order):
    order = make_order([(make_product(), 1)])
    open_cashier(client, pay_url_for(app, order))
    provider = get_provider()
    provider.close(order.order_no)
    provider.close(order.order_no)  # closing again is harmless
    provider.close("LX-NEVER-OPENED")  # nothing to close
    assert provider.query(order.order_no).trade_status == "TRADE_CLOSED"
    with pytest.raises(ProviderError) as error:
        provider.close(paid_order.order_no)
    assert error.value.code == "ACQ.TRADE_STATUS_ERROR" and not error.value.retryable


# --- refunds ------------------------------------------------------------------------------


def test_partial_refunds_add_up_and_are_idempotent(app, live, paid_order):
    first = request_refund(paid_order.id, 5000, "少发一瓶")
    assert first.status == "succeeded"
    trade = db.session.scalar(select(SandboxTrade))
    assert trade.refunded_fen == 5000

    # The same out_request_no again: Alipay's first answer, no more money moves.
    again = get_provider().refund(paid_order.order_no, 5000, first.out_request_no, "重试")
    assert again.refunded_fen == 5000 and not again.fund_change
    db.session.refresh(trade)
    assert trade.refunded_fen == 5000
    assert db.session.scalar(select(func.count()).select_from(SandboxRefund)) == 1

    second = request_refund(paid_order.id, 6000, "再退一部分")
    assert second.status == "succeeded"
    db.session.refresh(trade)
    assert trade.refunded_fen == 11000
    assert fresh(paid_order).refunded_fen == 11000

    # More than what is left is refused by Alipay, whatever the shop thinks.
    with pytest.raises(ProviderError) as refused:
        get_provider().refund(paid_order.order_no, 20801, "LXOVER01", "太多")
    assert refused.value.code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    assert not refused.value.retryable

    last = request_refund(paid_order.id, 20600, "全部退完")
    assert last.status == "succeeded"
    assert fresh(paid_order).status == "refunded"
    db.session.refresh(trade)
    assert (trade.refunded_fen, trade.status) == (31600, "TRADE_CLOSED")


def test_a_refund_of_an_unpaid_trade_is_refused(app, client, live):
    order = make_order([(make_product(), 1)])
    open_cashier(client, pay_url_for(app, order))
    with pytest.raises(ProviderError) as error:
        get_provider().refund(order.order_no, 100, "R1", "x")
    assert error.value.code == "ACQ.TRADE_STATUS_ERROR"
    with pytest.raises(ProviderError) as error:
        get_provider().refund("LX-UNKNOWN", 100, "R1", "x")
    assert error.value.code == "ACQ.TRADE_NOT_EXIST"


# --- transfers to bank cards --------------------------------------------------------------


def test_transfer_to_a_bank_card(app, live):
    provider = get_provider()
    result = provider.transfer("PO20261125T001001", 12345, "6217000012345678", "张三明", "收益")
    assert result.status == "SUCCESS" and result.order_id
    again = provider.transfer("PO20261125T001001", 12345, "6217000012345678", "张三明", "收益")
    assert again == result  # idempotent per out_biz_no
    assert db.session.scalar(select(func.count()).select_from(SandboxTransfer)) == 1
    stored = db.session.scalar(select(SandboxTransfer))
    assert "6217000012345678" not in stored.payee_identity and stored.payee_name == "张*明"
    assert provider.transfer_query("PO20261125T001001").status == "SUCCESS"
    assert provider.transfer_query("PO-NEVER-SENT") is None

    # The same number for another payee or amount is a different transfer: refused.
    with pytest.raises(ProviderError) as error:
        provider.transfer("PO20261125T001001", 99999, "6217000012345678", "张三明", "收益")
    assert error.value.code == "PAYMENT_INFO_INCONSISTENCY" and not error.value.retryable


def test_a_transfer_to_a_failing_card_fails(app, live):
    provider = get_provider()
    result = provider.transfer("PO20261125T002001", 5000, "6217000012340000", "李四", "收益")
    assert result.status == "FAIL" and result.fail_reason == "收款账户状态异常"
    assert provider.transfer("PO20261125T002001", 5000, "6217000012340000", "李四", "x") == result
    queried = provider.transfer_query("PO20261125T002001")
    assert queried.status == "FAIL" and queried.fail_reason == "收款账户状态异常"


# --- answers that cannot be trusted, a gateway that is down ------------------------------


def test_answers_signed_by_another_key_are_not_trusted(app, live, tmp_path):
    # Pretend Alipay's public key is the merchant's own: the sandbox's answers don't verify.
    wrong = tmp_path / "wrong_public.pem"
    wrong.write_text(keys.merchant_public_key_for_sandbox(app))
    app.config["ALIPAY_PUBLIC_KEY_FILE"] = str(wrong)
    with pytest.raises(ProviderError) as error:
        get_provider().query("LX0001")
    assert error.value.code == "bad_response" and error.value.retryable


def test_answers_signed_with_sha1_are_not_trusted(app, live, monkeypatch):
    from alipay.aop.api.util.SignatureUtils import sign_with_rsa

    from alipay_sandbox import protocol as sandbox

    monkeypatch.setattr(sandbox, "sign_with_rsa2", sign_with_rsa)
    with pytest.raises(ProviderError) as error:
        get_provider().query("LX0001")
    assert error.value.code == "bad_response" and "SHA-1" in error.value.message


def test_requests_signed_by_another_merchant_key_are_refused(app, live):
    other = rsa.newkeys(1024)[1].save_pkcs1().decode()
    stranger = AlipayProvider(
        app.config["ALIPAY_APP_ID"],
        other,
        keys.public_key_pem(keys.alipay_public_key_file(app)),
        app.config["ALIPAY_GATEWAY_URL"],
    )
    with pytest.raises(ProviderError) as error:
        stranger.query("LX0001")
    assert error.value.code == "isv.invalid-signature" and not error.value.retryable


def test_a_gateway_that_is_down_leaves_refunds_pending_and_nothing_breaks(
    app, live, paid_order, admin_client
):
    app.config["ALIPAY_GATEWAY_URL"] = f"http://127.0.0.1:{closed_port()}/gateway.do"
    with pytest.raises(ProviderError) as error:
        get_provider().query(paid_order.order_no)
    assert error.value.retryable

    refund = request_refund(paid_order.id, 1000, "网络不通")
    assert refund.status == "pending"
    response = admin_client.post(
        f"/console/orders/{paid_order.order_no}/refund", data={"amount": "10.00"}
    )
    assert response.status_code == 302
    page = admin_client.get(f"/console/orders/{paid_order.order_no}")
    assert page.status_code == 200
    assert "稍后会自动重试" in page.get_data(as_text=True)

    pending = make_order([(make_product(), 1)])
    assert admin_client.get(f"/orders/{pending.token}/return").status_code == 200
    assert admin_client.post(f"/orders/{pending.token}/pay").status_code == 302
    assert reconcile(older_than_minutes=0)["errors"] == 1
    with pytest.raises(ProviderError) as error:
        get_provider().transfer("PO20261125T003001", 100, "6217000012345678", "张三明", "x")
    assert error.value.retryable

    # The gateway is back: the pending refunds go through once each.
    app.config["ALIPAY_GATEWAY_URL"] = app.config["PUBLIC_BASE_URL"] + "/sandbox/alipay/gateway.do"
    assert retry_pending_refunds() == {"succeeded": 2}
    statuses = db.session.scalars(select(Refund.status)).all()
    assert statuses == ["succeeded", "succeeded"]
    assert db.session.scalar(select(SandboxTrade)).refunded_fen == 2000


# --- notification verification (the provider alone) -------------------------------------


def test_notification_amounts_are_parsed_strictly(app):
    provider = get_provider()
    good = signed_notification(app, out_trade_no="LX1", total_amount="158.00")
    assert provider.verify_notification(good).total_fen == 15800
    for amount in ("1e3", "-1", "abc", "158.001"):
        with pytest.raises(NotificationRejected) as rejected:
            provider.verify_notification(signed_notification(app, total_amount=amount))
        assert "total_amount" in rejected.value.reason


def test_a_configured_seller_id_is_checked(app):
    app.config["ALIPAY_SELLER_ID"] = "2088999999999999"
    with pytest.raises(NotificationRejected) as rejected:
        get_provider().verify_notification(signed_notification(app, seller_id="2088000000000001"))
    assert "seller_id" in rejected.value.reason
    assert get_provider().verify_notification(
        signed_notification(app, seller_id="2088999999999999")
    )


# --- keys ---------------------------------------------------------------------------------


def test_keys_are_generated_once_with_private_files_kept_private(tmp_path):
    generated = keys.ensure_keys(tmp_path)
    for path in (generated.merchant_private, generated.sandbox_private):
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert generated.merchant_public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    keys.ensure_keys(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert sorted(before) == sorted(
        [keys.MERCHANT_PRIVATE, keys.MERCHANT_PUBLIC, keys.SANDBOX_PRIVATE, keys.SANDBOX_PUBLIC]
    )
    # Each public file is the public half of its private key.
    assert keys.public_key_pem(generated.sandbox_public) == keys.public_key_pem_from_private(
        generated.sandbox_private
    )


def test_keys_in_alipay_console_formats_are_accepted(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa

    key = crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    bare_private = base64.b64encode(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    bare_public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "pkcs8.pem").write_bytes(pkcs8)
    (tmp_path / "bare.txt").write_bytes(bare_private + b"\n")
    (tmp_path / "public.txt").write_bytes(bare_public)
    assert keys.private_key_pkcs1_pem(tmp_path / "pkcs8.pem") == keys.private_key_pkcs1_pem(
        tmp_path / "bare.txt"
    )
    assert keys.public_key_pem(tmp_path / "public.txt") == keys.public_key_pem_from_private(
        tmp_path / "pkcs8.pem"
    )
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(keys.KeyFileError):
        keys.private_key_pkcs1_pem(tmp_path / "junk.pem")


def test_configured_key_files_are_used(app, tmp_path):
    keys.ensure_keys(tmp_path)
    app.config["ALIPAY_APP_PRIVATE_KEY_FILE"] = str(tmp_path / keys.MERCHANT_PRIVATE)
    app.config["ALIPAY_PUBLIC_KEY_FILE"] = str(tmp_path / keys.SANDBOX_PUBLIC)
    assert keys.merchant_private_key_file(app) == tmp_path / keys.MERCHANT_PRIVATE
    assert keys.alipay_public_key_file(app) == tmp_path / keys.SANDBOX_PUBLIC
    # The sandbox follows the configured merchant key, so it still verifies our requests.
    assert keys.merchant_public_key_for_sandbox(app) == keys.public_key_pem(
        tmp_path / keys.MERCHANT_PUBLIC
    )
