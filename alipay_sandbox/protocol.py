"""Alipay's wire protocol as the pretend gateway speaks it: keys, RSA2 signatures,
request parameters, amounts, times and Alipay-style numbers.

Requests must carry the merchant's RSA2 signature (verified with the merchant public
key); notifications and API answers are RSA2-signed with the sandbox's own private key
(the shop verifies them with ``ALIPAY_PUBLIC_KEY_FILE``, by default the sandbox's public
key). Amounts are fen inside the sandbox and yuan strings ("158.00") on the wire.

This is the only module of the sandbox that reads the shop's key files
(``shop.payments.keys``): the sandbox plays Alipay against the keys the shop uses.
"""

import base64
import json
import logging
import re
import secrets
from datetime import datetime

import rsa
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2
from flask import current_app
from flask_babel import gettext as _

from alipay_sandbox.errors import SandboxError
from shop.db import utcnow
from shop.formatting import SHANGHAI
from shop.money import wire_to_fen
from shop.payments import keys

# Under the shop's logger tree on purpose: mounted in the shop's app, the sandbox's lines
# go through the shop's log set-up (stderr, request ids) like every other line.
log = logging.getLogger("shop.payments.sandbox")

CHARSET = "utf-8"
SANDBOX_BUYER = "lia***@sandbox.com"
DEFAULT_SELLER_ID = "2088101000000000"
OUT_NO = re.compile(r"[A-Za-z0-9_\-]{1,64}", re.ASCII)


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


# --- parameters, amounts, times, numbers -------------------------------------------------


def biz_content(params: dict[str, str]) -> dict:
    """The request's ``biz_content`` JSON object. Raises SandboxError if it is not one."""
    try:
        biz = json.loads(params.get("biz_content") or "{}")
    except ValueError:
        biz = None
    if not isinstance(biz, dict):
        raise SandboxError(_("业务参数格式错误。"), "40002", "isv.invalid-parameter")
    return biz


def amount_fen(text) -> int:
    """A wire amount ("158.00") as fen, at least 1. Raises SandboxError otherwise."""
    try:
        fen = wire_to_fen(text)
    except ValueError:
        fen = 0
    if fen < 1:
        raise SandboxError(_("金额格式错误。"), "40004", "ACQ.INVALID_PARAMETER")
    return fen


def now_shanghai() -> str:
    return utcnow().astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def shanghai(moment: datetime | None) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def alipay_number() -> str:
    """A fresh trade_no / order_id shaped like Alipay's: date, a channel tag, then digits
    (28 in all)."""
    return (
        utcnow().astimezone(SHANGHAI).strftime("%Y%m%d")
        + "22001"
        + (f"{secrets.randbelow(10**15):015d}")
    )


def seller_id() -> str:
    return current_app.config.get("ALIPAY_SELLER_ID") or DEFAULT_SELLER_ID


def ok(**fields) -> dict:
    """A successful API answer with ``fields``."""
    return {"code": "10000", "msg": "Success", **fields}
