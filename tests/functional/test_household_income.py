"""Household income beyond sales — land rent, wages, dividends, co-op — booked in the
village console, one by one, from the register, or by CSV; each is a balanced,
idempotent ledger transaction, reversible by an admin, and shows up by channel."""

import io
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger import Account, Transaction, income_by_household
from shop.audit.verify import verify_audit
from shop.extensions import db
from shop.households.models import Enterprise
from shop.offline.models import HouseholdIncome, ImportBatch
from tests.builders import approve_pending, make_household, make_village
from tests.conftest import ADMIN_PASSWORD, login


@pytest.fixture
def register(app):
    enterprise = Enterprise(name="双井树莓果酒厂（扶贫企业）")
    db.session.add(enterprise)
    db.session.commit()
    village = make_village(name="双井村")
    rows = [
        ("SJ-001", Decimal("2.50"), True, True, True, 3),
        ("SJ-002", Decimal("0"), True, True, False, 5),
        ("SJ-003", Decimal("4.00"), False, True, True, 2),
        ("SJ-004", Decimal("0"), False, False, False, 1),
    ]
    for code, land, employed, dividend, coop, members in rows:
        make_household(
            village,
            code=code,
            land_mu=land,
            employed=employed,
            dividend=dividend,
            coop_member=coop,
            members=members,
        )
    return {"enterprise": f"enterprise:{enterprise.id}"}


def tx_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Transaction))


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def assert_books_balance():
    for tx in db.session.scalars(select(Transaction)):
        assert sum(e.amount_fen for e in tx.entries) == 0
    assert db.session.scalar(select(func.sum(Account.balance_fen))) == 0


def book(client, register, **overrides):
    page = client.get("/console/offline/income").get_data(as_text=True)
    data = {
        "csrf_token": csrf_of(page),
        "household_code": "SJ-001",
        "channel": "land",
        "period": "2026",
        "quantity": "2.5",
        "rate": "340",
        "amount": "",
        "payer": register["enterprise"],
        "memo": "",
    }
    data.update(overrides)
    return client.post("/console/offline/income", data=data, follow_redirects=True)


def confirm_latest(client):
    batch = db.session.scalar(select(ImportBatch).order_by(ImportBatch.id.desc()))
    page = client.get(f"/console/offline/batches/{batch.id}").get_data(as_text=True)
    client.post(f"/console/offline/batches/{batch.id}/confirm", data={"csrf_token": csrf_of(page)})
    return page


def test_single_land_rent_is_mu_times_rate_and_books_once(staff_client, register):
    page = book(staff_client, register).get_data(as_text=True)
    assert "已记入户 SJ-001：土地流转租金 ¥850.00" in page
    again = book(staff_client, register).get_data(as_text=True)
    assert "之前已经入账" in again
    assert tx_count() == 1
    record = db.session.scalar(select(HouseholdIncome))
    assert (record.key, record.amount_fen, record.quantity_hundredths) == (
        "income_land:2026:SJ-001",
        85000,
        250,
    )
    tx = db.session.get(Transaction, record.transaction_id)
    assert tx.kind == "income_land"
    assert [(e.account.code, e.amount_fen) for e in tx.entries] == [
        (register["enterprise"], 85000),
        ("household:SJ-001", -85000),
    ]
    # A different amount for the same household and period is a correction, not a second rent.
    other = book(staff_client, register, quantity="3").get_data(as_text=True)
    assert "已入账 ¥850.00；如需更正，请先冲销原记录" in other
    assert tx_count() == 1
    assert_books_balance()


def test_wages_and_coop_single_entries(staff_client, register):
    book(
        staff_client,
        register,
        household_code="sj-002",
        channel="wages",
        period="2026-03",
        quantity="22",
        rate="120",
    )
    book(
        staff_client,
        register,
        household_code="SJ-003",
        channel="coop",
        quantity="",
        rate="800",
        payer="coop:双井村树莓专业合作社",
    )
    rows = income_by_household(db.session)
    assert rows["SJ-002"]["wages"] == 264000
    assert rows["SJ-003"]["coop"] == 80000
    kinds = set(db.session.scalars(select(Transaction.kind)))
    assert kinds == {"income_wages", "income_coop"}
    coop = db.session.scalar(select(Account).where(Account.code == "coop:双井村树莓专业合作社"))
    assert coop.kind == "coop"


