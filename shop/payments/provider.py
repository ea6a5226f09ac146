"""The payment provider: Alipay through the official SDK (``alipay-sdk-python``).

The shop talks to this small interface only (``pay_url``, ``verify_notification``,
``query``, ``close``, ``refund``, ``transfer``, ``transfer_query``); the built-in
sandbox gateway and real Alipay are the same to it, only ``ALIPAY_GATEWAY_URL`` and the
keys differ.

Money crosses this boundary as integer fen. Alipay's wire format is yuan strings
("158.00"); they are produced and parsed by :mod:`shop.money`'s strict wire
functions, never with floats.

Errors: :class:`ProviderError` carries Alipay's code and whether the same request may
be sent again (``retryable``: the network failed, Alipay was busy, or the answer could
not be verified, so the outcome is unknown). Business refusals are not retryable.
Notifications that fail verification raise :class:`NotificationRejected`.
"""

import base64
import binascii
import http.client
import json
import logging
import re
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import rsa
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.constant.CommonConstants import (
    PATTERN_RESPONSE_BEGIN,
    PATTERN_RESPONSE_SIGN_BEGIN,
    THREAD_LOCAL,
)
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayFundTransCommonQueryModel import AlipayFundTransCommonQueryModel
from alipay.aop.api.domain.AlipayFundTransUniTransferModel import AlipayFundTransUniTransferModel
from alipay.aop.api.domain.AlipayTradeCloseModel import AlipayTradeCloseModel
from alipay.aop.api.domain.AlipayTradePagePayModel import AlipayTradePagePayModel
from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
from alipay.aop.api.domain.AlipayTradeRefundModel import AlipayTradeRefundModel
from alipay.aop.api.domain.AlipayTradeWapPayModel import AlipayTradeWapPayModel
from alipay.aop.api.domain.BankcardExtInfo import BankcardExtInfo
from alipay.aop.api.domain.Participant import Participant
from alipay.aop.api.exception.Exception import RequestException, ResponseException
from alipay.aop.api.request.AlipayFundTransCommonQueryRequest import (
    AlipayFundTransCommonQueryRequest,
)
from alipay.aop.api.request.AlipayFundTransUniTransferRequest import (
    AlipayFundTransUniTransferRequest,
)
from alipay.aop.api.request.AlipayTradeCloseRequest import AlipayTradeCloseRequest
from alipay.aop.api.request.AlipayTradePagePayRequest import AlipayTradePagePayRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
from alipay.aop.api.request.AlipayTradeWapPayRequest import AlipayTradeWapPayRequest
from alipay.aop.api.util.SignatureUtils import get_sign_content
from alipay.aop.api.util.WebUtils import url_encode
from flask import current_app

from shop.formatting import SHANGHAI
from shop.money import fen_to_wire, wire_to_fen
from shop.payments import keys

log = logging.getLogger("shop.payments.provider")

ALIPAY_GATEWAY = "https://openapi.alipay.com/gateway.do"
# Where the built-in sandbox (alipay_sandbox, mounted by create_app when ALIPAY_SANDBOX is
# on) answers: a URL contract only; the shop reaches it over HTTP like Alipay.
SANDBOX_GATEWAY_PATH = "/sandbox/alipay/gateway.do"
CHARSET = "utf-8"
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")

# Alipay refuses these characters in a subject.
_SUBJECT_FORBIDDEN = re.compile(r"[/=&]")
# Transfer refusals that settle the payout as failed (the money did not move).
_PAYEE_FAILURES = {
    "PAYEE_NOT_EXIST",
    "PAYEE_ACCOUNT_STATUS_ERROR",
    "PAYEE_ACCOUNT_NOT_EXSIT",
    "PAYEE_USERINFO_ERROR",
    "PAYEE_CARD_INFO_ERROR",
    "PAYEE_ACC_OCUPIED",
    "CARD_BIN_ERROR",
    "INVALID_CARDNO",
    "PAYEE_USER_TYPE_ERROR",
}


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """A verified asynchronous notification (amount in fen)."""

    out_trade_no: str
    trade_no: str
    trade_status: str
    total_fen: int
    app_id: str
    notify_id: str = ""
    seller_id: str = ""


