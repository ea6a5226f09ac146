"""Posting many transactions at once, and verifying the ledger inside the database.

Runs on SQLite and PostgreSQL against the migrated schema. A batch must post, hash
for hash, what posting one at a time posts; ``ledger verify`` must accept every
honest ledger (whatever its memos contain) and name every tampered row, also when
PostgreSQL checks the chain in ranges on several connections.
"""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

import ledger.payouts  # noqa: F401  (its tables belong to the ledger's metadata)
from ledger import (
    Account,
    Base,
    IdempotencyConflict,
    NewTransaction,
    Overdrawn,
    SaleLine,
    SaleLineRecord,
    SaleRequest,
    Transaction,
    create_rule,
    ensure_account,
    head,
    iter_export,
    post,
    post_many,
    post_sale,
    post_sales,
    tree_root,
    verify_database,
)
from shop.extensions import db

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CLEARING = "alipay:clearing"
ENTERPRISE = "enterprise:1"
HOUSEHOLDS = [f"household:SJ-{n:03d}" for n in range(1, 4)]
# Strings a memo or key may carry that JSON must escape, or must not.
HOSTILE = [
    'quote " and backslash \\',
    "new\nline\ttab\rreturn",
    "control \x01\x08\x0c\x1f and delete \x7f",
    "line separator \u2028 paragraph \u2029",
    "双井村覆盆子酒 🍷 ¥158",
    "</script><b>&amp;</b>",
    "",
]


@pytest.fixture
def books(app):
    for code, kind in [(CLEARING, "clearing"), (ENTERPRISE, "enterprise")]:
        ensure_account(db.session, code, kind)
    for code in HOUSEHOLDS:
        ensure_account(db.session, code, "household")
    db.session.commit()
    return db.session


def sale_item(n: int, key_prefix: str = "sale") -> NewTransaction:
    amount = 1000 + n
    return NewTransaction(
        f"{key_prefix}:{n}",
        "sale",
        [(CLEARING, amount), (HOUSEHOLDS[n % 3], -300), (ENTERPRISE, -(amount - 300))],
        memo=f"订单 {n}",
        now=T0 + timedelta(minutes=n),
    )


def balances() -> dict[str, int]:
    return dict(db.session.execute(select(Account.code, Account.balance_fen)).all())


def test_a_batch_posts_in_order_and_moves_balances_once(books):
    posted = post_many(books, [sale_item(n) for n in range(6)])
    books.commit()
    assert [p.id for p in posted] == [1, 2, 3, 4, 5, 6]
    assert all(p.created for p in posted)
    chain = list(iter_export(books))
    assert [t["key"] for t in chain] == [f"sale:{n}" for n in range(6)]
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(chain))
    assert head(books) == (6, posted[-1].hash)
    assert balances()["household:SJ-001"] == -600  # sales 0 and 3
    assert balances()[CLEARING] == sum(1000 + n for n in range(6))
    assert verify_database(books).ok


def test_a_batch_posts_exactly_what_one_at_a_time_posts(books):
    """The chain is the same, hash for hash, as posting the items one by one (here in a
    private SQLite ledger), so an auditor cannot tell how a posting was made."""
    items = [sale_item(n) for n in range(5)]
    post_many(books, items)
    books.commit()

    engine = create_engine("sqlite://")
    Base.metadata.create_all(
        engine, tables=[t for n, t in Base.metadata.tables.items() if n.startswith("ledger_")]
    )
    with Session(engine) as alone:
        for code, kind in [(CLEARING, "clearing"), (ENTERPRISE, "enterprise")]:
            ensure_account(alone, code, kind)
        for code in HOUSEHOLDS:
            ensure_account(alone, code, "household")
        for item in items:
            post(alone, item.key, item.kind, item.entries, item.memo, now=item.now)
            alone.commit()
        one_by_one = [t["hash"] for t in iter_export(alone)]
    engine.dispose()
    assert [t["hash"] for t in iter_export(books)] == one_by_one


