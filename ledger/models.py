"""Ledger tables: accounts, transactions, entries, and the chain head.

Sign convention: an entry's ``amount_fen`` is positive for a debit and negative for a
credit; a transaction's entries sum to zero. A household's account is a payable — what
the programme owes the household — so it carries a credit (negative) balance, and
``owed_fen = -balance_fen`` never goes below zero.

Transactions and entries are append-only (refused in the ORM by ``ledger.guard`` and on
PostgreSQL by triggers). ``Account.balance_fen`` and ``LedgerHead`` are caches kept in
the same database transaction as each posting; ``ledger verify`` recomputes both.
"""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

import ledger.guard  # noqa: F401  (arms the append-only guard for every session)
from ledger.base import AppendOnly, Base, UTCDateTime, utcnow

ACCOUNT_KINDS = (
    "clearing",  # Alipay clearing: money received, not yet settled
    "household",  # payable to one household
    "enterprise",  # the assistance enterprise's share
    "collective",  # the village collective
    "coop",  # a co-operative
    "fees",  # payment fees
    "payout",  # payouts in flight to bank cards
    "bank",  # paid out to bank cards
    "income",  # an outside source of household income (rent, wages, dividends)
    "cash",  # offline takings (exhibition hall, events)
)


class Account(Base):
    __tablename__ = "ledger_account"
    __table_args__ = (
        # A household can never be owed less than nothing.
        CheckConstraint("kind != 'household' OR balance_fen <= 0", name="household_not_overpaid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    kind: Mapped[str] = mapped_column(String(16))
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # A household's credits from sales so far (fen, positive; refunds and payouts do not
    # lower it): what a "matched" rule compares. Kept by post_sale under the chain lock,
    # like balance_fen a cache that `ledger verify` recomputes from the entries.
    sales_received_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Transaction(AppendOnly, Base):
    """One posting. ``id`` is its position in the chain (1, 2, 3, … with no gaps)."""

    __tablename__ = "ledger_transaction"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # ISO text exactly as hashed, so the chain never depends on how a database rounds time.
    created_at_text: Mapped[str] = mapped_column(String(32))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"), index=True)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    entries: Mapped[list["Entry"]] = relationship(
        order_by="Entry.position", back_populates="transaction"
    )


class Entry(AppendOnly, Base):
    __tablename__ = "ledger_entry"
    __table_args__ = (
        UniqueConstraint("transaction_id", "position", name="uq_ledger_entry_transaction_position"),
        CheckConstraint("amount_fen != 0", name="amount_nonzero"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transaction.id"), index=True)
    position: Mapped[int]
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_account.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)

    transaction: Mapped[Transaction] = relationship(back_populates="entries")
    account: Mapped[Account] = relationship()


class LedgerHead(Base):
    """The single row (id 1) naming the chain's last transaction; locked to append."""

    __tablename__ = "ledger_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class SaleLineRecord(AppendOnly, Base):
    """How one line of a posted sale was allocated: which rule, how much to households.

    Written with the sale and never changed (append-only, like the transaction), so
    totals by product and by rule come from the ledger itself.
    """

    __tablename__ = "ledger_sale_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transaction.id"), index=True)
    product_id: Mapped[int] = mapped_column(index=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_benefit_rule.id"), index=True)
    quantity: Mapped[int]
    line_total_fen: Mapped[int]
    share_fen: Mapped[int]
    remainder_account: Mapped[str] = mapped_column(String(64))
