"""Household income beyond sales: land rent, wages, dividends and co-op shares.

Each payment to one household is one transaction, keyed by its cause (for example
``income_land:2026:SJ-001``):

    debit  <payer account>          the amount (enterprise:<id>, coop:<name>, collective:…)
    credit household:<code>         the same amount (the programme now owes it to them)

Kinds are exactly ``income_land``, ``income_wages``, ``income_dividend`` and
``income_coop``; a correction is a new transaction of kind ``income_reversal`` that
reverses the original whole (``reverses`` = the original). Amounts are integer fen.

How amounts are computed (every helper rounds half up to the fen, in integers):
- land rent = land in 0.01 mu × rent per mu (fen) / 100;
- wages     = days in 0.01 day × daily rate (fen) / 100;
- dividends = a pool split over eligible households by integer weight with the
  largest-remainder method (:func:`ledger.allocation.split_by_weight`), so the parts
  add up to the pool exactly;
- co-op     = amount per membership × memberships.

Plain SQLAlchemy, no Flask. Functions flush, never commit: the caller's unit of work
commits the postings together with its own records.
"""

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from ledger.accounts import HOUSEHOLD_PREFIX, ensure_account
from ledger.allocation import split_by_weight
from ledger.errors import LedgerError
from ledger.kinds import CHANNEL_OF_KIND, CHANNELS, INCOME_KINDS, INCOME_REVERSAL_KIND
from ledger.models import Account, Entry, Transaction
from ledger.posting import Posted, find, post, reverse

# Which ledger account kind a payer's code prefix names.
PAYER_KINDS = {
    "enterprise": "enterprise",
    "coop": "coop",
    "collective": "collective",
    "income": "income",
}


def _half_up(numerator: int, denominator: int) -> int:
    return (numerator * 2 + denominator) // (denominator * 2)


def land_rent_fen(land_hundredths_mu: int, rent_fen_per_mu: int) -> int:
    """Rent for land measured in 0.01 mu at ``rent_fen_per_mu``; half up to the fen."""
    _check_non_negative(land_hundredths_mu=land_hundredths_mu, rent_fen_per_mu=rent_fen_per_mu)
    return _half_up(land_hundredths_mu * rent_fen_per_mu, 100)


def wages_fen(days_hundredths: int, daily_rate_fen: int) -> int:
    """Wages for days measured in 0.01 day at ``daily_rate_fen``; half up to the fen."""
    _check_non_negative(days_hundredths=days_hundredths, daily_rate_fen=daily_rate_fen)
    return _half_up(days_hundredths * daily_rate_fen, 100)


def coop_fen(memberships: int, fen_per_membership: int) -> int:
    _check_non_negative(memberships=memberships, fen_per_membership=fen_per_membership)
    return memberships * fen_per_membership


def dividend_parts(pool_fen: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split a dividend pool over household codes by weight; parts sum to the pool.

    Keys are taken in sorted order so ties (the odd fen) go to the earlier code.
    Raises ``ValueError`` for a negative pool or weight, or a pool with no weights.
    """
    ordered = {code: weights[code] for code in sorted(weights)}
    return split_by_weight(pool_fen, ordered)


def _check_non_negative(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")


def income_key(channel: str, period: str, household_code: str, revision: int = 1) -> str:
    """The idempotency key of one household's income of a channel for a period.

    ``revision`` > 1 is the re-posting after a reversal (``…#2``)."""
    base = f"{INCOME_KINDS[channel]}:{period}:{household_code}"
    return base if revision <= 1 else f"{base}#{revision}"


def payer_account_kind(code: str) -> str:
    prefix = code.split(":", 1)[0]
    if prefix not in PAYER_KINDS or ":" not in code or not code.split(":", 1)[1]:
        raise LedgerError(f"payer account {code!r} must be enterprise:…, coop:…, collective:…")
    return PAYER_KINDS[prefix]


def post_income(
    session: Session,
    key: str,
    channel: str,
    payer_account: str,
    household_code: str,
    amount_fen: int,
    memo: str = "",
    payer_name: str = "",
    now: datetime | None = None,
) -> Posted:
    """Post one household's income (flush, no commit): debit the payer, credit the household.

    Accounts are created if missing (the payer with the kind its prefix names). A repeated
    ``key`` with the same content returns the first posting (``created=False``).

    Raises :class:`LedgerError` (unknown channel, bad payer code, amount not a positive
    integer) or :class:`ledger.errors.IdempotencyConflict` (key used with other content).
    """
    if channel not in INCOME_KINDS:
        raise LedgerError(f"income channel must be one of {tuple(INCOME_KINDS)}")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise LedgerError("amount_fen must be a positive integer")
    household = HOUSEHOLD_PREFIX + household_code
    ensure_account(session, payer_account, payer_account_kind(payer_account), payer_name)
    ensure_account(session, household, "household", household_code)
    return post(
        session,
        key,
        INCOME_KINDS[channel],
        [(payer_account, amount_fen), (household, -amount_fen)],
        memo=memo,
        now=now,
    )


def reverse_income(
    session: Session, original_key: str, memo: str = "", now: datetime | None = None
) -> Posted:
    """Reverse an income posting whole (flush, no commit); idempotent by the original's key.

    Raises :class:`LedgerError` when no income was posted under ``original_key`` and
    :class:`ledger.errors.Overdrawn` when the household has already been paid out more
    than it is still owed (it cannot be owed less than nothing).
    """
    original = find(session, original_key)
    if original is None or original.kind not in INCOME_KINDS.values():
        raise LedgerError(f"no income posted under {original_key}")
    return reverse(
        session,
        f"{INCOME_REVERSAL_KIND}:{original_key}",
        original.id,
        INCOME_REVERSAL_KIND,
        memo=memo,
        now=now,
    )


def income_by_household(session: Session, codes: list[str] | None = None) -> dict[str, dict]:
    """Household code → fen received per channel and ``total``, straight from the ledger.

    Sums the credits to each household account by the kind of the transaction, where a
    reversal or refund counts against the kind of the transaction it reverses; payouts
    (money leaving for the bank card) are not income and are left out.
    """
    original = aliased(Transaction)
    kind = func.coalesce(original.kind, Transaction.kind)
    stmt = (
        select(Account.code, kind, func.sum(-Entry.amount_fen))
        .join(Entry, Entry.account_id == Account.id)
        .join(Transaction, Transaction.id == Entry.transaction_id)
        .outerjoin(original, original.id == Transaction.reverses_id)
        .where(Account.kind == "household", kind.in_(list(CHANNEL_OF_KIND)))
        .group_by(Account.code, kind)
    )
    if codes is not None:
        stmt = stmt.where(Account.code.in_([HOUSEHOLD_PREFIX + c for c in codes]))
    result: dict[str, dict] = defaultdict(lambda: dict.fromkeys((*CHANNELS, "total"), 0))
    for account_code, tx_kind, fen in session.execute(stmt):
        row = result[account_code[len(HOUSEHOLD_PREFIX) :]]
        row[CHANNEL_OF_KIND[tx_kind]] += int(fen)
        row["total"] += int(fen)
    return dict(result)


def income_totals(session: Session) -> dict[str, int]:
    """Programme totals per channel and ``total`` (fen), from the ledger."""
    totals = dict.fromkeys((*CHANNELS, "total"), 0)
    for row in income_by_household(session).values():
        for name, fen in row.items():
            totals[name] += fen
    return totals
