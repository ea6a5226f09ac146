"""Verify the ledger in the database: the chain, every zero sum, every cached balance.

:func:`verify_database` recomputes, from the stored rows alone, what
``python -m ledger.verify`` recomputes from the export, and also checks the caches
the database keeps for speed: each ``Account.balance_fen`` must equal the sum of its
entries, each household's ``sales_received_fen`` the sum of its credits by sales, and
``LedgerHead`` must name the last transaction.
"""

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.export import head, iter_export
from ledger.models import Account, Entry, Transaction
from ledger.sales import SALE_KINDS
from ledger.verify import verify_records

MAX_PROBLEMS = 50


@dataclass
class AuditResult:
    ok: bool
    count: int
    head_hash: str
    problems: list[str] = field(default_factory=list)


def verify_database(session: Session) -> AuditResult:
    """Check the whole ledger; ``problems`` name each mismatch (at most 50)."""
    chain = verify_records(enumerate(iter_export(session), start=1))
    problems = [f"chain: {chain.problem}"] if not chain.ok else []

    count, head_hash = head(session)
    if chain.ok and (count, head_hash) != (chain.count, chain.head_hash):
        problems.append(
            f"head says {count} transactions ending {head_hash[:12]}…, "
            f"the chain has {chain.count} ending {chain.head_hash[:12]}…"
        )

    sums = dict(
        session.execute(
            select(Entry.account_id, func.coalesce(func.sum(Entry.amount_fen), 0)).group_by(
                Entry.account_id
            )
        ).all()
    )
    from_sales = dict(
        session.execute(
            select(Entry.account_id, func.coalesce(func.sum(-Entry.amount_fen), 0))
            .join(Transaction, Transaction.id == Entry.transaction_id)
            .where(Transaction.kind.in_(SALE_KINDS))
            .group_by(Entry.account_id)
        ).all()
    )
    for account in session.scalars(select(Account).order_by(Account.code)):
        recomputed = int(sums.get(account.id, 0))
        if account.kind == "household" and account.sales_received_fen != int(
            from_sales.get(account.id, 0)
        ):
            problems.append(
                f"account {account.code}: received from sales {account.sales_received_fen} "
                f"fen, its sale entries sum to {int(from_sales.get(account.id, 0))} fen"
            )
        if account.balance_fen != recomputed:
            problems.append(
                f"account {account.code}: balance {account.balance_fen} fen, "
                f"entries sum to {recomputed} fen"
            )
        if account.kind == "household" and recomputed > 0:
            problems.append(f"account {account.code} is owed less than nothing ({recomputed})")
        if len(problems) >= MAX_PROBLEMS:
            break
    total = sum(int(v) for v in sums.values())
    if total != 0:
        problems.append(f"all entries together sum to {total} fen, not 0")
    return AuditResult(not problems, chain.count, chain.head_hash, problems[:MAX_PROBLEMS])
