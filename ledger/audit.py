"""Verify the ledger in the database: the chain, every zero sum, every cached balance.

:func:`verify_database` recomputes, from the stored rows alone, what
``python -m ledger.verify`` recomputes from the export, and also checks the caches
the database keeps for speed: each ``Account.balance_fen`` must equal the sum of its
entries, each household's ``sales_received_fen`` the sum of its credits by sales, and
``LedgerHead`` must name the last transaction. It also ties each transaction's
``created_at`` column (what statements show and the boards date online sales by; not
itself hashed) to the hashed ``created_at_text``.

Two ways to the same checks:

- Portable (SQLite, and any database): the export is read in batches and checked by
  :func:`ledger.verify.verify_records`, Python recomputing each canonical form and hash.
- PostgreSQL: the database recomputes them. :data:`_PG_CHECK_RANGE` builds each
  transaction's canonical JSON in SQL (``to_json`` escapes strings exactly as Python's
  ``json.dumps(..., ensure_ascii=False)`` does; keys are written in sorted order) and
  hashes it with ``sha256``; only the rows that fail come back. The chain is cut into
  ranges of ids checked at the same time on separate connections, and joined at the
  seams (each range's first ``prev_hash`` is the previous range's last ``hash``).
  Tests prove the SQL form equals :func:`ledger.canonical.canonical_json` on hostile
  strings; the export and the standalone verifier stay the auditor's independent path.

Consistency while postings continue (PostgreSQL): the head, the last transaction id
and every account's caches are read in one statement (one snapshot) first; only
transactions up to that id are checked, and those rows never change (append-only), so
later postings cannot cause a false alarm. The portable path reads the chain, then the
head, then the caches, in separate statements: a posting committed in between can show
as a mismatch, so on SQLite run it when no one is posting.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, String, func, select, text, type_coerce
from sqlalchemy.orm import Session

from ledger.canonical import GENESIS_HASH, format_time
from ledger.export import head, iter_export
from ledger.kinds import SALE_KINDS
from ledger.models import Account, Entry, Transaction
from ledger.verify import verify_records

MAX_PROBLEMS = 50
# PostgreSQL: ids per range and ranges checked at once (each on its own connection).
RANGE_SIZE = 25_000
PARALLEL_RANGES = 4


@dataclass
class AuditResult:
    ok: bool
    count: int
    head_hash: str
    problems: list[str] = field(default_factory=list)


@dataclass
class _AccountCache:
    code: str
    kind: str
    balance_fen: int
    sales_received_fen: int


def verify_database(session: Session, range_size: int = RANGE_SIZE) -> AuditResult:
    """Check the whole ledger; ``problems`` name each mismatch (at most 50).

    On PostgreSQL a chain longer than ``range_size`` is checked in ranges on
    connections of their own (what is committed), unless the caller's transaction has
    written something: then every range is checked on the caller's connection, so the
    answer covers its uncommitted rows whatever the chain's length.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and isinstance(bind, Engine):
        return _verify_postgresql(session, bind, range_size)
    return _verify_portable(session)


def _verify_portable(session: Session) -> AuditResult:
    chain = verify_records(enumerate(iter_export(session), start=1), unit="transaction")
    problems = [f"chain: {chain.problem}"] if not chain.ok else []
    problems += _portable_time_problems(session)

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
    caches = {
        account.id: _AccountCache(
            account.code, account.kind, account.balance_fen, account.sales_received_fen
        )
        for account in session.scalars(select(Account).order_by(Account.code))
    }
    problems += _balance_problems(caches, sums, from_sales)
    return AuditResult(not problems, chain.count, chain.head_hash, problems[:MAX_PROBLEMS])


