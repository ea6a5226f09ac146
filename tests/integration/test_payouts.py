"""Paying households to their bank cards: once, whatever stops the run half-way.

The sandbox gateway plays Alipay's fund transfer over real HTTP (live server), so the
SDK signs each request and the sandbox keeps one transfer per ``out_biz_no``.
"""

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from alipay_sandbox.models import SandboxTransfer
from ledger import IN_FLIGHT, PAID_OUT, Account, Payout, verify_database
from shop.benefits.services import set_product_rule
from shop.extensions import db
from shop.households.models import Household
from shop.orders.services import apply_payment
from shop.payments import provider as provider_module
from shop.payouts import services as payout_services
from shop.payouts.services import run_payouts
from tests.builders import (
    approve_pending,
    make_household,
    make_order,
    make_product,
    make_village,
)
from tests.live_server import live_server


class Crash(BaseException):
    """Stands for the process dying: no ``except Exception`` handler sees it."""


@pytest.fixture
def live(app):
    with live_server(app) as base_url:
        yield base_url


@pytest.fixture
def owed(app):
    """Two households owed ¥30 and ¥10 from one paid order."""
    village = make_village(code="SJ")
    zhang = make_household(village, head_name="张三明", code="SJ-001", land_mu=3)
    li = make_household(village, head_name="李四", code="SJ-002", land_mu=1)
    wine = make_product(price_fen=15800)
    set_product_rule(wine.id, [zhang, li], "weighted", "land", share_fen_per_unit=2000)
    order = make_order([(wine, 2)])
    apply_payment(order.order_no, "TPAYOUT1", order.total_fen, paid=True)
    return {"SJ-001": zhang, "SJ-002": li}


def balance(code):
    db.session.expire_all()
    return db.session.scalar(select(Account.balance_fen).where(Account.code == code)) or 0


def transfers():
    db.session.expire_all()
    return list(db.session.scalars(select(SandboxTransfer).order_by(SandboxTransfer.id)))


def payouts_by_status():
    db.session.expire_all()
    rows = db.session.execute(
        select(Payout.status, func.count()).group_by(Payout.status)
    )
    return dict(rows.all())


def assert_ledger_ok():
    result = verify_database(db.session)
    assert result.ok, result.problems


def test_run_pays_every_household_over_the_threshold(app, live, owed):
    report = run_payouts(threshold_fen=500)
    assert (report.started, report.paid, report.failed) == (2, 2, 0)
    assert balance("household:SJ-001") == 0 and balance("household:SJ-002") == 0
    assert balance(PAID_OUT) == -4000
    assert balance(IN_FLIGHT) == 0
    assert sorted(t.amount_fen for t in transfers()) == [1000, 3000]
    assert all(t.status == "SUCCESS" for t in transfers())
    # A second run has nothing to do.
    again = run_payouts(threshold_fen=500)
    assert again.started == 0 and len(transfers()) == 2
    assert_ledger_ok()


def test_threshold_leaves_small_balances_for_later(app, live, owed):
    report = run_payouts(threshold_fen=2000)
    assert report.started == 1
    assert balance("household:SJ-001") == 0 and balance("household:SJ-002") == -1000


def test_a_failing_card_gives_the_money_back_to_the_household(app, live, owed):
    zhang = owed["SJ-001"]
    zhang.set_bank_card("6217000000000000")  # the sandbox refuses cards ending 0000
    db.session.commit()
    report = run_payouts(threshold_fen=500)
    assert (report.paid, report.failed) == (1, 1)
    assert balance("household:SJ-001") == -3000  # owed again, nothing lost
    assert payouts_by_status() == {"paid": 1, "failed": 1}
    failed = db.session.scalar(
        select(Payout).where(Payout.status == "failed")
    )
    assert "异常" in failed.failure
    assert_ledger_ok()


