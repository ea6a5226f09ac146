"""A host dies between two money steps: the shop in a child process is killed by SIGKILL
at each crash point of :mod:`shop.faults` — no rollback, no cleanup, as a power cut —
and after a restart and a rerun every household is paid exactly once, every order is
paid or its stock is back, every CSV row is posted once, and ``flask ledger verify`` and
``flask audit verify`` pass.

The child is the real shop (``flask --app wsgi run``: one process, so the death of the
process that took the request is the death of the server, returncode −9) on the test's
database, doing the real step over HTTP: an admin approving a payout batch, a buyer's API
order, Alipay's notification, a staff member confirming a CSV batch. The host that takes
over afterwards is the test's own app, which sees only what the dead one committed. Alipay
is the built-in sandbox, served by the test process (``live_server``), so it survives the
crash as Alipay would. Everything listens on 127.0.0.1 only; every wait is bounded.
"""

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from sqlalchemy import func, select

from alipay_sandbox.models import SandboxTransfer
from alipay_sandbox.notifications import http_post
from ledger import IN_FLIGHT, PAID_OUT, Account, Payout, Transaction
from shop import faults
from shop.approvals.kinds import propose_payout_batch
from shop.approvals.models import ChangeProposal
from shop.auth.models import User
from shop.benefits.services import set_product_rule
from shop.catalog.models import Product
from shop.config import PROJECT_ROOT
from shop.extensions import db
from shop.households.models import Enterprise, Household
from shop.offline import importer
from shop.offline.models import HouseholdIncome, ImportBatch, OfflineSale
from shop.orders.models import Order
from shop.orders.services import apply_payment
from shop.payments.models import PaymentNotification
from shop.payouts.services import plan_batch
from tests.alipay_helpers import pay_in_sandbox
from tests.builders import (
    approve_pending,
    make_household,
    make_order,
    make_product,
    make_user,
    make_village,
    totp_code,
)
from tests.conftest import STAFF_PASSWORD
from tests.gunicorn_server import app_environment, free_port, wait_until_healthy
from tests.live_server import SANDBOX_GATEWAY_PATH, client_transport, live_server

KILLED = -signal.SIGKILL
CHECKER_PASSWORD = "checker-password-1"
NOTIFY_PATH = "/payments/alipay/notify"


# --- the child process and a browser for it ------------------------------------------


@dataclass
class Host:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def died(self) -> int:
        """Wait (bounded) for the process to end; its returncode."""
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the shop did not die:\n{self.log()[-3000:]}") from None


@contextmanager
def shop_host(app, crash_at: str, gateway_url: str | None = None) -> Iterator[Host]:
    """The shop on the test's database in one child process armed to die at ``crash_at``
    (Alipay at ``gateway_url``, else the child's own sandbox); stopped if it survives."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = app_environment(
        app,
        PUBLIC_BASE_URL=url,
        ALIPAY_GATEWAY_URL=gateway_url or url + SANDBOX_GATEWAY_PATH,
        RATELIMIT_ENABLED="0",
        **{faults.ENV_VAR: crash_at},
    )
    log_path = Path(app.config["UPLOAD_FOLDER"]) / f"shop-{port}.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--host", "127.0.0.1",
             "--port", str(port), "--no-reload", "--no-debugger"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    host = Host(url, process, log_path)
    try:
        wait_until_healthy(process, url, host.log, "the shop")
        yield host
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)


class Browser:
    """A person's browser on one host: cookies kept, redirects followed."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=60) as answer:
            return answer.read().decode()

    def post(self, path: str, data: dict, json_body: bool = False) -> tuple[int, str] | None:
        """(status, body), or None when the connection died with the server."""
        body = json.dumps(data).encode() if json_body else urllib.parse.urlencode(data).encode()
        kind = "application/json" if json_body else "application/x-www-form-urlencoded"
        request = urllib.request.Request(
            self.base_url + path, data=body, headers={"Content-Type": kind}
        )
        try:
            with self.opener.open(request, timeout=60) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()
        except OSError:  # reset, refused or closed mid-answer: the server is gone
            return None

    def log_in(self, username: str, password: str) -> None:
        """Password, then the authenticator's code, as staff sign in."""
        page = self.get("/login")
        self.post("/login", {"csrf_token": csrf(page), "username": username, "password": password})
        page = self.get("/login/code")
        status, page = self.post(
            "/login/code", {"csrf_token": csrf(page), "code": totp_code(username)}
        )
        assert status == 200 and 'name="code"' not in page, page[:2000]


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, f"no CSRF token in:\n{page[:2000]}"
    return found.group(1)


