"""The jobs worker: each job runs when due, once at a time across workers and hosts."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ledger import Transaction, verify_database
from shop.catalog.models import Product
from shop.config import PROJECT_ROOT
from shop.db import utcnow
from shop.extensions import db
from shop.jobs.models import JobRun, JobState
from shop.jobs.runner import Job, register_job, run_due
from shop.orders.models import Order
from tests.alipay_helpers import pay_in_sandbox
from tests.builders import make_order, make_product
from tests.live_server import live_server

NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai


@pytest.fixture
def only_test_jobs(app):
    app.extensions["jobs"] = {}
    calls = []

    def job(name, every=timedelta(minutes=1), fails=False, at=None):
        def run():
            calls.append(name)
            if fails:
                raise RuntimeError(f"{name} broke")
            return f"{name} done"

        register_job(app, Job(name, run, every, at))

    job.calls = calls
    return job


def runs(name=None) -> list[JobRun]:
    db.session.expire_all()
    query = select(JobRun).order_by(JobRun.id)
    if name:
        query = query.where(JobRun.name == name)
    return list(db.session.scalars(query))


def test_a_due_job_runs_once_and_again_when_due(only_test_jobs):
    only_test_jobs("a", every=timedelta(minutes=5))
    assert [r.name for r in run_due(NOW)] == ["a"]
    assert run_due(NOW + timedelta(minutes=4)) == []
    assert [r.name for r in run_due(NOW + timedelta(minutes=5, seconds=1))] == ["a"]
    assert only_test_jobs.calls == ["a", "a"]
    assert [(r.outcome, r.detail) for r in runs("a")] == [("ok", "a done"), ("ok", "a done")]


def test_a_failed_job_is_recorded_and_the_others_still_run(only_test_jobs):
    only_test_jobs("broken", fails=True)
    only_test_jobs("fine")
    results = {r.name: r.outcome for r in run_due(NOW)}
    assert results == {"broken": "failed", "fine": "ok"}
    assert runs("broken")[0].detail == "RuntimeError: broken broke"
    state = db.session.get(JobState, "broken")
    assert state.last_outcome == "failed" and state.lease_until is None
    # Failed is finished: it is tried again when due, not in a hot loop.
    assert run_due(NOW + timedelta(seconds=30)) == []


def test_a_job_someone_else_holds_is_skipped_until_their_lease_ends(only_test_jobs, app):
    if db.session.get_bind().dialect.name == "postgresql":
        pytest.skip("PostgreSQL excludes by advisory lock (see the two-process test)")
    only_test_jobs("a")
    run_due(NOW - timedelta(hours=1))
    state = db.session.get(JobState, "a")
    state.lease_holder, state.lease_until = "other-host:1", NOW + timedelta(minutes=10)
    db.session.commit()
    assert run_due(NOW) == []
    assert [r.name for r in run_due(NOW + timedelta(minutes=11))] == ["a"]


def test_an_interrupted_run_stays_due(only_test_jobs, app):
    def interrupted():
        raise KeyboardInterrupt

    register_job(app, Job("stopped", interrupted))
    with pytest.raises(KeyboardInterrupt):
        run_due(NOW)
    assert runs("stopped")[0].outcome == "interrupted"
    assert db.session.get(JobState, "stopped").last_finished_at is None
    app.extensions["jobs"]["stopped"] = Job("stopped", lambda: "fine now")
    assert [r.outcome for r in run_due(NOW)] == ["ok"]


def test_a_daily_job_runs_once_a_day_from_its_time():
    job = Job("payouts", lambda: "", at="10:00")
    shanghai_9 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    shanghai_10 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    assert not job.is_due(shanghai_9, None)
    assert job.is_due(shanghai_10, None)
    assert job.is_due(shanghai_10, shanghai_9 - timedelta(days=1))
    assert not job.is_due(shanghai_10 + timedelta(hours=5), shanghai_10)
    assert job.is_due(shanghai_10 + timedelta(days=1), shanghai_10)


def test_the_tick_command_exits_1_when_a_job_failed(only_test_jobs, app):
    only_test_jobs("broken", fails=True)
    only_test_jobs("fine")
    result = app.test_cli_runner().invoke(args=["jobs", "tick"])
    assert result.exit_code == 1
    assert "broken: failed" in result.output and "fine: ok" in result.output
    assert app.test_cli_runner().invoke(args=["jobs", "tick"]).output == "jobs: nothing due\n"


def test_the_real_jobs_are_registered(app):
    names = set(app.extensions["jobs"])
    expected = {"expire_orders", "reconcile_payments", "boards_follow", "deliver_mail",
                "sign_tree_head", "payouts"}  # fmt: skip
    assert expected <= names


@pytest.mark.postgres_only
def test_two_ticks_at_the_same_moment_run_each_job_once_and_post_nothing_twice(
    app, client, database_url
):
    """Two hosts' cron both fire `flask jobs tick` at 10:00: every job runs once, every
    missed payment is applied once, every expired order is cancelled once."""
    app.config["SANDBOX_NOTIFY_RETRY_SECONDS"] = 0
    app.extensions["sandbox_notify_transport"] = lambda url, data, timeout: (200, "fail")
    product = make_product(price_fen=1000, beneficiary_fen_per_unit=100, stock=100)
    long_ago = utcnow() - timedelta(minutes=40)
    with live_server(app) as base_url:
        # Paid at Alipay 40 minutes ago, but the notification never arrived.
        paid = [make_order([(product, 1)], now=long_ago, expiry_minutes=60) for _ in range(6)]
        for order in paid:
            assert pay_in_sandbox(app, client, order).status_code == 302
        # Never paid, and past their 30 minutes.
        abandoned = [make_order([(product, 2)], now=long_ago) for _ in range(4)]
        db.session.commit()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": base_url,
            "ALIPAY_GATEWAY_URL": base_url + "/sandbox/alipay/gateway.do",
            "PII_KEY": app.config["PII_KEY"],
            "SECRET_KEY": app.config["SECRET_KEY"],
            "PAYOUTS_AT": "",
        }
        flask = [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "tick"]
        ticks = [
            subprocess.Popen(flask, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for _ in range(2)
        ]  # fmt: skip
        outputs = [tick.communicate(timeout=120)[0] for tick in ticks]
    assert all(tick.returncode == 0 for tick in ticks), outputs
    per_job = dict(
        db.session.execute(select(JobRun.name, func.count()).group_by(JobRun.name)).all()
    )
    assert per_job == {
        "expire_orders": 1, "reconcile_payments": 1, "boards_follow": 1, "deliver_mail": 1,
        "sign_tree_head": 1,
    }  # fmt: skip
    printed = "\n".join(outputs)
    for name in per_job:  # and each ran in one of the two processes, not in both
        assert printed.count(f"{name}: ok") == 1, printed
    db.session.expire_all()
    assert {o.status for o in map(lambda o: db.session.get(Order, o.id), paid)} == {"paid"}
    assert {db.session.get(Order, o.id).status for o in abandoned} == {"cancelled"}
    sales = db.session.scalar(
        select(func.count()).select_from(Transaction).where(Transaction.kind == "sale")
    )
    assert sales == len(paid)
    assert db.session.get(Product, product.id).stock == 100 - len(paid)
    assert verify_database(db.session).ok
