"""Database faults on PostgreSQL: a connection cut mid-posting, deadlocks, lock timeouts.

The promise under test: a fault in the database makes a request fail cleanly and leaves
nothing half-written, and a fault that passes is got over.

- The connection serving a request is terminated (``pg_terminate_backend`` from another
  connection) at a chosen statement of an Alipay notification, an API order, a hall
  sale and an event batch's confirmation at the console: Alipay is answered ``fail``
  (so it notifies again), the API a 503 with ``Retry-After`` and its error JSON, a page
  a 503 saying so in the user's language. No order is paid without its sale posting, no
  posting lacks its entries, ``ledger verify`` passes, and the next request is served
  (the pool dropped the dead connection); the next try posts exactly once. A payout run
  cut at its start or settlement posting pays the household once when run again.
- Connections killed while idle in the pool are replaced unnoticed (pool_pre_ping);
  while the database is away altogether, requests answer 503 until it is back.
- A deadlock (a rival transaction takes the chain head's lock, then asks for the row
  the request holds) aborts the request's transaction; the notification and the hall
  sale, idempotent by their keys, are run again inside the service and post once.
- A lock wait cut by ``lock_timeout`` is retried the same way, and when it never
  clears the request fails cleanly; ``statement_timeout`` is a 503 at once.
- Any other database error is rolled back and shown as a plain 500 page, no traceback.

The hooks are SQLAlchemy events on the app's engine that act just before a chosen
statement (or COMMIT) is sent, so the fault lands at an exact step of the real code.
"""

import logging
import threading
import time
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy import event, func, make_url, select, text
from sqlalchemy.pool import NullPool

from alipay_sandbox.models import SandboxTransfer
from ledger import IN_FLIGHT, PAID_OUT, Account, Transaction
from shop import create_app
from shop.benefits.services import set_product_rule
from shop.catalog.models import Product
from shop.db_retry import is_unavailable
from shop.extensions import db
from shop.offline.models import ImportBatch, OfflineSale
from shop.orders.ledger_view import sale_key
from shop.orders.models import Order
from shop.orders.services import apply_payment
from shop.payments.models import PaymentNotification
from shop.payouts.services import run_payouts
from tests.builders import make_household, make_order, make_product, make_village
from tests.functional.test_api import order_body
from tests.functional.test_offline_sales import event_csv, token_of, upload
from tests.integration.test_alipay_provider import signed_notification
from tests.live_server import live_server
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres_only

TRADE_NO = "2026112522001400000000000777"
WAIT_SECONDS = 15  # bound on waiting for a rival's lock to be queued behind (never reached)

# Statements of the money path, as the app sends them (the hooks match on these).
LEDGER_POSTING = "ledger_lock_head"  # the posting takes the chain head's lock
LEDGER_APPEND = "SELECT COUNT(*) FROM shifted"  # the one statement that writes a posting
RECORD_NOTIFICATION = "INSERT INTO payment_notification"
ORDER_INSERT = "INSERT INTO shop_order"
COMMIT = "COMMIT"


@pytest.fixture
def url(app) -> str:
    return app.config["SQLALCHEMY_DATABASE_URI"]


@pytest.fixture
def wine(app):
    """A ¥158 wine whose ¥20 a bottle goes to three households, one at a time."""
    village = make_village(code="SJ")
    households = [make_household(village, code=f"SJ-{n:03d}") for n in range(1, 4)]
    product = make_product(name="树莓果酒", price_fen=15800, stock=50)
    set_product_rule(product.id, households, "matched", share_fen_per_unit=2000)
    return product


@pytest.fixture
def order(wine):
    return make_order([(wine, 1)])


def notification(app, order) -> dict:
    return signed_notification(
        app, out_trade_no=order.order_no, trade_no=TRADE_NO, total_amount="158.00"
    )


def notify(client, params):
    return client.post("/payments/alipay/notify", data=params)


@contextmanager
def cut_connection_before(url: str, marker: str, occurrence: int = 1):
    """Terminate the app connection's server process just before it sends the
    ``occurrence``-th statement containing ``marker`` (or COMMIT, for ``COMMIT``);
    yields a list that holds the killed pid once it happened."""
    killer = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    killed: list[int] = []
    seen = [0]

    def terminate(conn) -> None:
        pid = conn.connection.dbapi_connection.info.backend_pid
        with killer.connect() as other:
            # Waits (up to 5 s) until the process is gone, so the statement meets a
            # dead connection rather than racing the signal.
            gone = other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            assert gone.scalar() is True
        killed.append(pid)

    def arrived(conn) -> None:
        seen[0] += 1
        if seen[0] == occurrence:
            terminate(conn)

    def before_statement(conn, _cursor, statement, *_args):
        if marker != COMMIT and marker in statement:
            arrived(conn)

    def before_commit(conn):
        if marker == COMMIT:
            arrived(conn)

    event.listen(db.engine, "before_cursor_execute", before_statement)
    event.listen(db.engine, "commit", before_commit)
    try:
        yield killed
    finally:
        event.remove(db.engine, "before_cursor_execute", before_statement)
        event.remove(db.engine, "commit", before_commit)
        killer.dispose()


