"""Posting transactions: balanced, idempotent, appended to the hash chain.

:func:`post` never commits: the caller's unit of work (e.g. "mark the order paid")
commits the posting together with its own changes, or rolls both back.

Concurrency: appending takes the chain head's row lock first (``UPDATE ledger_head``),
so postings from any number of processes are serialised and the chain stays linear;
the idempotency key is checked again under that lock, so two workers posting the same
key produce one transaction. ``prev_hash`` is unique in the database as a backstop.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, case, column, insert, select, table, text, update
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
# PostgreSQL: a whole append — transactions, entries, balance changes, the head — as
# one statement with array parameters. The text never changes, so the server prepares
# it once; rows per entry or per account would cost a round trip (or a fresh parse of
# a long query) each, and every round trip is spent holding the head's lock. The
# sub-statements see one snapshot; the foreign keys from entries to transactions are
# checked at the end of the statement, when the transactions are in.
_PG_APPEND = text(
    "WITH new_tx AS ("
    " INSERT INTO ledger_transaction (id, key, kind, memo, created_at, created_at_text,"
    " reverses_id, prev_hash, hash)"
    " SELECT * FROM unnest(CAST(:tx_ids AS integer[]), CAST(:keys AS varchar[]),"
    " CAST(:kinds AS varchar[]), CAST(:memos AS varchar[]),"
    " CAST(:created AS timestamptz[]), CAST(:created_texts AS varchar[]),"
    " CAST(:reverses AS integer[]), CAST(:prev_hashes AS varchar[]),"
    " CAST(:hashes AS varchar[]))"
    "), new_entries AS ("
    " INSERT INTO ledger_entry (transaction_id, position, account_id, amount_fen)"
    " SELECT * FROM unnest(CAST(:entry_tx_ids AS integer[]), CAST(:positions AS integer[]),"
    " CAST(:account_ids AS integer[]), CAST(:amounts AS bigint[]))"
    "), shifted AS ("
    " UPDATE ledger_account AS a SET balance_fen = a.balance_fen + d.change,"
    " sales_received_fen = a.sales_received_fen + d.from_sales"
    " FROM unnest(CAST(:change_ids AS integer[]), CAST(:changes AS bigint[]),"
    " CAST(:from_sales AS bigint[])) AS d(id, change, from_sales)"
    " WHERE a.id = d.id AND (a.kind <> 'household' OR a.balance_fen + d.change <= 0)"
    " RETURNING a.id"
    "), advanced AS ("
    " UPDATE ledger_head SET count = :new_count, hash = :new_hash WHERE id = 1"
    "), sale_lines AS ("
    " INSERT INTO ledger_sale_line (transaction_id, product_id, rule_id, quantity,"
    " line_total_fen, share_fen, remainder_account)"
    " SELECT * FROM unnest(CAST(:line_tx_ids AS integer[]), CAST(:line_products AS integer[]),"
    " CAST(:line_rules AS integer[]), CAST(:line_quantities AS integer[]),"
    " CAST(:line_totals AS integer[]), CAST(:line_shares AS integer[]),"
    " CAST(:line_remainders AS varchar[]))"
    ") SELECT COUNT(*) FROM shifted"
)
# What a sale records of each line (``ledger.sales.SaleLineRecord``), written with it.
SALE_LINE_FIELDS = (
    "transaction_id",
    "product_id",
    "rule_id",
    "quantity",
    "line_total_fen",
    "share_fen",
    "remainder_account",
)
_SALE_LINE = table("ledger_sale_line", *(column(name) for name in SALE_LINE_FIELDS))
_PG_LOCK_HEAD_AND_FIND = text(
    "SELECT head_count, head_hash, posted_ids"
    " FROM ledger_lock_head(CAST(:wanted_keys AS varchar[]))"
)
_FIND = select(Transaction).where(Transaction.key == bindparam("find_key"))

# ``session.info`` key set to True when the session appends to the chain; whoever
# follows the ledger (the shop's boards) pops it at commit or rollback.
APPENDED = "ledger_appended"

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


def lock_head_and_find(
    session: Session, keys: Sequence[str]
) -> tuple[tuple[int, str], dict[str, Transaction]]:
    """Take the chain head's lock (as :func:`_lock_head`) and return the head and the
    transactions already posted under ``keys``, looked up after the lock was granted:
    a twin that posted one of them a moment ago is seen. On PostgreSQL both happen in
    one round trip (``ledger_lock_head``, migration 0008)."""
    if session.get_bind().dialect.name != "postgresql":
        return _lock_head(session), find_many(session, keys)
    head_count, head_hash, posted_ids = session.execute(
        _PG_LOCK_HEAD_AND_FIND, {"wanted_keys": list(keys)}
    ).one()
    if head_count is None:  # no head row (a database emptied by hand)
        return _lock_head(session), find_many(session, keys)
    _forget(session, LedgerHead, [1])
    existing = {}
    if posted_ids:
        existing = {
            transaction.key: transaction
            for transaction in session.scalars(
                select(Transaction).where(Transaction.id.in_(posted_ids))
            )
        }
    return (int(head_count), head_hash), existing


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


@dataclass(frozen=True)
class NewTransaction:
    """One transaction to append: ``entries`` are (account code, signed fen) in posting
    order, debits positive, credits negative, summing to zero. ``now`` (UTC-aware)
    defaults to the moment of posting."""

    key: str
    kind: str
    entries: Sequence[tuple[str, int]]
    memo: str = ""
    reverses_id: int | None = None
    now: datetime | None = None


@dataclass(frozen=True)
class AccountRef:
    """What posting needs of an account: its row id and kind (neither ever changes)."""

    id: int
    kind: str


def account_refs(session: Session, codes: Iterable[str]) -> dict[str, AccountRef]:
    """code → :class:`AccountRef` for the accounts among ``codes`` that exist (one query)."""
    return {
        code: AccountRef(account_id, kind)
        for account_id, code, kind in session.execute(
            select(Account.id, Account.code, Account.kind).where(Account.code.in_(sorted(codes)))
        )
    }


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
    and found ``key`` absent under it (``_lock_head``'s answer): it saves the second
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
    key absent under it. ``accounts``: the caller's :func:`account_refs` for every
    code in the items (saves a query; balances are still read under the lock when a
    household could be debited). ``sale_lines``: rows for ``ledger_sale_line`` (the
    fields of :data:`SALE_LINE_FIELDS`, with ``key`` naming the item instead of
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
        written = _append(session, fresh, head_count, head_hash, accounts, sale_lines)
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


def _append(
    session: Session,
    items: list[NewTransaction],
    head_count: int,
    head_hash: str,
    accounts: dict[str, AccountRef] | None,
    sale_lines: Sequence[dict] = (),
) -> dict[str, Posted]:
    """Write ``items`` (new keys, validated) after the head the caller has locked."""
    codes = {code for item in items for code, _ in item.entries}
    if accounts is None or not codes <= set(accounts):
        accounts = account_refs(session, codes)
    missing = codes - set(accounts)
    if missing:
        raise LedgerError(f"unknown accounts: {', '.join(sorted(missing))}")

    # Net change per account, per item and over the whole batch.
    nets: list[dict[str, int]] = []
    for item in items:
        net: dict[str, int] = {}
        for code, amount in item.entries:
            net[code] = net.get(code, 0) + amount
        nets.append(net)
    debited_households = {
        code
        for net in nets
        for code, change in net.items()
        if change > 0 and accounts[code].kind == "household"
    }
    if debited_households:
        # Balances read under the head lock: every posting holds it, so they cannot
        # move before this one commits. Checked item by item, before anything is
        # written, so a refusal leaves no trace.
        balances = {
            code: int(balance)
            for code, balance in session.execute(
                select(Account.code, Account.balance_fen).where(
                    Account.code.in_(sorted(debited_households))
                )
            )
        }
        for net in nets:
            for code, change in net.items():
                if code in balances:
                    if balances[code] + change > 0:
                        raise Overdrawn(
                            f"{code} is owed {-balances[code]} fen; {change} fen would overdraw it"
                        )
                    balances[code] += change

    transactions: list[dict] = []
    entry_rows: list[tuple[int, int, int, int]] = []  # (tx id, position, account id, fen)
    changes: dict[int, int] = {}  # account id → net change over the batch
    from_sales: dict[int, int] = {}  # household account id → credits by sales
    posted: dict[str, Posted] = {}
    default_moment = utcnow()
    tx_id, prev_hash = head_count, head_hash
    for item, net in zip(items, nets, strict=True):
        tx_id += 1
        if item.reverses_id is not None and not 1 <= item.reverses_id < tx_id:
            # Ids run 1…head without gaps, so anything in range exists.
            raise LedgerError(f"transaction {item.reverses_id} to reverse does not exist")
        moment = item.now or default_moment
        created_text = format_time(moment)
        digest = chain_hash(
            prev_hash,
            {
                "id": tx_id,
                "key": item.key,
                "kind": item.kind,
                "created_at": created_text,
                "memo": item.memo,
                "reverses": item.reverses_id,
                "entries": [
                    {"account": code, "amount_fen": amount} for code, amount in item.entries
                ],
            },
        )
        transactions.append(
            {
                "id": tx_id,
                "key": item.key,
                "kind": item.kind,
                "memo": item.memo,
                "created_at": moment,
                "created_at_text": created_text,
                "reverses_id": item.reverses_id,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        for position, (code, amount) in enumerate(item.entries):
            entry_rows.append((tx_id, position, accounts[code].id, amount))
        for code, change in net.items():
            account_id = accounts[code].id
            changes[account_id] = changes.get(account_id, 0) + change
            # A sale's credits to households also count as "received from sales" (what
            # matched rules compare); refunds and payouts leave that figure alone.
            if item.kind in SALE_KINDS and change < 0 and accounts[code].kind == "household":
                from_sales[account_id] = from_sales.get(account_id, 0) - change
        posted[item.key] = Posted(tx_id, item.key, digest, created=True)
        prev_hash = digest
    # An account whose balance comes back to where it was over the batch (a sale and a
    # payout to the same household) still needs its "received from sales" updated.
    changes = {
        account_id: change
        for account_id, change in changes.items()
        if change or from_sales.get(account_id)
    }
    line_rows = [
        {"transaction_id": posted[row["key"]].id, **{f: row[f] for f in SALE_LINE_FIELDS[1:]}}
        for row in sale_lines
        if row["key"] in posted
    ]

    write = (
        _write_postgresql if session.get_bind().dialect.name == "postgresql" else _write_portable
    )
    changed = write(session, transactions, entry_rows, changes, from_sales, line_rows)
    session.info[APPENDED] = True
    if changed != len(changes):
        # Backstop for balances changed behind the lock's back (raw SQL): the checks
        # above already refused every overdraw a posting could cause.
        raise Overdrawn("a household would be owed less than nothing (roll back)")
    _forget(session, Account, [ref.id for ref in accounts.values()])
    _forget(session, LedgerHead, [1])
    return posted


def _write_postgresql(session, transactions, entry_rows, changes, from_sales, line_rows) -> int:
    """Transactions, entries, balances, the head and sale lines in one statement (one
    round trip, a constant text the server prepares once). Returns the accounts updated."""
    ids = sorted(changes)
    columns = list(zip(*entry_rows, strict=True))

    def line_values(field: str) -> list:
        return [row[field] for row in line_rows]

    return session.execute(
        _PG_APPEND,
        {
            "tx_ids": [t["id"] for t in transactions],
            "keys": [t["key"] for t in transactions],
            "kinds": [t["kind"] for t in transactions],
            "memos": [t["memo"] for t in transactions],
            "created": [t["created_at"] for t in transactions],
            "created_texts": [t["created_at_text"] for t in transactions],
            "reverses": [t["reverses_id"] for t in transactions],
            "prev_hashes": [t["prev_hash"] for t in transactions],
            "hashes": [t["hash"] for t in transactions],
            "entry_tx_ids": list(columns[0]),
            "positions": list(columns[1]),
            "account_ids": list(columns[2]),
            "amounts": list(columns[3]),
            "change_ids": ids,
            "changes": [changes[i] for i in ids],
            "from_sales": [from_sales.get(i, 0) for i in ids],
            "new_count": transactions[-1]["id"],
            "new_hash": transactions[-1]["hash"],
            "line_tx_ids": line_values("transaction_id"),
            "line_products": line_values("product_id"),
            "line_rules": line_values("rule_id"),
            "line_quantities": line_values("quantity"),
            "line_totals": line_values("line_total_fen"),
            "line_shares": line_values("share_fen"),
            "line_remainders": line_values("remainder_account"),
        },
    ).scalar_one()


def _write_portable(session, transactions, entry_rows, changes, from_sales, line_rows) -> int:
    """The same writes as plain statements (SQLite: in-process, no round trips)."""
    session.execute(insert(_TRANSACTION), transactions)
    session.execute(
        _INSERT_ENTRY,
        [
            {"transaction_id": t, "position": p, "account_id": a, "amount_fen": f}
            for t, p, a, f in entry_rows
        ],
    )
    changed = 0
    if changes:
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
    session.execute(
        _ADVANCE_HEAD,
        {"new_count": transactions[-1]["id"], "new_hash": transactions[-1]["hash"]},
    )
    if line_rows:
        session.execute(insert(_SALE_LINE), line_rows)
    return changed


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
