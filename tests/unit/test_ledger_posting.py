"""Posting to the ledger: balanced, append-only, idempotent — in code and in the database.

Runs on SQLite and (with ``TEST_DATABASE_URL``) PostgreSQL, against the schema the
migrations build, through the shop's session.
"""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from ledger import (
    Account,
    AppendOnlyViolation,
    Entry,
    IdempotencyConflict,
    LedgerError,
    Overdrawn,
    Posted,
    Transaction,
    Unbalanced,
    ensure_account,
    find,
    head,
    post,
    reverse,
)
from ledger.canonical import GENESIS_HASH
from shop.extensions import db

T0 = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
CLEARING = "alipay:clearing"
ENTERPRISE = "enterprise:1"
FEES = "fees:alipay"
IN_FLIGHT = "payout:in_flight"


@pytest.fixture
def books(app):
    """A clearing account, an enterprise, a fee account, a payout account and three
    households, committed."""
    ensure_account(db.session, CLEARING, "clearing")
    ensure_account(db.session, ENTERPRISE, "enterprise")
    ensure_account(db.session, FEES, "fees")
    ensure_account(db.session, IN_FLIGHT, "payout")
    for n in range(1, 4):
        ensure_account(db.session, f"household:SJ-{n:03d}", "household")
    db.session.commit()
    return db.session


def balances() -> dict[str, int]:
    return dict(db.session.execute(select(Account.code, Account.balance_fen)).all())


def counts() -> tuple[int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Transaction)),
        db.session.scalar(select(func.count()).select_from(Entry)),
    )


def sale(key="sale:T1", total=15800, shares=(2000, 1000), now=T0, **kwargs) -> Posted:
    """A paid order: clearing debited, households credited, the enterprise gets the rest."""
    entries = [(CLEARING, total)]
    entries += [(f"household:SJ-{n:03d}", -s) for n, s in enumerate(shares, start=1)]
    entries.append((ENTERPRISE, -(total - sum(shares))))
    return post(db.session, key, "sale", entries, now=now, **kwargs)


def test_a_balanced_posting_moves_balances_and_extends_the_chain(books):
    posted = sale(memo="订单 LX1")
    db.session.commit()

    assert posted == Posted(1, "sale:T1", posted.hash, created=True)
    assert len(posted.hash) == 64 and posted.hash != GENESIS_HASH
    assert balances() == {
        CLEARING: 15800,
        ENTERPRISE: -12800,
        FEES: 0,
        IN_FLIGHT: 0,
        "household:SJ-001": -2000,
        "household:SJ-002": -1000,
        "household:SJ-003": 0,
    }
    tx = find(db.session, "sale:T1")
    assert tx.prev_hash == GENESIS_HASH and tx.hash == posted.hash
    assert tx.memo == "订单 LX1" and tx.created_at == T0
    assert [(e.position, e.account.code, e.amount_fen) for e in tx.entries] == [
        (0, CLEARING, 15800),
        (1, "household:SJ-001", -2000),
        (2, "household:SJ-002", -1000),
        (3, ENTERPRISE, -12800),
    ]
    assert head(db.session) == (1, posted.hash)

    second = sale("sale:T2")
    db.session.commit()
    assert second.id == 2
    assert find(db.session, "sale:T2").prev_hash == posted.hash
    assert head(db.session) == (2, second.hash)


def test_entries_that_cancel_on_one_account_post_without_moving_it(books):
    posted = post(db.session, "move:1", "transfer", [(CLEARING, 500), (CLEARING, -500)], now=T0)
    db.session.commit()
    assert posted.created and counts() == (1, 2)
    assert set(balances().values()) == {0}


def test_balances_seen_through_the_session_are_fresh_after_posting(books):
    household = db.session.scalar(select(Account).where(Account.code == "household:SJ-001"))
    assert household.balance_fen == 0
    sale()
    assert household.balance_fen == -2000  # no stale cache in the caller's objects


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([(CLEARING, 100), (ENTERPRISE, -99)], Unbalanced),
        ([(CLEARING, 100), (ENTERPRISE, -100), (FEES, 0)], LedgerError),
        ([(CLEARING, 100.0), (ENTERPRISE, -100)], LedgerError),
        ([(CLEARING, 1.5), (ENTERPRISE, -1.5)], LedgerError),
        ([(CLEARING, True), (ENTERPRISE, -1)], LedgerError),
        ([(CLEARING, "100"), (ENTERPRISE, -100)], LedgerError),
        ([(CLEARING, 0)], Unbalanced),
        ([], Unbalanced),
        ([(CLEARING, 100), ("enterprise:nobody", -100)], LedgerError),
    ],
    ids=[
        "unbalanced",
        "zero",
        "float",
        "fraction",
        "bool",
        "text",
        "one-entry",
        "empty",
        "unknown",
    ],
)
def test_a_bad_posting_is_refused_and_writes_nothing(books, entries, error):
    with pytest.raises(error):
        post(db.session, "bad:1", "sale", entries, now=T0)
    db.session.commit()  # even committing what is left writes nothing
    assert counts() == (0, 0)
    assert set(balances().values()) == {0}
    assert head(db.session) == (0, GENESIS_HASH)


