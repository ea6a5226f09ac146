"""Sales, refunds and payouts in the ledger alone: plain SQLAlchemy, no Flask, no shop.

The tables are created straight from the ledger's own metadata in a private SQLite
database, which also proves the ledger stands on its own.
"""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

import ledger.payouts as payouts
from ledger import (
    CLEARING,
    FEES,
    Account,
    Base,
    Entry,
    LedgerError,
    RuleError,
    SaleLine,
    Transaction,
    create_rule,
    fee_for,
    post_refund,
    post_sale,
    rule_in_force,
)

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
LEDGER_TABLES = [t for name, t in Base.metadata.tables.items() if name.startswith("ledger_")]


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=LEDGER_TABLES)
    with Session(engine) as session:
        yield session
    engine.dispose()


def balances(session) -> dict[str, int]:
    return dict(session.execute(select(Account.code, Account.balance_fen)).all())


def owed(session, code):
    return -balances(session).get(f"household:{code}", 0)


def wine(quantity=1, product_id=1):
    return [SaleLine(product_id, 15800, quantity, "enterprise:1")]


def assert_books_balance(session):
    assert sum(balances(session).values()) == 0
    for tx in session.scalars(select(Transaction)):
        assert sum(e.amount_fen for e in tx.entries) == 0
    for code, balance in balances(session).items():
        recomputed = session.scalar(
            select(func.coalesce(func.sum(Entry.amount_fen), 0))
            .join(Account, Account.id == Entry.account_id)
            .where(Account.code == code)
        )
        assert recomputed == balance, code
        if code.startswith("household:"):
            assert balance <= 0


def test_weighted_rule_splits_by_land_exactly(session):
    create_rule(
        session,
        1,
        "fixed",
        "weighted",
        {"SJ-001": 150, "SJ-002": 100, "SJ-003": 50},
        share_fen_per_unit=2000,
        weight_basis="land",
        effective_from=T0,
    )
    result = post_sale(session, "sale:T1", wine(3), paid_at=T0 + timedelta(hours=1))
    assert result.households == {"SJ-001": 3000, "SJ-002": 2000, "SJ-003": 1000}
    tx = session.get(Transaction, result.posted.id)
    entries = [(e.account.code, e.amount_fen) for e in tx.entries]
    assert entries[0] == (CLEARING, 47400)
    assert ("enterprise:1", -(47400 - 6000)) in entries
    assert_books_balance(session)


def test_leftover_fen_go_deterministically(session):
    create_rule(
        session,
        1,
        "fixed",
        "weighted",
        {"A": 1, "B": 1, "C": 1},
        share_fen_per_unit=100,
        effective_from=T0,
    )
    result = post_sale(session, "sale:T1", wine(1), paid_at=T0)
    assert result.households == {"A": 34, "B": 33, "C": 33}


def test_matched_rule_gives_each_unit_to_who_has_least(session):
    create_rule(
        session,
        1,
        "fixed",
        "matched",
        {"SJ-001": 1, "SJ-002": 1, "SJ-003": 1},
        share_fen_per_unit=2000,
        effective_from=T0,
    )
    first = post_sale(session, "sale:T1", wine(1), paid_at=T0)
    assert first.households == {"SJ-001": 2000}
    second = post_sale(session, "sale:T2", wine(2), paid_at=T0)
    assert second.households == {"SJ-002": 2000, "SJ-003": 2000}
    third = post_sale(session, "sale:T3", wine(4), paid_at=T0)
    assert third.households == {"SJ-001": 4000, "SJ-002": 2000, "SJ-003": 2000}
    assert {owed(session, c) for c in ("SJ-001", "SJ-002", "SJ-003")} == {6000, 4000}


