"""The public boards agree with the ledger: after a payment, a refund, an income
posting or a reversal, the love board, the results board, the household page, the
order trace page, the JSON API and the CSV downloads all show the same money as the
ledger's own sums; anonymous buyers stay anonymous everywhere."""

import csv
import io
import re

import pytest
from sqlalchemy import func, select

from ledger import Account, Entry, Transaction, income_by_household
from shop.benefits.services import set_product_rule
from shop.boards import projection as boards
from shop.boards.models import (
    BoardFeed,
    BoardFeedHousehold,
    BoardHousehold,
    BoardHouseholdMonth,
    BoardMonth,
    BoardPeriod,
    BoardRank,
)
from shop.boards.qr import qr_svg
from shop.extensions import db
from shop.orders.ledger_view import order_ledger_view
from shop.orders.models import Refund
from shop.orders.services import apply_payment
from shop.payments.refunds import _apply_refund_success
from tests.builders import buyer, make_household, make_order, make_product, make_village

_trade = iter(range(1, 10_000))


def pay(order):
    outcome = apply_payment(
        order.order_no, f"T-BOARD-{next(_trade)}", order.total_fen, paid=True
    )
    assert outcome.verdict == "paid"
    return order


def refund(order, amount_fen: int):
    record = Refund(
        order_id=order.id,
        out_request_no=f"{order.order_no}R{next(_trade):02d}",
        amount_fen=amount_fen,
    )
    db.session.add(record)
    db.session.commit()
    _apply_refund_success(record.id)


@pytest.fixture
def programme(app):
    village = make_village(name="双井村")
    households = [
        make_household(village, head_name="张三明", code="SJ-001", land_mu=2),
        make_household(village, head_name="李四光", code="SJ-002", land_mu=1),
        make_household(village, head_name="王五福", code="SJ-003", land_mu=0),
    ]
    wine = make_product(name="树莓果酒", price_fen=15800, stock=500)
    honey = make_product(name="秦岭土蜂蜜", price_fen=6800, stock=500)
    set_product_rule(wine.id, households[:2], "weighted", "equal", share_fen_per_unit=2000)
    set_product_rule(honey.id, households, "matched", "equal", share_fen_per_unit=1000)
    return {"wine": wine, "honey": honey, "households": households}


def ledger_sales_share() -> int:
    """What households were credited by sales, net of reversals, from the entries."""
    return income_by_household_total("sales")


def income_by_household_total(channel: str) -> int:
    return sum(row[channel] for row in income_by_household(db.session).values())


def ledger_clearing_total() -> int:
    """Net money in from sales (clearing is debited the order total, credited refunds)."""
    return db.session.scalar(
        select(func.coalesce(func.sum(Entry.amount_fen), 0))
        .join(Account, Account.id == Entry.account_id)
        .where(Account.code == "alipay:clearing")
    )


