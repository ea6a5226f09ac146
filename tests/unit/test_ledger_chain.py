"""The hash chain, the public export and the audits an outsider or an admin can run.

Runs on SQLite and (with ``TEST_DATABASE_URL``) PostgreSQL; the race only on PostgreSQL.
"""

import glob
import itertools
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import ledger.verify
from ledger import (
    Account,
    Overdrawn,
    Transaction,
    Unbalanced,
    account_statement,
    ensure_account,
    find,
    head,
    iter_export,
    post,
    reverse,
    totals_by_kind,
    trial_balance,
    verify_database,
)
from ledger.canonical import GENESIS_HASH, chain_hash
from shop.extensions import db
from tests.builders import in_app_thread

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CLEARING = "alipay:clearing"
ENTERPRISE = "enterprise:1"
IN_FLIGHT = "payout:in_flight"
HOUSEHOLDS = [f"household:SJ-{n:03d}" for n in range(1, 11)]


def open_books() -> None:
    ensure_account(db.session, CLEARING, "clearing")
    ensure_account(db.session, ENTERPRISE, "enterprise")
    ensure_account(db.session, IN_FLIGHT, "payout")
    for code in HOUSEHOLDS:
        ensure_account(db.session, code, "household")
    db.session.commit()


def sale_entries(n: int) -> list[tuple[str, int]]:
    """A sale of ``n`` yuan-ish: clearing debited, ten households and the enterprise credited."""
    total = 15800 + n
    shares = [100 + (n * 7 + i) % 50 for i in range(len(HOUSEHOLDS))]
    entries = [(CLEARING, total)]
    entries += [(code, -s) for code, s in zip(HOUSEHOLDS, shares, strict=True)]
    entries.append((ENTERPRISE, -(total - sum(shares))))
    return entries


@pytest.fixture
def chain(app):
    """Five sales, a refund and a payout, committed."""
    open_books()
    for n in range(5):
        post(
            db.session,
            f"sale:T{n}",
            "sale",
            sale_entries(n),
            memo=f"订单 LX{n}",
            now=T0 + timedelta(hours=n),
        )
    reverse(db.session, "refund:R1", 2, "refund", memo="退款", now=T0 + timedelta(hours=6))
    post(
        db.session,
        "payout:P1",
        "payout",
        [(HOUSEHOLDS[0], 300), (IN_FLIGHT, -300)],
        memo="打款",
        now=T0 + timedelta(hours=7),
    )
    db.session.commit()
    return db.session


def balances() -> dict[str, int]:
    return dict(db.session.execute(select(Account.code, Account.balance_fen)).all())


def write_export(path, items) -> None:
    path.write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8"
    )


def run_verify(path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ledger.verify", str(path), *options],
        capture_output=True,
        text=True,
    )


def test_the_export_is_the_chain_in_posting_order(chain):
    exported = list(iter_export(db.session))
    assert [t["id"] for t in exported] == list(range(1, 8))
    assert exported[0]["prev_hash"] == GENESIS_HASH
    for previous, current in itertools.pairwise(exported):
        assert current["prev_hash"] == previous["hash"]
    for item in exported:
        assert item["hash"] == chain_hash(item["prev_hash"], item)
        assert set(item) == {
            "id",
            "key",
            "kind",
            "created_at",
            "memo",
            "reverses",
            "entries",
            "prev_hash",
            "hash",
        }
    refund = exported[5]
    assert refund["reverses"] == 2 and refund["key"] == "refund:R1"
    assert exported[0]["created_at"] == "2026-11-25T08:00:00.000000Z"
    assert exported[0]["memo"] == "订单 LX0"
    assert head(db.session) == (7, exported[-1]["hash"])


