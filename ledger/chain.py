"""The chain head: the single row whose lock serialises every append.

Appending takes the head's row lock first (``UPDATE ledger_head``), so postings from
any number of processes are numbered and hashed one after another and the chain stays
linear; whatever must not change before the posting commits (balances a household
could be debited from, the boards' watermark) is read under that lock.
"""

from collections.abc import Sequence

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from ledger.canonical import GENESIS_HASH
from ledger.models import LedgerHead, Transaction

_HEAD = LedgerHead.__table__
# A no-op UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite); RETURNING
# reads the head as it is once the lock is granted, in the same round trip.
_LOCK_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(count=_HEAD.c.count)
    .returning(_HEAD.c.count, _HEAD.c.hash)
)
_ADVANCE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(count=bindparam("new_count"), hash=bindparam("new_hash"))
)
_PG_LOCK_HEAD_AND_FIND = text(
    "SELECT head_count, head_hash, posted_ids, peak_nodes, peak_hashes"
    " FROM ledger_lock_head(CAST(:wanted_keys AS varchar[]))"
)
# ``session.info`` key: (head count, {node key: hash}) — the Merkle tree's peaks read
# with the head's lock (PostgreSQL, migration 0019), for ledger.tree to grow the tree
# from without another query. Valid only for that count, in that transaction.
TREE_PEAKS = "ledger_tree_peaks"

# ``session.info`` key set to True when the session appends to the chain; whoever
# follows the ledger (the shop's boards) pops it at commit or rollback.
APPENDED = "ledger_appended"


def lock_head(session: Session) -> tuple[int, str]:
    """Take the chain head's lock for the rest of the caller's transaction and return
    (count, hash) as it is now, read after the lock was granted."""
    row = session.execute(_LOCK_HEAD).first()
    if row is None:  # a database emptied by hand (tests TRUNCATE): start at genesis
        session.execute(insert(_HEAD).values(id=1, count=0, hash=GENESIS_HASH))
        row = (0, GENESIS_HASH)
    count, hash_ = row
    forget(session, LedgerHead, [1])
    return int(count), hash_


def lock_head_and_find(
    session: Session, keys: Sequence[str]
) -> tuple[tuple[int, str], dict[str, Transaction]]:
    """Take the chain head's lock (as :func:`lock_head`) and return the head and the
        transactions already posted under ``keys``, looked up after the lock was granted:
        a twin that posted one of them a moment ago is seen. On PostgreSQL both happen in
        one round trip (``ledger_lock_head``, migrations 0008 and 0019, which also hands over the
    Merkle tree's peaks: :data:`TREE_PEAKS`)."""
    if session.get_bind().dialect.name != "postgresql":
        return lock_head(session), find_many(session, keys)
    head_count, head_hash, posted_ids, peak_nodes, peak_hashes = session.execute(
        _PG_LOCK_HEAD_AND_FIND, {"wanted_keys": list(keys)}
    ).one()
    if head_count is None:  # no head row (a database emptied by hand)
        return lock_head(session), find_many(session, keys)
    forget(session, LedgerHead, [1])
    session.info[TREE_PEAKS] = (
        int(head_count),
        {int(node): bytes(digest) for node, digest in zip(peak_nodes, peak_hashes, strict=True)},
    )
    existing = {}
    if posted_ids:
        existing = {
            transaction.key: transaction
            for transaction in session.scalars(
                select(Transaction).where(Transaction.id.in_(posted_ids))
            )
        }
    return (int(head_count), head_hash), existing


def forget(session: Session, model, ids) -> None:
    """Expire copies the session holds of rows just changed with plain SQL, so the
    caller reads the new values."""
    for row_id in ids:
        obj = session.identity_map.get(identity_key(model, row_id))
        if obj is not None:
            session.expire(obj)


def find_many(session: Session, keys: Sequence[str]) -> dict[str, Transaction]:
    """key → transaction for those of ``keys`` that were posted. One plain query per
    1,000 keys; transactions are loaded only for keys found (repeats are rare)."""
    found_ids: list[int] = []
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        found_ids += session.scalars(select(Transaction.id).where(Transaction.key.in_(chunk))).all()
    if not found_ids:
        return {}
    return {
        transaction.key: transaction
        for transaction in session.scalars(select(Transaction).where(Transaction.id.in_(found_ids)))
    }