def test_repeats_in_and_before_a_batch_post_nothing_twice(books):
    post(books, "sale:1", "sale", sale_item(1).entries, "订单 1", now=sale_item(1).now)
    books.commit()
    before = balances()
    posted = post_many(books, [sale_item(1), sale_item(2), sale_item(2)])
    books.commit()
    assert [(p.id, p.created) for p in posted] == [(1, False), (2, True), (2, False)]
    assert posted[1].hash == posted[2].hash
    assert books.scalar(select(func.count()).select_from(Transaction)) == 2
    assert balances()[CLEARING] == before[CLEARING] + 1002


def test_a_repeat_with_other_content_refuses_the_whole_batch(books):
    changed = NewTransaction(
        "sale:2", "sale", [(CLEARING, 5), (ENTERPRISE, -5)], now=T0 + timedelta(hours=1)
    )
    with pytest.raises(IdempotencyConflict):
        post_many(books, [sale_item(1), sale_item(2), changed])
    books.rollback()
    assert books.scalar(select(func.count()).select_from(Transaction)) == 0


def test_an_overdraw_anywhere_in_a_batch_writes_nothing(books):
    """The third item pays a household more than the first two credited it: refused
    before a single row is written, and the chain head does not move."""
    pay_out = NewTransaction(
        "payout:1", "payout", [(HOUSEHOLDS[0], 301), ("payout:in_flight", -301)]
    )
    ensure_account(books, "payout:in_flight", "payout")
    books.commit()
    with pytest.raises(Overdrawn):
        post_many(books, [sale_item(0), sale_item(1), pay_out])
    books.rollback()
    assert books.scalar(select(func.count()).select_from(Transaction)) == 0
    assert head(books)[0] == 0
    assert balances()[HOUSEHOLDS[0]] == 0
    # In order, a payout of exactly what was credited earlier in the batch is fine.
    exact = NewTransaction("payout:1", "payout", [(HOUSEHOLDS[0], 300), ("payout:in_flight", -300)])
    post_many(books, [sale_item(0), exact])
    books.commit()
    assert balances()[HOUSEHOLDS[0]] == 0


def test_a_sale_and_a_payout_in_one_batch_keep_received_from_sales(books):
    """Regression: an account whose balance came back to where it was over a batch was
    left out of the update, so a household paid out in the same batch as its sale lost
    the sale from "received from sales" (what matched rules compare) and verify failed."""
    ensure_account(books, "payout:in_flight", "payout")
    household = HOUSEHOLDS[0]
    sale = NewTransaction(
        "sale:P1", "sale", [(CLEARING, 1000), (household, -300), (ENTERPRISE, -700)], now=T0
    )
    payout = NewTransaction(
        "payout:P1",
        "payout",
        [(household, 300), ("payout:in_flight", -300)],
        now=T0 + timedelta(minutes=1),
    )
    post_many(books, [sale, payout])
    books.commit()
    account = books.scalar(select(Account).where(Account.code == household))
    assert (account.balance_fen, account.sales_received_fen) == (0, 300)
    assert verify_database(books).ok


def test_a_repeat_given_as_lists_is_a_repeat(books):
    """Regression: entries given as [code, fen] lists (as JSON would give them) once made
    the repeat of a posting look like a conflicting one."""
    entries = [[CLEARING, 500], [ENTERPRISE, -500]]
    first = post(books, "sale:L1", "sale", entries, now=T0)
    books.commit()
    again = post(books, "sale:L1", "sale", entries, now=T0)
    assert (again.id, again.created) == (first.id, False)


# --- sales in batches ------------------------------------------------------------------


@pytest.fixture
def rules(app):
    """Product 1: ¥20 a unit split by land over three households; product 2: ¥10 a unit
    matched to the household that has received least."""
    ensure_account(db.session, ENTERPRISE, "enterprise")
    create_rule(
        db.session,
        1,
        "fixed",
        "weighted",
        {"SJ-001": 150, "SJ-002": 270, "SJ-003": 333},
        share_fen_per_unit=2000,
        weight_basis="land",
        effective_from=T0 - timedelta(days=1),
    )
    create_rule(
        db.session,
        2,
        "fixed",
        "matched",
        {"SJ-001": 1, "SJ-002": 1, "SJ-003": 1},
        share_fen_per_unit=1000,
        effective_from=T0 - timedelta(days=1),
    )
    db.session.commit()
    return db.session


