"""Statements: what an account saw, the trial balance, totals by product and rule.

Everything is recomputed from entries (not from the balance cache), so a statement is
also a check: its closing balance must equal ``Account.balance_fen``.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.models import Account, Entry, Transaction


@dataclass(frozen=True)
class StatementLine:
    transaction_id: int
    created_at: datetime
    kind: str
    memo: str
    amount_fen: int  # signed: negative = credited to the account (e.g. owed to a household)
    balance_fen: int  # running balance after this line


@dataclass
class Statement:
    code: str
    opening_fen: int
    lines: list[StatementLine] = field(default_factory=list)

    @property
    def closing_fen(self) -> int:
        return self.lines[-1].balance_fen if self.lines else self.opening_fen


def account_statement(
    session: Session,
    code: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> Statement:
    """Every entry on account ``code`` in posting order, between ``start`` (inclusive)
    and ``end`` (exclusive), with the opening balance before ``start``. An unknown
    account has an empty statement."""
    account_id = session.scalar(select(Account.id).where(Account.code == code))
    if account_id is None:
        return Statement(code, 0)
    base = (
        select(
            Entry.amount_fen,
            Transaction.id,
            Transaction.created_at,
            Transaction.kind,
            Transaction.memo,
        )
        .join(Transaction, Transaction.id == Entry.transaction_id)
        .where(Entry.account_id == account_id)
    )
    opening = 0
    if start is not None:
        opening = session.scalar(
            select(func.coalesce(func.sum(Entry.amount_fen), 0))
            .join(Transaction, Transaction.id == Entry.transaction_id)
            .where(Entry.account_id == account_id, Transaction.created_at < start)
        )
        base = base.where(Transaction.created_at >= start)
    if end is not None:
        base = base.where(Transaction.created_at < end)
    base = base.order_by(Transaction.id, Entry.position)
    if limit is not None:
        base = base.limit(limit)
    statement = Statement(code, int(opening))
    running = int(opening)
    for amount, tx_id, created_at, kind, memo in session.execute(base):
        running += amount
        statement.lines.append(StatementLine(tx_id, created_at, kind, memo, amount, running))
    return statement


@dataclass(frozen=True)
class TrialBalanceRow:
    code: str
    name: str
    kind: str
    debit_fen: int  # sum of positive entries
    credit_fen: int  # sum of negative entries, as a positive number
    balance_fen: int  # debit - credit


def trial_balance(session: Session) -> list[TrialBalanceRow]:
    """One row per account, by kind then code; the balances sum to zero."""
    rows = session.execute(
        select(
            Account.code,
            Account.name,
            Account.kind,
            func.coalesce(
                func.sum(func.coalesce(Entry.amount_fen, 0)).filter(Entry.amount_fen > 0), 0
            ),
            func.coalesce(
                func.sum(func.coalesce(-Entry.amount_fen, 0)).filter(Entry.amount_fen < 0), 0
            ),
        )
        .outerjoin(Entry, Entry.account_id == Account.id)
        .group_by(Account.id, Account.code, Account.name, Account.kind)
        .order_by(Account.kind, Account.code)
    )
    return [
        TrialBalanceRow(code, name, kind, int(d), int(c), int(d) - int(c))
        for code, name, kind, d, c in rows
    ]


def totals_by_kind(rows: list[TrialBalanceRow]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.kind] = totals.get(row.kind, 0) + row.balance_fen
    return totals


@dataclass(frozen=True)
class StatementPage:
    """The newest lines of an account (newest first) and, if there are older ones, the
    transaction id to pass as ``before_id`` for the next page."""

    lines: list[StatementLine]
    older_before_id: int | None


def latest_lines(
    session: Session, code: str, limit: int = 30, before_id: int | None = None
) -> StatementPage:
    """The account's entries newest first, ``limit`` at a time, each with the balance
    after it (worked back from the cached balance, so the first page reads only its own
    rows however long the history). ``before_id``: only transactions with smaller ids."""
    found = session.execute(
        select(Account.id, Account.balance_fen).where(Account.code == code)
    ).first()
    if found is None:
        return StatementPage([], None)
    account_id, balance = found
    later = 0
    if before_id is not None:
        later = session.scalar(
            select(func.coalesce(func.sum(Entry.amount_fen), 0)).where(
                Entry.account_id == account_id, Entry.transaction_id >= before_id
            )
        )
    rows = session.execute(
        select(
            Entry.amount_fen,
            Transaction.id,
            Transaction.created_at,
            Transaction.kind,
            Transaction.memo,
        )
        .join(Transaction, Transaction.id == Entry.transaction_id)
        .where(Entry.account_id == account_id)
        .where(Transaction.id < before_id if before_id is not None else True)
        .order_by(Transaction.id.desc(), Entry.position.desc())
        .limit(limit + 1)
    ).all()
    running = int(balance) - int(later)
    lines = []
    for amount, tx_id, created_at, kind, memo in rows[:limit]:
        lines.append(StatementLine(tx_id, created_at, kind, memo, int(amount), running))
        running -= int(amount)
    if len(rows) <= limit:
        return StatementPage(lines, None)
    boundary = lines[-1].transaction_id
    if rows[limit].id == boundary:  # a transaction split by the page edge: show it whole next
        kept = [line for line in lines if line.transaction_id != boundary]
        if kept:
            return StatementPage(kept, boundary + 1)
    return StatementPage(lines, boundary)
