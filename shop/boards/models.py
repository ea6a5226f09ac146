"""Aggregates behind the public boards, kept in step with the ledger.

Every ledger transaction is folded in exactly once, in posting order, inside the
database transaction that posted it (``BoardState.last_transaction_id`` is the
watermark). So a board request reads a handful of indexed rows whatever the length of
the history, and the boards can always be rebuilt from the ledger alone
(``flask --app wsgi boards rebuild``).

Amounts are integer fen. Nothing here is personal data: buyers appear only as they
chose (masked name, nickname, or 爱心人士) and are told apart by keyed digests that
are never published; households by code (names are joined in, masked, at render time).
"""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ledger import CHANNELS  # noqa: F401  (the results board columns, re-exported)
from shop.db import UTCDateTime
from shop.extensions import db


class BoardState(db.Model):
    """The single row (id 1): the last ledger transaction folded into the boards."""

    __tablename__ = "board_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_transaction_id: Mapped[int] = mapped_column(BigInteger, default=0)


class BoardPeriod(db.Model):
    """Love-board totals for a period: ``all``, ``m:2026-11`` or ``d:2026-11-25``
    (Asia/Shanghai, by the day the sale was paid). Net of refunds: a fully refunded
    purchase no longer counts as an order, its units or its buyer."""

    __tablename__ = "board_period"

    period: Mapped[str] = mapped_column(String(12), primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger, default=0)
    units: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    beneficiary_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    buyers: Mapped[int] = mapped_column(BigInteger, default=0)


class BoardRank(db.Model):
    """One buyer (``kind`` buyer: a person as they chose to appear), organisation
    (``org``) or counted person (``who``: every buyer, anonymous ones too, only for the
    buyer count — never listed) in a period. ``key`` is a keyed digest."""

    __tablename__ = "board_rank"
    __table_args__ = (
        # Rankings read this backwards: amount, then key to break ties, no sort needed.
        Index("ix_board_rank_period_kind_amount", "period", "kind", "amount_fen", "key"),
        CheckConstraint("kind IN ('buyer', 'org', 'who')", name="kind"),
    )

    period: Mapped[str] = mapped_column(String(12), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    orders: Mapped[int] = mapped_column(BigInteger, default=0)
    units: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    beneficiary_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class BoardFeed(db.Model):
    """One purchase (an online order or an offline sale line) as the public sees it."""

    __tablename__ = "board_feed"
    __table_args__ = (
        CheckConstraint("source IN ('online', 'offline')", name="source"),
        Index("ix_board_feed_at_id", "at", "id"),
        CheckConstraint(
            "board_display IN ('masked', 'nickname', 'anonymous')", name="board_display"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transaction.id"), unique=True)
    source: Mapped[str] = mapped_column(String(8))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shop_order.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    board_display: Mapped[str] = mapped_column(String(12))
    board_name: Mapped[str] = mapped_column(String(40))
    organization: Mapped[str] = mapped_column(String(120), default="")
    items: Mapped[str] = mapped_column(Text, default="[]")  # JSON [{slug, name, quantity, unit}]
    units: Mapped[int] = mapped_column(default=0)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    beneficiary_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # Digests naming the rows this purchase added to (to take them back on refund).
    who_key: Mapped[str] = mapped_column(String(64))
    rank_key: Mapped[str | None] = mapped_column(String(64))
    org_key: Mapped[str | None] = mapped_column(String(64))


class BoardFeedHousehold(db.Model):
    """How much of one purchase reached one household (net of refunds)."""

    __tablename__ = "board_feed_household"
    __table_args__ = (Index("ix_board_feed_household_code_feed", "household_code", "feed_id"),)

    feed_id: Mapped[int] = mapped_column(ForeignKey("board_feed.id"), primary_key=True)
    household_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class BoardHousehold(db.Model):
    """A household's income so far, by channel (credits to ``household:<code>`` by
    postings of each kind, less their reversals)."""

    __tablename__ = "board_household"

    household_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    sales_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    land_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    wages_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    dividends_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    coop_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    purchases: Mapped[int] = mapped_column(BigInteger, default=0)


class BoardHouseholdMonth(db.Model):
    """A household's income in one month (``2026-11``, Asia/Shanghai) from one channel.
    A reversal counts in the month of the posting it reverses."""

    __tablename__ = "board_household_month"

    household_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class BoardMonth(db.Model):
    """The programme's household income in one month from one channel."""

    __tablename__ = "board_month"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