def sale_request(n: int) -> SaleRequest:
    lines = [SaleLine(1 + n % 2, 15800, 1 + n % 3, ENTERPRISE)]
    return SaleRequest(
        f"sale:B{n}", lines, T0 + timedelta(minutes=n), fee_basis_points=60, memo=f"订单 B{n}"
    )


def test_sales_in_a_batch_equal_sales_one_by_one(rules):
    """Same allocations, same sale lines, same hashes; matched units spread over the
    batch exactly as they would one payment at a time."""
    requests = [sale_request(n) for n in range(9)]
    batch = post_sales(rules, requests)
    rules.commit()
    batch_chain = [t["hash"] for t in iter_export(rules)]
    batch_lines = rules.execute(
        select(
            SaleLineRecord.transaction_id, SaleLineRecord.rule_id, SaleLineRecord.share_fen
        ).order_by(SaleLineRecord.id)
    ).all()
    batch_owed = {code: -fen for code, fen in balances().items() if code.startswith("household")}

    # Start again on an empty ledger and post the same sales one at a time.
    batch_root = tree_root(rules, len(batch_chain))
    for table in ("ledger_sale_line", "ledger_entry", "ledger_transaction", "ledger_tree_node"):
        _force(rules, f"DELETE FROM {table}")
    _force(rules, "UPDATE ledger_account SET balance_fen = 0, sales_received_fen = 0")
    _force(rules, f"UPDATE ledger_head SET count = 0, hash = '{'0' * 64}'")
    rules.commit()
    alone = [post_sale(rules, r.key, r.lines, r.paid_at, 60, r.memo) for r in requests]
    rules.commit()

    assert [t["hash"] for t in iter_export(rules)] == batch_chain
    assert tree_root(rules, len(batch_chain)) == batch_root  # the Merkle tree too
    assert [r.households for r in alone] == [r.households for r in batch]
    assert (
        rules.execute(
            select(
                SaleLineRecord.transaction_id, SaleLineRecord.rule_id, SaleLineRecord.share_fen
            ).order_by(SaleLineRecord.id)
        ).all()
        == batch_lines
    )
    assert batch_owed == {
        code: -fen for code, fen in balances().items() if code.startswith("household")
    }
    assert sum(batch_owed.values()) == sum(
        (2000 if n % 2 == 0 else 1000) * (1 + n % 3) for n in range(9)
    )
    assert verify_database(rules).ok


def test_a_batch_of_sales_already_posted_returns_them(rules):
    first = post_sales(rules, [sale_request(n) for n in range(3)])
    rules.commit()
    again = post_sales(rules, [sale_request(n) for n in range(4)])
    rules.commit()
    assert [r.posted.created for r in again] == [False, False, False, True]
    assert [r.posted.hash for r in again[:3]] == [r.posted.hash for r in first]
    assert [r.households for r in again[:3]] == [r.households for r in first]
    lines = rules.scalar(select(func.count()).select_from(SaleLineRecord))
    assert lines == 4  # one line per sale, none written twice


def test_a_sale_credits_only_the_households_it_pays(rules):
    """A household of the rule that this sale gives nothing gets no account yet (as
    before batching): accounts appear with the household's first fen."""
    create_rule(
        rules,
        3,
        "fixed",
        "weighted",
        {"SJ-101": 1, "SJ-102": 1, "SJ-103": 1},
        share_fen_per_unit=1,
        effective_from=T0 - timedelta(days=1),
    )
    rules.commit()
    result = post_sale(rules, "sale:ONE", [SaleLine(3, 500, 1, ENTERPRISE)], T0)
    rules.commit()
    assert sum(result.households.values()) == 1
    codes = set(rules.scalars(select(Account.code).where(Account.code.like("household:SJ-10%"))))
    assert codes == {f"household:{code}" for code in result.households}


