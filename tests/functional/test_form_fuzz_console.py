"""The village team's forms and CSV uploads, driven by Hypothesis: the product editor,
the hall counter, offline sales and household income (typed, CSV, roster).

The same properties as ``test_form_fuzz.py`` (strategies and checks: ``form_fuzz.py``):
never a 5xx; a refusal writes nothing and says why; an accepted submission is coherent —
a product holds exactly the price and stock typed, a counter sale takes exactly its
quantity from stock and posts one balanced transaction, a confirmed CSV posts each of
its rows once (stock down by exactly the units sold) or nothing at all. The CSV
strategy (:func:`csv_file`) is shared with the household import in
``test_form_fuzz_admin.py``.

CSV files come in the encodings people's spreadsheets save (UTF-8 with and without a
BOM, GBK, GB18030) and ones they should not (UTF-16, Latin-1, random bytes), with CRLF,
LF or CR line ends and comma, semicolon or tab delimiters, their cells as hostile as
the form fields'.
"""

import csv
import io
from decimal import Decimal

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from ledger import Account, Transaction
from shop.catalog.models import Product
from shop.extensions import db
from shop.households.models import Enterprise
from shop.money import parse_typed_yuan
from shop.offline.models import ImportBatch, OfflineSale
from tests.builders import make_household, make_product, make_village
from tests.functional.form_fuzz import (
    FUZZ,
    assert_not_5xx,
    assert_refused_cleanly,
    changed_tables,
    first,
    form,
    hostile_text,
    numbers,
    page_of,
    post_form,
    row_counts,
)

# --- the product editor ----------------------------------------------------------------

PRICES = (
    st.sampled_from(["158", "158.5", "¥1,580.50", "￥158元", "１５８", "0.01", "100000"]),
    st.one_of(st.sampled_from(["0", "100000.01", "1.005", "-5", "1e3", "٣"]), numbers),
)
SHARES = (st.sampled_from(["0", "0.01", "20", "２０"]), PRICES[1])
PRODUCT_FIELDS = {
    "name": st.sampled_from(["树莓果酒", "Mulberry wine 500ml", "🍓 礼盒", " 桑葚酒 "]),
    "subtitle": st.sampled_from(["", "双井村树莓酿造"]),
    "slug": (
        st.sampled_from(["", "raspberry-wine-2"]),
        st.sampled_from(["Bad Slug", "a" * 81, "taken"]),
    ),
    "category_id": (st.sampled_from(["0", "CATEGORY"]), st.sampled_from(["999999", "-1"])),
    "price": PRICES,
    "unit": st.sampled_from(["瓶", "斤", "box"]),
    "stock": (st.sampled_from(["0", "12", "1000000"]), st.one_of(st.just("1000001"), numbers)),
    "beneficiary": SHARES,
    "origin": st.sampled_from(["", "陕西省城固县"]),
    "producer": st.sampled_from(["", "双井树莓果酒厂"]),
    "story": st.sampled_from(["", "山里的树莓\r\n手工酿造"]),
    "featured": st.sampled_from(["y", ""]),
}
PRODUCT_COLUMNS = ("name", "slug", "subtitle", "price_fen", "stock", "unit",
                   "beneficiary_fen_per_unit", "origin", "producer", "story", "featured",
                   "category_id", "status")  # fmt: skip


GOOD_PRODUCT = [("name", "树莓果酒"), ("price", "158"), ("unit", "瓶"), ("stock", "3"),
                ("beneficiary", "20")]  # fmt: skip


def product_state(product_id):
    db.session.expire_all()
    product = db.session.get(Product, product_id)
    state = tuple(getattr(product, column) for column in PRODUCT_COLUMNS)
    db.session.rollback()
    return state


@pytest.fixture
def category(app):
    from shop.catalog.models import Category

    found = Category(slug="wine", name="果酒", name_en="Wine")
    db.session.add(found)
    db.session.commit()
    return found


def with_category(pairs, category):
    return [(k, str(category.id) if v == "CATEGORY" else v) for k, v in pairs]