def test_an_outsider_recomputes_the_same_head_and_balances(chain, tmp_path):
    export = tmp_path / "export.jsonl"
    write_export(export, iter_export(db.session))
    result = run_verify(export)

    count, head_hash = head(db.session)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK {count} transactions, head {head_hash}" in result.stdout
    printed = dict(
        (line.split("\t")[0], int(line.split("\t")[1]))
        for line in result.stdout.splitlines()[1:]
        if "\t" in line
    )
    assert printed.pop("sum of all balances") == 0
    assert printed == {code: b for code, b in balances().items() if code in printed}
    assert printed[HOUSEHOLDS[0]] == balances()[HOUSEHOLDS[0]]
    assert verify_database(db.session).head_hash == head_hash


@pytest.mark.parametrize(
    ("line", "tamper", "complaint"),
    [
        (2, lambda t: t["entries"][1].update(amount_fen=t["entries"][1]["amount_fen"] - 1), "sum"),
        (
            3,
            lambda t: (
                t["entries"][1].update(amount_fen=t["entries"][1]["amount_fen"] + 100)
                or t["entries"][-1].update(amount_fen=t["entries"][-1]["amount_fen"] - 100)
            ),
            "hash",
        ),
        (4, lambda t: t.update(memo="订单 LX9"), "hash"),
        (5, lambda t: t["entries"][2].update(account=HOUSEHOLDS[9]), "hash"),
        (6, lambda t: t.update(reverses=1), "hash"),
        (7, lambda t: t.update(created_at="2026-11-25T16:00:00.000000Z"), "hash"),
        (3, lambda t: t.update(amount_fen=1, entries=t["entries"][:1]), "two entries"),
        (3, lambda t: t["entries"][0].update(amount_fen=15803.0), "integer"),
        (4, lambda t: t.update(key="sale:T0"), "twice"),
    ],
    ids=[
        "amount",
        "amount-kept-balanced",
        "memo",
        "account",
        "reverses",
        "time",
        "one-entry",
        "float",
        "duplicate-key",
    ],
)
def test_a_tampered_export_fails_at_the_tampered_line(chain, tmp_path, line, tamper, complaint):
    items = list(iter_export(db.session))
    tamper(items[line - 1])
    export = tmp_path / "tampered.jsonl"
    write_export(export, items)
    result = run_verify(export)
    assert result.returncode == 1
    assert result.stdout.startswith(f"FAILED line {line}:"), result.stdout
    assert complaint in result.stdout


def test_a_rewritten_line_breaks_the_link_to_the_next(chain, tmp_path):
    """Whoever recomputes a tampered line's hash breaks the next line's prev_hash."""
    items = list(iter_export(db.session))
    items[2]["memo"] = "rewritten"
    items[2]["hash"] = chain_hash(items[2]["prev_hash"], items[2])
    write_export(tmp_path / "a.jsonl", items)
    result = run_verify(tmp_path / "a.jsonl")
    assert result.returncode == 1 and "line 4: prev_hash" in result.stdout

    missing = list(iter_export(db.session))
    del missing[3]
    write_export(tmp_path / "b.jsonl", missing)
    result = run_verify(tmp_path / "b.jsonl")
    assert result.returncode == 1 and "line 4: id 5 where 4 was expected" in result.stdout

    (tmp_path / "c.jsonl").write_text('{"id": 1, "key": \n', encoding="utf-8")
    result = run_verify(tmp_path / "c.jsonl")
    assert result.returncode == 1 and "line 1: malformed" in result.stdout


def test_an_empty_export_is_the_genesis(app, tmp_path):
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    result = run_verify(tmp_path / "empty.jsonl")
    assert result.returncode == 0 and f"OK 0 transactions, head {GENESIS_HASH}" in result.stdout
    # What the open-data page prints before the first posting must pass too.
    as_printed = run_verify(tmp_path / "empty.jsonl", "--head", GENESIS_HASH)
    assert as_printed.returncode == 0, as_printed.stdout
    audit = verify_database(db.session)
    assert audit.ok and (audit.count, audit.head_hash) == (0, GENESIS_HASH)


