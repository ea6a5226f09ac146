"""Posting transactions: balanced, idempotent, appended to the hash chain.

:func:`post` never commits: the caller's unit of work (e.g. "mark the order paid")
commits the posting together with its own changes, or rolls both back.

Concurrency: appending takes the chain head's row lock first (``ledger.chain``), so
postings from any number of processes are serialised and the chain stays linear; the
idempotency key is checked again under that lock, so two workers posting the same key
produce one transaction. ``prev_hash`` is unique in the database as a backstop.
"""

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ledger.accounts import AccountRef
from ledger.append import NewTransaction, Posted, append
from ledger.chain import find_many, lock_head_and_find
from ledger.errors import IdempotencyConflict, LedgerError, Unbalanced
from ledger.models import Transaction

MAX_KEY_LENGTH = 128

_FIND = select(Transaction).where(Transaction.key == bindparam("find_key"))


def _validate(key: str, kind: str, entries: Sequence[tuple[str, int]], memo: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise LedgerError("key must be 1-128 characters")
    if not kind or len(kind) > 24:
        raise LedgerError("kind must be 1-24 characters")
    if len(memo) > 200:
        raise LedgerError("memo must be at most 200 characters")
    if len(entries) < 2:
        raise Unbalanced("a transaction needs at least two entries")
    for code, amount in entries:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise LedgerError(f"amount for {code} must be an integer number of fen")
        if amount == 0:
            raise LedgerError(f"zero amount for {code}")
    if sum(amount for _, amount in entries) != 0:
        raise Unbalanced(f"entries sum to {sum(a for _, a in entries)} fen, not 0")


def _same_content(existing: Transaction, kind: str, entries, reverses_id) -> bool:
    mine = [(e.account.code, e.amount_fen) for e in existing.entries]
    return existing.kind == kind and mine == list(entries) and existing.reverses_id == reverses_id


def find(session: Session, key: str) -> Transaction | None:
    """The transaction posted under ``key``, or None."""
    return session.scalar(_FIND, {"find_key": key})


def post(
    session: Session,
    key: str,
    kind: str,
    entries: Iterable[tuple[str, int]],
    memo: str = "",
    reverses_id: int | None = None,
    now: datetime | None = None,
    locked_head: tuple[int, str] | None = None,
) -> Posted:
    """Append one balanced transaction to the chain (flush, no commit) and return it.

    ``entries`` are (account code, signed fen) in posting order: debits positive,
    credits negative, summing to zero; every account must exist. Posting a ``key``
    that exists returns the first transaction with ``created=False`` and writes
    nothing; if its content differs, :class:`IdempotencyConflict` is raised.

    ``locked_head`` is for callers in this package that already hold the head's lock
    and found ``key`` absent under it (``ledger.chain.lock_head``'s answer): it saves the second
    lock and lookups.

    Raises :class:`Unbalanced`, :class:`Overdrawn`, :class:`LedgerError`.
    """
    item = NewTransaction(key, kind, list(entries), memo, reverses_id, now)
    return post_many(session, [item], locked_head=locked_head)[0]


def post_many(
    session: Session,
    items: Sequence[NewTransaction],
    locked_head: tuple[int, str] | None = None,
    accounts: dict[str, AccountRef] | None = None,
    sale_lines: Sequence[dict] = (),
) -> list[Posted]:
    """Append ``items`` to the chain in the order given (flush, no commit); return one
    :class:`Posted` per item, in the same order.

    All or nothing: every item is checked (balanced, accounts exist, no household
    overdrawn at its point in the sequence) before anything is written, and the rows
    go in a handful of statements whatever the number of items — an import of 500
    sales holds the head's lock for milliseconds, not seconds. An item whose key was
    posted before (or earlier in ``items``) is a repeat: ``created=False``, nothing
    written; :class:`IdempotencyConflict` if its content differs.

    ``locked_head``: as for :func:`post` — the caller holds the lock and found every
    key absent under it. ``accounts``: the caller's ``ledger.accounts.account_refs``
    for every code in the items (saves a query; balances are still read under the lock
    when a household could be debited). ``sale_lines``: rows for ``ledger_sale_line`` (the
    fields of ``ledger.append.SALE_LINE_FIELDS``, with ``key`` naming the item instead of
    ``transaction_id``), written with the transactions; rows of repeats are dropped.

    Raises :class:`Unbalanced`, :class:`Overdrawn`, :class:`IdempotencyConflict`,
    :class:`LedgerError`.
    """
    # Entries as (code, amount) tuples whatever the caller gave (lists, say), so a
    # repeat compares equal to what was stored.
    items = [
        replace(item, entries=[(code, amount) for code, amount in item.entries]) for item in items
    ]
    for item in items:
        _validate(item.key, item.kind, item.entries, item.memo)
        if item.now is not None and item.now.tzinfo is None:
            raise LedgerError("now must be timezone-aware (UTC)")

    results: list[Posted | None] = [None] * len(items)
    first_of_key: dict[str, int] = {}
    for position, item in enumerate(items):
        earlier = first_of_key.setdefault(item.key, position)
        if earlier != position and not _same_item(items[earlier], item):
            raise IdempotencyConflict(f"key {item.key} was posted with different content")
    keys = list(first_of_key)

    if locked_head is not None:
        head_count, head_hash = locked_head
        existing: dict[str, Transaction] = {}
    else:
        existing = find_many(session, keys)
        if len(existing) < len(keys):
            # Again, under the lock: a racing twin may have won.
            (head_count, head_hash), existing = lock_head_and_find(session, keys)
    for key, transaction in existing.items():
        item = items[first_of_key[key]]
        if not _same_content(transaction, item.kind, item.entries, item.reverses_id):
            raise IdempotencyConflict(f"key {key} was posted with different content")
    fresh = [
        item
        for position, item in enumerate(items)
        if first_of_key[item.key] == position and item.key not in existing
    ]

    written: dict[str, Posted] = {}
    if fresh:
        written = append(session, fresh, head_count, head_hash, accounts, sale_lines)
    for position, item in enumerate(items):
        if item.key in existing:
            transaction = existing[item.key]
            results[position] = Posted(transaction.id, item.key, transaction.hash, False)
        elif first_of_key[item.key] == position:
            results[position] = written[item.key]
        else:  # a repeat within ``items``
            first = written[item.key]
            results[position] = Posted(first.id, first.key, first.hash, False)
    return results  # type: ignore[return-value]


def _same_item(a: NewTransaction, b: NewTransaction) -> bool:
    return (a.kind, a.entries, a.reverses_id) == (b.kind, b.entries, b.reverses_id)


def reverse(
    session: Session,
    key: str,
    original_id: int,
    kind: str,
    memo: str = "",
    portion: dict[str, int] | None = None,
    now: datetime | None = None,
) -> Posted:
    """Post the reversal of transaction ``original_id`` (all of it, or ``portion``).

    ``portion`` maps account code → the original's signed amount to undo (same sign as
    the original entry); the reversal posts the negation. Without it the whole
    transaction is undone.
    """
    original = session.get(Transaction, original_id)
    if original is None:
        raise LedgerError(f"transaction {original_id} does not exist")
    if portion is None:
        entries = [(e.account.code, -e.amount_fen) for e in original.entries]
    else:
        entries = [(code, -amount) for code, amount in portion.items() if amount]
    return post(session, key, kind, entries, memo=memo, reverses_id=original_id, now=now)