def assert_product_is_what_was_typed(product, pairs):
    """A saved product holds exactly what the form said, by the shop's rules."""
    assert product.price_fen == parse_typed_yuan(first(pairs, "price"))
    assert product.beneficiary_fen_per_unit == parse_typed_yuan(first(pairs, "beneficiary"))
    assert 0 < product.price_fen <= 10_000_000
    assert 0 <= product.beneficiary_fen_per_unit <= product.price_fen
    assert product.stock == int(first(pairs, "stock").strip())
    assert product.name == first(pairs, "name").strip() and product.name
    for text in (product.name, product.subtitle, product.unit, product.story):
        assert "\x00" not in text and "\ufffd" not in text, text


@FUZZ
@given(pairs=form(PRODUCT_FIELDS))
@example(pairs=[("name", "树莓\x00果酒"), *GOOD_PRODUCT[1:]])  # NUL: stored, or a 500
def test_new_product_fuzzed(staff_client, category, pairs):
    client = staff_client
    pairs = with_category(pairs, category)
    before = row_counts()
    response = post_form(client, "/console/products/new", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["product"] > before["product"]:
        event("accepted")
        assert response.status_code == 302
        product = db.session.scalar(select(Product).order_by(Product.id.desc()))
        assert product.status == "draft"
        assert_product_is_what_was_typed(product, pairs)
        db.session.rollback()
    else:
        assert response.status_code == 422
        assert_refused_cleanly(client, response, before)


@pytest.fixture
def edited(app):
    """The product the examples edit, and another whose slug is taken."""
    make_product(slug="taken")
    return make_product(slug="edited", stock=50, beneficiary_fen_per_unit=2000)


@FUZZ
@given(pairs=form(PRODUCT_FIELDS))
# A slug another product has, with the share changed: the rule's autoflush was a 500.
@example(pairs=[*GOOD_PRODUCT[:4], ("beneficiary", "5"), ("slug", "taken")])
def test_edit_product_fuzzed(staff_client, category, edited, pairs):
    client = staff_client
    product = edited
    pairs = with_category(pairs, category)
    state = product_state(product.id)
    before = row_counts()
    response = post_form(client, f"/console/products/{product.id}", pairs)
    assert_not_5xx(response)
    if response.status_code == 302:
        event("accepted")
        db.session.expire_all()
        assert_product_is_what_was_typed(db.session.get(Product, product.id), pairs)
        db.session.rollback()
    else:
        assert response.status_code == 422
        assert product_state(product.id) == state
        assert_refused_cleanly(client, response, before)


@FUZZ
@given(pairs=form({"action": st.sampled_from(["publish", "unpublish", "archive"])}))
def test_product_status_fuzzed(staff_client, pairs):
    product = db.session.scalar(select(Product).where(Product.slug == "status"))
    if product is None:
        product = make_product(slug="status", status="draft")
    state = product_state(product.id)
    before = row_counts()
    response = post_form(staff_client, f"/console/products/{product.id}/status", pairs)
    assert_not_5xx(response)
    if first(pairs, "action") not in ("publish", "unpublish", "archive"):
        assert response.status_code == 400
        assert product_state(product.id) == state
        assert_refused_cleanly(staff_client, response, before)


# --- the hall counter ------------------------------------------------------------------


@pytest.fixture
def wine(app):
    return make_product(name="树莓果酒", slug="raspberry-wine", price_fen=15800, stock=100_000)


def stock_of(product_id) -> int:
    db.session.expire_all()
    stock = db.session.get(Product, product_id).stock
    db.session.rollback()
    return stock


def ledger_balances_to_zero():
    db.session.expire_all()
    for tx in db.session.scalars(select(Transaction)):
        assert sum(e.amount_fen for e in tx.entries) == 0, tx.key
    assert (db.session.scalar(select(func.sum(Account.balance_fen))) or 0) == 0
    db.session.rollback()


@pytest.fixture
def posted_tokens():
    return set()


@FUZZ
@given(
    pairs=form(
        {
            "token": st.uuids().map(str),
            "product_id": (st.just("WINE"), st.sampled_from(["0", "99999"])),
            "quantity": (st.sampled_from(["1", "3", "9999"]), st.one_of(st.just("10000"), numbers)),
            "unit_price": (st.sampled_from(["", "158", "100.5"]), PRICES[1]),
            "payment_method": (st.sampled_from(["cash", "wechat"]), st.just("bitcoin")),
            "board_display": st.sampled_from(["anonymous", "masked", "nickname"]),
            "buyer_name": st.sampled_from(["王小明", "=cmd|' /C calc'!A0"]),
            "organization": st.sampled_from(["", "爱心企业"]),
        }
    )
)
@example(pairs=[("token", "t-1"), ("product_id", "WINE"), ("quantity", "2"),
                ("payment_method", "cash"), ("buyer_name", "王\x00小明")])  # fmt: skip
def test_counter_sale_fuzzed(staff_client, wine, posted_tokens, pairs):
    client = staff_client
    pairs = [(k, str(wine.id) if v == "WINE" else v) for k, v in pairs]
    stock = stock_of(wine.id)
    before = row_counts()
    response = post_form(client, "/console/offline/", pairs)
    assert_not_5xx(response)
    after = row_counts()
    token = first(pairs, "token")
    if response.status_code == 302 and token in posted_tokens:
        event("accepted")
        # The same form sent again (its one-time token): the first sale stands, once.
        assert changed_tables(before, after) == {}
        assert stock_of(wine.id) == stock
    elif after["offline_sale"] > before["offline_sale"]:
        event("accepted")
        posted_tokens.add(token)
        assert response.status_code == 302
        sale = db.session.scalar(select(OfflineSale).order_by(OfflineSale.id.desc()))
        assert after["offline_sale"] == before["offline_sale"] + 1
        assert after["ledger_transaction"] == before["ledger_transaction"] + 1
        assert sale.quantity == int(first(pairs, "quantity").strip())
        assert stock_of(wine.id) == stock - sale.quantity
        assert sale.total_fen == sale.quantity * sale.unit_price_fen
        assert "\x00" not in sale.board_name + sale.organization
        db.session.rollback()
        ledger_balances_to_zero()
    else:
        assert stock_of(wine.id) == stock
        assert_refused_cleanly(client, response, before)


# --- CSV files -------------------------------------------------------------------------

ENCODINGS = ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "utf-16-le", "latin-1"]


