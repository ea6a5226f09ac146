"""What the database itself guarantees about the ledger, and what an auditor can catch.

Runs on SQLite and PostgreSQL (the races only on PostgreSQL). Postings go through the
real shop path: orders paid by ``apply_payment``, which posts the sale in the same
transaction.
"""

import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from ledger import Account, Transaction, iter_export, verify_database
from shop.benefits.services import set_product_rule
from shop.extensions import db
from shop.orders.services import apply_payment
from tests.builders import in_app_thread, make_household, make_order, make_product, make_village


@pytest.fixture
def wine(app):
    village = make_village(code="SJ")
    households = [
        make_household(village, head_name=f"王{n}明", code=f"SJ-{n:03d}") for n in range(1, 6)
    ]
    product = make_product(price_fen=15800, stock=10_000)
    set_product_rule(product.id, households, "matched", share_fen_per_unit=2000)
    return product


def pay(order, trade_no):
    return apply_payment(order.order_no, trade_no, order.total_fen, paid=True)


def ledger_count():
    return db.session.scalar(select(func.count()).select_from(Transaction))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entry SET amount_fen = amount_fen + 1",
        "DELETE FROM ledger_entry",
        "UPDATE ledger_transaction SET memo = 'edited'",
        "DELETE FROM ledger_transaction",
        "UPDATE ledger_benefit_rule SET share_fen_per_unit = 1",
        "DELETE FROM ledger_sale_line",
        "UPDATE ledger_tree_node SET hash = hash",
        "DELETE FROM ledger_tree_node",
    ],
)
def test_posted_rows_cannot_be_changed_even_with_raw_sql(app, wine, statement):
    pay(make_order([(wine, 1)]), "T-RAW-1")
    before = [t["hash"] for t in iter_export(db.session)]
    with pytest.raises(sa.exc.DatabaseError) as refused:
        db.session.execute(sa.text(statement))
        db.session.commit()
    db.session.rollback()
    assert "append-only" in str(refused.value)
    assert [t["hash"] for t in iter_export(db.session)] == before


@pytest.mark.postgres_only
def test_postgresql_checks_every_transaction_of_a_commit_and_later_additions(app, wine):
    """The zero-sum check runs once per ledger transaction per commit: a balanced one
    does not excuse an unbalanced one beside it, and an entry added later to a
    committed transaction is checked again."""
    pay(make_order([(wine, 1)]), "T-SUM-2")
    clearing = db.session.scalar(select(Account.id).where(Account.code == "alipay:clearing"))

    def forge(tx_id: int, amounts: list[int]) -> None:
        db.session.execute(
            sa.text(
                "INSERT INTO ledger_transaction (id, key, kind, memo, created_at, "
                "created_at_text, prev_hash, hash) VALUES (:i, :k, 'sale', '', now(), 'x', "
                ":p, :h)"
            ),
            {"i": tx_id, "k": f"forged-{tx_id}", "p": f"{tx_id:064x}", "h": f"{tx_id:064d}"},
        )
        for position, amount in enumerate(amounts):
            db.session.execute(
                sa.text(
                    "INSERT INTO ledger_entry (transaction_id, position, account_id, amount_fen)"
                    " VALUES (:t, :p, :a, :m)"
                ),
                {"t": tx_id, "p": position, "a": clearing, "m": amount},
            )

    forge(98, [500, -500])  # balanced
    forge(99, [700, -500])  # not
    with pytest.raises(sa.exc.DatabaseError) as refused:
        db.session.commit()
    db.session.rollback()
    assert "ledger transaction 99 is unbalanced" in str(refused.value)

    with pytest.raises(sa.exc.DatabaseError) as refused:
        db.session.execute(
            sa.text(
                "INSERT INTO ledger_entry (transaction_id, position, account_id, amount_fen) "
                "VALUES (1, 99, :a, 1)"
            ),
            {"a": clearing},
        )
        db.session.commit()
    db.session.rollback()
    assert "ledger transaction 1 is unbalanced" in str(refused.value)
    assert ledger_count() == 1