@contextmanager
def server_setting(name: str, value: str):
    """Every statement the app sends runs with ``SET LOCAL name = value``, as an
    operator's ``lock_timeout`` or ``statement_timeout`` would make it."""

    def before_statement(_conn, cursor, *_args):
        cursor.execute(f"SET LOCAL {name} = '{value}'")

    event.listen(db.engine, "before_cursor_execute", before_statement)
    try:
        yield
    finally:
        event.remove(db.engine, "before_cursor_execute", before_statement)


@contextmanager
def rival_holding(url: str, statement: str, params: dict | None = None):
    """Another worker's transaction holds the row lock ``statement`` takes while the
    block runs, then rolls back."""
    engine = sa.create_engine(url, poolclass=NullPool)
    conn = engine.connect()
    try:
        conn.execute(text(statement), params or {})
        yield
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()


def _wait_until_someone_waits_for_a_lock(url: str, rival_pid: int) -> None:
    watcher = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        with watcher.connect() as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock' AND pid <> :rival"
                    ),
                    {"rival": rival_pid},
                ).scalar()
                if waiting:
                    return
                time.sleep(0.02)
    finally:
        watcher.dispose()
    raise AssertionError("the request never queued behind the rival's lock")


@contextmanager
def deadlock_with_rival(url: str, request_holds: str, params: dict):
    """While the block sends a request, a rival takes the chain head's lock; once the
    request queues behind it (holding its own row, ``request_holds`` selects it FOR
    UPDATE), the rival asks for that row: a cycle. The rival's deadlock_timeout is long,
    so PostgreSQL aborts the request's transaction (40P01), never the rival's; the
    rival then rolls back. Yields a list of what the rival saw go wrong (none).
    (Setting deadlock_timeout needs a superuser: the tests connect as postgres, as CI.)"""
    problems: list[BaseException] = []
    ready = threading.Event()

    def rival() -> None:
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text("SET deadlock_timeout = '30s'"))
                conn.execute(text("UPDATE ledger_head SET count = count WHERE id = 1"))
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
                ready.set()
                _wait_until_someone_waits_for_a_lock(url, pid)
                conn.execute(text(request_holds), params)
                conn.rollback()
        except BaseException as error:  # reported by the test, not lost in the thread
            problems.append(error)
        finally:
            ready.set()
            engine.dispose()

    thread = threading.Thread(target=rival, daemon=True)
    thread.start()
    assert ready.wait(WAIT_SECONDS)
    try:
        yield problems
    finally:
        thread.join(WAIT_SECONDS)
    assert not thread.is_alive()


def assert_nothing_half_written(app) -> None:
    """What an auditor checks: every paid order has its one sale posting and no
    unpaid order has one; every posting has balanced entries; the chain verifies."""
    db.session.expire_all()
    for order in db.session.scalars(select(Order)):
        if order.status == "paid":
            sales = select(func.count()).where(Transaction.key == sale_key(order.trade_no))
            assert db.session.scalar(sales) == 1, f"{order.order_no} paid without its posting"
        else:
            assert order.trade_no is None and order.paid_at is None
    for transaction in db.session.scalars(select(Transaction)):
        amounts = [entry.amount_fen for entry in transaction.entries]
        assert len(amounts) >= 2 and sum(amounts) == 0, transaction.key
    verified = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith("OK ")


def balance(code: str) -> int:
    db.session.expire_all()
    return db.session.scalar(select(Account.balance_fen).where(Account.code == code)) or 0


def postings() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Transaction))


def status_of(order) -> str:
    db.session.expire_all()
    return db.session.scalar(select(Order.status).where(Order.id == order.id))


def stock_of(product) -> int:
    db.session.expire_all()
    return db.session.scalar(select(Product.stock).where(Product.id == product.id))