@dataclass(frozen=True)
class TradeStatus:
    """Alipay's signed answer to a trade query (amount in fen)."""

    out_trade_no: str
    trade_no: str
    trade_status: str
    total_fen: int


@dataclass(frozen=True)
class RefundResult:
    """A refund Alipay accepted. ``refunded_fen`` is the trade's total refunded so far."""

    out_trade_no: str
    trade_no: str
    refunded_fen: int
    fund_change: bool


@dataclass(frozen=True)
class TransferResult:
    """A transfer's state: ``status`` is SUCCESS, FAIL or DEALING (ask again later)."""

    out_biz_no: str
    status: str
    order_id: str = ""
    fail_reason: str = ""


class NotificationRejected(Exception):
    """A notification that must be answered ``fail``; ``reason`` says why (for the log)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProviderError(Exception):
    """Alipay could not be asked, or said no.

    ``retryable`` is True when the outcome is unknown or the failure temporary (network,
    ``20000``/``*SYSTEM_ERROR``, an answer whose signature does not verify): sending the
    same idempotent request again (same out_request_no / out_biz_no) is safe and right.
    """

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


def _shanghai(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _subject(text: str) -> str:
    return _SUBJECT_FORBIDDEN.sub(" ", text or "").strip()[:256] or "order"


# --- the SDK client with a working transport --------------------------------------------


class _TransportError(Exception):
    pass


def _post(url: str, query_string: str, body: str, timeout: float) -> bytes:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
    elif parts.scheme == "http":
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    else:
        raise _TransportError(f"unsupported gateway URL {url!r}")
    try:
        connection.request(
            "POST",
            (parts.path or "/") + "?" + query_string,
            body=body.encode(CHARSET),
            headers={
                "Content-Type": f"application/x-www-form-urlencoded;charset={CHARSET}",
                "Cache-Control": "no-cache",
            },
        )
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as error:
        raise _TransportError(f"{type(error).__name__}: {error}") from error
    finally:
        connection.close()
    if response.status != 200:
        raise _TransportError(f"gateway answered HTTP {response.status}")
    return data


def _response_hash_method(raw: bytes, public_key: rsa.PublicKey) -> str:
    """The hash the answer's signature uses, located exactly as the SDK locates it."""
    text = raw.decode(CHARSET)
    begin = PATTERN_RESPONSE_BEGIN.search(text)
    last = None
    for last in PATTERN_RESPONSE_SIGN_BEGIN.finditer(text):  # noqa: B007 (the last one counts)
        pass
    if not begin or not last:
        raise ResponseException("response shape maybe illegal")
    content = text[begin.end() - 1 : last.start() + 1].encode(CHARSET)
    sign = text[last.end() : text.find('"', last.end())]
    try:
        return rsa.verify(content, base64.b64decode(sign), public_key)
    except (rsa.VerificationError, binascii.Error, ValueError) as error:
        raise ResponseException(f"response sign verify failed: {error}") from error


class _Client(DefaultAlipayClient):
    """The SDK's client with its own signing and response verification, but our HTTP.

    The SDK's ``do_post`` ignores the port in the gateway URL (it connects to :80 and then
    fails concatenating the port number) and cannot verify HTTPS hosts on a custom port;
    only the transport is replaced here, everything that signs or verifies is the SDK's.
    Answers must also be signed with SHA-256: the SDK's check accepts SHA-1 signatures.
    """

    def __init__(self, config: AlipayClientConfig, public_key: rsa.PublicKey, timeout: float):
        super().__init__(config)
        self._server_url = config.server_url
        self._public_key = public_key
        self._timeout = timeout

    def execute(self, request) -> str:
        THREAD_LOCAL.uuid = str(uuid.uuid1())
        query_string, params = self._DefaultAlipayClient__prepare_request(request)
        raw = _post(self._server_url, query_string, url_encode(params, CHARSET), self._timeout)
        content = self._DefaultAlipayClient__parse_response(raw)
        method = _response_hash_method(raw, self._public_key)
        if method != "SHA-256":
            raise ResponseException(f"response signed with {method}, not SHA-256")
        return content


# --- the provider -----------------------------------------------------------------------


def _retryable(code: str, sub_code: str) -> bool:
    return code == "20000" or sub_code.endswith("SYSTEM_ERROR") or sub_code.startswith("isp.")


