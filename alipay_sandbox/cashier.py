"""The pretend Alipay's cashier: page pay (PC) and wap pay (phone).

A signed pay request opens (or reuses) the trade and shows a page with Pay and Cancel;
the page carries a signed ticket with the trade's expiry, so a forged or stale page
cannot pay. Paying moves the trade to TRADE_SUCCESS once, POSTs the signed notification
to the merchant and sends the browser to the signed return URL. Each public function
owns its transaction.
"""

import urllib.parse
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from alipay_sandbox.errors import SandboxError
from alipay_sandbox.models import SandboxTrade
from alipay_sandbox.notifications import deliver_notification
from alipay_sandbox.protocol import (
    CHARSET,
    OUT_NO,
    SANDBOX_BUYER,
    alipay_number,
    amount_fen,
    biz_content,
    log,
    now_shanghai,
    seller_id,
    sign_params,
    verify_merchant_request,
)
from alipay_sandbox.trades import close_if_waiting, find_trade
from shop.db import utcnow
from shop.extensions import db
from shop.formatting import SHANGHAI
from shop.money import fen_to_wire

PAGE_METHODS = {
    "alipay.trade.page.pay": "FAST_INSTANT_TRADE_PAY",
    "alipay.trade.wap.pay": "QUICK_WAP_WAY",
}


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


def open_cashier(params: dict[str, str]) -> Cashier:
    """A signed page/wap pay request: create the trade, or reuse it for the same order.

    Raises SandboxError (shown to the buyer) for a bad signature or app_id, bad business
    parameters, an out_trade_no already used with another amount, or a trade that is
    closed, expired or already paid.
    """
    verify_merchant_request(params)
    method = params.get("method", "")
    biz = biz_content(params)
    out_trade_no = str(biz.get("out_trade_no", ""))
    if not OUT_NO.fullmatch(out_trade_no):
        raise SandboxError(_("商户订单号格式错误。"), "40004", "ACQ.INVALID_PARAMETER")
    total_fen = amount_fen(biz.get("total_amount"))
    subject = str(biz.get("subject") or "").strip()
    if not subject:
        raise SandboxError(_("缺少订单标题。"), "40004", "ACQ.INVALID_PARAMETER")
    if biz.get("product_code") != PAGE_METHODS.get(method):
        raise SandboxError(_("产品码与接口不匹配。"), "40004", "ACQ.INVALID_PARAMETER")
    expires_at = _parse_time_expire(biz.get("time_expire"))

    trade = find_trade(out_trade_no)
    if trade is None:
        trade = SandboxTrade(
            app_id=params["app_id"],
            out_trade_no=out_trade_no,
            trade_no=alipay_number(),
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
            trade = find_trade(out_trade_no)
    if trade.total_fen != total_fen:
        raise SandboxError(
            _("交易信息被篡改：同一订单号的金额不一致。"), "40004", "ACQ.CONTEXT_INCONSISTENT"
        )
    if trade.status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        raise SandboxError(_("这笔交易已经支付过了。"), "40004", "ACQ.TRADE_HAS_SUCCESS")
    if trade.status == "TRADE_CLOSED":
        raise SandboxError(_("交易已关闭，不能再支付。"), "40004", "ACQ.TRADE_HAS_CLOSE")
    if expires_at is not None and expires_at <= utcnow():
        close_if_waiting(trade)
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
        close_if_waiting(trade)
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
            "seller_id": seller_id(),
            "method": method + ".return",
            "timestamp": now_shanghai(),
            "charset": CHARSET,
            "version": "1.0",
        }
    )
    separator = "&" if "?" in trade.return_url else "?"
    return trade.return_url + separator + urllib.parse.urlencode(params)
