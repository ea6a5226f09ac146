"""The ledger's Merkle tree (RFC 6962) as stored: complete-subtree nodes and signed heads.

Leaf *i* (from 0) is transaction ``i + 1`` (ids run 1, 2, 3, … without gaps, in posting
order, exactly the lines of the export); its data is the transaction's ``hash`` as 32
raw bytes. :mod:`ledger.merkle` does the hashing and the proofs; this module keeps its
nodes in ``ledger_tree_node`` — one row per complete subtree, keyed by one integer
``node = level·2**48 + idx`` (:func:`node_key`; a level's nodes are one key range, and a
proof's nodes one ``IN`` list the primary key answers), so
a tree of *n* leaves holds ``2n − popcount(n)`` rows, O(n) — and the signed tree heads
in ``ledger_tree_head``. Both tables are append-only like the ledger they commit to.

**Posting** (:func:`nodes_for_append`, called by :func:`ledger.append.append` under the
head's lock): a batch of *k* new transactions after *n* needs only the *peaks* of the
tree of *n* (one complete node per set bit of *n*), read in one statement, and writes
its new nodes (about 2k) in the same statement as the transactions on PostgreSQL — so an
append costs O(log n) reads in one round trip, and the tree can never disagree with the
chain: both commit or neither does.

**Proofs** (:func:`inclusion_path`, :func:`consistency_path`, :func:`tree_root`): which
nodes a proof needs depends only on the sizes and indices, never on the hashes, so each is built in
two passes — once to learn the addresses (``get`` returns a placeholder), then once from
the rows fetched in a single query. O(log n) rows, one round trip.

**Heads** (:func:`publish_head`): a signed head commits to a size and its root; every
head ever published is kept, and a new one is made only when the tree grew.
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    LargeBinary,
    String,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger import merkle
from ledger.base import AppendOnly, Base, UTCDateTime, utcnow
from ledger.chain import TREE_PEAKS
from ledger.errors import LedgerError
from ledger.models import LedgerHead, Transaction
from ledger.tree_head import utc_timestamp

_PLACEHOLDER = bytes(merkle.HASH_SIZE)


class TreeNode(AppendOnly, Base):
    """The root of the complete subtree over leaves [idx·2**level, (idx+1)·2**level)."""

    __tablename__ = "ledger_tree_node"

    node: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class TreeHead(AppendOnly, Base):
    """A signed tree head as published (``GET /api/v1/ledger/tree-head``): the exact
    ``timestamp`` text that was signed, hex root, base64 signature."""

    __tablename__ = "ledger_tree_head"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(100))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def as_json(self) -> dict:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "timestamp": self.timestamp,
            "key_id": self.key_id,
            "signature": self.signature,
        }


_NODE = TreeNode.__table__
LEVEL_SHIFT = 48  # 2**48 leaves is far beyond any ledger; level ≤ 48 keeps keys < 2**63


def node_key(level: int, idx: int) -> int:
    """The primary key of the node at (level, idx)."""
    return (level << LEVEL_SHIFT) | idx


def _level_range(level: int):
    return (_NODE.c.node >= node_key(level, 0)) & (_NODE.c.node < node_key(level + 1, 0))


def peaks(size: int) -> list[tuple[int, int]]:
    """The complete nodes that make up the right edge of a tree of ``size`` leaves, one
    per set bit of ``size``, largest first: everything an append after it reads."""
    addresses, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            addresses.append((level, start >> level))
            start += 1 << level
    return addresses


def _fetch(session: Session, addresses: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    by_key = {node_key(level, idx): (level, idx) for level, idx in wanted}
    rows = session.execute(select(_NODE.c.node, _NODE.c.hash).where(_NODE.c.node.in_(list(by_key))))
    return {by_key[int(key)]: bytes(digest) for key, digest in rows}


def nodes_for_append(
    session: Session, size: int, transaction_hashes: list[str]
) -> list[tuple[int, int, bytes]]:
    """The new nodes (level, idx, hash) when transactions with these hex hashes follow
    the first ``size``; call under the head's lock. The peaks come with the lock on
    PostgreSQL (:data:`ledger.chain.TREE_PEAKS`), else from one query."""
    handed = session.info.pop(TREE_PEAKS, None)
    wanted = peaks(size)
    if handed is not None and handed[0] == size and len(handed[1]) == len(wanted):
        known = {address: handed[1][node_key(*address)] for address in wanted}  # with the lock
    else:
        known = _fetch(session, wanted)
    if len(known) != len(wanted):
        # Transactions posted without their nodes: code older than migration 0019 kept
        # writing after it ran. Refuse rather than build on a tree that is wrong.
        raise LedgerError(
            f"the Merkle tree lacks nodes for the first {size} transactions (were postings "
            "made by code older than migration 0019?); run `flask ledger verify`"
        )
    new: list[tuple[int, int, bytes]] = []
    for offset, hex_hash in enumerate(transaction_hashes):
        created = merkle.nodes_to_store(
            size + offset, merkle.leaf_hash(bytes.fromhex(hex_hash)), lambda lv, i: known[lv, i]
        )
        for level, idx, digest in created:
            known[level, idx] = digest
        new += created
    return new


def write_nodes(session: Session, nodes: list[tuple[int, int, bytes]]) -> None:
    """Insert nodes with a plain multi-row insert (the portable path of an append)."""
    if nodes:
        session.execute(
            insert(_NODE), [{"node": node_key(lv, i), "hash": digest} for lv, i, digest in nodes]
        )


def _two_pass(session: Session, build):
    """Run ``build(get)`` once to learn which nodes it reads, fetch them in one query,
    then run it again on the real hashes (what a proof reads depends only on sizes)."""
    asked: list[tuple[int, int]] = []

    def record(level: int, idx: int) -> bytes:
        asked.append((level, idx))
        return _PLACEHOLDER

    build(record)
    nodes = _fetch(session, asked)
    missing = set(asked) - set(nodes)
    if missing:
        raise LookupError(f"the stored tree lacks nodes {sorted(missing)[:5]}")
    return build(lambda level, idx: nodes[level, idx])


def leaf_count(session: Session) -> int:
    """The tree's size: the chain's count (every posted transaction is a leaf)."""
    return int(session.scalar(select(LedgerHead.count).where(LedgerHead.id == 1)) or 0)


def tree_root(session: Session, tree_size: int) -> bytes:
    """The root of the first ``tree_size`` leaves (``EMPTY_ROOT`` for 0)."""
    if tree_size == 0:
        return merkle.EMPTY_ROOT
    return _two_pass(session, lambda get: merkle.root_at(tree_size, get))


def inclusion_path(session: Session, index: int, tree_size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``tree_size`` (ProofError if
    out of range)."""
    return _two_pass(session, lambda get: merkle.inclusion_proof(index, tree_size, get))


