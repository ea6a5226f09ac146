"""``flask audit verify``: the audit chain is whole, and every money-moving posting made
since the log began is named by an audit record (who caused it)."""

import json
from dataclasses import dataclass, field

from sqlalchemy import select

from ledger import Transaction
from shop.audit.chain import GENESIS, HASHED_FIELDS, record_hash
from shop.audit.models import AuditHead, AuditRecord

# Postings a person causes: starting a payout, a refund (online or an offline sale
# reversed), an income reversal, a duplicate household's balance merged. Settling a
# payout is Alipay's answer, not a decision.
MONEY_MOVING_KINDS = ("payout", "refund", "income_reversal", "household_merge")


@dataclass
class AuditVerifyResult:
    count: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _one_snapshot(session) -> None:
    """Read the log, its head and the postings as of one moment. On PostgreSQL each
    statement of a READ COMMITTED transaction sees what committed before it, so a refund
    or payout committed with its record between reading the log and reading the
    postings would look like a posting nobody made (a check run on a live shop). Only a
    transaction not yet begun can choose its isolation level."""
    current = session.registry() if hasattr(session, "registry") else session  # scoped or not
    if current.get_bind().dialect.name == "postgresql" and not current.in_transaction():
        current.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def verify_audit(session) -> AuditVerifyResult:
    result = AuditVerifyResult()
    _one_snapshot(session)
    named: set[str] = set()
    expected_seq, prev = 1, GENESIS
    rows = session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars()
    for row in rows:
        if row.seq != expected_seq:
            result.problems.append(
                f"audit record {expected_seq} is missing (the next one is {row.seq})"
            )
        if row.prev_hash != prev:
            result.problems.append(f"audit record {row.seq}: does not follow the one before it")
        fields = {name: getattr(row, name) for name in HASHED_FIELDS}
        if record_hash(row.prev_hash, fields) != row.hash:
            result.problems.append(f"audit record {row.seq}: changed after it was written")
        try:
            named.update(json.loads(row.ledger_keys or "[]"))
        except ValueError:
            result.problems.append(f"audit record {row.seq}: ledger_keys is not JSON")
        prev, expected_seq = row.hash, row.seq + 1
        result.count += 1
    head = session.get(AuditHead, 1)
    ledger_from = 0
    if head is not None:
        ledger_from = head.ledger_from
        if head.count != result.count or head.hash != prev:
            result.problems.append(
                f"audit head names {head.count} records ending {head.hash[:12]}…, "
                f"the log has {result.count} ending {prev[:12]}…"
            )
    result.head_hash = prev
    postings = session.execute(
        select(Transaction.id, Transaction.key, Transaction.kind)
        .where(Transaction.id > ledger_from, Transaction.kind.in_(MONEY_MOVING_KINDS))
        .order_by(Transaction.id)
    )
    for tx_id, key, kind in postings:
        if key not in named:
            result.problems.append(
                f"ledger transaction {tx_id} ({kind} {key}): no audit record says who made it"
            )
    return result