@pytest.mark.parametrize(
    "kwargs",
    [{"key": ""}, {"key": "k" * 129}, {"kind": ""}, {"memo": "长" * 201}],
    ids=["empty-key", "long-key", "empty-kind", "long-memo"],
)
def test_keys_kinds_and_memos_have_limits(books, kwargs):
    values = {"key": "ok", "kind": "sale", "memo": ""} | kwargs
    with pytest.raises(LedgerError):
        post(db.session, entries=[(CLEARING, 1), (ENTERPRISE, -1)], now=T0, **values)
    assert counts() == (0, 0)


def test_a_naive_time_is_refused(books):
    with pytest.raises(LedgerError, match="timezone"):
        sale(now=datetime(2026, 11, 25, 8, 30))
    assert counts() == (0, 0)


def test_an_account_keeps_its_kind(books):
    with pytest.raises(LedgerError):
        ensure_account(db.session, CLEARING, "household")
    with pytest.raises(LedgerError):
        ensure_account(db.session, "x:1", "martian")
    assert ensure_account(db.session, CLEARING, "clearing").kind == "clearing"


def test_posting_the_same_key_again_returns_the_first_and_writes_nothing(books):
    first = sale()
    db.session.commit()
    before = (counts(), balances(), head(db.session))

    again = sale(now=datetime(2026, 12, 1, tzinfo=UTC), memo="a later notification")
    db.session.commit()

    assert again == Posted(first.id, first.key, first.hash, created=False)
    assert (counts(), balances(), head(db.session)) == before


def test_posting_the_same_key_with_other_content_is_a_conflict(books):
    sale()
    db.session.commit()
    with pytest.raises(IdempotencyConflict):
        sale(shares=(2000, 1001))
    with pytest.raises(IdempotencyConflict):
        post(db.session, "sale:T1", "refund", [(CLEARING, 1), (ENTERPRISE, -1)], now=T0)
    db.session.commit()
    assert counts() == (1, 4)


def test_a_household_can_never_be_paid_more_than_it_is_owed(books):
    sale()  # SJ-001 is owed 2000
    db.session.commit()
    before = (counts(), balances(), head(db.session))

    with pytest.raises(Overdrawn):
        post(
            db.session,
            "payout:P1",
            "payout",
            [("household:SJ-001", 2001), (IN_FLIGHT, -2001)],
            now=T0,
        )
    # Regression: the refusal once came after the transaction had been flushed, so a
    # caller committing anyway stored half a posting.
    db.session.commit()
    assert (counts(), balances(), head(db.session)) == before

    # A household that was never credited cannot be paid at all.
    with pytest.raises(Overdrawn):
        post(db.session, "payout:P2", "payout", [("household:SJ-003", 1), (IN_FLIGHT, -1)])
    db.session.rollback()

    exact = post(
        db.session, "payout:P3", "payout", [("household:SJ-001", 2000), (IN_FLIGHT, -2000)]
    )
    db.session.commit()
    assert exact.created and balances()["household:SJ-001"] == 0


def test_the_database_refuses_a_household_balance_above_zero(books):
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(
            sa.text("UPDATE ledger_account SET balance_fen = 1 WHERE code = 'household:SJ-001'")
        )
        db.session.flush()
    db.session.rollback()


def test_a_full_reversal_points_at_the_original_and_undoes_it(books):
    original = sale()
    undone = reverse(db.session, "refund:R1", original.id, "refund", memo="全额退款", now=T0)
    db.session.commit()

    tx = find(db.session, "refund:R1")
    assert undone.created and tx.reverses_id == original.id
    assert [(e.account.code, e.amount_fen) for e in tx.entries] == [
        (CLEARING, -15800),
        ("household:SJ-001", 2000),
        ("household:SJ-002", 1000),
        (ENTERPRISE, 12800),
    ]
    assert set(balances().values()) == {0}
    again = reverse(db.session, "refund:R1", original.id, "refund", memo="全额退款", now=T0)
    assert not again.created and counts() == (2, 8)