def test_a_household_whose_payout_failed_waits_until_its_card_is_corrected(
    app, live, owed, admin_client
):
    """Regression: every run started a new payout to the same refused card and failed
    again, one failed transfer (and two postings on the public statement) per run."""
    zhang = owed["SJ-001"]
    zhang.set_bank_card("6217000000000000")  # the sandbox refuses cards ending 0000
    db.session.commit()
    assert run_payouts(threshold_fen=500).failed == 1
    attempts = len(transfers())

    again = run_payouts(threshold_fen=500)
    assert (again.started, again.failed, again.held) == (0, 0, ["SJ-001"])
    assert len(transfers()) == attempts
    assert "1 held (card or name refused)" in again.summary()
    app.config["PAYOUT_THRESHOLD_FEN"] = 500  # the admin page runs with the configured one
    page = admin_client.post("/admin/payouts/run", follow_redirects=True).get_data(as_text=True)
    assert "1 户上次打款被银行退回" in page  # and no batch is proposed to the refused card
    assert "现在没有可以打款的农户" in page
    assert len(transfers()) == attempts

    zhang = db.session.get(Household, zhang.id)
    zhang.set_bank_card("6217000012345678")  # the village team corrects the card
    db.session.commit()
    fixed = run_payouts(threshold_fen=500)
    assert (fixed.started, fixed.paid, fixed.held) == (1, 1, [])
    assert balance("household:SJ-001") == 0
    assert_ledger_ok()


def test_a_card_corrected_while_its_payout_was_in_flight_is_retried(app, live, owed, monkeypatch):
    """The refusal concerns the card the payout was sent to: a correction made after the
    payout started, even before the bank answered, releases the household."""
    zhang = owed["SJ-001"]
    zhang.set_bank_card("6217000000000000")
    db.session.commit()
    real = provider_module.AlipayProvider.transfer

    def corrected_meanwhile(self, **kwargs):
        if kwargs["card_number"].endswith("0000"):
            household = db.session.get(Household, zhang.id)
            household.set_bank_card("6217000012345678")
            db.session.commit()
        return real(self, **kwargs)

    monkeypatch.setattr(provider_module.AlipayProvider, "transfer", corrected_meanwhile)
    assert run_payouts(threshold_fen=500).failed == 1
    retried = run_payouts(threshold_fen=500)
    assert (retried.held, retried.paid) == ([], 1)
    assert balance("household:SJ-001") == 0


def test_a_failure_on_the_shops_side_holds_no_one(app, live, owed, monkeypatch):
    """The shop's Alipay balance ran out: the money went back to the households, and once
    the balance is topped up the next run pays them without anyone editing them."""

    def no_balance(self, **kwargs):
        raise provider_module.ProviderError("PAYER_BALANCE_NOT_ENOUGH", "余额不足")

    monkeypatch.setattr(provider_module.AlipayProvider, "transfer", no_balance)
    assert run_payouts(threshold_fen=500).failed == 2
    monkeypatch.undo()
    topped_up = run_payouts(threshold_fen=500)
    assert (topped_up.held, topped_up.paid) == ([], 2)
    assert balance("household:SJ-001") == 0 and balance("household:SJ-002") == 0
    assert_ledger_ok()