@st.composite
def csv_file(draw, header: list[str], cells: list, good_rows=None):
    """A spreadsheet as bytes: ``header`` then rows of ``cells`` — each a ``(good, bad)``
    pair of strategies, like :func:`form`'s fields — clean, with one cell or heading
    spoiled, or many; in one of ENCODINGS, with any line end and delimiter. Or random
    bytes, a workbook's magic number, or an empty file."""
    shape = draw(
        st.sampled_from(["clean"] * 3 + ["one"] * 3 + ["many", "random", "workbook", "empty"])
    )
    if shape == "random":
        return draw(st.binary(max_size=600))
    if shape == "workbook":
        return b"PK\x03\x04" + draw(st.binary(max_size=60))
    if shape == "empty":
        return draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\r\n\r\n", b" \t"]))
    heading = list(header)
    rows = [
        list(draw(good_rows)) if good_rows else [draw(good) for good, _bad in cells]
        for _ in range(draw(st.integers(1, 5)))
    ]
    spoil = {"clean": 0, "one": 1, "many": draw(st.integers(2, 6))}[shape]
    for _ in range(spoil):
        where = draw(st.integers(-1, len(rows) - 1))  # -1: the header
        column = draw(st.integers(0, len(heading) - 1))
        if where == -1:
            heading[column] = draw(st.one_of(hostile_text, st.just("")))
        else:
            rows[where][column] = draw(st.one_of(cells[column][1], hostile_text, numbers))
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=draw(st.sampled_from([",", ",", ";", "\t"])),
        lineterminator=draw(st.sampled_from(["\r\n", "\n", "\r"])),
    )
    writer.writerow(heading)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(ENCODINGS if shape != "clean" else ENCODINGS[:4]))
    return buffer.getvalue().encode(encoding, errors="replace")


def upload(client, url, fields: dict, content: bytes, filename="file.csv"):
    data = dict(fields)
    data["file"] = (io.BytesIO(content), filename)
    return client.post(url, data=data, content_type="multipart/form-data")