# --- the connection cut mid-request ---------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "marker", "paid_before_the_cut"),
    [
        ("posting the sale", LEDGER_POSTING, False),
        ("writing the posting", LEDGER_APPEND, False),
        ("committing paid and posted", COMMIT, False),
        ("recording the notification", RECORD_NOTIFICATION, True),
    ],
    ids=["head-lock", "append", "commit", "record"],
)
def test_a_notification_cut_off_answers_fail_and_alipays_next_try_posts_once(
    app, client, url, wine, order, moment, marker, paid_before_the_cut
):
    params = notification(app, order)
    with cut_connection_before(url, marker) as killed:
        response = notify(client, params)
    assert killed, f"the request never reached {moment}"
    assert response.status_code == 503
    assert response.get_data(as_text=True) == "fail"  # not "success": Alipay notifies again
    assert status_of(order) == ("paid" if paid_before_the_cut else "pending_payment")
    assert postings() == (1 if paid_before_the_cut else 0)
    assert stock_of(wine) == 49  # still reserved for the order, neither lost nor doubled
    assert_nothing_half_written(app)

    again = notify(client, params)  # Alipay's next try, on a fresh connection
    assert again.get_data(as_text=True) == "success"
    assert status_of(order) == "paid"
    assert postings() == 1
    assert stock_of(wine) == 49
    assert_nothing_half_written(app)
    assert client.get("/api/v1/ledger/head").status_code == 200  # the pool recovered


def test_an_api_order_cut_off_answers_a_retryable_503_and_holds_no_stock(app, client, url, wine):
    with cut_connection_before(url, ORDER_INSERT) as killed:
        response = client.post("/api/v1/orders", json=order_body(wine.id, 2))
    assert killed and response.status_code == 503 and response.is_json
    assert response.headers["Retry-After"].isdigit()
    error = response.get_json()["error"]
    assert error["code"] == "database_unavailable" and error["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    # The stock was taken before the cut, in the same transaction: it came back.
    assert stock_of(wine) == 50
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0

    again = client.post("/api/v1/orders", json=order_body(wine.id, 2))
    assert again.status_code == 201, again.get_data(as_text=True)
    assert stock_of(wine) == 48


def hall_sale_form(staff_client, product) -> dict:
    page = staff_client.get("/console/offline/").get_data(as_text=True)
    fields = {"product_id": str(product.id), "quantity": "2", "payment_method": "cash"}
    return {"token": token_of(page), "board_display": "anonymous", **fields}


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("zh_Hans_CN", "系统暂时繁忙，请稍后重试。"),
        ("en", "The system is busy right now. Please try again in a moment."),
    ],
    ids=["zh", "en"],
)
def test_a_hall_sale_cut_off_mid_posting_shows_a_503_page_in_the_users_language(
    app, staff_client, url, wine, lang, message
):
    form = hall_sale_form(staff_client, wine)
    with cut_connection_before(url, LEDGER_APPEND) as killed:
        response = staff_client.post(f"/console/offline/?lang={lang}", data=form)
    page = response.get_data(as_text=True)
    assert killed and response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert message in page
    assert "Traceback" not in page and "OperationalError" not in page
    assert stock_of(wine) == 50
    assert db.session.scalar(select(func.count()).select_from(OfflineSale)) == 0
    assert postings() == 0
    assert_nothing_half_written(app)

    # Sent again (the same form, the same one-time token): posted once.
    again = staff_client.post("/console/offline/", data=form, follow_redirects=True)
    assert "已记账" in again.get_data(as_text=True)
    staff_client.post("/console/offline/", data=form, follow_redirects=True)
    assert stock_of(wine) == 48
    assert postings() == 1
    assert_nothing_half_written(app)


def test_an_event_batch_cut_off_while_confirming_shows_a_503_page_and_posts_later_once(
    app, staff_client, url, wine
):
    content = event_csv(
        ["2026-01-20,树莓果酒,2,158,微信,王小明,实名打码,", "2026-01-21,树莓果酒,1,158,现金,,匿名,"]
    )
    uploaded = upload(staff_client, content)
    assert uploaded.status_code == 302, uploaded.get_data(as_text=True)
    confirm_url = uploaded.headers["Location"] + "/confirm"
    with cut_connection_before(url, LEDGER_APPEND) as killed:
        response = staff_client.post(confirm_url)
    assert killed and response.status_code == 503
    assert "系统暂时繁忙，请稍后重试。" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(ImportBatch.status)) != "posted"
    assert db.session.scalar(select(func.count()).select_from(OfflineSale)) == 0
    assert (stock_of(wine), postings()) == (50, 0)
    assert_nothing_half_written(app)

    again = staff_client.post(confirm_url, follow_redirects=True)
    assert "已入账 2 行" in again.get_data(as_text=True)
    staff_client.post(confirm_url)  # pressed once more: nothing new
    assert (stock_of(wine), postings()) == (47, 2)
    assert_nothing_half_written(app)