def test_crash_before_the_transfer_is_asked_for(app, live, owed, monkeypatch):
    real = provider_module.AlipayProvider.transfer
    calls = {"n": 0}

    def dies_first_time(self, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash()
        return real(self, **kwargs)

    monkeypatch.setattr(provider_module.AlipayProvider, "transfer", dies_first_time)
    with pytest.raises(Crash):
        run_payouts(threshold_fen=500)
    db.session.rollback()  # what a new process would see: only committed work
    assert payouts_by_status() == {"in_flight": 1}
    assert transfers() == []
    assert balance(IN_FLIGHT) == -3000  # tracked, not lost

    report = run_payouts(threshold_fen=500)
    assert report.paid == 2
    assert sorted(t.amount_fen for t in transfers()) == [1000, 3000]
    assert balance("household:SJ-001") == 0 and balance(IN_FLIGHT) == 0
    assert_ledger_ok()


def test_crash_after_alipay_paid_but_before_the_ledger_knew(app, live, owed, monkeypatch):
    real = payout_services.settle_payout
    calls = {"n": 0}

    def dies_first_time(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash()
        return real(*args, **kwargs)

    monkeypatch.setattr(payout_services, "settle_payout", dies_first_time)
    with pytest.raises(Crash):
        run_payouts(threshold_fen=500)
    db.session.rollback()
    assert len(transfers()) == 1  # the bank has paid...
    assert payouts_by_status() == {"in_flight": 1}  # ...the ledger does not know yet

    report = run_payouts(threshold_fen=500)
    assert report.paid == 2
    # Asking again with the same out_biz_no did not pay twice.
    assert sorted(t.amount_fen for t in transfers()) == [1000, 3000]
    assert balance(PAID_OUT) == -4000
    assert_ledger_ok()


def test_gateway_down_keeps_the_payout_in_flight(app, owed):
    app.config["ALIPAY_GATEWAY_URL"] = "http://127.0.0.1:9/gateway.do"
    report = run_payouts(threshold_fen=500)
    assert (report.started, report.pending, report.paid) == (2, 2, 0)
    assert payouts_by_status() == {"in_flight": 2}
    assert balance(IN_FLIGHT) == -4000
    app.config["ALIPAY_GATEWAY_URL"] = None  # Alipay is back (the live sandbox)
    with live_server(app):
        report = run_payouts(threshold_fen=500)
    assert (report.started, report.paid) == (0, 2)
    assert_ledger_ok()


def test_the_cli_exits_non_zero_while_a_transfer_is_unconfirmed(app, owed):
    """A cron job must notice a run that could not reach Alipay: the payouts stay in
    flight (nothing lost), the command says what to check and exits 1."""
    app.config["ALIPAY_GATEWAY_URL"] = "http://127.0.0.1:9/gateway.do"
    assert run_payouts(threshold_fen=500).pending == 2  # an approved batch, Alipay away
    result = CliRunner().invoke(app.cli, ["payouts", "run", "--threshold-fen", "500"])
    assert result.exit_code == 1, result.output
    assert "2 still in flight" in result.output and "run again later" in result.output
    assert payouts_by_status() == {"in_flight": 2}


def test_the_cli_finishes_payouts_in_flight_but_starts_none(app, live, owed):
    """Four eyes: `flask payouts run` (and the daily job) only finish what two admins
    released; households due wait for the next approved batch."""
    app.config["ALIPAY_GATEWAY_URL"] = "http://127.0.0.1:9/gateway.do"
    run_payouts(threshold_fen=2000)  # SJ-001's ¥30 in flight, SJ-002's ¥10 below 2000
    app.config["ALIPAY_GATEWAY_URL"] = None
    result = CliRunner().invoke(app.cli, ["payouts", "run", "--threshold-fen", "500"])
    assert result.exit_code == 0, result.output
    assert "0 started, 1 paid" in result.output
    assert "1 households are due 1000 fen" in result.output
    assert payouts_by_status() == {"paid": 1}
    assert balance("household:SJ-002") == -1000


def test_a_threshold_below_one_fen_is_refused(app, live, owed):
    """Regression: --threshold-fen 0 silently used the configured ¥100 instead."""
    result = CliRunner().invoke(app.cli, ["payouts", "run", "--threshold-fen", "0"])
    assert result.exit_code == 2 and "--threshold-fen" in result.output
    with pytest.raises(ValueError):
        run_payouts(threshold_fen=0)
    assert payouts_by_status() == {}


def test_household_without_a_card_is_skipped(app, live, owed):
    li = owed["SJ-002"]
    li.set_bank_card(None)
    db.session.commit()
    report = run_payouts(threshold_fen=500)
    assert report.skipped == ["SJ-002"] and report.paid == 1
    assert balance("household:SJ-002") == -1000


def test_admin_page_proposes_a_batch_a_second_admin_releases(app, live, owed, admin_client):
    app.config["PAYOUT_THRESHOLD_FEN"] = 2000
    page = admin_client.post("/admin/payouts/run", follow_redirects=True).get_data(as_text=True)
    assert "打款批次：1 户" in page and "**** 5678" in page and "张*明" in page
    assert payouts_by_status() == {}
    approve_pending()
    assert payouts_by_status() == {"paid": 1}
    listing = admin_client.get("/admin/payouts").get_data(as_text=True)
    assert "**** 5678" in listing and "张*明" in listing and "张三明" not in listing
