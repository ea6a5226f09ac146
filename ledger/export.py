"""The public export: every transaction, in posting order, as the hash chain sees it.

One JSON object per line::

    {"id", "key", "kind", "created_at", "memo", "reverses",
     "entries": [{"account", "amount_fen"}], "prev_hash", "hash"}

``created_at`` is the exact text that was hashed. Anyone can recompute the chain from
this file alone with ``python -m ledger.verify export.jsonl``.

Reading is done with plain column queries, a batch of transactions at a time (keyset
pagination on the id), so memory stays flat however long the chain is and nothing is
added to, or taken out of, the caller's session.
"""

import json
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.canonical import GENESIS_HASH
from ledger.models import Account, Entry, LedgerHead, Transaction

BATCH = 1000


def transaction_dict(tx: Transaction) -> dict:
    """The export dict of one loaded ``Transaction``."""
    return {
        "id": tx.id,
        "key": tx.key,
        "kind": tx.kind,
        "created_at": tx.created_at_text,
        "memo": tx.memo,
        "reverses": tx.reverses_id,
        "entries": [{"account": e.account.code, "amount_fen": e.amount_fen} for e in tx.entries],
        "prev_hash": tx.prev_hash,
        "hash": tx.hash,
    }


def iter_export(session: Session, batch: int = BATCH) -> Iterator[dict]:
    """Yield every transaction as an export dict, in id (= posting) order, ``batch``
    transactions per pair of queries."""
    last_id = 0
    while True:
        rows = session.execute(
            select(
                Transaction.id,
                Transaction.key,
                Transaction.kind,
                Transaction.created_at_text,
                Transaction.memo,
                Transaction.reverses_id,
                Transaction.prev_hash,
                Transaction.hash,
            )
            .where(Transaction.id > last_id)
            .order_by(Transaction.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        entries: dict[int, list[dict]] = {row.id: [] for row in rows}
        for tx_id, code, amount in session.execute(
            select(Entry.transaction_id, Account.code, Entry.amount_fen)
            .join(Account, Account.id == Entry.account_id)
            .where(Entry.transaction_id > last_id, Entry.transaction_id <= rows[-1].id)
            .order_by(Entry.transaction_id, Entry.position)
        ):
            entries[tx_id].append({"account": code, "amount_fen": int(amount)})
        for row in rows:
            yield {
                "id": row.id,
                "key": row.key,
                "kind": row.kind,
                "created_at": row.created_at_text,
                "memo": row.memo,
                "reverses": row.reverses_id,
                "entries": entries[row.id],
                "prev_hash": row.prev_hash,
                "hash": row.hash,
            }
        last_id = rows[-1].id


def iter_export_lines(session: Session) -> Iterator[str]:
    for item in iter_export(session):
        yield json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n"


def head(session: Session) -> tuple[int, str]:
    """(number of transactions, hash of the last one — 64 zeros when empty), read from
    the database, not from any copy the session holds."""
    row = session.execute(
        select(LedgerHead.count, LedgerHead.hash).where(LedgerHead.id == 1)
    ).first()
    if row is None:
        return 0, GENESIS_HASH
    return int(row.count), row.hash
