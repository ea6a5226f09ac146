"""Posting transactions: balanced, idempotent, appended to the hash chain.

:func:`post` never commits: the caller's unit of work (e.g. "mark the order paid")
commits the posting together with its own changes, or rolls both back.

Concurrency: appending takes the chain head's row lock first (``UPDATE ledger_head``),
so postings from any number of processes are serialised and the chain stays linear;
the idempotency key is checked again under that lock, so two workers posting the same
key produce one transaction. ``prev_hash`` is unique in the database as a backstop.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from ledger.base import utcnow
from ledger.canonical import GENESIS_HASH, chain_hash, format_time
from ledger.models import ACCOUNT_KINDS, Account, Entry, LedgerHead, Transaction

MAX_KEY_LENGTH = 128

_ACCOUNT = Account.__table__
_TRANSACTION = Transaction.__table__
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
_INSERT_ENTRY = insert(Entry.__table__)
# PostgreSQL: a posting's entries and balance changes as arrays in one statement each.
# The text never changes, so the server prepares it once; a row-per-entry executemany
# or a CASE with one branch per account made a 148-household sale cost 150 round trips
# and a fresh parse of a long query.
_PG_INSERT_ENTRIES = text(
    "INSERT INTO ledger_entry (transaction_id, position, account_id, amount_fen) "
    "SELECT :tx_id, e.position, e.account_id, e.amount_fen FROM unnest("
    "CAST(:positions AS integer[]), CAST(:account_ids AS integer[]), "
    "CAST(:amounts AS bigint[])) AS e(position, account_id, amount_fen)"
)
_PG_SHIFT_BALANCES = text(
    "UPDATE ledger_account AS a SET balance_fen = a.balance_fen + d.change, "
    "sales_received_fen = a.sales_received_fen + d.from_sales "
    "FROM unnest(CAST(:account_ids AS integer[]), CAST(:changes AS bigint[]), "
    "CAST(:from_sales AS bigint[])) AS d(id, change, from_sales) "
    "WHERE a.id = d.id AND (a.kind <> 'household' OR a.balance_fen + d.change <= 0)"
)
_FIND = select(Transaction).where(Transaction.key == bindparam("find_key"))

# Kinds of posting that are sales (online, and offline at the hall, events, live streams).
SALE_KINDS = ("sale", "offline_sale")


class LedgerError(ValueError):
    """A posting was refused; nothing was written."""


class Unbalanced(LedgerError):
    pass


class IdempotencyConflict(LedgerError):
    """The key was already used for a transaction with different content."""


class Overdrawn(LedgerError):
    """The posting would leave a household owed less than nothing."""


@dataclass(frozen=True)
class Posted:
    """A plain summary of a posted transaction. ``created`` is False for a repeat."""

    id: int
    key: str
    hash: str
    created: bool


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


def _lock_head(session: Session) -> tuple[int, str]:
    """Take the chain head's lock for the rest of the caller's transaction and return
    (count, hash) as it is now, read after the lock was granted."""
    row = session.execute(_LOCK_HEAD).first()
    if row is None:  # a database emptied by hand (tests TRUNCATE): start at genesis
        session.execute(insert(_HEAD).values(id=1, count=0, hash=GENESIS_HASH))
        row = (0, GENESIS_HASH)
    count, hash_ = row
    _forget(session, LedgerHead, [1])
    return int(count), hash_


def _forget(session: Session, model, ids) -> None:
    """Expire copies the session holds of rows just changed with plain SQL, so the
    caller reads the new values."""
    for row_id in ids:
        obj = session.identity_map.get(identity_key(model, row_id))
        if obj is not None:
            session.expire(obj)


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
    """Append a balanced transaction to the chain (flush, no commit) and return it.

    ``entries`` are (account code, signed fen) in posting order: debits positive,
    credits negative, summing to zero; every account must exist. Posting a ``key``
    that exists returns the first transaction with ``created=False`` and writes
    nothing; if its content differs, :class:`IdempotencyConflict` is raised.

    ``locked_head`` is for callers in this package that already hold the head's lock
    and found ``key`` absent under it (``_lock_head``'s answer): it saves the second
    lock and lookups.

    Raises :class:`Unbalanced`, :class:`Overdrawn`, :class:`LedgerError`.
    """
    entries = [(code, amount) for code, amount in entries]
    _validate(key, kind, entries, memo)
    if now is not None and now.tzinfo is None:
        raise LedgerError("now must be timezone-aware (UTC)")

    if locked_head is not None:
        head_count, head_hash = locked_head
        existing = None
    else:
        existing = find(session, key)
        if existing is None:
            head_count, head_hash = _lock_head(session)
            existing = find(session, key)  # again, under the lock: a racing twin may have won
    if existing is not None:
        if not _same_content(existing, kind, entries, reverses_id):
            raise IdempotencyConflict(f"key {key} was posted with different content")
        return Posted(existing.id, existing.key, existing.hash, created=False)

    codes = {code for code, _ in entries}
    # Balances read under the head lock: every posting holds it, so they cannot move
    # before this one commits.
    accounts = {
        code: (account_id, account_kind, balance)
        for account_id, code, account_kind, balance in session.execute(
            select(Account.id, Account.code, Account.kind, Account.balance_fen).where(
                Account.code.in_(sorted(codes))
            )
        )
    }
    missing = codes - set(accounts)
    if missing:
        raise LedgerError(f"unknown accounts: {', '.join(sorted(missing))}")
    if reverses_id is not None and session.get(Transaction, reverses_id) is None:
        raise LedgerError(f"transaction {reverses_id} to reverse does not exist")
    net: dict[str, int] = {}
    for code, amount in entries:
        net[code] = net.get(code, 0) + amount
    for code, change in net.items():
        _, account_kind, balance = accounts[code]
        if account_kind == "household" and balance + change > 0:
            # Checked before anything is written, so a refusal leaves no trace.
            raise Overdrawn(f"{code} is owed {-balance} fen; {change} fen would overdraw it")

    moment = now or utcnow()
    created_text = format_time(moment)
    tx_id = head_count + 1
    public = {
        "id": tx_id,
        "key": key,
        "kind": kind,
        "created_at": created_text,
        "memo": memo,
        "reverses": reverses_id,
        "entries": [{"account": code, "amount_fen": amount} for code, amount in entries],
    }
    digest = chain_hash(head_hash, public)
    # Plain INSERTs (no unit of work): a posting is a dozen rows, written many times a
    # second, and nothing here needs the ORM's bookkeeping.
    session.execute(
        insert(_TRANSACTION).values(
            id=tx_id,
            key=key,
            kind=kind,
            memo=memo,
            created_at=moment,
            created_at_text=created_text,
            reverses_id=reverses_id,
            prev_hash=head_hash,
            hash=digest,
        )
    )
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        session.execute(
            _PG_INSERT_ENTRIES,
            {
                "tx_id": tx_id,
                "positions": list(range(len(entries))),
                "account_ids": [accounts[code][0] for code, _ in entries],
                "amounts": [amount for _, amount in entries],
            },
        )
    else:
        session.execute(
            _INSERT_ENTRY,
            [
                {
                    "transaction_id": tx_id,
                    "position": position,
                    "account_id": accounts[code][0],
                    "amount_fen": amount,
                }
                for position, (code, amount) in enumerate(entries)
            ],
        )
    changes = {accounts[code][0]: change for code, change in net.items() if change}
    # A sale's credits to households also count as "received from sales" (what matched
    # rules compare); refunds and payouts leave that figure alone.
    from_sales = (
        {
            accounts[code][0]: -change
            for code, change in net.items()
            if accounts[code][1] == "household" and change < 0
        }
        if kind in SALE_KINDS
        else {}
    )
    # One statement for every account the posting touches. The WHERE is a backstop for
    # balances changed behind the lock's back (raw SQL): the check above already refused
    # every overdraw a posting could cause.
    if changes and postgresql:
        ids = sorted(changes)
        changed = session.execute(
            _PG_SHIFT_BALANCES,
            {
                "account_ids": ids,
                "changes": [changes[i] for i in ids],
                "from_sales": [from_sales.get(i, 0) for i in ids],
            },
        ).rowcount
        if changed != len(changes):
            raise Overdrawn("a household would be owed less than nothing (roll back)")
    elif changes:
        shift = case(changes, value=_ACCOUNT.c.id)
        changed = session.execute(
            update(_ACCOUNT)
            .where(_ACCOUNT.c.id.in_(sorted(changes)))
            .where((_ACCOUNT.c.kind != "household") | (_ACCOUNT.c.balance_fen + shift <= 0))
            .values(
                balance_fen=_ACCOUNT.c.balance_fen + shift,
                **(
                    {
                        "sales_received_fen": _ACCOUNT.c.sales_received_fen
                        + case(from_sales, value=_ACCOUNT.c.id, else_=0)
                    }
                    if from_sales
                    else {}
                ),
            )
        ).rowcount
        if changed != len(changes):
            raise Overdrawn("a household would be owed less than nothing (roll back)")
    session.execute(_ADVANCE_HEAD, {"new_count": tx_id, "new_hash": digest})
    _forget(session, Account, [account_id for account_id, _, _ in accounts.values()])
    _forget(session, LedgerHead, [1])
    return Posted(tx_id, key, digest, created=True)


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
