"""The built-in sandbox gateway: a pretend Alipay ``gateway.do`` on this machine.

It speaks Alipay's protocol for real, so the shop's provider (the official SDK) cannot
tell it from Alipay: requests must carry the merchant's RSA2 signature (verified with the
merchant public key), notifications and API answers are RSA2-signed with the sandbox's
own private key (the shop verifies them with ``ALIPAY_PUBLIC_KEY_FILE``, by default the
sandbox's public key), and notifications are delivered by a real HTTP POST.

Amounts are fen in the tables and yuan strings ("158.00") on the wire. Trades are
unique per (app_id, out_trade_no), refunds per out_request_no and transfers per
out_biz_no, so repeating a request returns the first answer and moves no money twice.
Each public function owns its transaction.
"""

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime

import rsa
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shop.db import utcnow
from shop.extensions import db
from shop.formatting import SHANGHAI
from shop.money import fen_to_wire, wire_to_fen
from shop.payments import keys
from shop.payments.sandbox.models import SandboxRefund, SandboxTrade, SandboxTransfer

log = logging.getLogger("shop.payments.sandbox")

PAGE_METHODS = {
    "alipay.trade.page.pay": "FAST_INSTANT_TRADE_PAY",
    "alipay.trade.wap.pay": "QUICK_WAP_WAY",
}
CHARSET = "utf-8"
SANDBOX_BUYER = "lia***@sandbox.com"
DEFAULT_SELLER_ID = "2088101000000000"
FAILING_CARD_SUFFIX = "0000"
PAYEE_FAILURE = ("PAYEE_ACCOUNT_STATUS_ERROR", "收款账户状态异常")
TRANSPORT_KEY = "sandbox_notify_transport"
NOTIFY_ATTEMPTS = 3
_OUT_NO = re.compile(r"[A-Za-z0-9_\-]{1,64}", re.ASCII)