def test_a_paid_order_shows_the_same_money_everywhere_and_a_refund_lowers_it(client, programme):
    wine, honey = programme["wine"], programme["honey"]
    order = pay(
        make_order(
            [(wine, 2), (honey, 1)],
            buyer(name="王小明", board_display="masked", organization="城固县某银行"),
        )
    )
    view = order_ledger_view(order)
    assert sum(a["amount_fen"] for a in view.allocations) == 2 * 2000 + 1000

    board = client.get("/api/v1/board").get_json()
    assert board["totals"] == {
        "orders": 1, "units": 3, "amount_fen": order.total_fen,
        "beneficiary_fen": ledger_sales_share(), "households_reached": 3, "buyers": 1,
    }  # fmt: skip
    assert board["totals"]["amount_fen"] == ledger_clearing_total()
    latest = board["recent"][0]
    assert latest["buyer"] == "王*" and latest["organization"] == "城固县某银行"
    assert {(h["code"], h["amount_fen"]) for h in latest["households"]} == {
        (a["code"], a["amount_fen"]) for a in view.allocations
    }
    assert board["top_buyers"][0]["name"] == "王*"
    assert board["top_organizations"][0] == {
        "rank": 1, "name": "城固县某银行", "orders": 1, "units": 3,
        "amount_fen": order.total_fen, "beneficiary_fen": 5000,
    }  # fmt: skip

    households = {h["code"]: h for h in client.get("/api/v1/households").get_json()["households"]}
    for code, row in income_by_household(db.session).items():
        assert households[code]["income_fen"] == row
    assert households["SJ-001"]["name_masked"] == "张*明"

    love = client.get("/board").get_data(as_text=True)
    assert "王*" in love and "城固县某银行" in love and "¥384.00" in love
    results = client.get("/results").get_data(as_text=True)
    assert "SJ-001" in results and "张*明" in results and "<svg" in results
    page = client.get("/households/SJ-001").get_data(as_text=True)
    mine = next(a for a in view.allocations if a["code"] == "SJ-001")
    assert "王*" in page and boards_money(mine["amount_fen"]) in page
    trace = client.get(f"/trace/{order.token}").get_data(as_text=True)
    assert view.hash in trace and "SJ-002" in trace and "王*" in trace
    assert "/api/v1/ledger/export.jsonl" in trace and "<svg" in trace

    refund(order, 15800)  # one bottle of wine back
    board = client.get("/api/v1/board").get_json()
    assert board["totals"]["amount_fen"] == order.total_fen - 15800 == ledger_clearing_total()
    # Refunds reverse the households' share pro rata to the money returned.
    reversed_fen = 5000 * 15800 // 38400
    assert board["totals"]["beneficiary_fen"] == ledger_sales_share() == 5000 - reversed_fen
    assert board["totals"]["orders"] == 1  # partly refunded: still a purchase
    assert board["recent"][0]["refunded_fen"] == 15800
    households = {h["code"]: h for h in client.get("/api/v1/households").get_json()["households"]}
    for code, row in income_by_household(db.session).items():
        assert households[code]["income_fen"] == row

    refund(order, order.total_fen - 15800)  # the rest
    totals = client.get("/api/v1/board").get_json()["totals"]
    assert totals["orders"] == totals["units"] == totals["buyers"] == 0
    assert totals["amount_fen"] == totals["beneficiary_fen"] == 0 == ledger_sales_share()
    assert client.get("/api/v1/board").get_json()["top_buyers"] == []


def boards_money(fen: int) -> str:
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def test_an_anonymous_buyer_is_anonymous_everywhere(client, programme):
    wine = programme["wine"]
    order = pay(
        make_order(
            [(wine, 1)],
            buyer(
                name="欧阳秀英", nickname="秀英", board_display="anonymous", organization="欧阳科技"
            ),
        )
    )
    pages = [
        client.get("/board").get_data(as_text=True),
        client.get("/api/v1/board").get_data(as_text=True),
        client.get("/households/SJ-001").get_data(as_text=True),
        client.get(f"/trace/{order.token}").get_data(as_text=True),
        client.get("/open-data/love-board.csv").get_data(as_text=True),
        client.get("/board", query_string={"lang": "en"}).get_data(as_text=True),
    ]
    for body in pages:
        for secret in ("欧阳", "秀英", "欧阳科技"):
            assert secret not in body
    assert "爱心人士" in pages[0] and "爱心人士" in pages[2]
    board = client.get("/api/v1/board").get_json()
    assert board["totals"]["buyers"] == 1 and board["totals"]["orders"] == 1
    assert board["top_buyers"] == [] and board["top_organizations"] == []
    assert board["recent"][0]["anonymous"] is True