def confirm_batch(client, batch_id):
    """Open a batch's preview, then press confirm: what a person does."""
    preview = client.get(f"/console/offline/batches/{batch_id}")
    assert_not_5xx(preview)
    response = client.post(f"/console/offline/batches/{batch_id}/confirm")
    assert_not_5xx(response)
    return response


SALES_HEADER = ["日期", "商品", "数量", "单价(元)", "付款方式", "购买人", "爱心榜展示", "单位"]
SALES_CELLS = [
    (
        st.sampled_from(["2026-01-20", "2026/1/22", "2026-01-20 10:30"]),
        st.sampled_from(["2099-01-01", "昨天", "2026-02-30"]),
    ),
    (st.sampled_from(["树莓果酒", "raspberry-wine"]), st.just("不存在的商品")),
    (st.sampled_from(["1", "2", "10"]), st.sampled_from(["0", "-1", "1.5", "100000"])),
    (st.sampled_from(["158", "", "100.50"]), st.sampled_from(["-1", "abc", "0"])),
    (st.sampled_from(["微信", "现金", "支付宝"]), st.just("比特币")),
    (st.sampled_from(["", "王小明", "=1+1"]), st.just("王" * 100)),
    (st.sampled_from(["匿名", "实名打码", "昵称"]), st.just("不知道")),
    (st.sampled_from(["", "汉中某公司"]), st.just("企" * 100)),
]
SESSION_FIELDS = {
    "channel": (st.sampled_from(["event", "live", "hall"]), st.just("moon")),
    "session_name": st.sampled_from(["2026年春节年货展销会", "", "直播第3场"]),
    "starts_on": (st.sampled_from(["2026-01-20", ""]), st.just("2026-13-40")),
    "ends_on": (st.sampled_from(["2026-01-29", ""]), st.just("1900-01-01")),
}


def multipart_fields(pairs) -> dict:
    """Form pairs for a multipart body: text only (invalid bytes as U+FFFD), the first
    of a duplicated field kept (the multipart tests send each field once)."""
    fields = {}
    for key, value in pairs:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        fields.setdefault(key, value)
    return fields


def assert_batch_outcome(client, response, before, stock_before, wine_id, purpose):
    """After confirm: either every new row posted once (with its transaction, stock
    down by exactly the units sold) or nothing was written."""
    after = row_counts()
    batch = db.session.scalar(select(ImportBatch).order_by(ImportBatch.id.desc()))
    if batch.status == "posted":
        event("accepted")
        rows = "offline_sale" if purpose == "sales" else "household_income"
        new = after[rows] - before[rows]
        assert new == batch.posted_rows
        assert after["ledger_transaction"] - before["ledger_transaction"] >= (new > 0)
        if purpose == "sales":
            sold = db.session.scalar(
                select(func.coalesce(func.sum(OfflineSale.quantity), 0)).where(
                    OfflineSale.batch_id == batch.id
                )
            )
            assert stock_of(wine_id) == stock_before - sold
        db.session.rollback()
        ledger_balances_to_zero()
    else:
        if purpose == "sales":
            assert stock_of(wine_id) == stock_before
        assert_refused_cleanly(client, response, before)


@FUZZ
@given(
    content=csv_file(SALES_HEADER, SALES_CELLS),
    pairs=form(SESSION_FIELDS),
    filename=st.one_of(st.just("event.csv"), hostile_text),
)
@example(
    content="日期,商品,数量\r\n2026-01-20,树莓果酒,2\r\n".encode("gbk"),
    pairs=[("channel", "event"), ("session_name", "年货节")],
    filename="event.csv",
)
def test_sales_csv_fuzzed(staff_client, wine, content, pairs, filename):
    client = staff_client
    fields = multipart_fields(pairs)
    stock = stock_of(wine.id)
    before = row_counts()
    response = upload(client, "/console/offline/sales/upload", fields, content, filename)
    assert_not_5xx(response)
    after = row_counts()
    if after["offline_batch"] == before["offline_batch"]:
        assert_refused_cleanly(client, response, before)
        return
    changed = changed_tables(before, after)
    assert set(changed) <= {"offline_batch", "audit_log"}, changed  # a pending batch, audited
    assert changed["offline_batch"][1] == before["offline_batch"] + 1
    batch_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    before = row_counts()
    response = confirm_batch(client, batch_id)
    assert_batch_outcome(client, response, before, stock, wine.id, "sales")