class SandboxError(Exception):
    """A request the pretend Alipay refuses; ``message`` is shown to the person paying."""

    def __init__(self, message: str, code: str = "40004", sub_code: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.sub_code = sub_code

    def as_response(self) -> dict:
        msg = "Invalid Arguments" if self.code == "40002" else "Business Failed"
        return {"code": self.code, "msg": msg, "sub_code": self.sub_code, "sub_msg": self.message}


# --- keys and signatures ----------------------------------------------------------------


def _keys() -> tuple[rsa.PublicKey, str]:
    """(merchant public key, sandbox private key PEM), cached per app."""
    app = current_app._get_current_object()
    marker = (app.config.get("ALIPAY_APP_PRIVATE_KEY_FILE"), app.instance_path)
    cached = app.extensions.get("sandbox_keys")
    if cached is None or cached[0] != marker:
        merchant = rsa.PublicKey.load_pkcs1_openssl_pem(
            keys.merchant_public_key_for_sandbox(app).encode()
        )
        private = keys.private_key_pkcs1_pem(keys.sandbox_private_key_file(app))
        cached = (marker, (merchant, private))
        app.extensions["sandbox_keys"] = cached
    return cached[1]


def sign_params(params: dict[str, str]) -> dict[str, str]:
    """Alipay's notification/return signature: RSA2 over every parameter except ``sign``
    and ``sign_type``, sorted, ``k=v&…``. Returns a copy with ``sign`` and ``sign_type``."""
    signed = {k: v for k, v in params.items() if k not in ("sign", "sign_type")}
    signed["sign"] = sign_with_rsa2(_keys()[1], get_sign_content(signed), CHARSET)
    signed["sign_type"] = "RSA2"
    return signed


def signed_response(response_key: str, payload: dict) -> str:
    """The JSON body of an API answer, signed as the SDK verifies it: RSA2 over the exact
    text of the ``…_response`` object, with ``sign`` following it."""
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    sign = sign_with_rsa2(_keys()[1], content, CHARSET)
    return "{" + json.dumps(response_key) + ":" + content + ',"sign":' + json.dumps(sign) + "}"


def merged_params(args, form) -> dict[str, str]:
    """The request's parameters from query string and form; a name given twice with
    different values is refused rather than guessed."""
    params = args.to_dict(flat=True)
    for key, value in form.to_dict(flat=True).items():
        if key in params and params[key] != value:
            raise SandboxError(_("请求参数重复且不一致。"), "40002", "isv.invalid-parameter")
        params[key] = value
    return params


def verify_merchant_request(params: dict[str, str]) -> None:
    """Check the merchant's RSA2 signature (every parameter except ``sign``, as the SDK
    signs) and that the app_id is the one this sandbox serves. Raises SandboxError."""
    if params.get("app_id") != current_app.config["ALIPAY_APP_ID"]:
        raise SandboxError(_("无效的 AppID 参数。"), "40002", "isv.invalid-app-id")
    if params.get("sign_type") != "RSA2":
        raise SandboxError(_("签名类型必须是 RSA2。"), "40002", "isv.invalid-signature-type")
    sign = params.get("sign", "")
    content = get_sign_content({k: v for k, v in params.items() if k != "sign"})
    try:
        method = rsa.verify(
            content.encode(CHARSET), base64.b64decode(sign, validate=True), _keys()[0]
        )
    except (ValueError, rsa.VerificationError):
        method = None
    if method != "SHA-256":
        raise SandboxError(_("验签出错，请确认请求参数与签名。"), "40002", "isv.invalid-signature")


def _biz(params: dict[str, str]) -> dict:
    try:
        biz = json.loads(params.get("biz_content") or "{}")
    except ValueError:
        biz = None
    if not isinstance(biz, dict):
        raise SandboxError(_("业务参数格式错误。"), "40002", "isv.invalid-parameter")
    return biz


def _amount(text) -> int:
    try:
        fen = wire_to_fen(text)
    except ValueError:
        fen = 0
    if fen < 1:
        raise SandboxError(_("金额格式错误。"), "40004", "ACQ.INVALID_PARAMETER")
    return fen


def _now_shanghai() -> str:
    return utcnow().astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _shanghai(moment: datetime | None) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _alipay_number() -> str:
    # Alipay's numbers: date, a channel tag, then digits (28 in all).
    return (
        utcnow().astimezone(SHANGHAI).strftime("%Y%m%d")
        + "22001"
        + (f"{secrets.randbelow(10**15):015d}")
    )


def _seller_id() -> str:
    return current_app.config.get("ALIPAY_SELLER_ID") or DEFAULT_SELLER_ID


def _trade(out_trade_no: str) -> SandboxTrade | None:
    return db.session.scalar(
        select(SandboxTrade).where(
            SandboxTrade.app_id == current_app.config["ALIPAY_APP_ID"],
            SandboxTrade.out_trade_no == out_trade_no,
        )
    )


# --- the cashier (page and wap pay) -----------------------------------------------------


@dataclass
class Cashier:
    """What the pay page shows: the trade and a signed ticket carrying its expiry."""

    trade: SandboxTrade
    ticket: str
    expires_at: datetime | None


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="sandbox-cashier")


