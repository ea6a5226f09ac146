"""``alipay.trade.refund`` as the pretend Alipay answers it.

Refunds are unique per (trade, out_request_no): the same request again returns the first
answer with ``fund_change=N`` and moves no money. The refunded total never exceeds the
trade's total (a conditional UPDATE); a trade refunded in full is closed, as Alipay does.
"""

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from alipay_sandbox.errors import SandboxError
from alipay_sandbox.models import SandboxRefund, SandboxTrade
from alipay_sandbox.protocol import OUT_NO, SANDBOX_BUYER, amount_fen, log, ok, shanghai
from alipay_sandbox.trades import need_trade
from shop.extensions import db
from shop.money import fen_to_wire


def _refund_answer(trade: SandboxTrade, refund: SandboxRefund, fund_change: bool) -> dict:
    return ok(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        buyer_logon_id=trade.buyer_logon_id or SANDBOX_BUYER,
        fund_change="Y" if fund_change else "N",
        refund_fee=fen_to_wire(trade.refunded_fen),
        send_back_fee=fen_to_wire(refund.amount_fen),
        gmt_refund_pay=shanghai(refund.created_at),
    )


def _existing_refund(trade: SandboxTrade, out_request_no: str) -> SandboxRefund | None:
    return db.session.scalar(
        select(SandboxRefund).where(
            SandboxRefund.trade_id == trade.id, SandboxRefund.out_request_no == out_request_no
        )
    )


def trade_refund(biz: dict) -> dict:
    """Refund ``refund_amount`` of a paid trade (commits). Raises SandboxError for an
    unknown or unpaid trade, a bad amount or one past what is left to refund."""
    trade = need_trade(biz)
    # Alipay: without out_request_no the refund is the whole-trade refund request.
    out_request_no = str(biz.get("out_request_no") or trade.out_trade_no)
    if not OUT_NO.fullmatch(out_request_no):
        raise SandboxError("参数有误", "40004", "ACQ.INVALID_PARAMETER")
    fen = amount_fen(biz.get("refund_amount"))
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
                SandboxTrade.refunded_fen + fen <= SandboxTrade.total_fen,
            )
            .values(refunded_fen=SandboxTrade.refunded_fen + fen)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            db.session.rollback()
            raise SandboxError("退款金额超限", "40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
        refund = SandboxRefund(trade_id=trade.id, out_request_no=out_request_no, amount_fen=fen)
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
    log.info("sandbox refund %s: %d fen of %s", out_request_no, fen, trade.out_trade_no)
    return _refund_answer(trade, refund, fund_change=True)