@pytest.mark.postgres_only
def test_postgresql_refuses_an_unbalanced_transaction_at_commit(app, wine):
    pay(make_order([(wine, 1)]), "T-SUM-1")
    clearing = db.session.scalar(select(Account.id).where(Account.code == "alipay:clearing"))
    db.session.execute(
        sa.text(
            "INSERT INTO ledger_transaction (id, key, kind, memo, created_at, created_at_text, "
            "prev_hash, hash) VALUES (99, 'forged', 'sale', '', now(), 'x', :p, :h)"
        ),
        {"p": "f" * 64, "h": "e" * 64},
    )
    db.session.execute(
        sa.text(
            "INSERT INTO ledger_entry (transaction_id, position, account_id, amount_fen) "
            "VALUES (99, 0, :a, 500)"
        ),
        {"a": clearing},
    )
    with pytest.raises(sa.exc.DatabaseError) as refused:
        db.session.commit()
    db.session.rollback()
    assert "unbalanced" in str(refused.value)
    assert ledger_count() == 1


def test_audit_names_a_corrupted_balance_cache(app, wine):
    pay(make_order([(wine, 2)]), "T-AUDIT-1")
    assert verify_database(db.session).ok
    db.session.execute(
        sa.text("UPDATE ledger_account SET balance_fen = balance_fen - 1 WHERE code = 'SJ'")
    )
    db.session.execute(
        sa.text(
            "UPDATE ledger_account SET balance_fen = balance_fen - 7 "
            "WHERE code = 'household:SJ-001'"
        )
    )
    db.session.commit()
    result = verify_database(db.session)
    assert not result.ok
    assert any("household:SJ-001" in p and "entries sum to -2000" in p for p in result.problems)


def test_a_tampered_export_fails_at_the_tampered_line(app, wine, tmp_path):
    for n in range(3):
        pay(make_order([(wine, 1)]), f"T-EXP-{n}")
    lines = [json.dumps(t, ensure_ascii=False) for t in iter_export(db.session)]
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ok = subprocess.run(
        [sys.executable, "-m", "ledger.verify", str(good)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "OK 3 transactions" in ok.stdout

    second = json.loads(lines[1])
    second["entries"][1]["amount_fen"] += 100  # quietly take ¥1 from a household
    second["entries"][0]["amount_fen"] -= 100  # and keep the sum at zero
    lines[1] = json.dumps(second, ensure_ascii=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    caught = subprocess.run(
        [sys.executable, "-m", "ledger.verify", str(bad)], capture_output=True, text=True
    )
    assert caught.returncode == 1
    assert "line 2" in caught.stdout and "hash" in caught.stdout


@pytest.mark.postgres_only
def test_concurrent_payments_keep_the_chain_linear(app, wine):
    orders = [make_order([(wine, 1 + n % 3)]) for n in range(40)]
    jobs = [(o.order_no, o.total_fen, f"T-PAR-{i}") for i, o in enumerate(orders)]
    jobs += jobs[:10]  # ten duplicate notifications racing their originals

    def notify(job):
        order_no, total_fen, trade_no = job
        return apply_payment(order_no, trade_no, total_fen, paid=True).verdict

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(lambda job: in_app_thread(app, notify, job), jobs))
    assert verdicts.count("paid") == 40
    db.session.expire_all()
    chain = list(iter_export(db.session))
    assert [t["id"] for t in chain] == list(range(1, 41))
    assert all(t["prev_hash"] == p["hash"] for p, t in itertools.pairwise(chain))
    result = verify_database(db.session)
    assert result.ok, result.problems
    # Matched rule under concurrency: units were spread one at a time, evenly.
    owed = sorted(
        -b
        for b in db.session.scalars(select(Account.balance_fen).where(Account.kind == "household"))
    )
    assert sum(owed) == 2000 * sum(1 + n % 3 for n in range(40))
    assert owed[-1] - owed[0] <= 2000


def test_verifying_leaves_the_callers_objects_alone(app, wine):
    """Regression: the export's batch clean-up once detached everything in the session."""
    pay(make_order([(wine, 1)]), "T-DETACH-1")
    assert verify_database(db.session).ok
    assert wine.price_fen == 15800  # still attached, still loadable
    db.session.refresh(wine)