# --- what an auditor checks afterwards -----------------------------------------------


def fresh() -> None:
    """Forget what this session read: the child wrote since."""
    db.session.rollback()
    db.session.expire_all()


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def balance(code: str) -> int:
    return db.session.scalar(select(Account.balance_fen).where(Account.code == code)) or 0


def assert_books_verify(app) -> None:
    fresh()
    runner = app.test_cli_runner()
    for command in (["ledger", "verify"], ["audit", "verify"]):
        result = runner.invoke(args=command)
        assert result.exit_code == 0 and result.output.startswith("OK"), result.output


def posting_keys(kind: str) -> list[str]:
    return list(db.session.scalars(select(Transaction.key).where(Transaction.kind == kind)))


# --- the programme under test --------------------------------------------------------


@pytest.fixture
def programme(app):
    """Three households sharing a wine's beneficiary share equally."""
    village = make_village(code="SJ", name="双井村")
    # (land, employed, dividend, co-op) as the income CSV below needs them
    flags = [("2.50", True, True, True), ("0", True, True, False), ("4.00", False, True, True)]
    households = [
        make_household(
            village, code=f"SJ-00{n}", land_mu=Decimal(land), employed=employed,
            dividend=dividend, coop_member=coop,
        )
        for n, (land, employed, dividend, coop) in enumerate(flags, start=1)
    ]  # fmt: skip
    wine = make_product(name="树莓果酒", slug="raspberry-wine", price_fen=15800, stock=40)
    set_product_rule(wine.id, households, "weighted", "equal", share_fen_per_unit=3000)
    return {"households": [h.code for h in households], "wine": wine}


# --- crash points ----------------------------------------------------------------------


def test_every_crash_point_in_the_code_is_declared_and_tested():
    """A crash point added to the code without a test here (or misspelt) fails."""
    found = []
    for path in (PROJECT_ROOT / "shop").rglob("*.py"):
        found += re.findall(r'crash_point\(\s*"([^"]+)"', path.read_text(encoding="utf-8"))
    assert sorted(found) == sorted(faults.POINTS)  # each once, each declared
    tested = set(PAYOUT_POINTS) | set(NOTIFY_POINTS) | set(CSV_POINTS) | {CHECKOUT_POINT}
    assert tested == set(faults.POINTS)


def test_crash_points_are_inert_unless_armed_and_never_armed_in_production():
    assert faults.armed_points({}) == frozenset()
    armed = {faults.ENV_VAR: "payout.transfer_sent, notify.before_answer"}
    assert faults.armed_points(armed) == {"payout.transfer_sent", "notify.before_answer"}
    assert faults.armed_points({**armed, "LIANXIN_ENV": "production"}) == frozenset()
    with pytest.raises(ValueError, match=r"payout\.typo"):
        faults.armed_points({faults.ENV_VAR: "payout.typo"})
    assert faults.ARMED == frozenset()  # this test process is not armed
    faults.crash_point("payout.transfer_sent")  # and so lives on


# --- payouts ---------------------------------------------------------------------------

# What the dead host left for each point: (payouts in flight, transfers Alipay made).
PAYOUT_POINTS = {
    "payout.batch_approved": (0, 0),
    "payout.before_transfer": (1, 0),
    "payout.transfer_sent": (1, 1),
    "payout.posting_uncommitted": (1, 1),
}


