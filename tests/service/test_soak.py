"""The soak, short: ``bench/soak.py`` drives the shop under gunicorn (two workers, on
PostgreSQL and Redis, the sandbox gateway playing Alipay) with mixed traffic for under a
minute, then checks from the database that nothing was lost or made twice — one posting
per paid trade, stock conserved, households' balances equal to their allocations less
payouts, ``ledger verify`` and ``audit verify`` clean, no server error.

The script's own checks are the assertions; this test adds that the run did enough of
each kind of work to mean something (a soak that paid nothing would pass them all).
Longer runs, and their figures, are in BENCHMARKS.md.
"""

import json
import subprocess
import sys

import pytest

from shop.config import PROJECT_ROOT
from tests.conftest import scratch_postgres_database
from tests.gunicorn_server import redis_server

SECONDS = 45
CHECKS = (
    "one posting per paid trade",
    "stock = start - sold + refunded/released",
    "household balances = allocations - payouts",
    "flask ledger verify passes",
    "flask audit verify passes",
    "ledger and audit verify pass while the traffic runs",
    "no traceback in the workers' log",
    "no answer >= 500 (and none lost)",
    "notifications answered as Alipay expects",
)


@pytest.fixture
def empty_postgres_url():
    """A database of its own on the test server: the soak builds the demo shop in it."""
    with scratch_postgres_database("lianxin_soak") as url:
        yield url


def test_a_short_soak_loses_nothing_and_does_every_kind_of_work(empty_postgres_url, tmp_path):
    summary_file = tmp_path / "soak.json"
    with redis_server() as redis_url:
        done = subprocess.run(
            [sys.executable, "bench/soak.py", "--database-url", empty_postgres_url,
             "--redis-url", redis_url, "--minutes", str(SECONDS / 60), "--workers", "2",
             "--clients", "4", "--payout-every", "10", "--json", str(summary_file)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    output = done.stdout + done.stderr[-5000:]
    assert summary_file.exists(), output
    summary = json.loads(summary_file.read_text())

    failed = {
        name: check["problems"] for name, check in summary["checks"].items() if not check["ok"]
    }
    assert not failed, output
    assert set(CHECKS) <= set(summary["checks"]), summary["checks"].keys()
    assert summary["ok"] and done.returncode == 0, output

    during = summary["database"]["during_soak"]
    outcomes = summary["outcomes"]
    assert during["orders_paid"] >= 5, output
    assert outcomes.get("checkout (HTML): paid", 0) >= 1, outcomes
    assert outcomes.get("checkout (API): paid", 0) >= 1, outcomes
    assert during["refunds_succeeded"] >= 1, output
    assert during["batches_posted"].get("sales", 0) >= 1, output
    assert during["batches_posted"].get("income", 0) >= 1, output
    assert during["offline_sales"] >= 1 and during["income_records"] >= 1, output
    for notice in ("replayed twice at once", "closed after success", "forged"):
        assert outcomes.get(f"notification: {notice}", 0) >= 1, outcomes
    assert summary["actions"].get("verify while live", 0) >= 1, summary["actions"]
    assert summary["requests"] >= 200, output
    statuses = summary["statuses"]
    for page in ("/board", "/api/v1/products", "/payments/alipay/notify", "/cart/add"):
        assert page in statuses, sorted(statuses)
