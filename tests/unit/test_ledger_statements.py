"""A household's public statement, newest first, page by page: every line once, in
order, with the balance after it equal to the sum of everything up to it."""

import pytest

from ledger import account_statement, ensure_account, latest_lines, post
from shop.extensions import db

HOUSEHOLD = "household:SJ-001"


@pytest.fixture
def history(app):
    ensure_account(db.session, "enterprise:1", "enterprise")
    ensure_account(db.session, "payout:in_flight", "payout")
    ensure_account(db.session, HOUSEHOLD, "household")
    for n in range(1, 8):
        post(
            db.session,
            f"income:{n}",
            "income_land",
            [("enterprise:1", 100 * n), (HOUSEHOLD, -100 * n)],
        )
    # One transaction with two entries on the household: a page must not split it.
    post(
        db.session,
        "split",
        "adjustment",
        [("enterprise:1", 30), (HOUSEHOLD, -10), (HOUSEHOLD, -20)],
    )
    post(db.session, "payout:1", "payout", [(HOUSEHOLD, 500), ("payout:in_flight", -500)])
    db.session.commit()


def test_pages_walk_back_through_every_line_with_running_balances(history):
    full = account_statement(db.session, HOUSEHOLD).lines  # oldest first
    seen, before = [], None
    while True:
        page = latest_lines(db.session, HOUSEHOLD, limit=3, before_id=before)
        assert page.lines
        seen += page.lines
        if page.older_before_id is None:
            break
        before = page.older_before_id
    assert [
        (line.transaction_id, line.amount_fen, line.balance_fen) for line in reversed(seen)
    ] == [(line.transaction_id, line.amount_fen, line.balance_fen) for line in full]
    assert seen[0].balance_fen == -(100 * 28 + 30 - 500)  # owed now, after the payout


def test_a_transaction_is_never_split_across_pages(history):
    first = latest_lines(db.session, HOUSEHOLD, limit=2)
    # Newest: the payout (1 line), then the two-entry adjustment: it moves whole to page 2.
    assert [line.kind for line in first.lines] == ["payout"]
    second = latest_lines(db.session, HOUSEHOLD, limit=2, before_id=first.older_before_id)
    assert [line.amount_fen for line in second.lines] == [-20, -10]


def test_an_unknown_account_has_an_empty_statement(app):
    page = latest_lines(db.session, "household:NOPE")
    assert page.lines == [] and page.older_before_id is None