@pytest.fixture
def owed(app, programme):
    """Each household owed ¥20 (2 bottles sold and paid), a batch proposed by one admin."""
    order = make_order([(programme["wine"], 2)])
    apply_payment(order.order_no, "TCRASH0001", order.total_fen, paid=True)
    proposer = make_user(username="admin1", role="admin")
    make_user(username="checker", password=CHECKER_PASSWORD, role="admin")
    proposal = propose_payout_batch(proposer, plan_batch(threshold_fen=1))
    amounts = {code: -balance(f"household:{code}") for code in programme["households"]}
    assert sorted(amounts.values()) == [2000, 2000, 2000]
    return {"amounts": amounts, "proposal_id": proposal.id}


def approve_on_a_host_that_dies(app, alipay: str, proposal_id: int, point: str) -> None:
    """The second admin approves the batch on a host armed to die at ``point``."""
    with shop_host(app, point, gateway_url=alipay + SANDBOX_GATEWAY_PATH) as host:
        checker = Browser(host.url)
        checker.log_in("checker", CHECKER_PASSWORD)
        page = checker.get(f"/admin/proposals/{proposal_id}")
        answer = checker.post(f"/admin/proposals/{proposal_id}/approve", {"csrf_token": csrf(page)})
        assert answer is None, answer
        assert host.died() == KILLED, host.log()[-3000:]
    fresh()
    assert db.session.get(ChangeProposal, proposal_id).status == "approved"


def recover_and_pay_the_rest(app, amounts: dict[str, int]) -> None:
    """The restarted host: cron's `flask payouts run` finishes what was in flight, and the
    households the dead host never reached wait for the next batch, proposed and
    approved again (four eyes)."""
    finished = app.test_cli_runner().invoke(args=["payouts", "run", "--threshold-fen", "1"])
    assert finished.exit_code == 0, finished.output
    fresh()
    assert count(Payout, Payout.status == "in_flight") == 0
    rest = plan_batch(threshold_fen=1)
    if rest.lines:
        proposer = db.session.scalar(select(User).where(User.username == "admin1"))
        propose_payout_batch(proposer, rest)
        approve_pending()


def assert_each_household_paid_exactly_once(app, amounts: dict[str, int]) -> None:
    fresh()
    payouts = list(db.session.scalars(select(Payout)))
    assert sorted((p.household_code, p.status, p.amount_fen) for p in payouts) == sorted(
        (code, "paid", amount) for code, amount in amounts.items()
    )
    transfers = list(db.session.scalars(select(SandboxTransfer)))
    assert sorted((t.out_biz_no, t.amount_fen, t.status) for t in transfers) == sorted(
        (p.out_biz_no, p.amount_fen, "SUCCESS") for p in payouts
    )  # one transfer per out_biz_no, none without its payout
    paid_keys = posting_keys("payout_paid")
    assert sorted(paid_keys) == sorted(f"payout_paid:{p.out_biz_no}" for p in payouts)
    assert all(balance(f"household:{code}") == 0 for code in amounts)
    assert balance(IN_FLIGHT) == 0
    assert balance(PAID_OUT) == -sum(amounts.values())
    assert_books_verify(app)


@pytest.mark.parametrize("point", PAYOUT_POINTS)
def test_a_payout_batch_killed_at_each_step_pays_every_household_exactly_once(app, owed, point):
    with live_server(app) as alipay:
        approve_on_a_host_that_dies(app, alipay, owed["proposal_id"], point)
        assert (count(Payout, Payout.status == "in_flight"), count(SandboxTransfer)) == (
            PAYOUT_POINTS[point]
        )
        assert count(Transaction, Transaction.kind == "payout_paid") == 0
        recover_and_pay_the_rest(app, owed["amounts"])
    assert_each_household_paid_exactly_once(app, owed["amounts"])


def test_a_card_corrected_while_the_dead_hosts_transfer_was_in_flight_is_not_paid_twice(app, owed):
    """Regression: the restarted host sent the in-flight transfer again with the card
    corrected meanwhile; Alipay refused it as inconsistent with the first request (the
    one it had paid), the shop took that for a failure, gave the household its balance
    back, and the next batch paid it a second time. It now asks Alipay what became of a
    transfer it asked for before, instead of asking for it again."""
    with live_server(app) as alipay:
        approve_on_a_host_that_dies(app, alipay, owed["proposal_id"], "payout.transfer_sent")
        in_flight = db.session.scalar(select(Payout).where(Payout.status == "in_flight"))
        household = db.session.scalar(
            select(Household).where(Household.code == in_flight.household_code)
        )
        household.set_bank_card("6228480000123456")  # the village team corrects the card
        db.session.commit()
        recover_and_pay_the_rest(app, owed["amounts"])
    assert_each_household_paid_exactly_once(app, owed["amounts"])