# --- household income: typed, CSV, roster ----------------------------------------------


@pytest.fixture
def register(app):
    """Four households with land, jobs, dividends and co-op shares, and who pays them."""
    enterprise = Enterprise(name="双井树莓果酒厂（扶贫企业）")
    db.session.add(enterprise)
    db.session.commit()
    village = make_village(name="双井村", code="SJ")
    for n, land in enumerate([Decimal("2.5"), Decimal("0"), Decimal("4"), Decimal("1")], 1):
        make_household(village, code=f"SJ-{n:03d}", land_mu=land, employed=True,
                       dividend=True, coop_member=n % 2 == 1, members=n)  # fmt: skip
    return {"payer": f"enterprise:{enterprise.id}", "village": village}


PERIODS = st.integers(2000, 2026).map(str)
MONTHS = st.tuples(st.integers(2000, 2026), st.integers(1, 12)).map(lambda t: f"{t[0]}-{t[1]:02d}")
# Whole records a person would type (one per kind of income), each field then spoiled
# or not by form(): quantity × rate, or an amount, as the kind needs.
INCOME_RECORDS = [
    {"household_code": "SJ-001", "channel": "land", "period": PERIODS, "quantity": "2.5",
     "rate": "340", "amount": ""},
    {"household_code": "SJ-002", "channel": "wages", "period": MONTHS, "quantity": "22",
     "rate": "120", "amount": "2640"},
    {"household_code": "sj-003", "channel": "dividend", "period": PERIODS, "quantity": "",
     "rate": "", "amount": "400"},
    {"household_code": "SJ-003", "channel": "coop", "period": PERIODS, "quantity": "1",
     "rate": "800", "amount": ""},
]  # fmt: skip
BAD_INCOME = {
    "household_code": st.just("SJ-999"),
    "channel": st.just("gift"),
    "period": st.sampled_from(["26", "2026-13", "2026/03"]),
    "quantity": st.sampled_from(["-1", "1e3", "0.001"]),
    "rate": PRICES[1],
    "amount": PRICES[1],
}


def income_form(record: dict):
    fields = {
        name: (value if isinstance(value, st.SearchStrategy) else st.just(value), BAD_INCOME[name])
        for name, value in record.items()  # a plain value is that record's, a strategy varies
    }
    fields["payer"] = (
        st.sampled_from(["PAYER", "collective:programme"]),
        st.just("enterprise:999"),
    )
    fields["memo"] = st.sampled_from(["", "2026年租金", "=1+1"])
    return form(fields)


def with_payer(pairs, register):
    return [(k, register["payer"] if v == "PAYER" else v) for k, v in pairs]


@FUZZ
@given(pairs=st.sampled_from(INCOME_RECORDS).flatmap(income_form))
@example(pairs=[("household_code", "SJ-001\x00"), ("channel", "land"), ("period", "2026"),
                ("quantity", "2"), ("rate", "340"), ("payer", "PAYER")])  # fmt: skip