@pytest.fixture
def owed_household(app, wine):
    """One household owed ¥20 from a paid order (the household a matched rule picks)."""
    order = make_order([(wine, 1)])
    apply_payment(order.order_no, "TPAYOUT-CUT", order.total_fen, paid=True)
    (code,) = db.session.scalars(
        select(Account.code).where(Account.kind == "household", Account.balance_fen < 0)
    ).all()
    return code


@pytest.mark.parametrize(
    ("moment", "occurrence"),
    [("starting the payout", 1), ("settling the payout", 2)],
    ids=["start", "settle"],
)
def test_a_payout_run_cut_off_mid_posting_pays_the_household_once_when_run_again(
    app, url, owed_household, moment, occurrence
):
    with live_server(app):
        with cut_connection_before(url, LEDGER_APPEND, occurrence) as killed:
            with pytest.raises(sa.exc.OperationalError) as cut:
                run_payouts(threshold_fen=500)
        assert killed, f"the run never reached {moment}"
        assert is_unavailable(cut.value)
        assert_nothing_half_written(app)
        # Still owed, or (cut at settling) in flight: the start was committed first.
        assert balance(owed_household) == (-2000 if occurrence == 1 else 0)

        again = run_payouts(threshold_fen=500)  # the next run (cron, the jobs worker)
        assert again.paid == 1 and again.failed == 0 and again.pending == 0
    db.session.expire_all()
    transfers = db.session.scalars(select(SandboxTransfer)).all()
    assert [(t.amount_fen, t.status) for t in transfers] == [(2000, "SUCCESS")]
    assert balance(owed_household) == 0
    assert balance(PAID_OUT) == -2000 and balance(IN_FLIGHT) == 0
    assert run_payouts(threshold_fen=500).started == 0
    assert_nothing_half_written(app)


def test_connections_killed_while_idle_in_the_pool_are_replaced_unnoticed(app, client, url, wine):
    """A database restart kills every pooled connection between requests: pool_pre_ping
    finds them dead at checkout and connects afresh, so no request fails."""
    assert client.get("/api/v1/products").status_code == 200
    db.session.remove()  # everything back in the pool
    killer = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with killer.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    killer.dispose()
    assert killed >= 1
    products = client.get("/api/v1/products")
    assert products.status_code == 200
    assert [p["stock"] for p in products.get_json()["products"]] == [50]


def test_while_the_database_is_away_requests_answer_503_and_are_served_when_it_returns(
    database_url, tmp_path
):
    real = make_url(database_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432).start()
    away_url = real.set(host="127.0.0.1", port=proxy.port)
    app = create_app(
        {
            "TESTING": True,
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
            "SQLALCHEMY_DATABASE_URI": away_url.render_as_string(hide_password=False),
        }
    )
    try:
        with app.app_context():
            make_product(name="树莓果酒", stock=5)
            client = app.test_client()
            assert client.get("/api/v1/products").status_code == 200
            # Back in the pool, its transaction ended: a server process the proxy's
            # reset leaves behind then holds no lock the next test's TRUNCATE waits for.
            db.session.remove()
            proxy.stop()  # open connections reset, new ones refused
            api = client.get("/api/v1/products")
            page = client.get("/")
            assert (api.status_code, page.status_code) == (503, 503)
            assert api.get_json()["error"]["code"] == "database_unavailable"
            assert "系统暂时繁忙，请稍后重试。" in page.get_data(as_text=True)
            assert api.headers["Retry-After"] == page.headers["Retry-After"]
            proxy.start()
            back = client.get("/api/v1/products")
            assert back.status_code == 200
            assert [p["stock"] for p in back.get_json()["products"]] == [5]
            db.session.remove()
            db.engine.dispose()
    finally:
        proxy.stop()


# --- deadlocks and lock timeouts ------------------------------------------------------


def retries_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "rolled back attempt" in r.getMessage()]


def test_a_deadlocked_notification_is_run_again_and_posted_once(app, client, url, order, caplog):
    caplog.set_level(logging.WARNING, logger="shop.db")
    holds = "SELECT id FROM shop_order WHERE order_no = :no FOR UPDATE"
    with deadlock_with_rival(url, holds, {"no": order.order_no}) as rival_problems:
        response = notify(client, notification(app, order))
    assert rival_problems == []
    assert [m for m in retries_logged(caplog) if "40P01" in m], "no deadlock happened"
    assert response.get_data(as_text=True) == "success"
    assert status_of(order) == "paid"
    assert postings() == 1
    assert_nothing_half_written(app)