# --- checkout --------------------------------------------------------------------------

CHECKOUT_POINT = "checkout.stock_reserved"


def api_order(product_id: int, quantity: int) -> dict:
    return {
        "items": [{"product_id": product_id, "quantity": quantity}],
        "buyer": {"name": "王小明", "phone": "13800000001", "anonymous": True},
        "shipping": {"address": "西安市雁塔区科技路1号"},
        "channel": "pc",
    }


def test_a_checkout_killed_with_the_stock_reserved_holds_no_stock(app, client, programme):
    """The last two bottles: had the dead host's reservation leaked, the buyer's second
    try would be told they are sold out."""
    wine = programme["wine"]
    wine.stock = 2
    db.session.commit()
    with shop_host(app, CHECKOUT_POINT) as host:
        answer = Browser(host.url).post("/api/v1/orders", api_order(wine.id, 2), json_body=True)
        assert answer is None, answer
        assert host.died() == KILLED, host.log()[-3000:]

    fresh()
    assert count(Order) == 0
    assert db.session.get(Product, wine.id).stock == 2

    # The buyer tries again on the host that took over, and pays.
    placed = client.post("/api/v1/orders", json=api_order(wine.id, 2))
    assert placed.status_code == 201, placed.get_json()
    app.extensions["sandbox_notify_transport"] = client_transport(app)
    order = db.session.scalar(select(Order).where(Order.order_no == placed.get_json()["order_no"]))
    assert pay_in_sandbox(app, client, order).status_code == 302

    fresh()
    assert [o.status for o in db.session.scalars(select(Order))] == ["paid"]
    assert db.session.get(Product, wine.id).stock == 0
    assert len(posting_keys("sale")) == 1
    assert_books_verify(app)


# --- Alipay's notification --------------------------------------------------------------

# What the dead host left: (order status, sale postings, notifications recorded).
NOTIFY_POINTS = {
    "payment.posted_uncommitted": ("pending_payment", 0, 0),
    "notify.before_answer": ("paid", 1, 1),
}


@pytest.mark.parametrize("point", NOTIFY_POINTS)
def test_a_notification_killed_mid_processing_is_applied_once_when_alipay_retries(
    app, client, programme, point
):
    """Alipay's notification reaches a host that dies; Alipay gets no ``success`` and
    sends it again, and the host that took over applies it, once."""
    order = make_order([(programme["wine"], 3)])
    order_no = order.order_no
    left = []

    with shop_host(app, point) as host:
        take_over = client_transport(app)

        def alipay_posts(url: str, data: dict, timeout: float) -> tuple[int, str]:
            if not left:  # the first attempt reaches the host that dies
                try:
                    return http_post(host.url + NOTIFY_PATH, data, timeout)
                except OSError:
                    assert host.died() == KILLED, host.log()[-3000:]
                    with db.engine.connect() as conn:  # what it committed
                        left.append((
                            conn.scalar(select(Order.status).where(Order.order_no == order_no)),
                            conn.scalar(select(func.count()).select_from(Transaction)
                                        .where(Transaction.kind == "sale")),
                            conn.scalar(select(func.count()).select_from(PaymentNotification)),
                        ))  # fmt: skip
                    raise
            return take_over(url, data, timeout)

        app.extensions["sandbox_notify_transport"] = alipay_posts
        app.config["SANDBOX_NOTIFY_RETRY_SECONDS"] = 0.05
        assert pay_in_sandbox(app, client, order).status_code == 302

    assert left == [NOTIFY_POINTS[point]]
    fresh()
    paid = db.session.scalar(select(Order).where(Order.order_no == order_no))
    assert paid.status == "paid" and paid.trade_no
    assert posting_keys("sale") == [f"sale:{paid.trade_no}"]
    verdicts = sorted(db.session.scalars(select(PaymentNotification.verdict)))
    assert verdicts == (["paid", "repeat"] if point == "notify.before_answer" else ["paid"])
    assert db.session.get(Product, programme["wine"].id).stock == 40 - 3
    assert_books_verify(app)


