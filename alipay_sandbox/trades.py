"""Trades as the pretend Alipay keeps them: finding one, closing one, and the
``alipay.trade.query`` / ``alipay.trade.close`` answers.

A trade is unique per (app_id, out_trade_no); its state moves WAIT_BUYER_PAY →
TRADE_SUCCESS or TRADE_CLOSED by conditional UPDATEs, so two requests at once cannot
both move it.
"""

from flask import current_app
from sqlalchemy import select, update

from alipay_sandbox.errors import SandboxError
from alipay_sandbox.models import SandboxTrade
from alipay_sandbox.protocol import SANDBOX_BUYER, ok, shanghai
from shop.extensions import db
from shop.money import fen_to_wire


def find_trade(out_trade_no: str) -> SandboxTrade | None:
    """The trade of this app's ``out_trade_no``, if any."""
    return db.session.scalar(
        select(SandboxTrade).where(
            SandboxTrade.app_id == current_app.config["ALIPAY_APP_ID"],
            SandboxTrade.out_trade_no == out_trade_no,
        )
    )


def need_trade(biz: dict) -> SandboxTrade:
    """The trade an API request names by ``out_trade_no`` or ``trade_no``. Raises
    SandboxError (ACQ.TRADE_NOT_EXIST) when there is none."""
    trade = None
    if biz.get("out_trade_no"):
        trade = find_trade(str(biz["out_trade_no"]))
    elif biz.get("trade_no"):
        trade = db.session.scalar(
            select(SandboxTrade).where(SandboxTrade.trade_no == str(biz["trade_no"]))
        )
    if trade is None:
        raise SandboxError("交易不存在", "40004", "ACQ.TRADE_NOT_EXIST")
    return trade


def close_if_waiting(trade: SandboxTrade) -> None:
    """Close the trade if it is still waiting for the buyer (commits)."""
    db.session.execute(
        update(SandboxTrade)
        .where(SandboxTrade.id == trade.id, SandboxTrade.status == "WAIT_BUYER_PAY")
        .values(status="TRADE_CLOSED")
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def trade_query(biz: dict) -> dict:
    """``alipay.trade.query``: the trade's state and, once paid, what was paid."""
    trade = need_trade(biz)
    amount = fen_to_wire(trade.total_fen)
    answer = ok(
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
            send_pay_date=shanghai(trade.paid_at),
        )
    return answer


def trade_close(biz: dict) -> dict:
    """``alipay.trade.close``: close an unpaid trade. Raises SandboxError for a paid one."""
    trade = need_trade(biz)
    if trade.status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        raise SandboxError("交易状态不合法", "40004", "ACQ.TRADE_STATUS_ERROR")
    close_if_waiting(trade)
    return ok(trade_no=trade.trade_no, out_trade_no=trade.out_trade_no)