def test_rule_versions_apply_by_payment_time_and_history_stays(session):
    create_rule(
        session, 1, "fixed", "weighted", {"A": 1}, share_fen_per_unit=2000, effective_from=T0
    )
    create_rule(
        session,
        1,
        "percent",
        "weighted",
        {"B": 1},
        share_basis_points=2500,
        effective_from=T0 + timedelta(days=1),
    )
    assert rule_in_force(session, 1, T0 + timedelta(hours=2)).version == 1
    before = post_sale(session, "sale:T1", wine(1), paid_at=T0 + timedelta(hours=2))
    after = post_sale(session, "sale:T2", wine(1), paid_at=T0 + timedelta(days=2))
    assert before.households == {"A": 2000}
    assert after.households == {"B": 3950}  # 25% of ¥158.00
    with pytest.raises(RuleError):
        create_rule(
            session, 1, "fixed", "weighted", {"A": 1}, share_fen_per_unit=1, effective_from=T0
        )


def test_default_rule_covers_products_without_their_own(session):
    create_rule(
        session, None, "fixed", "weighted", {"X": 1}, share_fen_per_unit=500, effective_from=T0
    )
    result = post_sale(session, "sale:T1", wine(2, product_id=99), paid_at=T0)
    assert result.households == {"X": 1000}


def test_fee_is_credited_and_borne_by_the_enterprise(session):
    create_rule(
        session, 1, "fixed", "weighted", {"A": 1}, share_fen_per_unit=2000, effective_from=T0
    )
    post_sale(session, "sale:T1", wine(1), paid_at=T0, fee_basis_points=60)
    assert fee_for(15800, 60) == 95
    assert balances(session)[FEES] == -95
    assert balances(session)["enterprise:1"] == -(15800 - 2000 - 95)
    assert owed(session, "A") == 2000


def test_repeated_sale_key_posts_once(session):
    create_rule(
        session, 1, "fixed", "matched", {"A": 1, "B": 1}, share_fen_per_unit=2000, effective_from=T0
    )
    first = post_sale(session, "sale:T1", wine(1), paid_at=T0)
    post_sale(session, "sale:T2", wine(1), paid_at=T0)
    again = post_sale(session, "sale:T1", wine(1), paid_at=T0)
    assert again.posted.created is False and again.posted.id == first.posted.id
    assert again.households == first.households
    assert session.scalar(select(func.count()).select_from(Transaction)) == 2


def test_partial_refunds_reverse_pro_rata_and_add_up_exactly(session):
    create_rule(
        session,
        1,
        "fixed",
        "weighted",
        {"A": 1, "B": 1, "C": 1},
        share_fen_per_unit=1000,
        effective_from=T0,
    )
    sale = post_sale(session, "sale:T1", wine(1), paid_at=T0, fee_basis_points=60)
    r1 = post_refund(session, "refund:R01", "sale:T1", 5000)
    tx = session.get(Transaction, r1.id)
    assert tx.reverses_id == sale.posted.id and tx.kind == "refund"
    assert_books_balance(session)
    post_refund(session, "refund:R02", "sale:T1", 3333)
    post_refund(session, "refund:R03", "sale:T1", 15800 - 5000 - 3333)
    # Fully refunded: every account the sale touched is back to zero.
    assert all(v == 0 for v in balances(session).values())
    with pytest.raises(LedgerError):
        post_refund(session, "refund:R04", "sale:T1", 1)
    assert post_refund(session, "refund:R01", "sale:T1", 5000).created is False


def test_refund_after_payout_never_makes_a_household_negative(session):
    create_rule(
        session, 1, "fixed", "weighted", {"A": 1}, share_fen_per_unit=2000, effective_from=T0
    )
    post_sale(session, "sale:T1", wine(1), paid_at=T0)
    payouts.start_payout(session, "PO1", "A", 2000)
    payouts.settle_payout(session, "PO1", succeeded=True, alipay_order_id="X1")
    post_refund(session, "refund:R01", "sale:T1", 15800)
    assert owed(session, "A") == 0
    assert balances(session)["enterprise:1"] == 2000  # the enterprise bears the paid share
    assert_books_balance(session)


