"""The public export: every transaction, in posting order, as the hash chain sees it.

One JSON object per line::

    {"id", "key", "kind", "created_at", "memo", "reverses",
     "entries": [{"account", "amount_fen"}], "prev_hash", "hash"}

``created_at`` is the exact text that was hashed. Anyone can recompute the chain from
this file alone with ``python -m ledger.verify export.jsonl``.
"""

import json
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ledger.canonical import GENESIS_HASH
from ledger.models import Entry, LedgerHead, Transaction

BATCH = 1000


def transaction_dict(tx: Transaction) -> dict:
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
    """Yield every transaction as an export dict, in id order, ``batch`` at a time
    (memory stays flat however long the chain is)."""
    last_id = 0
    while True:
        rows = list(
            session.scalars(
                select(Transaction)
                .where(Transaction.id > last_id)
                .order_by(Transaction.id)
                .limit(batch)
                .options(selectinload(Transaction.entries).selectinload(Entry.account))
            )
        )
        if not rows:
            return
        for tx in rows:
            yield transaction_dict(tx)
        last_id = rows[-1].id
        # Let go of what this batch loaded (memory stays flat) without touching anything
        # else the caller's session holds.
        for tx in rows:
            for entry in tx.entries:
                session.expunge(entry)
            session.expunge(tx)


def iter_export_lines(session: Session) -> Iterator[str]:
    for item in iter_export(session):
        yield json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n"


def head(session: Session) -> tuple[int, str]:
    """(number of transactions, hash of the last one — 64 zeros when empty)."""
    row = session.get(LedgerHead, 1)
    if row is None:
        return 0, GENESIS_HASH
    return int(row.count), row.hash