# --- CSV confirmations ----------------------------------------------------------------

CSV_POINTS = ("offline.sales_halfway", "offline.income_halfway")

SALES_ROWS = [
    "2026-01-20,树莓果酒,2,158,微信,王小明,实名打码,",
    "2026-01-21,raspberry-wine,1,158,现金,,匿名,",
    "2026-01-22,树莓果酒,3,158,支付宝,爱心大使,昵称,汉中某公司",
    "2026-01-23,树莓果酒,1,158,现金,,匿名,",
]
INCOME_CSV = (
    "户编码,类别,期间,数量,单价(元),金额(元),付款方\r\n"
    "SJ-001,土地租金,2026,2.5,340,,\r\n"
    "SJ-002,务工工资,2026-03,22,120,,双井树莓果酒厂（扶贫企业）\r\n"
    "SJ-003,分红,2026,,,400,村集体\r\n"
    "SJ-003,合作社,2026,1,800,,双井村树莓专业合作社\r\n"
)


def sales_batch(staff_id: int) -> ImportBatch:
    header = "日期,商品,数量,单价(元),付款方式,购买人,爱心榜展示,单位"
    text = "\r\n".join([header, *SALES_ROWS]) + "\r\n"
    return importer.create_batch(
        "sales", text.encode(), "event.csv", channel="event",
        session_name="2026年春节年货展销会", starts_on=date(2026, 1, 20),
        ends_on=date(2026, 1, 29), user_id=staff_id,
    )  # fmt: skip


def income_batch(staff_id: int) -> ImportBatch:
    db.session.add(Enterprise(name="双井树莓果酒厂（扶贫企业）"))
    db.session.commit()
    return importer.create_batch("income", INCOME_CSV.encode(), "income.csv", user_id=staff_id)


@pytest.mark.parametrize("point", CSV_POINTS)
def test_a_csv_confirmation_killed_halfway_posts_every_row_exactly_once(
    app, programme, staff_client, staff_user, point
):
    """The rows are posted in one transaction: the dead host's half is gone with it, and
    confirming again on the host that took over posts each row once."""
    sales = point == "offline.sales_halfway"
    batch = sales_batch(staff_user.id) if sales else income_batch(staff_user.id)
    batch_id, rows = batch.id, len(SALES_ROWS) if sales else INCOME_CSV.count("\n") - 1
    with shop_host(app, point) as host:
        staff = Browser(host.url)
        staff.log_in("staff1", STAFF_PASSWORD)
        page = staff.get(f"/console/offline/batches/{batch_id}")
        assert f"全部 {rows} 行检查通过" in page
        answer = staff.post(
            f"/console/offline/batches/{batch_id}/confirm", {"csrf_token": csrf(page)}
        )
        assert answer is None, answer
        assert host.died() == KILLED, host.log()[-3000:]

    fresh()
    assert db.session.get(ImportBatch, batch_id).status == "pending"
    assert (count(Transaction), count(OfflineSale), count(HouseholdIncome)) == (0, 0, 0)
    assert db.session.get(Product, programme["wine"].id).stock == 40

    for _attempt in range(2):  # confirmed again, and once more by a double click
        done = staff_client.post(f"/console/offline/batches/{batch_id}/confirm")
        assert done.status_code == 302
    fresh()
    assert db.session.get(ImportBatch, batch_id).status == "posted"
    records = list(db.session.scalars(select(OfflineSale if sales else HouseholdIncome)))
    assert sorted(r.row_number for r in records) == list(range(2, rows + 2))
    keys = [r.row_key if sales else r.key for r in records]
    assert len(set(keys)) == rows
    postings = list(db.session.scalars(select(Transaction)))
    assert sorted(t.id for t in postings) == sorted(r.transaction_id for r in records)
    sold = sum(r.quantity for r in records) if sales else 0
    assert db.session.get(Product, programme["wine"].id).stock == 40 - sold
    assert_books_verify(app)