def test_unknown_household_and_bad_period_are_explained(staff_client, register):
    page = book(staff_client, register, household_code="SJ-999").get_data(as_text=True)
    assert "没有户编码为“SJ-999”的农户" in page
    page = book(staff_client, register, period="去年").get_data(as_text=True)
    assert "期间请写成" in page
    assert tx_count() == 0


def test_roster_dividend_pool_is_split_exactly_and_confirmed_once(staff_client, register):
    page = staff_client.get("/console/offline/income").get_data(as_text=True)
    response = staff_client.post(
        "/console/offline/income/roster",
        data={
            "csrf_token": csrf_of(page),
            "channel": "dividend",
            "period": "2026",
            "pool": "1000.01",
            "basis": "members",
            "payer": "collective:programme",
        },
    )
    assert response.status_code == 302
    preview = confirm_latest(staff_client)
    assert "全部 3 行检查通过" in preview
    rows = income_by_household(db.session)
    parts = {code: row["dividends"] for code, row in rows.items()}
    assert sum(parts.values()) == 100001
    assert parts == {"SJ-001": 30000, "SJ-002": 50001, "SJ-003": 20000}  # 3:5:2, odd fen to .5
    # Generating and confirming the same distribution again books nothing new.
    count = tx_count()
    staff_client.post(
        "/console/offline/income/roster",
        data={
            "csrf_token": csrf_of(page),
            "channel": "dividend",
            "period": "2026",
            "pool": "1000.01",
            "basis": "members",
            "payer": "collective:programme",
        },
    )
    again = confirm_latest(staff_client)
    assert "3 行之前已入账，将跳过" in again
    assert tx_count() == count
    assert_books_balance()


def test_roster_land_rent_for_every_household_with_land(staff_client, register):
    page = staff_client.get("/console/offline/income").get_data(as_text=True)
    staff_client.post(
        "/console/offline/income/roster",
        data={
            "csrf_token": csrf_of(page),
            "channel": "land",
            "period": "2026",
            "rate": "340",
            "basis": "equal",
            "payer": register["enterprise"],
        },
    )
    confirm_latest(staff_client)
    rows = income_by_household(db.session)
    assert {c: r["land"] for c, r in rows.items()} == {"SJ-001": 85000, "SJ-003": 136000}


def test_wages_roster_hands_back_a_sheet_to_fill_in(staff_client, register):
    page = staff_client.get("/console/offline/income").get_data(as_text=True)
    response = staff_client.post(
        "/console/offline/income/roster",
        data={
            "csrf_token": csrf_of(page),
            "channel": "wages",
            "period": "2026-03",
            "rate": "120",
            "basis": "equal",
            "payer": register["enterprise"],
        },
    )
    assert response.mimetype == "text/csv"
    lines = response.get_data().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("户编码,类别,期间")
    assert [line.split(",")[0] for line in lines[1:]] == ["SJ-001", "SJ-002"]
    assert tx_count() == 0


def upload_income(client, text: str, encoding="utf-8"):
    page = client.get("/console/offline/income").get_data(as_text=True)
    return client.post(
        "/console/offline/income/upload",
        data={
            "csrf_token": csrf_of(page),
            "payer": "",
            "file": (io.BytesIO(text.encode(encoding)), "income.csv"),
        },
        content_type="multipart/form-data",
    )


INCOME_CSV = (
    "户编码,类别,期间,数量,单价(元),金额(元),付款方\r\n"
    "SJ-001,土地租金,2026,2.5,340,,\r\n"
    "SJ-002,务工工资,2026-03,22,120,,双井树莓果酒厂（扶贫企业）\r\n"
    "SJ-003,分红,2026,,,400,村集体\r\n"
    "SJ-003,合作社,2026,1,800,,双井村树莓专业合作社\r\n"
)


def test_income_csv_one_bad_row_posts_nothing_and_names_it(staff_client, register):
    bad = INCOME_CSV + "SJ-004,务工工资,2026-03,22,120,2000,\r\nSJ-001,土地租金,2026,1,1,,\r\n"
    response = upload_income(staff_client, bad, "gb18030")
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "第 6 行：金额 ¥2,000.00 与数量×单价 ¥2,640.00 不符。" in page
    assert "第 7 行：与第 2 行重复（同一户、同一类别、同一期间）。" in page
    confirm_latest(staff_client)
    assert tx_count() == 0
    assert db.session.scalar(select(func.count()).select_from(HouseholdIncome)) == 0


