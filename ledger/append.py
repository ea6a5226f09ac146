"""Writing an append: transactions, entries, balance caches, the head and sale lines.

:func:`append` runs after the caller took the head's lock (``ledger.chain.lock_head``)
and found every key new under it. It checks overdraws item by item before anything is
written, hashes each transaction onto the previous one, then writes everything — the
Merkle tree's new nodes too (ledger/tree.py) — in a constant number of statements, on
PostgreSQL one. Amounts are integer fen.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, insert, select, text, update
from sqlalchemy.orm import Session

from ledger import tree
from ledger.accounts import AccountRef, account_refs
from ledger.base import utcnow
from ledger.canonical import chain_hash, format_time
from ledger.chain import APPENDED, forget
from ledger.errors import LedgerError, Overdrawn
from ledger.kinds import SALE_KINDS
from ledger.models import Account, Entry, LedgerHead, SaleLineRecord, Transaction

_ACCOUNT = Account.__table__
_TRANSACTION = Transaction.__table__
_HEAD = LedgerHead.__table__
_SALE_LINE = SaleLineRecord.__table__
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
    "), tree_nodes AS ("
    " INSERT INTO ledger_tree_node (node, hash)"
    " SELECT * FROM unnest(CAST(:node_keys AS bigint[]), CAST(:node_hashes AS bytea[]))"
    ") SELECT COUNT(*) FROM shifted"
)


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
class Posted:
    """A plain summary of a posted transaction. ``created`` is False for a repeat."""

    id: int
    key: str
    hash: str
    created: bool


# What a sale records of each line (``SaleLineRecord``), written with it.
SALE_LINE_FIELDS = (
    "transaction_id",
    "product_id",
    "rule_id",
    "quantity",
    "line_total_fen",
    "share_fen",
    "remainder_account",
)


def append(
    session: Session,
    items: list[NewTransaction],
    head_count: int,
    head_hash: str,
    accounts: dict[str, AccountRef] | None,
    sale_lines: Sequence[dict] = (),
) -> dict[str, Posted]:
    """Write ``items`` (new keys, validated: ``ledger.posting.NewTransaction``) after the
    head (``head_count``, ``head_hash``) the caller has locked; return key → Posted.

    Raises :class:`LedgerError` (an unknown account, a reversal of nothing) or
    :class:`Overdrawn` before writing anything."""
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

    # The Merkle tree grows with the chain, in the same statement (ledger/tree.py).
    nodes = tree.nodes_for_append(session, head_count, [t["hash"] for t in transactions])
    write = (
        _write_postgresql if session.get_bind().dialect.name == "postgresql" else _write_portable
    )
    changed = write(session, transactions, entry_rows, changes, from_sales, line_rows, nodes)
    session.info[APPENDED] = True
    if changed != len(changes):
        # Backstop for balances changed behind the lock's back (raw SQL): the checks
        # above already refused every overdraw a posting could cause.
        raise Overdrawn("a household would be owed less than nothing (roll back)")
    forget(session, Account, [ref.id for ref in accounts.values()])
    forget(session, LedgerHead, [1])
    return posted


def _write_postgresql(
    session, transactions, entry_rows, changes, from_sales, line_rows, nodes
) -> int:
    """Transactions, entries, balances, the head, sale lines and tree nodes in one
    statement (one round trip, a constant text the server prepares once). Returns the
    accounts updated."""
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
            "node_keys": [tree.node_key(level, idx) for level, idx, _h in nodes],
            "node_hashes": [digest for _l, _i, digest in nodes],
        },
    ).scalar_one()


def _write_portable(
    session, transactions, entry_rows, changes, from_sales, line_rows, nodes
) -> int:
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
    tree.write_nodes(session, nodes)
    return changed
