"""Accounts: the codes that name who holds money, and making sure they exist.

A household's account is ``household:<code>`` — what the programme owes that household
(a credit balance, ≤ 0 fen). The other well-known accounts are named here once.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ledger.errors import LedgerError
from ledger.models import ACCOUNT_KINDS, Account

HOUSEHOLD_PREFIX = "household:"
CLEARING = "alipay:clearing"  # money buyers paid through Alipay, not yet settled
FEES = "fees:alipay"  # Alipay's fee on each online sale
IN_FLIGHT = "payout:in-flight"  # payouts sent to Alipay and not yet confirmed
PAID_OUT = "bank:paid-out"  # money that reached households' bank cards


def household_account(code: str) -> str:
    """The account code of household ``code``: ``household:SJ-001``."""
    return HOUSEHOLD_PREFIX + code


def household_code(account_code: str) -> str | None:
    """The household code an account code names, or None for any other account."""
    if account_code.startswith(HOUSEHOLD_PREFIX):
        return account_code[len(HOUSEHOLD_PREFIX) :]
    return None


def ensure_account(session: Session, code: str, kind: str, name: str = "") -> Account:
    """Return the account with ``code``, creating it (flush, no commit) if absent."""
    if kind not in ACCOUNT_KINDS:
        raise LedgerError(f"unknown account kind {kind!r}")
    account = session.scalar(select(Account).where(Account.code == code))
    if account is None:
        account = Account(code=code, kind=kind, name=name or code, balance_fen=0)
        session.add(account)
        session.flush()
    elif account.kind != kind:
        raise LedgerError(f"account {code} is a {account.kind} account, not {kind}")
    return account


def ensure_accounts(session: Session, wanted: dict[str, tuple[str, str]]) -> None:
    """Make sure every account in ``wanted`` (code → (kind, name)) exists: one query for
    all of them, then create the missing ones (flush, no commit). A sale that reaches
    148 households checks its accounts in one round trip, not 148.

    Raises :class:`LedgerError` for an unknown kind or an existing account of another kind.
    """
    for kind, _name in wanted.values():
        if kind not in ACCOUNT_KINDS:
            raise LedgerError(f"unknown account kind {kind!r}")
    existing = {
        code: kind
        for code, kind in session.execute(
            select(Account.code, Account.kind).where(Account.code.in_(sorted(wanted)))
        )
    }
    for code in sorted(wanted):
        kind, name = wanted[code]
        if code not in existing:
            session.add(Account(code=code, kind=kind, name=name or code, balance_fen=0))
        elif existing[code] != kind:
            raise LedgerError(f"account {code} is a {existing[code]} account, not {kind}")
    if len(existing) < len(wanted):
        session.flush()


@dataclass(frozen=True)
class AccountRef:
    """What posting needs of an account: its row id and kind (neither ever changes)."""

    id: int
    kind: str


# PostgreSQL: one array parameter, so the statement's text is the same whatever the
# number of codes and the server plans it once (an IN list of 247 codes is a new text,
# parsed and planned anew, for every sale shared by 244 households).
_PG_ACCOUNT_REFS = text(
    "SELECT id, code, kind FROM ledger_account WHERE code = ANY(CAST(:codes AS varchar[]))"
)


def account_refs(session: Session, codes: Iterable[str]) -> dict[str, AccountRef]:
    """code → :class:`AccountRef` for the accounts among ``codes`` that exist (one query)."""
    wanted = sorted(codes)
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_PG_ACCOUNT_REFS, {"codes": wanted})
    else:
        rows = session.execute(
            select(Account.id, Account.code, Account.kind).where(Account.code.in_(wanted))
        )
    return {code: AccountRef(account_id, kind) for account_id, code, kind in rows}