def test_a_recorded_head_proves_the_export_whole_and_unrewritten(chain, tmp_path):
    """An auditor who recorded a head earlier passes it with --head: an export cut
    short, or a history rewritten since (every hash from the change on differs), fails,
    though each file is a valid chain on its own."""
    items = list(iter_export(db.session))
    recorded = items[4]["hash"]  # the head as it was after five postings
    write_export(tmp_path / "whole.jsonl", items)
    result = run_verify(tmp_path / "whole.jsonl", "--head", recorded, "--head", items[-1]["hash"])
    assert result.returncode == 0, result.stdout
    assert f"head {recorded} is transaction 5" in result.stdout

    write_export(tmp_path / "cut.jsonl", items[:4])
    assert run_verify(tmp_path / "cut.jsonl").returncode == 0  # valid on its own
    cut = run_verify(tmp_path / "cut.jsonl", "--head", recorded)
    assert cut.returncode == 1
    assert cut.stdout.startswith(f"FAILED head {recorded} is not in this chain of 4")

    rewritten = [dict(item) for item in items]
    rewritten[2]["memo"] = "rewritten"
    for previous, item in zip([None, *rewritten], rewritten, strict=False):
        if previous is not None:
            item["prev_hash"] = previous["hash"]
        item["hash"] = chain_hash(item["prev_hash"], item)
    write_export(tmp_path / "rewritten.jsonl", rewritten)
    assert run_verify(tmp_path / "rewritten.jsonl").returncode == 0  # valid on its own
    assert run_verify(tmp_path / "rewritten.jsonl", "--head", recorded).returncode == 1


OLDER_PYTHONS = sorted(
    path
    for version in ("3.8", "3.9", "3.10")
    for path in glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python"))
)


@pytest.mark.skipif(not OLDER_PYTHONS, reason="no Python older than 3.11 on this machine")
@pytest.mark.parametrize("python", OLDER_PYTHONS)
def test_the_standalone_verifier_runs_on_older_pythons(chain, tmp_path, python):
    """Regression: canonical.py imported datetime.UTC (3.11+), so an auditor's Python
    3.8–3.10 failed with ImportError before reading a line. The README promises 3.8."""
    for name in ("verify.py", "canonical.py"):
        shutil.copy(Path(ledger.verify.__file__).with_name(name), tmp_path / name)
    write_export(tmp_path / "export.jsonl", iter_export(db.session))
    result = subprocess.run(
        [python, "verify.py", "export.jsonl", "--head", head(db.session)[1]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK 7 transactions, head {head(db.session)[1]}" in result.stdout


def test_the_audit_passes_on_an_honest_ledger(chain):
    result = verify_database(db.session)
    assert result.ok, result.problems
    assert (result.count, result.head_hash) == head(db.session)
    assert result.problems == []


def test_the_audit_names_a_balance_cache_corrupted_by_raw_sql(chain):
    honest = balances()[HOUSEHOLDS[3]]
    db.session.execute(
        sa.text("UPDATE ledger_account SET balance_fen = balance_fen - 5 WHERE code = :c"),
        {"c": HOUSEHOLDS[3]},
    )
    db.session.commit()
    result = verify_database(db.session)
    assert not result.ok
    assert result.problems == [
        f"account {HOUSEHOLDS[3]}: balance {honest - 5} fen, entries sum to {honest} fen"
    ]


def test_the_audit_names_a_head_that_is_not_the_last_transaction(chain):
    db.session.execute(sa.text("UPDATE ledger_head SET count = 6"))
    db.session.commit()
    result = verify_database(db.session)
    assert not result.ok
    assert len(result.problems) == 1 and "head says 6 transactions" in result.problems[0]


def test_auditing_leaves_the_callers_ledger_objects_usable(chain):
    """Regression: the export once expunged every transaction and entry it read, including
    the ones the caller was holding, so using them afterwards failed."""
    tx = find(db.session, "sale:T1")
    account = db.session.scalar(select(Account).where(Account.code == CLEARING))
    assert verify_database(db.session).ok
    assert tx in db.session and account in db.session
    db.session.expire_all()
    assert [e.account.code for e in tx.entries][:2] == [CLEARING, HOUSEHOLDS[0]]


def test_the_cli_verifies_the_database(chain, app):
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["ledger", "verify"])
    assert ok.exit_code == 0
    first, tree_line = ok.output.strip().splitlines()
    assert first == f"OK 7 transactions, head {head(db.session)[1]}"
    assert tree_line.startswith("OK Merkle tree")

    db.session.execute(
        sa.text("UPDATE ledger_account SET balance_fen = 1 WHERE code = :c"), {"c": CLEARING}
    )
    db.session.commit()
    bad = runner.invoke(args=["ledger", "verify"])
    assert bad.exit_code == 1
    assert f"account {CLEARING}: balance 1 fen" in bad.output


def test_statements_agree_with_the_balances(chain):
    rows = trial_balance(db.session)
    assert sum(r.balance_fen for r in rows) == 0
    assert sum(r.debit_fen for r in rows) == sum(r.credit_fen for r in rows)
    assert {r.code: r.balance_fen for r in rows} == balances()
    by_kind = totals_by_kind(rows)
    assert sum(by_kind.values()) == 0
    assert by_kind["household"] == sum(balances()[c] for c in HOUSEHOLDS)

    household = HOUSEHOLDS[0]
    full = account_statement(db.session, household)
    assert full.opening_fen == 0 and full.closing_fen == balances()[household]
    assert [line.transaction_id for line in full.lines] == [1, 2, 3, 4, 5, 6, 7]
    assert full.lines[-1].amount_fen == 300 and full.lines[-1].kind == "payout"
    running = 0
    for line in full.lines:
        running += line.amount_fen
        assert line.balance_fen == running

    window = account_statement(
        db.session, household, start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=6)
    )
    assert [line.transaction_id for line in window.lines] == [3, 4, 5]
    assert window.opening_fen == full.lines[1].balance_fen
    assert window.closing_fen == full.lines[4].balance_fen
    assert account_statement(db.session, "household:nobody").lines == []