def test_rankings_add_up_per_buyer_and_period(client, programme):
    wine, honey = programme["wine"], programme["honey"]
    for _ in range(2):
        pay(make_order([(honey, 1)], buyer(name="赵六", phone="13800000001")))
    pay(
        make_order(
            [(wine, 1)],
            buyer(name="钱七", phone="13800000002", board_display="nickname", nickname="树莓粉"),
        )
    )
    board = client.get("/api/v1/board", query_string={"period": "today"}).get_json()
    assert board["period"] == "today"
    assert board["period_totals"] == {
        "orders": 3, "units": 3, "amount_fen": 15800 + 2 * 6800,
        "beneficiary_fen": 2000 + 2 * 1000, "buyers": 2,
    }  # fmt: skip
    assert [(b["name"], b["orders"], b["amount_fen"]) for b in board["top_buyers"]] == [
        ("树莓粉", 1, 15800), ("赵*", 2, 13600),
    ]  # fmt: skip
    assert board["totals"]["buyers"] == 2
    for period in ("month", "all"):
        again = client.get("/api/v1/board", query_string={"period": period}).get_json()
        assert again["top_buyers"] == board["top_buyers"]


def test_the_board_answers_304_until_a_posting_changes_it(client, programme):
    first = client.get("/api/v1/board")
    etag = first.headers["ETag"]
    assert client.get("/api/v1/board", headers={"If-None-Match": etag}).status_code == 304
    pay(make_order([(programme["wine"], 1)]))
    changed = client.get("/api/v1/board", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.get_json()["totals"]["orders"] == 1


def test_bad_board_parameters_are_422_json(client, app):
    answer = client.get("/api/v1/board", query_string={"period": "forever"})
    assert answer.status_code == 422 and answer.get_json()["error"]["code"] == "invalid_period"
    for limit in ("1000", "abc", "0", "-3", "2.5", "²"):
        answer = client.get("/api/v1/board", query_string={"limit": limit})
        assert answer.status_code == 422, limit
        assert answer.get_json()["error"]["code"] == "invalid_limit"
    assert client.get("/households/NO-SUCH").status_code == 404
    assert client.get("/trace/not-a-token").status_code == 404


def test_an_unpaid_order_has_no_trace_page(client, programme):
    order = make_order([(programme["wine"], 1)])
    assert client.get(f"/trace/{order.token}").status_code == 404
    assert client.get(f"/qr/trace/{order.token}.svg").status_code == 404


def test_income_and_its_reversal_reach_the_results_board(client, programme):
    from ledger import post_income, reverse_income

    post_income(db.session, "income_land:2026:SJ-001", "land", "enterprise:1", "SJ-001", 85000)
    post_income(
        db.session, "income_wages:2026-Q1:SJ-002", "wages", "enterprise:1", "SJ-002", 365800
    )
    db.session.commit()
    rows = {
        h["code"]: h["income_fen"]
        for h in client.get("/api/v1/households").get_json()["households"]
    }
    assert rows["SJ-001"]["land"] == 85000 and rows["SJ-002"]["wages"] == 365800
    assert rows["SJ-001"]["total"] == 85000
    results = client.get("/results").get_data(as_text=True)
    assert "850.00" in results and "3,658.00" in results

    reverse_income(db.session, "income_land:2026:SJ-001", "SJ-001 land entered twice")
    db.session.commit()
    rows = {
        h["code"]: h["income_fen"]
        for h in client.get("/api/v1/households").get_json()["households"]
    }
    assert rows["SJ-001"]["land"] == 0 == income_by_household(db.session)["SJ-001"]["land"]


def test_the_aggregates_equal_a_rebuild_from_the_ledger(client, programme):
    """Incremental folding and a fold of the whole ledger from scratch agree row by row."""
    wine, honey = programme["wine"], programme["honey"]
    orders = [
        pay(make_order([(wine, 1), (honey, 2)], buyer(name="甲乙丙", phone="13800000011"))),
        pay(
            make_order(
                [(honey, 3)], buyer(name="丁", phone="13800000012", board_display="anonymous")
            )
        ),
        pay(
            make_order(
                [(wine, 2)], buyer(name="戊己", phone="13800000013", organization="某某公司")
            )
        ),
    ]
    refund(orders[0], 6800)
    refund(orders[2], orders[2].total_fen)

    def snapshot():
        tables = (BoardPeriod, BoardRank, BoardHousehold, BoardHouseholdMonth, BoardMonth)
        result = {
            model.__tablename__: sorted(
                tuple(row) for row in db.session.execute(select(*model.__table__.c))
            )
            for model in tables
        }
        result["feed"] = sorted(
            (f.transaction_id, f.amount_fen, f.refunded_fen, f.beneficiary_fen, f.units)
            for f in db.session.scalars(select(BoardFeed))
        )
        result["feed_households"] = sorted(
            (row.household_code, row.amount_fen)
            for row in db.session.execute(select(BoardFeedHousehold.__table__))
        )
        return result

    before = snapshot()
    assert boards.rebuild() == db.session.scalar(select(func.count()).select_from(Transaction))
    db.session.commit()
    assert snapshot() == before


def test_csv_downloads_carry_every_row(client, programme):
    for index in range(3):
        pay(make_order([(programme["honey"], index + 1)]))
    response = client.get("/open-data/love-board.csv")
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["at", "channel", "buyer"] and len(rows) == 4
    assert sorted(int(r[6]) for r in rows[1:]) == [6800, 13600, 20400]
    households = list(
        csv.DictReader(
            io.StringIO(
                client.get("/open-data/households.csv").get_data(as_text=True).lstrip("\ufeff")
            )
        )
    )
    assert sum(int(r["sales_fen"]) for r in households) == ledger_sales_share() == 6000
    entries = list(
        csv.DictReader(
            io.StringIO(client.get("/open-data/ledger.csv").get_data(as_text=True).lstrip("\ufeff"))
        )
    )
    assert len(entries) == db.session.scalar(select(func.count()).select_from(Entry))
    assert sum(int(r["amount_fen"]) for r in entries) == 0


def test_qr_codes_point_at_the_public_pages(client, app, programme, staff_client):
    order = pay(make_order([(programme["wine"], 1)]))
    base = app.config["PUBLIC_BASE_URL"]
    product_svg = client.get(f"/qr/products/{programme['wine'].slug}.svg")
    assert product_svg.mimetype == "image/svg+xml"
    assert product_svg.get_data(as_text=True) == qr_svg(f"{base}/p/{programme['wine'].slug}")
    trace_svg = client.get(f"/qr/trace/{order.token}.svg").get_data(as_text=True)
    assert trace_svg == qr_svg(f"{base}/trace/{order.token}")

    sheet = staff_client.get(
        "/console/labels",
        query_string={
            "product": programme["wine"].slug,
            "copies": 3,
            "orders": f"{order.order_no}\nNOPE",
        },
    )
    body = sheet.get_data(as_text=True)
    wine_qr = qr_svg(f"{base}/p/{programme['wine'].slug}", scale=3, inline=True)
    assert body.count(wine_qr) == 3
    assert qr_svg(f"{base}/trace/{order.token}", scale=3, inline=True) in body
    assert programme["honey"].name not in body.split('class="label-sheet"')[1]
    assert "没有溯源码：NOPE" not in body  # too short to be an order number: ignored
    unpaid = make_order([(programme["honey"], 1)])
    sheet = staff_client.get("/console/labels", query_string={"orders": unpaid.order_no})
    assert f"没有溯源码：{unpaid.order_no}" in sheet.get_data(as_text=True)


def test_the_label_sheet_is_for_staff(client, app):
    response = client.get("/console/labels")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_product_page_names_the_households_it_helps(client, programme):
    body = client.get(f"/p/{programme['wine'].slug}").get_data(as_text=True)
    assert "SJ-001 张*明" in body and "SJ-002 李*光" in body and "SJ-003" not in body
    assert "张三明" not in body


def test_the_household_page_is_its_public_statement(client, programme):
    from ledger import settle_payout, start_payout

    order = pay(make_order([(programme["wine"], 3)]))
    share = next(a for a in order_ledger_view(order).allocations if a["code"] == "SJ-001")
    start_payout(db.session, "PAYOUT-TEST-1", "SJ-001", 1000, card_last4="5678")
    db.session.commit()
    settle_payout(db.session, "PAYOUT-TEST-1", succeeded=True, alipay_order_id="A1")
    db.session.commit()

    page = client.get("/households/SJ-001").get_data(as_text=True)
    statement = page.split('id="statement"')[1]
    assert "网店销售分成" in statement and "打款到银行卡" in statement
    assert boards_money(share["amount_fen"]) in statement  # the credit
    assert boards_money(share["amount_fen"] - 1000) in statement  # owed after the payout
    assert "-¥10.00" in statement  # the payout, out of the account
    assert "5678" not in page and "6217000012345678" not in page  # no card, not even masked
    # Income stays income: a payout moves money out but does not lower the sales column.
    row = {h["code"]: h for h in client.get("/api/v1/households").get_json()["households"]}
    assert row["SJ-001"]["income_fen"]["sales"] == share["amount_fen"]


def test_an_auditor_verifies_the_downloads_with_the_published_verifier(client, programme, tmp_path):
    """Download the export and the two verifier files, run them with a bare Python (no
    site-packages, so not our code), and see the head match; a tampered line fails."""
    import subprocess
    import sys

    order = pay(make_order([(programme["wine"], 2)]))
    refund(order, 15800)
    for name in ("verify.py", "canonical.py"):
        (tmp_path / name).write_bytes(client.get(f"/open-data/{name}").get_data())
    export = client.get("/api/v1/ledger/export.jsonl").get_data(as_text=True)
    (tmp_path / "ledger.jsonl").write_text(export, encoding="utf-8")
    head = client.get("/api/v1/ledger/head").get_json()

    def run(path):
        return subprocess.run(
            [sys.executable, "-E", "-s", "-S", "verify.py", path], cwd=tmp_path,
            capture_output=True, text=True,
        )  # fmt: skip

    done = run("ledger.jsonl")
    assert done.returncode == 0, done.stderr
    assert head["hash"] in done.stdout and str(head["count"]) in done.stdout

    # The command the open-data page prints, as printed: it names the head it shows.
    page = client.get("/open-data").get_data(as_text=True)
    printed = re.search(r'<pre class="code">python ([^<]+)</pre>', page).group(1).split()
    assert printed[1:] == ["lianxin-ledger.jsonl", "--head", head["hash"]]
    (tmp_path / printed[1]).write_text(export, encoding="utf-8")
    as_printed = subprocess.run(
        [sys.executable, "-E", "-s", "-S", *printed], cwd=tmp_path, capture_output=True, text=True
    )
    assert as_printed.returncode == 0, as_printed.stdout + as_printed.stderr
    assert f"head {head['hash']} is transaction {head['count']}" in as_printed.stdout

    (tmp_path / "tampered.jsonl").write_text(export.replace("-2000", "-2001", 1), "utf-8")
    assert "-2000" in export
    assert run("tampered.jsonl").returncode != 0


def test_offline_buyers_are_told_apart_by_receipt_and_grouped_only_by_nickname(client, programme):
    from shop.offline.services import SaleInput, record_hall_sale

    wine = programme["wine"]

    def hall(token, display, name, receipt=""):
        record_hall_sale(
            SaleInput(wine.id, 1, 15800, board_display=display, board_name=name,
                      receipt_no=receipt),
            token,
        )  # fmt: skip

    hall("t1", "masked", "王*")  # two different people both shown as 王*
    hall("t2", "masked", "王*")
    hall("t3", "nickname", "汉中老乡")  # one nickname, two visits
    hall("t4", "nickname", "汉中老乡")
    hall("t5", "anonymous", "爱心人士", receipt="0001")  # one receipt, two lines
    hall("t6", "anonymous", "爱心人士", receipt="0001")
    board = client.get("/api/v1/board", query_string={"limit": 50}).get_json()
    ranked = sorted((b["name"], b["orders"]) for b in board["top_buyers"])
    assert ranked == [("汉中老乡", 2), ("王*", 1), ("王*", 1)]
    # Buyers: two 王*, the nickname's sales are not known to be one person, so each sale
    # counts; the receipt's two lines are one buyer.
    assert board["totals"]["orders"] == 6 and board["totals"]["buyers"] == 5
