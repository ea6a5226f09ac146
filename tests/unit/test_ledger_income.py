"""Household income in the ledger alone (plain SQLAlchemy, no Flask): land rent, wages,
dividends and co-op shares post balanced, idempotent transactions; reversals undo them;
income by channel is read back from the ledger."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from ledger import (
    INCOME_REVERSAL_KIND,
    Account,
    Base,
    IdempotencyConflict,
    LedgerError,
    Overdrawn,
    SaleLine,
    Transaction,
    dividend_parts,
    income_by_household,
    income_key,
    income_totals,
    land_rent_fen,
    post,
    post_income,
    post_sale,
    reverse_income,
    wages_fen,
)

T0 = datetime(2026, 1, 15, 4, 0, tzinfo=UTC)
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


def assert_balanced(session):
    assert sum(balances(session).values()) == 0
    for tx in session.scalars(select(Transaction)):
        assert sum(e.amount_fen for e in tx.entries) == 0


def test_amounts_are_computed_in_integer_fen_half_up():
    assert land_rent_fen(250, 34000) == 85000  # 2.5 mu × ¥340
    assert land_rent_fen(333, 100) == 333
    assert land_rent_fen(1, 50) == 1  # 0.5 fen rounds half up
    assert wages_fen(2200, 12000) == 264000  # 22 days × ¥120
    assert wages_fen(50, 12001) == 6001  # half a day of ¥120.01 = 60.005 → 60.01
    with pytest.raises(ValueError):
        land_rent_fen(-1, 100)


def test_dividend_pool_splits_exactly_by_weight_ties_to_earlier_code():
    parts = dividend_parts(100, {"SJ-003": 1, "SJ-001": 1, "SJ-002": 1})
    assert parts == {"SJ-001": 34, "SJ-002": 33, "SJ-003": 33}
    pool = 4_000_000
    parts = dividend_parts(pool, {f"SJ-{i:03d}": (i % 5) + 1 for i in range(1, 101)})
    assert sum(parts.values()) == pool
    with pytest.raises(ValueError):
        dividend_parts(100, {})


@pytest.mark.parametrize(
    ("channel", "kind", "payer"),
    [
        ("land", "income_land", "enterprise:1"),
        ("wages", "income_wages", "enterprise:1"),
        ("dividend", "income_dividend", "collective:programme"),
        ("coop", "income_coop", "coop:双井村树莓专业合作社"),
    ],
)
def test_each_channel_posts_one_balanced_idempotent_transaction(session, channel, kind, payer):
    key = income_key(channel, "2026", "SJ-001")
    first = post_income(session, key, channel, payer, "SJ-001", 85000, memo="2026", now=T0)
    again = post_income(session, key, channel, payer, "SJ-001", 85000, memo="2026", now=T0)
    assert first.created and not again.created and again.id == first.id
    tx = session.get(Transaction, first.id)
    assert tx.kind == kind
    assert [(e.account.code, e.amount_fen) for e in tx.entries] == [
        (payer, 85000),
        ("household:SJ-001", -85000),
    ]
    assert session.scalar(select(Account.kind).where(Account.code == payer)) == payer.split(":")[0]
    assert session.query(Transaction).count() == 1
    assert_balanced(session)


def test_same_key_with_another_amount_is_refused(session):
    key = income_key("land", "2026", "SJ-001")
    post_income(session, key, "land", "enterprise:1", "SJ-001", 85000)
    with pytest.raises(IdempotencyConflict):
        post_income(session, key, "land", "enterprise:1", "SJ-001", 90000)


def test_bad_input_is_refused(session):
    with pytest.raises(LedgerError):
        post_income(session, "k1", "lottery", "enterprise:1", "SJ-001", 100)
    with pytest.raises(LedgerError):
        post_income(session, "k2", "land", "enterprise:1", "SJ-001", 0)
    with pytest.raises(LedgerError):
        post_income(session, "k3", "land", "somebody", "SJ-001", 100)
    assert session.query(Transaction).count() == 0


def test_reversal_removes_the_income_and_is_idempotent(session):
    key = income_key("wages", "2026-03", "SJ-002")
    posted = post_income(session, key, "wages", "enterprise:1", "SJ-002", 264000)
    assert income_by_household(session)["SJ-002"]["wages"] == 264000
    reversal = reverse_income(session, key, memo="多记了")
    assert reverse_income(session, key).id == reversal.id
    tx = session.get(Transaction, reversal.id)
    assert (tx.kind, tx.reverses_id) == (INCOME_REVERSAL_KIND, posted.id)
    assert income_by_household(session)["SJ-002"] == {
        "sales": 0,
        "land": 0,
        "wages": 0,
        "dividends": 0,
        "coop": 0,
        "total": 0,
    }
    assert balances(session)["household:SJ-002"] == 0
    assert_balanced(session)
    # Booking it again after the correction takes the next revision of the key.
    again = post_income(
        session, income_key("wages", "2026-03", "SJ-002", 2), "wages", "enterprise:1", "SJ-002", 1
    )
    assert again.created


def test_reversal_after_payout_cannot_make_a_household_owe(session):
    key = income_key("land", "2026", "SJ-001")
    post_income(session, key, "land", "enterprise:1", "SJ-001", 85000)
    from ledger import ensure_account

    ensure_account(session, "bank:cards", "bank")
    post(session, "payout:1", "payout", [("household:SJ-001", 85000), ("bank:cards", -85000)])
    with pytest.raises(Overdrawn):
        reverse_income(session, key)


def test_income_by_channel_adds_sales_and_every_income_kind(session):
    post_sale(
        session,
        "offline_sale:hall:x",
        [SaleLine(1, 15800, 1, "enterprise:1")],
        paid_at=T0,
        kind="offline_sale",
        debit_account=_cash(session),
    )
    # No rule: a sale without a rule credits no household; add a direct sale credit.
    post_income(session, income_key("land", "2026", "A"), "land", "enterprise:1", "A", 85000)
    post_income(session, income_key("wages", "2026", "A"), "wages", "enterprise:1", "A", 365800)
    post_income(
        session, income_key("dividend", "2026", "A"), "dividend", "collective:p", "A", 40000
    )
    post_income(session, income_key("coop", "2026", "B"), "coop", "coop:c", "B", 80000)
    rows = income_by_household(session)
    assert rows["A"] == {
        "sales": 0,
        "land": 85000,
        "wages": 365800,
        "dividends": 40000,
        "coop": 0,
        "total": 490800,
    }
    assert rows["B"]["coop"] == 80000 and rows["B"]["total"] == 80000
    assert income_totals(session)["total"] == 570800
    owed = -sum(fen for code, fen in balances(session).items() if code.startswith("household:"))
    assert owed == income_totals(session)["total"]
    assert_balanced(session)


def _cash(session) -> str:
    from ledger import ensure_account

    ensure_account(session, "cash:hall", "cash")
    return "cash:hall"