def consistency_path(session: Session, first: int, second: int) -> list[bytes]:
    """The proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    return _two_pass(session, lambda get: merkle.consistency_proof(first, second, get))


def latest_head(session: Session) -> TreeHead | None:
    return session.scalar(select(TreeHead).order_by(TreeHead.tree_size.desc()).limit(1))


def head_at(session: Session, tree_size: int) -> TreeHead | None:
    return session.get(TreeHead, tree_size)


def publish_head(session: Session, sign, now: datetime | None = None) -> TreeHead | None:
    """Sign and store a head for the tree as it is now, if it grew since the last head
    (or none was published); return it, or ``None`` when there was nothing new. ``sign``
    is ``(tree_size, root: bytes, timestamp: str) -> head dict``. The caller commits.

    The size is read first and the root computed for exactly that size, so postings
    committing meanwhile only make the next head larger. Two workers publishing at
    once: the primary key on ``tree_size`` keeps one."""
    tree_size = leaf_count(session)
    last = latest_head(session)
    if last is not None and last.tree_size >= tree_size:
        return None
    signed = sign(tree_size, tree_root(session, tree_size), utc_timestamp(now or utcnow()))
    head = TreeHead(**signed)
    session.add(head)
    session.flush()
    return head


def check_tree(session: Session, batch: int = 10_000) -> list[str]:
    """Problems of the stored tree against the transactions (empty: it is right): every
    leaf is its transaction's hash, every interior node the hash of its two children,
    no node is missing or extra, no head was signed for more transactions than the chain
    holds, and each published head's root is the root of its size (every head, or a
    spread sample of many). Reads level by level in id order with memory O(batch)."""
    problems: list[str] = []
    count = leaf_count(session)
    # Level 0 against the transactions.
    last_id, checked = 0, 0
    while True:
        rows = session.execute(
            select(Transaction.id, Transaction.hash, _NODE.c.hash)
            .outerjoin(_NODE, _NODE.c.node == Transaction.id - 1)  # level 0: key = idx
            .where(Transaction.id > last_id)
            .order_by(Transaction.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        for tx_id, tx_hash, leaf in rows:
            if leaf is None or bytes(leaf) != merkle.leaf_hash(bytes.fromhex(tx_hash)):
                problems.append(f"tree leaf {tx_id - 1} is not transaction {tx_id}'s hash")
            checked += 1
        last_id = rows[-1][0]
        if len(problems) > 20:
            return problems
    if checked != count:
        problems.append(f"the chain counts {count} transactions but {checked} were read")
    # Each level above from the one below (both read in idx order).
    for level in range(1, max(count, 1).bit_length()):
        expected_nodes = count >> level
        child_base, parent_base = node_key(level - 1, 0), node_key(level, 0)
        children = session.execute(
            select(_NODE.c.node - child_base, _NODE.c.hash)
            .where(_level_range(level - 1), _NODE.c.node < child_base + 2 * expected_nodes)
            .order_by(_NODE.c.node)
            .execution_options(yield_per=batch)
        )
        parents = session.execute(
            select(_NODE.c.node - parent_base, _NODE.c.hash)
            .where(_level_range(level))
            .order_by(_NODE.c.node)
            .execution_options(yield_per=batch)
        )
        pending, seen = None, 0
        parent_rows = iter(parents)
        for idx, digest in children:
            if idx % 2 == 0:
                pending = (idx, bytes(digest))
                continue
            parent = next(parent_rows, None)
            expected = None
            if pending is not None and pending[0] == idx - 1:
                expected = merkle.node_hash(pending[1], bytes(digest))
            pending = None
            if parent is None or parent[0] != idx // 2 or bytes(parent[1]) != expected:
                problems.append(f"tree node ({level}, {idx // 2}) is not its children's hash")
                return problems
            seen += 1
        if next(parent_rows, None) is not None or seen != expected_nodes:
            problems.append(f"tree level {level} has nodes it should not have")
    stored = session.scalar(select(func.count()).select_from(_NODE))
    should = 2 * count - bin(count).count("1")
    if stored != should:
        problems.append(f"the tree holds {stored} nodes; {count} leaves make {should}")
    beyond = session.scalar(select(func.max(TreeHead.tree_size)).where(TreeHead.tree_size > count))
    if beyond is not None:
        # A head was signed for more transactions than the chain holds: history lost
        # (a restore from an older backup, a truncation) since it was published.
        problems.append(f"a head was signed at size {beyond} but the chain holds {count}")
    for head in _heads_to_check(session, count):
        if tree_root(session, head.tree_size).hex() != head.root_hash:
            problems.append(f"signed head at size {head.tree_size} does not match the tree")
    return problems


def _heads_to_check(session: Session, count: int, every_up_to: int = 500, sample: int = 200):
    """Every signed head when there are few; else the latest ``sample`` and ``sample``
    more spread evenly over the rest (a head is signed every minute: a year is half a
    million, each a root of O(log n) reads)."""
    within = TreeHead.tree_size <= count
    total = session.scalar(select(func.count()).select_from(TreeHead).where(within))
    if total <= every_up_to:
        return list(session.scalars(select(TreeHead).where(within)))
    latest = list(
        session.scalars(
            select(TreeHead).where(within).order_by(TreeHead.tree_size.desc()).limit(sample)
        )
    )
    step = max(1, (total - sample) // sample)
    spread = session.scalars(
        select(TreeHead)
        .where(within, TreeHead.tree_size < latest[-1].tree_size)
        .order_by(TreeHead.tree_size)
    ).all()[::step]
    return latest + list(spread)