def test_income_csv_posts_each_row_and_reupload_posts_nothing(staff_client, register):
    response = upload_income(staff_client, INCOME_CSV)
    preview = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "全部 4 行检查通过" in preview
    confirm_latest(staff_client)
    assert tx_count() == 4
    kinds = sorted(db.session.scalars(select(Transaction.kind)))
    assert kinds == ["income_coop", "income_dividend", "income_land", "income_wages"]
    upload_income(staff_client, INCOME_CSV)
    confirm_latest(staff_client)
    assert tx_count() == 4
    assert_books_balance()


def test_income_by_channel_matches_the_ledger_and_public_views(staff_client, register, app):
    upload_income(staff_client, INCOME_CSV)
    confirm_latest(staff_client)
    rows = income_by_household(db.session)
    assert rows["SJ-003"] == {
        "sales": 0, "land": 0, "wages": 0, "dividends": 40000, "coop": 80000, "total": 120000,
    }  # fmt: skip
    owed = -db.session.scalar(
        select(func.sum(Account.balance_fen)).where(Account.kind == "household")
    )
    assert owed == sum(r["total"] for r in rows.values()) == 85000 + 264000 + 40000 + 80000
    page = staff_client.get("/console/offline/income").get_data(as_text=True)
    assert "¥4,690.00" in page  # programme total on the console page
    answer = staff_client.get("/api/v1/households").get_json()
    by_code = {h["code"]: h["income_fen"] for h in answer["households"]}
    for code, row in rows.items():
        assert by_code[code] == row


def test_admin_reversal_removes_the_income_and_allows_a_corrected_booking(
    app, client, admin_user, register
):
    app.config["APPROVAL_THRESHOLD_FEN"] = 10**9  # larger ones: tests/functional/test_four_eyes
    login(client, "admin1", ADMIN_PASSWORD)
    book(client, register)
    record = db.session.scalar(select(HouseholdIncome))
    page = client.get("/console/offline/income").get_data(as_text=True)
    assert "冲销</button>" in page
    done = client.post(
        f"/console/offline/income/{record.id}/reverse",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=True,
    )
    assert "已冲销这笔收入" in done.get_data(as_text=True)
    client.post(f"/console/offline/income/{record.id}/reverse", data={"csrf_token": csrf_of(page)})
    assert tx_count() == 2
    assert income_by_household(db.session)["SJ-001"]["land"] == 0
    reversal = db.session.scalar(select(Transaction).where(Transaction.kind == "income_reversal"))
    assert reversal.reverses_id == record.transaction_id
    # The corrected amount can now be booked, under the next revision of the key.
    book(client, register, quantity="3")
    assert income_by_household(db.session)["SJ-001"]["land"] == 102000
    keys = sorted(db.session.scalars(select(HouseholdIncome.key)))
    assert keys == ["income_land:2026:SJ-001", "income_land:2026:SJ-001#2"]
    assert_books_balance()


def test_staff_cannot_reverse_income(staff_client, register):
    book(staff_client, register)
    record = db.session.scalar(select(HouseholdIncome))
    assert staff_client.post(f"/console/offline/income/{record.id}/reverse").status_code == 403


def test_the_staff_note_stays_private_and_out_of_the_public_ledger(staff_client, register):
    book(staff_client, register, memo="张三明本人签收，电话13900001111")
    record = db.session.scalar(select(HouseholdIncome))
    assert record.memo.startswith("张三明本人签收")  # kept for the village team
    export = staff_client.get("/api/v1/ledger/export.jsonl").get_data(as_text=True)
    assert "income_land" in export
    assert "张三明" not in export and "13900001111" not in export


def test_a_reversal_above_the_threshold_waits_for_a_second_admin(
    app, client, admin_user, register
):
    """¥850 of land rent is over APPROVAL_THRESHOLD_FEN (¥500): reversing it is a
    proposal; the income stays booked until another admin approves."""
    login(client, "admin1", ADMIN_PASSWORD)
    book(client, register)
    record = db.session.scalar(select(HouseholdIncome))
    assert record.amount_fen > app.config["APPROVAL_THRESHOLD_FEN"]
    page = client.get("/console/offline/income").get_data(as_text=True)
    proposed = client.post(
        f"/console/offline/income/{record.id}/reverse",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=True,
    )
    assert "需另一位管理员审批" in proposed.get_data(as_text=True)
    assert tx_count() == 1
    db.session.expire_all()
    assert db.session.get(HouseholdIncome, record.id).reversal_transaction_id is None
    approve_pending()
    db.session.expire_all()
    assert db.session.get(HouseholdIncome, record.id).reversal_transaction_id is not None
    assert tx_count() == 2
    assert verify_audit(db.session).ok