# --- verify, in the database -------------------------------------------------------------


def _force(session, statement: str) -> None:
    """Run ``statement`` past the append-only guards (as an intruder with the database's
    owner rights could): PostgreSQL skips triggers for this transaction; SQLite's test
    copy loses its triggers."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL session_replication_role = replica"))
    else:
        for (name,) in session.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ).all():
            session.execute(sa.text(f'DROP TRIGGER "{name}"'))
    session.execute(sa.text(statement))


def hostile_ledger(session) -> None:
    items = [
        NewTransaction(
            f"sale:{n}:{text[:6]}",
            "sale",
            [(CLEARING, 500 + n), (HOUSEHOLDS[0], -100), (ENTERPRISE, -(400 + n))],
            memo=text,
            now=T0 + timedelta(seconds=n, microseconds=n * 7),
        )
        for n, text in enumerate(HOSTILE)
    ]
    post_many(session, items)
    session.commit()


@pytest.mark.parametrize("range_size", [1_000, 2])
def test_verify_accepts_memos_and_keys_that_json_must_escape(books, range_size):
    """On PostgreSQL the database builds the canonical JSON itself: it must agree with
    Python's byte for byte, or an honest ledger would fail. Range size 2 checks the
    chain in four ranges on separate connections and joins them at the seams."""
    hostile_ledger(books)
    result = verify_database(books, range_size=range_size)
    assert result.ok, result.problems
    assert (result.count, result.head_hash) == head(books)
    assert [t["memo"] for t in iter_export(books)] == HOSTILE


@pytest.mark.parametrize("range_size", [1_000, 2])
@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("UPDATE ledger_transaction SET memo = 'edited' WHERE id = 5", "transaction 5"),
        # A fen moved between two entries of one transaction: still sums to zero.
        (
            "UPDATE ledger_entry SET amount_fen = amount_fen + CASE position "
            "WHEN 1 THEN -1 ELSE 1 END WHERE transaction_id = 3 AND position IN (1, 2)",
            "transaction 3",
        ),
        ("DELETE FROM ledger_entry WHERE transaction_id = 4 AND position = 2", "transaction 4"),
        (f"UPDATE ledger_transaction SET prev_hash = '{'a' * 64}' WHERE id = 6", "transaction 6"),
        ("UPDATE ledger_transaction SET created_at_text = 'x' WHERE id = 1", "transaction 1"),
    ],
)
def test_verify_names_the_tampered_transaction(books, range_size, statement, named):
    hostile_ledger(books)
    assert verify_database(books, range_size=range_size).ok
    _force(books, statement)
    books.commit()
    result = verify_database(books, range_size=range_size)
    assert not result.ok
    assert any(named in problem for problem in result.problems), result.problems


@pytest.mark.parametrize("range_size", [1_000, 2])
def test_verify_finds_a_missing_transaction(books, range_size):
    hostile_ledger(books)
    _force(books, "DELETE FROM ledger_entry WHERE transaction_id = 4")
    _force(books, "DELETE FROM ledger_transaction WHERE id = 4")
    books.commit()
    result = verify_database(books, range_size=range_size)
    assert not result.ok
    assert any("4" in p and ("missing" in p or "expected" in p) for p in result.problems)
    # One gap is named once or twice (the gap, the range short of a row), not once per
    # later transaction; the balances still carrying the deleted posting are named too.
    assert len([p for p in result.problems if p.startswith("chain")]) <= 2, result.problems
    assert any(HOUSEHOLDS[0] in p for p in result.problems), result.problems


@pytest.mark.parametrize("range_size", [1_000, 2])
def test_verify_finds_a_head_that_names_another_hash(books, range_size):
    hostile_ledger(books)
    _force(books, f"UPDATE ledger_head SET hash = '{'f' * 64}'")
    books.commit()
    result = verify_database(books, range_size=range_size)
    assert any("head says" in p for p in result.problems), result.problems


@pytest.mark.parametrize("range_size", [1_000, 2])
def test_verify_ties_the_shown_time_to_the_hashed_time(books, range_size):
    """Regression: statements and the boards' day totals read ``created_at``, which is
    not hashed; moving a posting to another day passed both verifiers."""
    hostile_ledger(books)
    _force(books, "UPDATE ledger_transaction SET created_at = '2025-01-01 08:00:00' WHERE id = 3")
    books.commit()
    result = verify_database(books, range_size=range_size)
    assert not result.ok
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].startswith("transaction 3 (")
    assert "is not the hashed time 2026-11-25T08:00:02.000014Z" in result.problems[0]


@pytest.mark.parametrize("range_size", [1_000, 2])
def test_verify_names_a_missing_head_row(books, range_size):
    """Regression: on PostgreSQL a deleted head row made the snapshot empty, and verify
    checked nothing and said OK."""
    hostile_ledger(books)
    _force(books, "DELETE FROM ledger_head")
    books.commit()
    result = verify_database(books, range_size=range_size)
    assert not result.ok
    assert any(p.startswith("head says 0 transactions") for p in result.problems), result.problems


@pytest.mark.parametrize("range_size", [1_000, 2])
def test_verify_names_a_tampered_head_beside_another_problem(books, range_size):
    """Regression: on PostgreSQL any other problem (here a moved time) hid the head's."""
    hostile_ledger(books)
    _force(books, "UPDATE ledger_transaction SET created_at = '2025-01-01 08:00:00' WHERE id = 2")
    _force(books, f"UPDATE ledger_head SET hash = '{'a' * 64}'")
    books.commit()
    problems = verify_database(books, range_size=range_size).problems
    assert any(p.startswith("transaction 2 (") for p in problems), problems
    assert any(p.startswith("head says") for p in problems), problems