def test_a_partial_reversal_undoes_only_its_portion(books):
    original = sale()
    portion = {CLEARING: 7900, "household:SJ-001": -1000, ENTERPRISE: -6900}
    partial = reverse(db.session, "refund:R2", original.id, "refund", portion=portion, now=T0)
    db.session.commit()

    assert find(db.session, "refund:R2").reverses_id == original.id
    assert balances()[CLEARING] == 7900
    assert balances()["household:SJ-001"] == -1000
    assert balances()["household:SJ-002"] == -1000
    assert balances()[ENTERPRISE] == -5900
    assert partial.id == 2

    with pytest.raises(Unbalanced):
        reverse(db.session, "refund:R3", original.id, "refund", portion={CLEARING: 1}, now=T0)
    with pytest.raises(LedgerError):
        reverse(db.session, "refund:R4", 99, "refund", now=T0)
    with pytest.raises(LedgerError):
        post(db.session, "x", "refund", [(CLEARING, 1), (ENTERPRISE, -1)], reverses_id=99)
    db.session.rollback()
    assert counts() == (2, 7)


def test_the_orm_refuses_to_change_a_posted_transaction(books):
    sale()
    db.session.commit()
    tx = find(db.session, "sale:T1")
    tx.memo = "edited"
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()

    tx = find(db.session, "sale:T1")
    tx.entries[1].amount_fen = -1
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()

    db.session.delete(find(db.session, "sale:T1").entries[0])
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()

    db.session.delete(find(db.session, "sale:T1"))
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()
    assert find(db.session, "sale:T1").memo == ""


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entry SET amount_fen = -amount_fen",
        "UPDATE ledger_entry SET account_id = account_id WHERE position = 0",
        "DELETE FROM ledger_entry WHERE position = 3",
        "UPDATE ledger_transaction SET memo = 'edited'",
        "UPDATE ledger_transaction SET created_at_text = created_at_text",
        "DELETE FROM ledger_transaction",
    ],
)
def test_the_database_refuses_raw_updates_and_deletes(books, statement):
    """Triggers from migration 0003 on both databases: not even SQL can rewrite history."""
    sale()
    db.session.commit()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        db.session.execute(sa.text(statement))
        db.session.commit()
    db.session.rollback()
    assert counts() == (1, 4)
    assert find(db.session, "sale:T1").memo == ""


def test_the_account_balance_cache_may_be_updated(books):
    """Only transactions and entries are frozen; the balance cache is a cache."""
    db.session.execute(
        sa.text("UPDATE ledger_account SET name = 'Alipay' WHERE code = :c"), {"c": CLEARING}
    )
    db.session.commit()


@pytest.mark.postgres_only
def test_postgresql_checks_the_zero_sum_at_commit(books):
    sale()
    db.session.commit()
    clearing, enterprise = (
        db.session.scalar(select(Account.id).where(Account.code == code))
        for code in (CLEARING, ENTERPRISE)
    )
    insert_tx = sa.text(
        "INSERT INTO ledger_transaction (id, key, kind, memo, created_at, created_at_text, "
        "prev_hash, hash) VALUES (:id, :key, 'sale', '', now(), 'x', :p, :h)"
    )
    insert_entry = sa.text(
        "INSERT INTO ledger_entry (transaction_id, position, account_id, amount_fen) "
        "VALUES (:t, :pos, :a, :amount)"
    )
    db.session.execute(insert_tx, {"id": 2, "key": "forged", "p": "a" * 64, "h": "b" * 64})
    db.session.execute(insert_entry, {"t": 2, "pos": 0, "a": clearing, "amount": 500})
    db.session.execute(insert_entry, {"t": 2, "pos": 1, "a": enterprise, "amount": -499})
    db.session.flush()  # each statement is accepted: the check is deferred …
    with pytest.raises(sa.exc.DatabaseError, match="unbalanced"):
        db.session.commit()  # … to COMMIT, where the whole transaction is seen
    db.session.rollback()
    assert counts() == (1, 4)

    # A balanced one passes the database's check (the chain check is the auditor's).
    db.session.execute(insert_tx, {"id": 2, "key": "forged", "p": "a" * 64, "h": "b" * 64})
    db.session.execute(insert_entry, {"t": 2, "pos": 0, "a": clearing, "amount": 500})
    db.session.execute(insert_entry, {"t": 2, "pos": 1, "a": enterprise, "amount": -500})
    db.session.commit()
    assert counts() == (2, 6)