def _portable_time_problems(session: Session) -> list[str]:
    """Transactions whose ``created_at`` column (what pages show) is not the hashed
    ``created_at_text``: the column is not in the hash, so only this comparison ties it
    to the chain."""
    problems: list[str] = []
    # The column read as stored (SQLite: text), so a value that is not a time is named
    # instead of stopping the check with a parse error.
    stored = type_coerce(Transaction.created_at, String)
    rows = session.execute(
        select(Transaction.id, Transaction.key, stored, Transaction.created_at_text)
        .order_by(Transaction.id)
        .execution_options(yield_per=5000)
    )
    for tx_id, key, raw, hashed in rows:
        shown = _stored_time_text(raw)
        if shown != hashed:
            problems.append(_time_problem(tx_id, key, shown, hashed))
            if len(problems) >= MAX_PROBLEMS:
                break
    rows.close()
    return problems


def _stored_time_text(raw) -> str:
    """A stored ``created_at`` (UTC; text on SQLite, naive or aware) in the hashed
    format, or the raw value quoted when it is not a time."""
    try:
        moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError:
        return repr(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_time(moment)


def _balance_problems(
    caches: dict[int, "_AccountCache"], sums: dict[int, int], from_sales: dict[int, int]
) -> list[str]:
    """Compare each account's caches with its entries (fen); one line per mismatch."""
    problems: list[str] = []
    for account_id, cache in sorted(caches.items(), key=lambda item: item[1].code):
        recomputed = int(sums.get(account_id, 0))
        received = int(from_sales.get(account_id, 0))
        if cache.kind == "household" and cache.sales_received_fen != received:
            problems.append(
                f"account {cache.code}: received from sales {cache.sales_received_fen} "
                f"fen, its sale entries sum to {received} fen"
            )
        if cache.balance_fen != recomputed:
            problems.append(
                f"account {cache.code}: balance {cache.balance_fen} fen, "
                f"entries sum to {recomputed} fen"
            )
        if cache.kind == "household" and recomputed > 0:
            problems.append(f"account {cache.code} is owed less than nothing ({recomputed})")
        if len(problems) >= MAX_PROBLEMS:
            break
    total = sum(int(v) for v in sums.values())
    if total != 0:
        problems.append(f"all entries together sum to {total} fen, not 0")
    return problems


# --- PostgreSQL: the database recomputes ------------------------------------------

# The head, the chain's last id and every account's caches, in one statement: one
# snapshot. Every posting moves the head and adds its rows in one database transaction,
# so within a snapshot the last id equals the head's count unless something is wrong.
# has_written: the caller's own transaction has written (its uncommitted rows are part
# of what it sees, and only its own connection can check them; PostgreSQL 13+).
# Always one row, even with the head row or every account missing (count NULL: no head).
_PG_SNAPSHOT = text(
    "SELECT h.count, h.hash, "
    "(SELECT COALESCE(MAX(id), 0) FROM ledger_transaction) AS last_id, "
    "pg_current_xact_id_if_assigned() IS NOT NULL AS has_written, "
    "a.id, a.code, a.kind, a.balance_fen, a.sales_received_fen "
    "FROM (SELECT 1) AS one "
    "LEFT JOIN ledger_head AS h ON h.id = 1 LEFT JOIN ledger_account AS a ON true"
)

# One range of the chain, :lo..:hi. The canonical JSON, exactly as
# ledger.canonical.canonical_json writes it: keys sorted (created_at, entries, id, key,
# kind, memo, reverses; account, amount_fen), no spaces, strings escaped by to_json
# (the same escapes as Python's json with ensure_ascii=False), entries in position
# order. Returns one row per transaction that fails a check, then a summary row
# (id NULL) with the range's row count, first prev_hash and last hash.
_PG_CHECK_RANGE = text(
    """
WITH accounts AS (
    SELECT id, '{"account":' || to_json(code)::text || ',"amount_fen":' AS opening
    FROM ledger_account
), entries AS (
    SELECT e.transaction_id,
           string_agg(a.opening || e.amount_fen || '}', ',' ORDER BY e.position) AS body,
           SUM(e.amount_fen) AS total, COUNT(*) AS n, bool_or(e.amount_fen = 0) AS has_zero
    FROM ledger_entry AS e JOIN accounts AS a ON a.id = e.account_id
    WHERE e.transaction_id BETWEEN :lo AND :hi
    GROUP BY e.transaction_id
), checked AS (
    SELECT t.id, t.key, t.hash, t.prev_hash, t.reverses_id,
           lag(t.hash) OVER (ORDER BY t.id) AS previous_hash,
           -- The id after the previous row's: a gap is flagged once, at the row after it.
           COALESCE(lag(t.id) OVER (ORDER BY t.id), :lo - 1) + 1 AS expected_id,
           encode(sha256(convert_to(
               t.prev_hash || E'\\n'
               || '{"created_at":' || to_json(t.created_at_text)::text
               || ',"entries":[' || COALESCE(x.body, '') || ']'
               || ',"id":' || t.id
               || ',"key":' || to_json(t.key)::text
               || ',"kind":' || to_json(t.kind)::text
               || ',"memo":' || to_json(t.memo)::text
               || ',"reverses":' || COALESCE(t.reverses_id::text, 'null')
               || '}', 'UTF8')), 'hex') AS recomputed,
           COALESCE(x.total, 0) AS total, COALESCE(x.n, 0) AS n,
           COALESCE(x.has_zero, false) AS has_zero,
           to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               AS shown_time, t.created_at_text
    FROM ledger_transaction AS t LEFT JOIN entries AS x ON x.transaction_id = t.id
    WHERE t.id BETWEEN :lo AND :hi
), failed AS (
    SELECT * FROM checked
    WHERE id <> expected_id OR previous_hash <> prev_hash OR recomputed <> hash
       OR total <> 0 OR n < 2 OR has_zero OR reverses_id >= id OR reverses_id < 1
       OR shown_time <> created_at_text
    ORDER BY id LIMIT :limit
)
SELECT id, key, hash, prev_hash, previous_hash, expected_id, recomputed, total, n,
       has_zero, reverses_id, shown_time, created_at_text
FROM failed
UNION ALL
SELECT NULL, NULL,
       (SELECT hash FROM checked ORDER BY id DESC LIMIT 1),
       (SELECT prev_hash FROM checked ORDER BY id LIMIT 1),
       NULL, (SELECT COUNT(*) FROM checked), NULL, NULL, NULL, NULL, NULL, NULL, NULL
"""
)

# Per account, the entries of one range: all of them, and the credits by sales.
_PG_SUM_RANGE = text(
    "SELECT e.account_id, SUM(e.amount_fen), "
    "COALESCE(SUM(-e.amount_fen) FILTER (WHERE t.kind = ANY(CAST(:sale_kinds AS text[]))), 0) "
    "FROM ledger_entry AS e JOIN ledger_transaction AS t ON t.id = e.transaction_id "
    "WHERE e.transaction_id BETWEEN :lo AND :hi GROUP BY e.account_id"
)


@dataclass
class _RangeResult:
    lo: int
    hi: int
    rows: int
    first_prev_hash: str | None
    last_hash: str | None
    problems: list[str]
    sums: dict[int, int]
    from_sales: dict[int, int]


def _check_range_apart(engine: Engine, lo: int, hi: int) -> "_RangeResult":
    """Check transactions lo..hi on a connection of its own (read-only)."""
    with engine.connect() as conn:
        try:
            return _check_range(conn, lo, hi)
        finally:
            conn.rollback()


def _check_range(conn, lo: int, hi: int) -> "_RangeResult":
    """Check transactions lo..hi: the chain within the range, and its entries' sums."""
    rows = conn.execute(_PG_CHECK_RANGE, {"lo": lo, "hi": hi, "limit": MAX_PROBLEMS}).all()
    sums: dict[int, int] = {}
    from_sales: dict[int, int] = {}
    for account_id, total, received in conn.execute(
        _PG_SUM_RANGE, {"lo": lo, "hi": hi, "sale_kinds": list(SALE_KINDS)}
    ):
        sums[account_id] = int(total)
        from_sales[account_id] = int(received)
    # The summary row is the one without an id; it carries the range's row count in
    # expected_id and its first prev_hash / last hash in prev_hash / hash.
    summary = next(row for row in rows if row.id is None)
    return _RangeResult(
        lo,
        hi,
        int(summary.expected_id),
        summary.prev_hash,
        summary.hash,
        [_describe(row) for row in rows if row.id is not None],
        sums,
        from_sales,
    )


def _describe(row) -> str:
    """What is wrong with one transaction the database flagged."""
    where = f"transaction {row.id} ({row.key})"
    if row.id != row.expected_id:
        return f"chain: id {row.id} where {row.expected_id} was expected"
    if row.previous_hash is not None and row.previous_hash != row.prev_hash:
        return f"chain: {where}: prev_hash does not match the previous transaction's hash"
    if row.n < 2:
        return f"{where}: fewer than two entries"
    if row.has_zero:
        return f"{where}: an entry of 0 fen"
    if row.total != 0:
        return f"{where}: entries sum to {int(row.total)} fen, not 0"
    if row.reverses_id is not None and not 1 <= row.reverses_id < row.id:
        return f"{where}: reverses {row.reverses_id}, which is not an earlier transaction"
    if row.recomputed != row.hash:
        return f"chain: {where}: hash {row.hash} should be {row.recomputed}"
    return _time_problem(row.id, row.key, row.shown_time, row.created_at_text)


def _time_problem(tx_id: int, key: str, shown: str, hashed: str) -> str:
    return (
        f"transaction {tx_id} ({key}): its time {shown} (what statements show) "
        f"is not the hashed time {hashed}"
    )


def _verify_postgresql(session: Session, engine: Engine, range_size: int) -> AuditResult:
    snapshot = session.execute(_PG_SNAPSHOT).all()
    first = snapshot[0]
    count, has_written = int(first.last_id), first.has_written
    # A missing head row reads as the empty chain's head, as ledger.export.head does.
    head_count = int(first.count) if first.count is not None else 0
    head_hash = first.hash if first.hash is not None else GENESIS_HASH
    caches = {
        row.id: _AccountCache(row.code, row.kind, int(row.balance_fen), int(row.sales_received_fen))
        for row in snapshot
        if row.id is not None
    }
    bounds = [(lo, min(lo + range_size - 1, count)) for lo in range(1, count + 1, range_size)]
    if len(bounds) <= 1 or has_written:
        # On the caller's connection: one range needs no more, and a caller that has
        # written must have its uncommitted rows checked too (other connections cannot
        # see them), whatever the chain's length.
        results = [_check_range(session.connection(), *b) for b in bounds]
    else:
        with ThreadPoolExecutor(max_workers=PARALLEL_RANGES) as pool:
            results = list(pool.map(lambda b: _check_range_apart(engine, *b), bounds))

    problems: list[str] = []
    previous_hash = GENESIS_HASH
    for result in results:
        if result.rows and result.first_prev_hash != previous_hash:
            problems.append(
                f"chain: transaction {result.lo}: prev_hash does not match the previous "
                "transaction's hash"
            )
        if result.rows != result.hi - result.lo + 1:
            problems.append(
                f"chain: transactions {result.lo}–{result.hi}: {result.rows} rows where "
                f"{result.hi - result.lo + 1} were expected (ids missing)"
            )
        problems += result.problems
        previous_hash = result.last_hash or previous_hash
    last_hash = (results[-1].last_hash if results else None) or GENESIS_HASH
    # Compared whatever else is wrong: a tampered head must not hide behind another problem.
    if (head_count, head_hash) != (count, last_hash):
        problems.append(
            f"head says {head_count} transactions ending {head_hash[:12]}…, "
            f"the chain has {count} ending {last_hash[:12]}…"
        )

    sums: dict[int, int] = {}
    from_sales: dict[int, int] = {}
    for result in results:
        for account_id, fen in result.sums.items():
            sums[account_id] = sums.get(account_id, 0) + fen
        for account_id, fen in result.from_sales.items():
            from_sales[account_id] = from_sales.get(account_id, 0) + fen
    problems += _balance_problems(caches, sums, from_sales)
    return AuditResult(not problems, count, last_hash, problems[:MAX_PROBLEMS])
