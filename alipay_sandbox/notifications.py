"""The pretend Alipay's asynchronous notifications: signed as Alipay signs them and
delivered by a real HTTP POST to the merchant's ``notify_url``, re-sent a few times
until the answer is ``success`` (like Alipay, but fast)."""

import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from flask import current_app

from alipay_sandbox.models import SandboxTrade
from alipay_sandbox.protocol import (
    CHARSET,
    SANDBOX_BUYER,
    log,
    now_shanghai,
    seller_id,
    shanghai,
    sign_params,
)
from shop.money import fen_to_wire

TRANSPORT_KEY = "sandbox_notify_transport"
NOTIFY_ATTEMPTS = 3


def notification_params(trade: SandboxTrade) -> dict[str, str]:
    """The signed asynchronous notification for a trade's current state."""
    amount = fen_to_wire(trade.total_fen)
    params = {
        "notify_time": now_shanghai(),
        "notify_type": "trade_status_sync",
        "notify_id": uuid.uuid4().hex,
        "app_id": trade.app_id,
        "auth_app_id": trade.app_id,
        "charset": CHARSET,
        "version": "1.0",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "trade_status": trade.status,
        "total_amount": amount,
        "receipt_amount": amount,
        "buyer_pay_amount": amount,
        "invoice_amount": amount,
        "subject": trade.subject,
        "gmt_create": shanghai(trade.created_at),
        "gmt_payment": shanghai(trade.paid_at),
        "seller_id": seller_id(),
        "buyer_logon_id": trade.buyer_logon_id or SANDBOX_BUYER,
    }
    return sign_params({k: v for k, v in params.items() if v})


def http_post(url: str, data: dict[str, str], timeout: float) -> tuple[int, str]:
    """POST ``data`` form-encoded to ``url`` over real HTTP; return (status, body)."""
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(data).encode(CHARSET),
        headers={"Content-Type": f"application/x-www-form-urlencoded; charset={CHARSET}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(CHARSET, "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(CHARSET, "replace")


def deliver_notification(trade: SandboxTrade) -> bool:
    """POST the trade's notification to its notify_url until the answer is ``success``,
    a few times (``SANDBOX_NOTIFY_ATTEMPTS``); log every attempt. True when delivered.

    The transport is ``app.extensions["sandbox_notify_transport"]`` when set (tests point
    it at the test client), else :func:`http_post`.
    """
    if not trade.notify_url:
        return False
    config = current_app.config
    transport = current_app.extensions.get(TRANSPORT_KEY) or http_post
    attempts = config.get("SANDBOX_NOTIFY_ATTEMPTS", NOTIFY_ATTEMPTS)
    delay = config.get("SANDBOX_NOTIFY_RETRY_SECONDS", 0.5)
    for attempt in range(1, attempts + 1):
        params = notification_params(trade)
        try:
            status, body = transport(trade.notify_url, params, 10)
        except (OSError, ValueError) as error:
            status, body = 0, f"{type(error).__name__}: {error}"
        answer = body.strip()
        if status == 200 and answer == "success":
            log.info(
                "sandbox notify %s attempt %d/%d: success", trade.out_trade_no, attempt, attempts
            )
            return True
        log.warning(
            "sandbox notify %s attempt %d/%d: HTTP %s %r",
            trade.out_trade_no,
            attempt,
            attempts,
            status,
            answer[:100],
        )
        if attempt < attempts:
            time.sleep(delay * attempt)
    return False
