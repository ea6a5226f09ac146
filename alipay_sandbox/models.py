"""State of the built-in sandbox gateway that plays Alipay on this machine.

These tables belong to the pretend Alipay, not to the shop: the shop never reads them,
and a production database does not have them (they are created by the sandbox's own
migration branch, `alipay_sandbox/migrations`, only where the sandbox is enabled).
Amounts are fen; Alipay's own wire format (yuan strings) is produced at the edge.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime, utcnow
from shop.extensions import db


class SandboxTrade(db.Model):
    __tablename__ = "sandbox_trade"
    __table_args__ = (
        UniqueConstraint("app_id", "out_trade_no", name="uq_sandbox_trade_app_out_trade_no"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    trade_no: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(256), default="")
    total_fen: Mapped[int]
    # WAIT_BUYER_PAY | TRADE_SUCCESS | TRADE_CLOSED | TRADE_FINISHED (Alipay's words)
    status: Mapped[str] = mapped_column(String(20), default="WAIT_BUYER_PAY")
    product_code: Mapped[str] = mapped_column(String(40), default="")
    notify_url: Mapped[str] = mapped_column(String(512), default="")
    return_url: Mapped[str] = mapped_column(String(512), default="")
    buyer_logon_id: Mapped[str] = mapped_column(String(64), default="")
    refunded_fen: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SandboxRefund(db.Model):
    __tablename__ = "sandbox_refund"
    __table_args__ = (
        UniqueConstraint("trade_id", "out_request_no", name="uq_sandbox_refund_trade_request"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trade_id: Mapped[int] = mapped_column(ForeignKey("sandbox_trade.id"), index=True)
    out_request_no: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SandboxTransfer(db.Model):
    """A fund transfer (alipay.fund.trans.uni.transfer) to a bank card."""

    __tablename__ = "sandbox_transfer"
    __table_args__ = (
        UniqueConstraint("app_id", "out_biz_no", name="uq_sandbox_transfer_app_out_biz_no"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32))
    out_biz_no: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    amount_fen: Mapped[int]
    payee_identity: Mapped[str] = mapped_column(String(64))
    payee_name: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="SUCCESS")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
