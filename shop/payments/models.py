"""What the payment provider told us."""

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime, utcnow
from shop.extensions import db


class PaymentNotification(db.Model):
    """Every asynchronous notification received, with our verdict: the audit trail of
    what Alipay told us and why we accepted or refused it."""

    __tablename__ = "payment_notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    notify_id: Mapped[str] = mapped_column(String(128), default="")
    out_trade_no: Mapped[str] = mapped_column(String(64), default="", index=True)
    trade_no: Mapped[str] = mapped_column(String(64), default="")
    trade_status: Mapped[str] = mapped_column(String(32), default="")
    total_amount: Mapped[str] = mapped_column(String(20), default="")
    verdict: Mapped[str] = mapped_column(String(12))  # accepted | repeat | ignored | rejected
    reason: Mapped[str] = mapped_column(String(200), default="")
    params: Mapped[str] = mapped_column(Text, default="")