def _parse_time_expire(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    except (TypeError, ValueError) as error:
        raise SandboxError(_("绝对超时时间格式错误。"), "40004", "ACQ.INVALID_PARAMETER") from (
            error
        )


def _close_if_waiting(trade: SandboxTrade) -> None:
    db.session.execute(
        update(SandboxTrade)
        .where(SandboxTrade.id == trade.id, SandboxTrade.status == "WAIT_BUYER_PAY")
        .values(status="TRADE_CLOSED")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def open_cashier(params: dict[str, str]) -> Cashier:
    """A signed page/wap pay request: create the trade, or reuse it for the same order.

    Raises SandboxError (shown to the buyer) for a bad signature or app_id, bad business
    parameters, an out_trade_no already used with another amount, or a trade that is
    closed, expired or already paid.
    """
    verify_merchant_request(params)
    method = params.get("method", "")
    biz = _biz(params)
    out_trade_no = str(biz.get("out_trade_no", ""))
    if not _OUT_NO.fullmatch(out_trade_no):
        raise SandboxError(_("商户订单号格式错误。"), "40004", "ACQ.INVALID_PARAMETER")
    total_fen = _amount(biz.get("total_amount"))
    subject = str(biz.get("subject") or "").strip()
    if not subject:
        raise SandboxError(_("缺少订单标题。"), "40004", "ACQ.INVALID_PARAMETER")
    if biz.get("product_code") != PAGE_METHODS.get(method):
        raise SandboxError(_("产品码与接口不匹配。"), "40004", "ACQ.INVALID_PARAMETER")
    expires_at = _parse_time_expire(biz.get("time_expire"))

    trade = _trade(out_trade_no)
    if trade is None:
        trade = SandboxTrade(
            app_id=params["app_id"],
            out_trade_no=out_trade_no,
            trade_no=_alipay_number(),
            subject=subject[:256],
            total_fen=total_fen,
            product_code=PAGE_METHODS[method],
            notify_url=params.get("notify_url", "")[:512],
            return_url=params.get("return_url", "")[:512],
        )
        db.session.add(trade)
        try:
            db.session.commit()
        except IntegrityError:  # opened twice at once: use the other one
            db.session.rollback()
            trade = _trade(out_trade_no)
    if trade.total_fen != total_fen:
        raise SandboxError(
            _("交易信息被篡改：同一订单号的金额不一致。"), "40004", "ACQ.CONTEXT_INCONSISTENT"
        )
    if trade.status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        raise SandboxError(_("这笔交易已经支付过了。"), "40004", "ACQ.TRADE_HAS_SUCCESS")
    if trade.status == "TRADE_CLOSED":
        raise SandboxError(_("交易已关闭，不能再支付。"), "40004", "ACQ.TRADE_HAS_CLOSE")
    if expires_at is not None and expires_at <= utcnow():
        _close_if_waiting(trade)
        raise SandboxError(_("交易已超时关闭，请重新下单。"), "40004", "ACQ.TRADE_HAS_CLOSE")
    # The latest request says where to come back to.
    trade.notify_url = params.get("notify_url", "")[:512]
    trade.return_url = params.get("return_url", "")[:512]
    trade.product_code = PAGE_METHODS[method]
    db.session.commit()
    ticket = _serializer().dumps(
        {"trade_no": trade.trade_no, "expires": expires_at.isoformat() if expires_at else None}
    )
    return Cashier(trade=trade, ticket=ticket, expires_at=expires_at)


def _trade_for_ticket(trade_no: str, ticket: str) -> tuple[SandboxTrade, datetime | None]:
    try:
        data = _serializer().loads(ticket or "")
    except BadSignature as error:
        raise SandboxError(_("支付页面已失效，请回到商家重新发起支付。")) from error
    if not isinstance(data, dict) or data.get("trade_no") != trade_no:
        raise SandboxError(_("支付页面已失效，请回到商家重新发起支付。"))
    trade = db.session.scalar(select(SandboxTrade).where(SandboxTrade.trade_no == trade_no))
    if trade is None:
        raise SandboxError(_("交易不存在。"), "40004", "ACQ.TRADE_NOT_EXIST")
    expires = datetime.fromisoformat(data["expires"]) if data.get("expires") else None
    return trade, expires


def pay(trade_no: str, ticket: str) -> str:
    """The buyer pays: mark TRADE_SUCCESS (once), POST the signed notification to the
    merchant, and return where to send the browser (return_url with signed parameters).

    Paying an already-paid trade again only returns the return URL. Raises SandboxError
    for a closed or expired trade or a forged ticket.
    """
    trade, expires = _trade_for_ticket(trade_no, ticket)
    if trade.status == "WAIT_BUYER_PAY" and expires is not None and expires <= utcnow():
        _close_if_waiting(trade)
        raise SandboxError(_("交易已超时关闭，请重新下单。"), "40004", "ACQ.TRADE_HAS_CLOSE")
    if trade.status == "TRADE_CLOSED":
        raise SandboxError(_("交易已关闭，不能再支付。"), "40004", "ACQ.TRADE_HAS_CLOSE")
    if trade.status == "WAIT_BUYER_PAY":
        moved = db.session.execute(
            update(SandboxTrade)
            .where(SandboxTrade.id == trade.id, SandboxTrade.status == "WAIT_BUYER_PAY")
            .values(status="TRADE_SUCCESS", paid_at=utcnow(), buyer_logon_id=SANDBOX_BUYER)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        db.session.refresh(trade)
        if moved == 1:
            log.info("sandbox trade %s paid (%s)", trade.trade_no, trade.out_trade_no)
            deliver_notification(trade)
    return return_url_for(trade)


def cancel_url(trade_no: str, ticket: str) -> str:
    """Where the buyer goes on leaving the cashier without paying: the merchant's return
    URL, unsigned and without trade parameters (the trade stays unpaid)."""
    trade, _expires = _trade_for_ticket(trade_no, ticket)
    return trade.return_url or "/"


def return_url_for(trade: SandboxTrade) -> str:
    """The merchant's return_url with Alipay's signed synchronous-return parameters."""
    if not trade.return_url:
        return "/"
    method = (
        "alipay.trade.wap.pay"
        if trade.product_code == "QUICK_WAP_WAY"
        else ("alipay.trade.page.pay")
    )
    params = sign_params(
        {
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "total_amount": fen_to_wire(trade.total_fen),
            "app_id": trade.app_id,
            "auth_app_id": trade.app_id,
            "seller_id": _seller_id(),
            "method": method + ".return",
            "timestamp": _now_shanghai(),
            "charset": CHARSET,
            "version": "1.0",
        }
    )
    separator = "&" if "?" in trade.return_url else "?"
    return trade.return_url + separator + urllib.parse.urlencode(params)


# --- notifications ----------------------------------------------------------------------


def notification_params(trade: SandboxTrade) -> dict[str, str]:
    """The signed asynchronous notification for a trade's current state."""
    amount = fen_to_wire(trade.total_fen)
    params = {
        "notify_time": _now_shanghai(),
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
        "gmt_create": _shanghai(trade.created_at),
        "gmt_payment": _shanghai(trade.paid_at),
        "seller_id": _seller_id(),
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
    a few times; log every attempt. True when delivered.

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


# --- API methods ------------------------------------------------------------------------


def _ok(**fields) -> dict:
    return {"code": "10000", "msg": "Success", **fields}


def _need_trade(biz: dict) -> SandboxTrade:
    trade = None
    if biz.get("out_trade_no"):
        trade = _trade(str(biz["out_trade_no"]))
    elif biz.get("trade_no"):
        trade = db.session.scalar(
            select(SandboxTrade).where(SandboxTrade.trade_no == str(biz["trade_no"]))
        )
    if trade is None:
        raise SandboxError("交易不存在", "40004", "ACQ.TRADE_NOT_EXIST")
    return trade


def _trade_query(biz: dict) -> dict:
    trade = _need_trade(biz)
    amount = fen_to_wire(trade.total_fen)
    answer = _ok(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        buyer_logon_id=trade.buyer_logon_id or SANDBOX_BUYER,
        trade_status=trade.status,
        total_amount=amount,
    )
    if trade.paid_at is not None:
        answer.update(
            buyer_pay_amount=amount,
            receipt_amount=amount,
            invoice_amount=amount,
            point_amount="0.00",
            send_pay_date=_shanghai(trade.paid_at),
        )
    return answer


def _trade_close(biz: dict) -> dict:
    trade = _need_trade(biz)
    if trade.status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        raise SandboxError("交易状态不合法", "40004", "ACQ.TRADE_STATUS_ERROR")
    _close_if_waiting(trade)
    return _ok(trade_no=trade.trade_no, out_trade_no=trade.out_trade_no)


def _refund_answer(trade: SandboxTrade, refund: SandboxRefund, fund_change: bool) -> dict:
    return _ok(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        buyer_logon_id=trade.buyer_logon_id or SANDBOX_BUYER,
        fund_change="Y" if fund_change else "N",
        refund_fee=fen_to_wire(trade.refunded_fen),
        send_back_fee=fen_to_wire(refund.amount_fen),
        gmt_refund_pay=_shanghai(refund.created_at),
    )


def _existing_refund(trade: SandboxTrade, out_request_no: str) -> SandboxRefund | None:
    return db.session.scalar(
        select(SandboxRefund).where(
            SandboxRefund.trade_id == trade.id, SandboxRefund.out_request_no == out_request_no
        )
    )


def _trade_refund(biz: dict) -> dict:
    trade = _need_trade(biz)
    # Alipay: without out_request_no the refund is the whole-trade refund request.
    out_request_no = str(biz.get("out_request_no") or trade.out_trade_no)
    if not _OUT_NO.fullmatch(out_request_no):
        raise SandboxError("参数有误", "40004", "ACQ.INVALID_PARAMETER")
    amount_fen = _amount(biz.get("refund_amount"))
    existing = _existing_refund(trade, out_request_no)
    if existing is not None:  # the same refund again: the first answer, no money moves
        return _refund_answer(trade, existing, fund_change=False)
    if trade.status != "TRADE_SUCCESS":
        raise SandboxError("交易状态不合法", "40004", "ACQ.TRADE_STATUS_ERROR")
    try:
        moved = db.session.execute(
            update(SandboxTrade)
            .where(
                SandboxTrade.id == trade.id,
                SandboxTrade.status == "TRADE_SUCCESS",
                SandboxTrade.refunded_fen + amount_fen <= SandboxTrade.total_fen,
            )
            .values(refunded_fen=SandboxTrade.refunded_fen + amount_fen)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            db.session.rollback()
            raise SandboxError("退款金额超限", "40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
        refund = SandboxRefund(
            trade_id=trade.id, out_request_no=out_request_no, amount_fen=amount_fen
        )
        db.session.add(refund)
        # A trade refunded in full is closed, as Alipay does.
        db.session.execute(
            update(SandboxTrade)
            .where(SandboxTrade.id == trade.id, SandboxTrade.refunded_fen == SandboxTrade.total_fen)
            .values(status="TRADE_CLOSED")
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    except IntegrityError:  # the same out_request_no raced in: answer with the winner
        db.session.rollback()
        db.session.refresh(trade)
        return _refund_answer(trade, _existing_refund(trade, out_request_no), fund_change=False)
    db.session.refresh(trade)
    log.info("sandbox refund %s: %d fen of %s", out_request_no, amount_fen, trade.out_trade_no)
    return _refund_answer(trade, refund, fund_change=True)


def _identity_digest(card: str) -> str:
    # The pretend Alipay keeps no card numbers: last four plus a keyed digest, enough to
    # tell a repeated transfer from a different one.
    digest = hmac.new(current_app.secret_key.encode(), card.encode(), hashlib.sha256)
    return f"{card[-4:]}:{digest.hexdigest()[:40]}"


def _masked_name(name: str) -> str:
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def _transfer_answer(transfer: SandboxTransfer) -> dict:
    if transfer.status == "FAIL":
        raise SandboxError(PAYEE_FAILURE[1], "40004", PAYEE_FAILURE[0])
    return _ok(
        out_biz_no=transfer.out_biz_no,
        order_id=transfer.order_id,
        pay_fund_order_id=transfer.order_id,
        status=transfer.status,
        trans_date=_shanghai(transfer.created_at),
    )


def _transfer_by_out_biz_no(out_biz_no: str) -> SandboxTransfer | None:
    return db.session.scalar(
        select(SandboxTransfer).where(
            SandboxTransfer.app_id == current_app.config["ALIPAY_APP_ID"],
            SandboxTransfer.out_biz_no == out_biz_no,
        )
    )


def _fund_transfer(biz: dict) -> dict:
    out_biz_no = str(biz.get("out_biz_no") or "")
    if not _OUT_NO.fullmatch(out_biz_no):
        raise SandboxError("商户订单号格式错误", "40004", "INVALID_PARAMETER")
    if biz.get("product_code") != "TRANS_BANKCARD_NO_PWD" or (
        biz.get("biz_scene") != "DIRECT_TRANSFER"
    ):
        raise SandboxError("产品码或业务场景不支持", "40004", "INVALID_PARAMETER")
    try:
        amount_fen = wire_to_fen(biz.get("trans_amount"))
    except ValueError:
        amount_fen = 0
    if amount_fen < 1:
        raise SandboxError("金额格式错误", "40004", "INVALID_PARAMETER")
    payee = biz.get("payee_info")
    if not isinstance(payee, dict) or payee.get("identity_type") != "BANKCARD_ACCOUNT":
        raise SandboxError("收款方信息有误", "40004", "INVALID_PARAMETER")
    card, name = str(payee.get("identity") or ""), str(payee.get("name") or "").strip()
    if not re.fullmatch(r"[0-9]{10,30}", card, re.ASCII) or not name:
        raise SandboxError("收款方银行卡号或户名有误", "40004", "PAYEE_CARD_INFO_ERROR")
    identity = _identity_digest(card)

    transfer = _transfer_by_out_biz_no(out_biz_no)
    if transfer is None:
        transfer = SandboxTransfer(
            app_id=current_app.config["ALIPAY_APP_ID"],
            out_biz_no=out_biz_no,
            order_id=_alipay_number(),
            amount_fen=amount_fen,
            payee_identity=identity,
            payee_name=_masked_name(name),
            status="FAIL" if card.endswith(FAILING_CARD_SUFFIX) else "SUCCESS",
        )
        db.session.add(transfer)
        try:
            db.session.commit()
            log.info("sandbox transfer %s: %s", out_biz_no, transfer.status)
        except IntegrityError:
            db.session.rollback()
            transfer = _transfer_by_out_biz_no(out_biz_no)
    if transfer.amount_fen != amount_fen or transfer.payee_identity != identity:
        raise SandboxError(
            "两次请求商户单号一样，但是收款人或金额等信息不一致",
            "40004",
            "PAYMENT_INFO_INCONSISTENCY",
        )
    return _transfer_answer(transfer)


def _fund_query(biz: dict) -> dict:
    transfer = _transfer_by_out_biz_no(str(biz.get("out_biz_no") or ""))
    if transfer is None:
        raise SandboxError("转账订单不存在", "40004", "ORDER_NOT_EXIST")
    answer = _ok(
        order_id=transfer.order_id,
        pay_fund_order_id=transfer.order_id,
        out_biz_no=transfer.out_biz_no,
        status=transfer.status,
        trans_amount=fen_to_wire(transfer.amount_fen),
        pay_date=_shanghai(transfer.created_at),
    )
    if transfer.status == "FAIL":
        answer.update(error_code=PAYEE_FAILURE[0], fail_reason=PAYEE_FAILURE[1])
    return answer


API_METHODS = {
    "alipay.trade.query": _trade_query,
    "alipay.trade.close": _trade_close,
    "alipay.trade.refund": _trade_refund,
    "alipay.fund.trans.uni.transfer": _fund_transfer,
    "alipay.fund.trans.common.query": _fund_query,
}


def api_call(params: dict[str, str]) -> tuple[str, dict]:
    """Answer one signed API request: (response key, response object) for
    :func:`signed_response`. Every refusal is an Alipay-style error object."""
    method = params.get("method", "")
    handler = API_METHODS.get(method)
    key = method.replace(".", "_") + "_response" if handler else "error_response"
    try:
        if handler is None:
            raise SandboxError("不存在的方法名", "40002", "isv.invalid-method")
        verify_merchant_request(params)
        return key, handler(_biz(params))
    except SandboxError as error:
        db.session.rollback()
        return key, error.as_response()