def test_a_deadlocked_hall_sale_is_run_again_and_posted_once(app, staff_client, url, wine, caplog):
    caplog.set_level(logging.WARNING, logger="shop.db")
    form = hall_sale_form(staff_client, wine)
    holds = "SELECT id FROM product WHERE id = :id FOR UPDATE"
    with deadlock_with_rival(url, holds, {"id": wine.id}) as rival_problems:
        response = staff_client.post("/console/offline/", data=form, follow_redirects=True)
    assert rival_problems == []
    assert [m for m in retries_logged(caplog) if "40P01" in m], "no deadlock happened"
    assert "已记账" in response.get_data(as_text=True)
    assert stock_of(wine) == 48
    assert postings() == 1
    assert db.session.scalar(select(func.count()).select_from(OfflineSale)) == 1
    assert_nothing_half_written(app)


def test_a_notification_stuck_behind_a_lock_is_tried_three_times_then_fails_cleanly(
    app, client, url, order, caplog
):
    caplog.set_level(logging.WARNING, logger="shop.db")
    params = notification(app, order)
    lock_head = "UPDATE ledger_head SET count = count WHERE id = 1"
    with rival_holding(url, lock_head), server_setting("lock_timeout", "100ms"):
        response = notify(client, params)
    assert [m for m in retries_logged(caplog) if "55P03" in m] != []
    assert len(retries_logged(caplog)) == 2  # three attempts in all, then it gave up
    assert response.status_code == 503
    assert response.get_data(as_text=True) == "fail"
    assert status_of(order) == "pending_payment"
    assert postings() == 0
    assert db.session.scalar(select(func.count()).select_from(PaymentNotification)) == 0
    assert_nothing_half_written(app)

    # The rival has gone: Alipay's next try goes through, once.
    assert notify(client, params).get_data(as_text=True) == "success"
    assert notify(client, params).get_data(as_text=True) == "success"
    assert postings() == 1
    assert_nothing_half_written(app)


@pytest.mark.parametrize("setting", ["lock_timeout", "statement_timeout"])
def test_an_api_order_stuck_behind_a_lock_answers_a_retryable_503(app, client, url, wine, setting):
    lock_product = "UPDATE product SET stock = stock WHERE id = :id"
    with rival_holding(url, lock_product, {"id": wine.id}), server_setting(setting, "100ms"):
        response = client.post("/api/v1/orders", json=order_body(wine.id, 1))
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"].isdigit()
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert stock_of(wine) == 50
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0

    again = client.post("/api/v1/orders", json=order_body(wine.id, 1))
    assert again.status_code == 201, again.get_data(as_text=True)


# --- an error that is a bug, not a fault ----------------------------------------------


@contextmanager
def posting_that_divides_by_zero():
    """The ledger's append statement fails on the server (division by zero): an error
    no retry cures."""

    def rewrite(_conn, _cursor, statement, parameters, *_args):
        if LEDGER_APPEND in statement:
            statement = statement.replace(LEDGER_APPEND, "SELECT COUNT(*) / 0 FROM shifted")
        return statement, parameters

    event.listen(db.engine, "before_cursor_execute", rewrite, retval=True)
    try:
        yield
    finally:
        event.remove(db.engine, "before_cursor_execute", rewrite)


def test_an_unexpected_database_error_is_rolled_back_and_shown_without_a_traceback(
    app, client, staff_client, wine, order, caplog
):
    form = hall_sale_form(staff_client, wine)
    with posting_that_divides_by_zero():
        page = staff_client.post("/console/offline/", data=form)
        answer = notify(client, notification(app, order))
    body = page.get_data(as_text=True)
    assert page.status_code == 500
    assert "服务器出错了，请稍后再试。" in body
    assert "Traceback" not in body and "DivisionByZero" not in body
    assert answer.status_code == 500 and answer.get_data(as_text=True) == "fail"
    assert retries_logged(caplog) == []  # a bug is not retried
    assert "division by zero" in caplog.text  # the operator gets the whole story
    assert stock_of(wine) == 49  # only the order's reservation: the hall sale took none
    assert status_of(order) == "pending_payment"
    assert postings() == 0
    assert_nothing_half_written(app)
    assert client.get("/api/v1/ledger/head").status_code == 200  # the pool recovered