def test_payout_steps_and_failure_reversal(session):
    create_rule(
        session,
        1,
        "fixed",
        "weighted",
        {"A": 1, "B": 1},
        share_fen_per_unit=2000,
        effective_from=T0,
    )
    post_sale(session, "sale:T1", wine(5), paid_at=T0)
    assert payouts.households_due(session, 3000) == [("A", 5000), ("B", 5000)]
    payouts.start_payout(session, "PO-A", "A", 5000)
    with pytest.raises(payouts.PayoutBusy):
        payouts.start_payout(session, "PO-A2", "A", 1)
    assert payouts.households_due(session, 3000) == [("B", 5000)]
    assert payouts.settle_payout(session, "PO-A", succeeded=False, failure="卡号错误") == "failed"
    assert payouts.settle_payout(session, "PO-A", succeeded=True) == "failed"  # settled once
    assert owed(session, "A") == 5000
    assert balances(session)[payouts.IN_FLIGHT] == 0
    payouts.start_payout(session, "PO-A3", "A", 5000)
    assert payouts.settle_payout(session, "PO-A3", succeeded=True) == "paid"
    assert owed(session, "A") == 0 and balances(session)[payouts.PAID_OUT] == -5000
    assert_books_balance(session)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["sale", "refund", "payout", "repeat"]),
            st.integers(1, 5),
            st.integers(1, 15800 * 5),
        ),
        max_size=25,
    )
)
def test_random_histories_keep_the_books(steps):
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=LEDGER_TABLES)
    with Session(engine) as session:
        create_rule(
            session,
            1,
            "fixed",
            "matched",
            {"A": 1, "B": 1, "C": 1},
            share_fen_per_unit=2000,
            effective_from=T0,
        )
        create_rule(
            session,
            2,
            "percent",
            "weighted",
            {"A": 3, "C": 1},
            share_basis_points=1234,
            effective_from=T0,
        )
        sales_done: dict[str, tuple[int, int]] = {}  # key -> (total, refunded)
        for n, (action, quantity, amount) in enumerate(steps):
            if action == "sale":
                lines = [
                    SaleLine(1, 15800, quantity, "enterprise:1"),
                    SaleLine(2, 3990, 1, "enterprise:2"),
                ]
                result = post_sale(session, f"sale:{n}", lines, paid_at=T0, fee_basis_points=60)
                total = 15800 * quantity + 3990
                share = 2000 * quantity + 3990 * 1234 // 10000
                assert sum(result.households.values()) == share
                sales_done[f"sale:{n}"] = (total, 0)
            elif action == "refund" and sales_done:
                key = sorted(sales_done)[amount % len(sales_done)]
                total, refunded = sales_done[key]
                if refunded < total:
                    part = min(amount, total - refunded)
                    post_refund(session, f"refund:{n}", key, part)
                    sales_done[key] = (total, refunded + part)
            elif action == "payout":
                for code, due in payouts.households_due(session, 1):
                    payouts.start_payout(session, f"PO{n}{code}", code, due)
                    payouts.settle_payout(session, f"PO{n}{code}", succeeded=amount % 3 != 0)
            elif action == "repeat" and sales_done:
                key = sorted(sales_done)[0]
                count = session.scalar(select(func.count()).select_from(Transaction))
                post_sale(session, key, [SaleLine(1, 15800, 1, "enterprise:1")], paid_at=T0)
                assert session.scalar(select(func.count()).select_from(Transaction)) == count
            assert_books_balance(session)
    engine.dispose()


def test_offline_sale_takes_the_money_into_the_till_and_refunds_from_it(session):
    from ledger import ensure_account

    create_rule(
        session, 1, "fixed", "matched", {"A": 1, "B": 1}, share_fen_per_unit=2000, effective_from=T0
    )
    ensure_account(session, "cash:hall", "cash", "扶贫馆收银")
    post_sale(session, "sale:T1", wine(1), paid_at=T0)
    hall = post_sale(
        session,
        "offline:hall:1",
        wine(1),
        paid_at=T0,
        kind="offline_sale",
        debit_account="cash:hall",
    )
    # Matched rules count offline sales too: the hall's bottle goes to the other household.
    assert hall.households == {"B": 2000}
    assert balances(session)["cash:hall"] == 15800
    post_refund(session, "refund:H1", "offline:hall:1", 15800)
    assert balances(session)["cash:hall"] == 0 and owed(session, "B") == 0
    assert_books_balance(session)
    with pytest.raises(LedgerError):
        post_sale(session, "x", wine(1), paid_at=T0, kind="gift")