STEP = st.one_of(
    st.tuples(st.just("sale"), st.integers(0, 9), st.integers(1, 5000)),
    st.tuples(st.just("refund"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("payout"), st.integers(0, 9), st.integers(1, 3000)),
    st.tuples(st.just("repeat"), st.integers(0, 30), st.just(0)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_random_postings_and_reversals_keep_the_books(app, steps):
    """Examples share one database (balances carry over), so every invariant is checked
    over the whole history so far, not just this example's steps."""
    if db.session.scalar(select(func.count()).select_from(Account)) == 0:
        open_books()
    expected = balances()
    posted_keys = list(db.session.scalars(select(Transaction.key).order_by(Transaction.id)))
    run = db.session.scalar(select(func.count()).select_from(Transaction))

    def apply(key, entries, action):
        try:
            result = action()
        except (Overdrawn, Unbalanced):  # overpaying a household; an empty partial refund
            db.session.rollback()
            return
        db.session.commit()
        if result.created:
            posted_keys.append(key)
            for code, amount in entries:
                expected[code] += amount

    for number, (action, a, b) in enumerate(steps):
        key = f"{action}:{run}:{number}"
        if action == "sale":
            share = min(b, 1000)
            entries = [(CLEARING, b + share), (HOUSEHOLDS[a], -share), (ENTERPRISE, -b)]
            apply(key, entries, lambda k=key, e=entries: post(db.session, k, "sale", e))
        elif action == "payout":
            entries = [(HOUSEHOLDS[a], b), (IN_FLIGHT, -b)]
            apply(key, entries, lambda k=key, e=entries: post(db.session, k, "payout", e))
        elif action == "refund" and posted_keys:
            original = find(db.session, posted_keys[a % len(posted_keys)])
            whole = [(e.account.code, e.amount_fen) for e in original.entries]
            portion = None
            if b and len(whole) == 3:  # partial: half of the household and enterprise parts
                halves = [(code, amount // 2) for code, amount in whole[1:]]
                portion = dict([(whole[0][0], -sum(h for _, h in halves)), *halves])
                portion = {code: amount for code, amount in portion.items() if amount}
            undone = [(c, -v) for c, v in (portion.items() if portion is not None else whole)]
            apply(
                key,
                undone,
                lambda k=key, o=original.id, p=portion: reverse(
                    db.session, k, o, "refund", portion=p
                ),
            )
        elif action == "repeat" and posted_keys:
            again = find(db.session, posted_keys[a % len(posted_keys)])
            entries = [(e.account.code, e.amount_fen) for e in again.entries]
            before = head(db.session)
            repeat = post(db.session, again.key, again.kind, entries, reverses_id=again.reverses_id)
            assert not repeat.created and repeat.id == again.id
            assert head(db.session) == before

    assert balances() == expected
    assert sum(expected.values()) == 0
    assert all(expected[code] <= 0 for code in HOUSEHOLDS)
    for item in iter_export(db.session):
        assert sum(e["amount_fen"] for e in item["entries"]) == 0
    result = verify_database(db.session)
    assert result.ok, result.problems


@pytest.mark.postgres_only
def test_eight_workers_posting_at_once_keep_one_linear_chain(app):
    open_books()
    shared = [f"shared:{n}" for n in range(5)]  # every worker posts these too

    def entries_for(key: str) -> list[tuple[str, int]]:
        return sale_entries(sum(key.encode()) % 1000)

    def worker(number: int) -> list[tuple[str, bool]]:
        keys = [f"w{number}:{i}" for i in range(20)] + shared
        keys = keys[number % 5 :] + keys[: number % 5]  # meet the shared keys at different times
        outcomes = []
        for key in keys:
            posted = post(db.session, key, "sale", entries_for(key))
            db.session.commit()
            outcomes.append((key, posted.created))
        return outcomes

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: in_app_thread(app, worker, n), range(8)))

    created = [key for outcomes in results for key, new in outcomes if new]
    assert sum(len(outcomes) for outcomes in results) == 8 * 25
    assert len(created) == len(set(created)) == 8 * 20 + 5
    assert all(created.count(key) == 1 for key in shared)

    db.session.expire_all()
    exported = list(iter_export(db.session))
    assert [t["id"] for t in exported] == list(range(1, 166))
    assert exported[0]["prev_hash"] == GENESIS_HASH
    assert all(t["prev_hash"] == p["hash"] for p, t in itertools.pairwise(exported))
    assert head(db.session) == (165, exported[-1]["hash"])
    result = verify_database(db.session)
    assert result.ok, result.problems
    credited = sum(
        e["amount_fen"] for t in exported for e in t["entries"] if e["account"] in HOUSEHOLDS
    )
    assert sum(balances()[code] for code in HOUSEHOLDS) == credited


def test_sales_received_is_kept_by_sales_only_and_audited(chain):
    """Each household's "received from sales" cache (what matched rules compare) moves
    with sale postings, not with the refund or the payout, and the audit names it when
    raw SQL changes it."""
    from_sales = dict(
        db.session.execute(
            select(Account.code, Account.sales_received_fen).where(Account.kind == "household")
        ).all()
    )
    expected = {code: 0 for code in HOUSEHOLDS}
    for n in range(5):
        for code, amount in sale_entries(n):
            if code in expected and amount < 0:
                expected[code] -= amount
    assert from_sales == expected and any(expected.values())

    db.session.execute(
        sa.text("UPDATE ledger_account SET sales_received_fen = 0 WHERE code = :c"),
        {"c": HOUSEHOLDS[1]},
    )
    db.session.commit()
    result = verify_database(db.session)
    assert result.problems == [
        f"account {HOUSEHOLDS[1]}: received from sales 0 fen, its sale entries sum to "
        f"{expected[HOUSEHOLDS[1]]} fen"
    ]