class AlipayProvider:
    """Alipay (or the built-in sandbox, which speaks the same protocol) for one merchant app.

    ``private_key_pem`` is the merchant key (PKCS#1 PEM), ``alipay_public_key_pem`` the
    key Alipay's notifications and answers are verified with (SubjectPublicKeyInfo PEM).
    """

    def __init__(
        self,
        app_id: str,
        private_key_pem: str,
        alipay_public_key_pem: str,
        gateway_url: str = ALIPAY_GATEWAY,
        seller_id: str | None = None,
        timeout: float = 15,
    ):
        self.app_id = app_id
        self.gateway_url = gateway_url
        self.seller_id = seller_id or None
        self._alipay_public = rsa.PublicKey.load_pkcs1_openssl_pem(alipay_public_key_pem.encode())
        config = AlipayClientConfig()
        config.app_id = app_id
        config.app_private_key = private_key_pem
        config.alipay_public_key = alipay_public_key_pem
        config.server_url = gateway_url
        config.sign_type = "RSA2"
        config.charset = CHARSET
        config.timeout = timeout
        self._client = _Client(config, self._alipay_public, timeout)

    # -- paying ---------------------------------------------------------------------------

    def pay_url(
        self,
        order_no: str,
        total_fen: int,
        subject: str,
        channel: str,
        return_url: str,
        notify_url: str,
        expires_at: datetime,
    ) -> str:
        """A signed GET URL of the gateway's page-pay (``pc``) or wap-pay (``wap``) cashier."""
        if channel == "wap":
            model, request_class = AlipayTradeWapPayModel(), AlipayTradeWapPayRequest
            model.product_code = "QUICK_WAP_WAY"
        else:
            model, request_class = AlipayTradePagePayModel(), AlipayTradePagePayRequest
            model.product_code = "FAST_INSTANT_TRADE_PAY"
        model.out_trade_no = order_no
        model.total_amount = fen_to_wire(total_fen)
        model.subject = _subject(subject)
        model.time_expire = _shanghai(expires_at)
        request = request_class(biz_model=model)
        request.return_url = return_url
        request.notify_url = notify_url
        try:
            return self._client.page_execute(request, http_method="GET")
        except RequestException as error:  # signing failed: the merchant key is unusable
            raise ProviderError("sign_failed", str(error), retryable=False) from error

    def verify_notification(self, params: Mapping[str, str]) -> Notification:
        """Check an asynchronous notification; return what it says, in fen.

        The signed string is every received parameter except ``sign`` and ``sign_type``,
        sorted by name, ``k=v`` joined by ``&``; only RSA2 (SHA256withRSA) is accepted.
        Raises :class:`NotificationRejected` for a missing, bad or SHA-1 signature,
        another app_id (or seller, when ALIPAY_SELLER_ID is configured), missing fields
        or a malformed ``total_amount``.
        """
        params = dict(params)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
            raise NotificationRejected("malformed parameters")
        sign = params.get("sign", "")
        if not sign:
            raise NotificationRejected("no signature")
        if params.get("sign_type") != "RSA2":
            raise NotificationRejected(f"sign_type {params.get('sign_type')!r} is not RSA2")
        content = get_sign_content(
            {k: v for k, v in params.items() if k not in ("sign", "sign_type")}
        )
        try:
            signature = base64.b64decode(sign, validate=True)
            method = rsa.verify(content.encode(CHARSET), signature, self._alipay_public)
        except (binascii.Error, ValueError, rsa.VerificationError) as error:
            raise NotificationRejected("bad signature") from error
        if method != "SHA-256":
            raise NotificationRejected(f"signature uses {method}, not SHA-256")
        if params.get("app_id") != self.app_id:
            raise NotificationRejected(f"app_id {params.get('app_id')!r} is not ours")
        if self.seller_id and params.get("seller_id") != self.seller_id:
            raise NotificationRejected(f"seller_id {params.get('seller_id')!r} is not ours")
        for name in ("out_trade_no", "trade_no", "trade_status", "total_amount"):
            if not params.get(name):
                raise NotificationRejected(f"missing {name}")
        try:
            total_fen = wire_to_fen(params["total_amount"])
        except ValueError as error:
            raise NotificationRejected(f"malformed total_amount {params['total_amount']!r}") from (
                error
            )
        return Notification(
            out_trade_no=params["out_trade_no"],
            trade_no=params["trade_no"],
            trade_status=params["trade_status"],
            total_fen=total_fen,
            app_id=params["app_id"],
            notify_id=params.get("notify_id", ""),
            seller_id=params.get("seller_id", ""),
        )

    # -- API calls ------------------------------------------------------------------------

    def _execute(self, request) -> dict:
        method = request.get_params()["method"]
        try:
            text = self._client.execute(request)
        except _TransportError as error:
            raise ProviderError("network", f"{method}: {error}", retryable=True) from error
        except ResponseException as error:
            # We cannot trust what came back, so the outcome is unknown: ask again later.
            raise ProviderError("bad_response", f"{method}: {error}"[:300], True) from error
        except RequestException as error:
            raise ProviderError("sign_failed", f"{method}: {error}", False) from error
        try:
            body = json.loads(text)
        except ValueError as error:
            raise ProviderError("bad_response", f"{method}: not JSON", True) from error
        if not isinstance(body, dict):
            raise ProviderError("bad_response", f"{method}: not an object", True)
        return body

    @staticmethod
    def _error(body: dict) -> ProviderError:
        code = str(body.get("code", ""))
        sub_code = str(body.get("sub_code", "") or "")
        message = str(body.get("sub_msg") or body.get("msg") or "")
        return ProviderError(sub_code or code or "unknown", message, _retryable(code, sub_code))

    @staticmethod
    def _amount(body: dict, name: str) -> int:
        try:
            return wire_to_fen(body.get(name))
        except ValueError as error:
            raise ProviderError("bad_response", f"malformed {name} {body.get(name)!r}") from error

    def query(self, out_trade_no: str) -> TradeStatus | None:
        """Alipay's state of a trade, or None if Alipay has no such trade (never opened)."""
        model = AlipayTradeQueryModel()
        model.out_trade_no = out_trade_no
        body = self._execute(AlipayTradeQueryRequest(biz_model=model))
        if body.get("code") != "10000":
            if body.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
                return None
            raise self._error(body)
        if body.get("out_trade_no") != out_trade_no:
            raise ProviderError("bad_response", f"answer is about {body.get('out_trade_no')!r}")
        return TradeStatus(
            out_trade_no=out_trade_no,
            trade_no=str(body.get("trade_no", "")),
            trade_status=str(body.get("trade_status", "")),
            total_fen=self._amount(body, "total_amount"),
        )

    def close(self, out_trade_no: str) -> None:
        """Close an unpaid trade so it can no longer be paid. A trade Alipay never saw
        needs no closing; closing a paid trade raises ProviderError."""
        model = AlipayTradeCloseModel()
        model.out_trade_no = out_trade_no
        body = self._execute(AlipayTradeCloseRequest(biz_model=model))
        if body.get("code") == "10000" or body.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return
        raise self._error(body)

    def refund(
        self, out_trade_no: str, amount_fen: int, out_request_no: str, reason: str = ""
    ) -> RefundResult:
        """Refund ``amount_fen`` of a paid trade. Idempotent per ``out_request_no``: sending
        the same refund again returns Alipay's first answer and moves no more money.
        Refusals (e.g. ``ACQ.REFUND_AMT_NOT_EQUAL_TOTAL``, amount above what is left)
        raise a non-retryable ProviderError."""
        model = AlipayTradeRefundModel()
        model.out_trade_no = out_trade_no
        model.refund_amount = fen_to_wire(amount_fen)
        model.out_request_no = out_request_no
        model.refund_reason = _subject(reason or "退款")
        body = self._execute(AlipayTradeRefundRequest(biz_model=model))
        if body.get("code") != "10000":
            raise self._error(body)
        return RefundResult(
            out_trade_no=out_trade_no,
            trade_no=str(body.get("trade_no", "")),
            refunded_fen=self._amount(body, "refund_fee"),
            fund_change=body.get("fund_change") == "Y",
        )

    def transfer(
        self,
        out_biz_no: str,
        amount_fen: int,
        card_number: str,
        payee_name: str,
        remark: str = "",
    ) -> TransferResult:
        """Pay ``amount_fen`` to a personal bank card (alipay.fund.trans.uni.transfer,
        TRANS_BANKCARD_NO_PWD). Idempotent per ``out_biz_no``. A payee Alipay refuses
        (closed account, wrong name…) comes back as status FAIL with ``fail_reason``;
        DEALING means ask again with :meth:`transfer_query`."""
        card = re.sub(r"\s+", "", card_number or "")
        if not card.isdigit() or not payee_name:
            return TransferResult(out_biz_no, "FAIL", "", "收款银行卡号或户名缺失")
        payee = Participant()
        payee.identity = card
        payee.identity_type = "BANKCARD_ACCOUNT"
        payee.name = payee_name
        ext = BankcardExtInfo()
        ext.account_type = "2"  # a personal (对私) account
        payee.bankcard_ext_info = ext
        model = AlipayFundTransUniTransferModel()
        model.out_biz_no = out_biz_no
        model.trans_amount = fen_to_wire(amount_fen)
        model.product_code = "TRANS_BANKCARD_NO_PWD"
        model.biz_scene = "DIRECT_TRANSFER"
        model.order_title = _subject(remark or "转账")[:128]
        model.remark = _subject(remark or "转账")[:200]
        model.payee_info = payee
        body = self._execute(AlipayFundTransUniTransferRequest(biz_model=model))
        if body.get("code") != "10000":
            if body.get("sub_code") in _PAYEE_FAILURES:
                reason = str(body.get("sub_msg") or body.get("sub_code"))
                return TransferResult(out_biz_no, "FAIL", "", reason)
            raise self._error(body)
        return self._transfer_result(out_biz_no, body)

    def transfer_query(self, out_biz_no: str) -> TransferResult | None:
        """The state of a transfer, or None if Alipay has no transfer with this number."""
        model = AlipayFundTransCommonQueryModel()
        model.out_biz_no = out_biz_no
        model.product_code = "TRANS_BANKCARD_NO_PWD"
        model.biz_scene = "DIRECT_TRANSFER"
        body = self._execute(AlipayFundTransCommonQueryRequest(biz_model=model))
        if body.get("code") != "10000":
            if body.get("sub_code") == "ORDER_NOT_EXIST":
                return None
            raise self._error(body)
        return self._transfer_result(out_biz_no, body)

    @staticmethod
    def _transfer_result(out_biz_no: str, body: dict) -> TransferResult:
        status = str(body.get("status", ""))
        if status not in ("SUCCESS", "FAIL"):
            status = "DEALING"  # WAIT_PAY, DEALING, REFUND…: not final, ask again
        return TransferResult(
            out_biz_no=out_biz_no,
            status=status,
            order_id=str(body.get("order_id", "") or ""),
            fail_reason=str(body.get("fail_reason", "") or "") if status == "FAIL" else "",
        )


