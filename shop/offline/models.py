"""Offline sales (exhibition hall, events, live streams) and household income records.

These rows are the shop's working records beside the ledger: the ledger transaction a
row names (``transaction_id``) is the money; the row keeps what the village team typed
(channel, event, date, buyer as shown on the love board, the basis of an income amount)
so reports and boards can show it without parsing memos. A row is written in the same
database transaction as its posting and is never deleted; a reversal only fills in
``reversal_transaction_id`` / ``reversed_at``.

No buyer's full name or phone is stored: only ``board_name`` (masked name "王*",
nickname, or 爱心人士) and ``organization``, as the buyer chose to appear.
"""

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import UTCDateTime, utcnow
from shop.extensions import db

SALE_CHANNELS = ("hall", "event", "live")
PAYMENT_METHODS = ("cash", "wechat", "alipay", "card", "transfer", "other")
INCOME_CHANNELS = ("land", "wages", "dividend", "coop")
BATCH_PURPOSES = ("sales", "income")


class SalesSession(db.Model):
    """Where offline sales happen: the hall (one), a named event with dates, or a named
    live-stream session. Its takings go to the ledger account :attr:`cash_account`."""

    __tablename__ = "offline_session"
    __table_args__ = (
        UniqueConstraint("channel", "name", name="uq_offline_session_channel_name"),
        CheckConstraint("channel IN ('hall', 'event', 'live')", name="channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(80))
    starts_on: Mapped[date | None] = mapped_column(Date())
    ends_on: Mapped[date | None] = mapped_column(Date())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def cash_account(self) -> str:
        return "cash:hall" if self.channel == "hall" else f"cash:{self.channel}:{self.id}"


class ImportBatch(db.Model):
    """An uploaded CSV file (sales of an event/live session, or income) between preview
    and confirmation, and after. ``content_sha256`` identifies the file's content."""

    __tablename__ = "offline_batch"
    __table_args__ = (
        CheckConstraint("purpose IN ('sales', 'income')", name="purpose"),
        CheckConstraint("status IN ('pending', 'posted')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8), default="pending", index=True)
    filename: Mapped[str] = mapped_column(String(200), default="")
    content_sha256: Mapped[str] = mapped_column(String(64), index=True)
    content: Mapped[str] = mapped_column(Text)
    # Defaults for rows that leave them out: for sales the upload form's channel and
    # session; for income ``session_name`` holds the default payer account.
    channel: Mapped[str] = mapped_column(String(8), default="")
    session_name: Mapped[str] = mapped_column(String(80), default="")
    starts_on: Mapped[date | None] = mapped_column(Date())
    ends_on: Mapped[date | None] = mapped_column(Date())
    row_count: Mapped[int] = mapped_column(default=0)
    total_fen: Mapped[int] = mapped_column(default=0)
    posted_rows: Mapped[int] = mapped_column(default=0)
    skipped_rows: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OfflineSale(db.Model):
    """One offline sale line, posted to the ledger as an ``offline_sale`` transaction.

    ``row_key`` is the idempotency key of the posting (the transaction's ``key``): the
    same row uploaded again finds it and posts nothing.
    """

    __tablename__ = "offline_sale"
    __table_args__ = (
        CheckConstraint("channel IN ('hall', 'event', 'live')", name="channel"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_fen > 0", name="price_positive"),
        CheckConstraint(
            "board_display IN ('masked', 'nickname', 'anonymous')", name="board_display"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    row_key: Mapped[str] = mapped_column(String(128), unique=True)
    channel: Mapped[str] = mapped_column(String(8), index=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("offline_session.id"), index=True)
    session_name: Mapped[str] = mapped_column(String(80))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("offline_batch.id"), index=True)
    row_number: Mapped[int | None]
    sold_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    sold_on: Mapped[date] = mapped_column(Date(), index=True)  # Asia/Shanghai date
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    product_name: Mapped[str] = mapped_column(String(120))
    unit: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int]
    unit_price_fen: Mapped[int]
    total_fen: Mapped[int]
    beneficiary_fen: Mapped[int] = mapped_column(default=0)
    payment_method: Mapped[str] = mapped_column(String(10), default="cash")
    board_display: Mapped[str] = mapped_column(String(12), default="anonymous")
    board_name: Mapped[str] = mapped_column(String(40))
    organization: Mapped[str] = mapped_column(String(120), default="")
    receipt_no: Mapped[str] = mapped_column(String(40), default="")
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transaction.id"), unique=True)
    reversal_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    session: Mapped[SalesSession] = relationship()


class HouseholdIncome(db.Model):
    """One household's income of one channel for one period, posted as ``income_<…>``.

    ``quantity_hundredths`` is the basis in hundredths (land: 0.01 mu; wages: 0.01 day;
    dividend: the weight; co-op: memberships × 100) and ``rate_fen`` the rate per unit,
    where the amount was computed from them (0 when typed as an amount).
    """

    __tablename__ = "household_income"
    __table_args__ = (
        CheckConstraint("channel IN ('land', 'wages', 'dividend', 'coop')", name="channel"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    channel: Mapped[str] = mapped_column(String(8), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    household_code: Mapped[str] = mapped_column(String(16), index=True)
    period: Mapped[str] = mapped_column(String(16), index=True)
    quantity_hundredths: Mapped[int] = mapped_column(default=0)
    rate_fen: Mapped[int] = mapped_column(default=0)
    amount_fen: Mapped[int]
    payer_account: Mapped[str] = mapped_column(String(64))
    memo: Mapped[str] = mapped_column(String(120), default="")
    paid_on: Mapped[date | None] = mapped_column(Date())
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("offline_batch.id"), index=True)
    row_number: Mapped[int | None]
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transaction.id"), unique=True)
    reversal_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
