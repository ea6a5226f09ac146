"""Fund transfers to bank cards (``alipay.fund.trans.uni.transfer`` and
``alipay.fund.trans.common.query``) as the pretend Alipay answers them.

Transfers are unique per (app_id, out_biz_no): repeating a request returns the first
answer and pays nothing twice; the same out_biz_no with another amount or payee is
refused. A card ending ``0000`` fails (the payee's account is refused), to try failures.
The sandbox keeps no card numbers: the last four digits and a keyed digest.
"""

import hashlib
import hmac
import re

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alipay_sandbox.errors import SandboxError
from alipay_sandbox.models import SandboxTransfer
from alipay_sandbox.protocol import OUT_NO, alipay_number, log, ok, shanghai
from shop.extensions import db
from shop.money import fen_to_wire, wire_to_fen

FAILING_CARD_SUFFIX = "0000"
PAYEE_FAILURE = ("PAYEE_ACCOUNT_STATUS_ERROR", "收款账户状态异常")


def _identity_digest(card: str) -> str:
    # Last four plus a keyed digest: enough to tell a repeated transfer from a different one.
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
    return ok(
        out_biz_no=transfer.out_biz_no,
        order_id=transfer.order_id,
        pay_fund_order_id=transfer.order_id,
        status=transfer.status,
        trans_date=shanghai(transfer.created_at),
    )


def _transfer_by_out_biz_no(out_biz_no: str) -> SandboxTransfer | None:
    return db.session.scalar(
        select(SandboxTransfer).where(
            SandboxTransfer.app_id == current_app.config["ALIPAY_APP_ID"],
            SandboxTransfer.out_biz_no == out_biz_no,
        )
    )


def fund_transfer(biz: dict) -> dict:
    """Transfer ``trans_amount`` to a bank card, once per out_biz_no (commits). Raises
    SandboxError for bad parameters, an inconsistent repeat, or a refused payee."""
    out_biz_no = str(biz.get("out_biz_no") or "")
    if not OUT_NO.fullmatch(out_biz_no):
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
            order_id=alipay_number(),
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


def fund_query(biz: dict) -> dict:
    """The state of a transfer by out_biz_no. Raises SandboxError when there is none."""
    transfer = _transfer_by_out_biz_no(str(biz.get("out_biz_no") or ""))
    if transfer is None:
        raise SandboxError("转账订单不存在", "40004", "ORDER_NOT_EXIST")
    answer = ok(
        order_id=transfer.order_id,
        pay_fund_order_id=transfer.order_id,
        out_biz_no=transfer.out_biz_no,
        status=transfer.status,
        trans_amount=fen_to_wire(transfer.amount_fen),
        pay_date=shanghai(transfer.created_at),
    )
    if transfer.status == "FAIL":
        answer.update(error_code=PAYEE_FAILURE[0], fail_reason=PAYEE_FAILURE[1])
    return answer