def test_verify_names_a_stored_time_that_is_not_a_time(books):
    """SQLite stores times as text; a value that does not parse is named, not a crash."""
    if books.get_bind().dialect.name == "postgresql":
        pytest.skip("a timestamptz column holds only times")
    hostile_ledger(books)
    _force(books, "UPDATE ledger_transaction SET created_at = 'yesterday' WHERE id = 4")
    books.commit()
    problems = verify_database(books).problems
    assert problems == [problems[0]] and "its time 'yesterday'" in problems[0], problems


@pytest.mark.parametrize("range_size", [1_000, 2])
def test_verify_finds_a_head_that_lags_the_chain(books, range_size):
    """One problem, named as such: not a cascade of balance mismatches."""
    hostile_ledger(books)
    _force(books, "UPDATE ledger_head SET count = count - 1")
    books.commit()
    result = verify_database(books, range_size=range_size)
    assert not result.ok
    assert len(result.problems) == 1 and "head says" in result.problems[0], result.problems


@pytest.mark.parametrize("range_size", [1_000, 2])
def test_verify_counts_the_callers_uncommitted_postings_whatever_the_chain_length(
    books, range_size
):
    """Regression: with the chain cut into ranges on other connections, the caller's own
    uncommitted posting showed as missing ids and wrong balances, while one range on
    the caller's connection accepted it: the answer flipped at 25,000 transactions."""
    hostile_ledger(books)
    post_many(books, [sale_item(90)])
    result = verify_database(books, range_size=range_size)
    assert result.ok, result.problems
    assert result.count == head(books)[0]
    books.rollback()


@pytest.mark.postgres_only
def test_postgresql_zero_sum_check_leaves_no_setting_per_transaction(books):
    """Regression (migration 0008): the check once marked every transaction it checked
    with a setting of its own; PostgreSQL keeps every setting name a connection ever
    used, and re-sorts the list for each new one, so a busy pooled connection grew
    slower with every posting (7 ms more per commit after 20,000)."""
    with db.engine.connect() as conn:
        with Session(bind=conn) as session:
            post_many(session, [sale_item(n) for n in range(5)])
            session.commit()
        leftovers = [
            conn.execute(
                sa.text("SELECT current_setting(:name, true)"),
                {"name": f"ledger_checked.tx_{tx_id}"},
            ).scalar()
            for tx_id in range(1, 6)
        ]
    assert leftovers == [None] * 5