# --- wiring -----------------------------------------------------------------------------

_EXTENSION = "alipay_provider"


def gateway_url(config) -> str:
    """ALIPAY_GATEWAY_URL, else the built-in sandbox (when mounted), else Alipay."""
    if config.get("ALIPAY_GATEWAY_URL"):
        return config["ALIPAY_GATEWAY_URL"]
    if config.get("ALIPAY_SANDBOX"):
        return config["PUBLIC_BASE_URL"] + SANDBOX_GATEWAY_PATH
    return ALIPAY_GATEWAY


def get_provider() -> AlipayProvider:
    """The provider for the current app, built from its config and cached in
    ``app.extensions`` (rebuilt when the Alipay settings change)."""
    app = current_app._get_current_object()
    config = app.config
    settings = (
        config["ALIPAY_APP_ID"],
        config.get("ALIPAY_APP_PRIVATE_KEY_FILE"),
        config.get("ALIPAY_PUBLIC_KEY_FILE"),
        gateway_url(config),
        config.get("ALIPAY_SELLER_ID"),
        config.get("ALIPAY_TIMEOUT_SECONDS", 15),
    )
    cached = app.extensions.get(_EXTENSION)
    if cached is not None and cached[0] == settings:
        return cached[1]
    provider = AlipayProvider(
        app_id=settings[0],
        private_key_pem=keys.private_key_pkcs1_pem(keys.merchant_private_key_file(app)),
        alipay_public_key_pem=keys.public_key_pem(keys.alipay_public_key_file(app)),
        gateway_url=settings[3],
        seller_id=settings[4],
        timeout=settings[5],
    )
    app.extensions[_EXTENSION] = (settings, provider)
    return provider