@example(
    pairs=[
        ("household_code", "SJ-001"),
        ("channel", "land"),
        ("period", "2026"),
        ("quantity", "2.5"),
        ("rate", "340"),
        ("payer", "PAYER"),
        ("memo", "租金\x00"),
    ]
)  # fmt: skip  (NUL: a 500 on PostgreSQL)
def test_typed_income_fuzzed(staff_client, register, pairs):
    client = staff_client
    pairs = with_payer(pairs, register)
    before = row_counts()
    response = post_form(client, "/console/offline/income", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["household_income"] > before["household_income"]:
        event("accepted")
        assert response.status_code == 302
        assert after["household_income"] == before["household_income"] + 1
        assert after["ledger_transaction"] == before["ledger_transaction"] + 1
        ledger_balances_to_zero()
    elif response.status_code == 302:
        # The same income typed again: "already booked", nothing posted twice.
        assert changed_tables(before, after) == {}
        assert "没有重复记账" in page_of(client, response)
    else:
        assert response.status_code == 422
        assert_refused_cleanly(client, response, before)


INCOME_HEADER = ["户编码", "类别", "期间", "数量", "单价(元)", "金额(元)", "付款方"]
INCOME_ROWS = st.one_of(
    st.tuples(st.just("SJ-001"), st.just("土地租金"), PERIODS, st.just("2.5"), st.just("340"),
              st.just(""), st.just("")),
    st.tuples(st.just("SJ-002"), st.just("务工工资"), MONTHS, st.just("22"), st.just("120"),
              st.just(""), st.just("双井树莓果酒厂（扶贫企业）")),
    st.tuples(st.just("SJ-003"), st.just("分红"), PERIODS, st.just(""), st.just(""),
              st.just("400"), st.just("村集体")),
)  # fmt: skip
INCOME_CELLS = [
    (st.sampled_from(["SJ-001", "SJ-002", "SJ-003"]), st.just("SJ-999")),
    (st.sampled_from(["土地租金", "务工工资", "分红", "合作社"]), st.just("礼金")),
    (st.sampled_from(["2026", "2026-03"]), st.just("二〇二六")),
    (st.sampled_from(["", "2.5", "22"]), st.sampled_from(["-1", "abc"])),
    (st.sampled_from(["", "340", "120"]), st.sampled_from(["-5", "1e3"])),
    (st.sampled_from(["", "400"]), st.sampled_from(["0", "9" * 12])),
    (st.sampled_from(["", "村集体", "双井树莓果酒厂（扶贫企业）"]), st.just("不认识的单位")),
]


@FUZZ
@given(
    content=csv_file(INCOME_HEADER, INCOME_CELLS, INCOME_ROWS),
    pairs=form({"payer": (st.sampled_from(["", "PAYER"]), st.just("enterprise:999"))}),
)
@example(
    content="户编码,类别,期间,金额(元)\r\nSJ-003,分红,2026,400\r\n".encode("gb18030"), pairs=[]
)
def test_income_csv_fuzzed(staff_client, register, content, pairs):
    client = staff_client
    fields = multipart_fields(with_payer(pairs, register))
    before = row_counts()
    response = upload(client, "/console/offline/income/upload", fields, content, "income.csv")
    assert_not_5xx(response)
    after = row_counts()
    if after["offline_batch"] == before["offline_batch"]:
        assert_refused_cleanly(client, response, before)
        return
    changed = changed_tables(before, after)
    assert set(changed) <= {"offline_batch", "audit_log"}, changed
    batch_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    before = row_counts()
    response = confirm_batch(client, batch_id)
    assert_batch_outcome(client, response, before, None, None, "income")


@FUZZ
@given(
    pairs=form(
        {
            "channel": (st.sampled_from(["land", "dividend", "coop", "wages"]), st.just("gift")),
            "period": (st.sampled_from(["2026", "2026-03"]), st.sampled_from(["x", "2026/03"])),
            "rate": (st.sampled_from(["", "340", "800"]), PRICES[1]),
            "pool": (st.sampled_from(["", "10000"]), PRICES[1]),
            "basis": (st.sampled_from(["equal", "members", "land"]), st.just("height")),
            "payer": (st.just("PAYER"), st.just("enterprise:999")),
        }
    )
)
def test_income_roster_fuzzed(staff_client, register, pairs):
    """A roster is a CSV to fill in (wages) or a pending batch: never a 5xx, and a
    refused one writes nothing."""
    client = staff_client
    pairs = with_payer(pairs, register)
    before = row_counts()
    response = post_form(client, "/console/offline/income/roster", pairs)
    assert_not_5xx(response)
    if response.mimetype == "text/csv":
        event("accepted")
        assert changed_tables(before, row_counts()) == {}
        assert response.headers["Content-Disposition"].startswith("attachment")
    elif response.status_code == 302 and "/batches/" in response.headers["Location"]:
        event("accepted")
        assert set(changed_tables(before, row_counts())) <= {"offline_batch", "audit_log"}
    else:
        assert_refused_cleanly(client, response, before)
