"""Offline sales: the hall counter, event and live-stream CSV uploads, reports, reversal.

Every sale is a balanced ``offline_sale`` transaction into its channel's till, with the
same benefit rules as online; uploads are all-or-nothing and posting the same rows
again posts nothing new."""

import io
import re

import pytest
from sqlalchemy import func, select, update

from ledger import Account, Entry, Transaction
from shop.benefits.services import set_product_rule
from shop.catalog.models import Product
from shop.extensions import db
from shop.offline.models import ImportBatch, OfflineSale, SalesSession
from shop.offline.services import RowError, SaleInput, SaleRow, get_session, post_sale_rows
from tests.builders import make_household, make_product, make_village

EVENT_FORM = {
    "channel": "event",
    "session_name": "2026年春节年货展销会",
    "starts_on": "2026-01-20",
    "ends_on": "2026-01-29",
}


@pytest.fixture
def programme(app):
    village = make_village()
    households = [make_household(village, code=f"SJ-{i:03d}") for i in range(1, 4)]
    wine = make_product(name="树莓果酒", slug="raspberry-wine", price_fen=15800, stock=100)
    box = make_product(name="树莓鲜果礼盒", slug="fresh-raspberry", price_fen=6800, stock=50)
    set_product_rule(wine.id, households, "weighted", "equal", share_fen_per_unit=2000)
    set_product_rule(box.id, households, "matched", "equal", share_fen_per_unit=1000)
    return {"wine": wine, "box": box, "households": households}


def tx_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Transaction))


def stock(product) -> int:
    return db.session.scalar(select(Product.stock).where(Product.id == product.id))


def assert_books_balance():
    for tx in db.session.scalars(select(Transaction)):
        assert sum(e.amount_fen for e in tx.entries) == 0, tx.key
    assert db.session.scalar(select(func.sum(Account.balance_fen))) == 0


def token_of(page: str) -> str:
    return re.search(r'name="token"[^>]*value="([^"]+)"', page).group(1)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def upload(client, content: bytes, form=EVENT_FORM, name="event.csv"):
    data = dict(form)
    data["file"] = (io.BytesIO(content), name)
    return client.post(
        "/console/offline/sales/upload", data=data, content_type="multipart/form-data"
    )


def event_csv(rows: list[str]) -> bytes:
    header = "日期,商品,数量,单价(元),付款方式,购买人,爱心榜展示,单位"
    return ("\r\n".join([header, *rows]) + "\r\n").encode("utf-8")


GOOD_ROWS = [
    "2026-01-20,树莓果酒,2,158,微信,王小明,实名打码,",
    "2026-01-21,raspberry-wine,1,158,现金,,匿名,",
    "2026/1/22,树莓鲜果礼盒,3,68,支付宝,爱心大使,昵称,汉中某公司",
]


def test_hall_counter_sale_posts_once_into_the_hall_till(staff_client, programme):
    wine = programme["wine"]
    page = staff_client.get("/console/offline/").get_data(as_text=True)
    form = {
        "token": token_of(page),
        "product_id": str(wine.id),
        "quantity": "3",
        "unit_price": "",
        "payment_method": "wechat",
        "board_display": "masked",
        "buyer_name": "欧阳秀英",
        "organization": "",
    }
    first = staff_client.post("/console/offline/", data=form, follow_redirects=True)
    assert "已记账" in first.get_data(as_text=True)
    again = staff_client.post("/console/offline/", data=form, follow_redirects=True)
    assert again.status_code == 200

    sale = db.session.scalar(select(OfflineSale))
    assert db.session.scalar(select(func.count()).select_from(OfflineSale)) == 1
    assert (sale.channel, sale.quantity, sale.total_fen, sale.board_name) == (
        "hall",
        3,
        47400,
        "欧*",
    )
    assert sale.beneficiary_fen == 6000  # ¥20 a bottle, as online
    assert "欧阳秀英" not in str(vars(sale))
    tx = db.session.get(Transaction, sale.transaction_id)
    assert tx.kind == "offline_sale"
    entries = [(e.account.code, e.amount_fen) for e in tx.entries]
    assert entries[0] == ("cash:hall", 47400)
    assert sorted(c for c, a in entries if c.startswith("household:")) == [
        "household:SJ-001",
        "household:SJ-002",
        "household:SJ-003",
    ]
    assert stock(wine) == 97
    assert tx_count() == 1
    assert_books_balance()


def test_hall_sale_beyond_stock_is_refused_and_posts_nothing(staff_client, programme):
    box = programme["box"]
    page = staff_client.get("/console/offline/").get_data(as_text=True)
    response = staff_client.post(
        "/console/offline/",
        data={
            "token": token_of(page),
            "product_id": str(box.id),
            "quantity": "51",
            "payment_method": "cash",
            "board_display": "anonymous",
        },
    )
    assert response.status_code == 422
    assert "库存不足" in response.get_data(as_text=True)
    assert tx_count() == 0 and stock(box) == 50


def test_event_csv_preview_then_confirm_posts_each_row_once(staff_client, programme):
    response = upload(staff_client, event_csv(GOOD_ROWS))
    assert response.status_code == 302
    preview = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "全部 3 行检查通过" in preview and "确认入账" in preview
    assert tx_count() == 0  # the preview writes nothing to the ledger

    batch = db.session.scalar(select(ImportBatch))
    done = staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm",
        data={"csrf_token": csrf_of(preview)},
        follow_redirects=True,
    )
    assert "已入账 3 行" in done.get_data(as_text=True)
    sales = list(db.session.scalars(select(OfflineSale).order_by(OfflineSale.row_number)))
    assert [s.row_number for s in sales] == [2, 3, 4]
    assert [s.board_name for s in sales] == ["王*", "爱心人士", "爱心大使"]
    assert sales[2].organization == "汉中某公司"
    assert {s.channel for s in sales} == {"event"}
    session = db.session.scalar(select(SalesSession).where(SalesSession.channel == "event"))
    assert session.name == "2026年春节年货展销会"
    assert str(session.starts_on) == "2026-01-20" and str(session.ends_on) == "2026-01-29"
    for sale in sales:
        tx = db.session.get(Transaction, sale.transaction_id)
        assert tx.kind == "offline_sale"
        assert tx.entries[0].account.code == f"cash:event:{session.id}"
        assert tx.entries[0].amount_fen == sale.total_fen
    assert stock(programme["wine"]) == 97 and stock(programme["box"]) == 47
    assert sum(s.beneficiary_fen for s in sales) == 3 * 2000 + 3 * 1000
    assert_books_balance()

    # The same file again: every row is recognised, confirming posts nothing new.
    count = tx_count()
    again = upload(staff_client, event_csv(GOOD_ROWS))
    page = staff_client.get(again.headers["Location"]).get_data(as_text=True)
    assert "确认入账（批次 #" in page and "已入账（跳过）" in page
    second = db.session.scalar(select(ImportBatch).order_by(ImportBatch.id.desc()))
    staff_client.post(
        f"/console/offline/batches/{second.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    assert tx_count() == count
    assert stock(programme["wine"]) == 97
    # A file repeating two of the rows and adding one posts only the new one.
    third = upload(
        staff_client, event_csv([GOOD_ROWS[0], GOOD_ROWS[1], "2026-01-23,树莓果酒,1,158,现金,,,"])
    )
    page = staff_client.get(third.headers["Location"]).get_data(as_text=True)
    batch3 = db.session.scalar(select(ImportBatch).order_by(ImportBatch.id.desc()))
    staff_client.post(
        f"/console/offline/batches/{batch3.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    assert tx_count() == count + 1


def test_the_same_file_under_another_event_is_refused(staff_client, programme):
    first = upload(staff_client, event_csv(GOOD_ROWS))
    page = staff_client.get(first.headers["Location"]).get_data(as_text=True)
    batch = db.session.scalar(select(ImportBatch))
    staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    count = tx_count()

    other = {**EVENT_FORM, "session_name": "另一个展销会"}
    again = upload(staff_client, event_csv(GOOD_ROWS), form=other)
    page = staff_client.get(again.headers["Location"]).get_data(as_text=True)
    assert "同一批销售不能记在两个活动或场次下" in page and "确认入账</button>" not in page
    second = db.session.scalar(select(ImportBatch).order_by(ImportBatch.id.desc()))
    staff_client.post(
        f"/console/offline/batches/{second.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    assert tx_count() == count  # nothing posted twice
    assert stock(programme["wine"]) == 97


def test_a_real_name_typed_as_a_nickname_is_refused(staff_client, programme):
    """A nickname is published as typed; a full name in that box would be too."""
    rows = [GOOD_ROWS[0], "2026-01-21,树莓果酒,1,158,现金,李四,昵称,"]
    response = upload(staff_client, event_csv(rows))
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "第 3 行" in page and "像是真实姓名" in page
    batch = db.session.scalar(select(ImportBatch))
    staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    assert tx_count() == 0

    hall = staff_client.get("/console/offline/").get_data(as_text=True)
    refused = staff_client.post(
        "/console/offline/",
        data={
            "token": token_of(hall), "product_id": str(programme["wine"].id), "quantity": "1",
            "unit_price": "", "payment_method": "cash", "board_display": "nickname",
            "buyer_name": "欧阳秀英", "organization": "",
        },
    )  # fmt: skip
    assert refused.status_code == 422 and "像是真实姓名" in refused.get_data(as_text=True)
    assert tx_count() == 0
    assert "李四" not in staff_client.get("/board").get_data(as_text=True)


def test_identical_rows_in_one_file_are_separate_sales(staff_client, programme):
    rows = ["2026-01-20,树莓果酒,1,158,现金,,匿名,"] * 2
    response = upload(staff_client, event_csv(rows))
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    batch = db.session.scalar(select(ImportBatch))
    staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    assert tx_count() == 2 and stock(programme["wine"]) == 98


def test_one_bad_row_posts_nothing_and_names_the_row(staff_client, programme):
    rows = [
        GOOD_ROWS[0],
        "2026-01-21,不存在的酒,1,158,现金,,,",
        GOOD_ROWS[2],
        "2026-01-22,树莓果酒,两,158,现金,,,",
    ]
    response = upload(staff_client, event_csv(rows))
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "第 3 行：系统里没有商品“不存在的酒”" in page
    assert "第 5 行：数量须为 1 到 9999 的整数。" in page
    assert "确认入账</button>" not in page
    batch = db.session.scalar(select(ImportBatch))
    confirm = staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=True,
    )
    assert "第 3 行" in confirm.get_data(as_text=True)
    assert tx_count() == 0
    assert db.session.scalar(select(func.count()).select_from(OfflineSale)) == 0
    assert stock(programme["wine"]) == 100 and stock(programme["box"]) == 50


def test_rows_outside_the_event_dates_and_stock_shortfall_are_named(staff_client, programme):
    rows = ["2026-02-05,树莓果酒,1,158,现金,,,", "2026-01-21,树莓鲜果礼盒,60,68,现金,,,"]
    response = upload(staff_client, event_csv(rows))
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "第 2 行：日期 2026-02-05 不在本场活动的起止日期内。" in page
    assert "第 3 行：“树莓鲜果礼盒”库存不足" in page
    assert tx_count() == 0


def test_gbk_live_stream_file_with_channel_column(staff_client, programme):
    text = (
        "日期,商品,数量,渠道,活动/场次,付款方式\r\n"
        "2026-03-08 20:15,树莓果酒,2,直播,三八节直播专场,微信\r\n"
    )
    response = upload(
        staff_client, text.encode("gb18030"), {"channel": "event", "session_name": ""}, "live.csv"
    )
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "全部 1 行检查通过" in page
    batch = db.session.scalar(select(ImportBatch))
    staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    sale = db.session.scalar(select(OfflineSale))
    assert (sale.channel, sale.session_name, sale.total_fen) == ("live", "三八节直播专场", 31600)
    assert sale.sold_at.hour == 12 and sale.sold_at.minute == 15  # 20:15 in Shanghai
    tx = db.session.get(Transaction, sale.transaction_id)
    assert tx.entries[0].account.code == f"cash:live:{sale.session_id}"


def test_spreadsheet_upload_is_refused_with_advice(staff_client, programme):
    response = upload(staff_client, b"PK\x03\x04rest-of-xlsx")
    assert response.status_code == 302
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "另存为 CSV" in page


def test_reports_by_channel_product_and_day_with_csv(staff_client, programme):
    response = upload(staff_client, event_csv(GOOD_ROWS))
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    batch = db.session.scalar(select(ImportBatch))
    staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    args = "start=2026-01-01&end=2026-12-31"
    by_channel = staff_client.get(f"/console/offline/reports?group=channel&{args}")
    text = by_channel.get_data(as_text=True)
    assert "展销活动" in text and "¥678.00" in text  # 316 + 158 + 204
    by_product = staff_client.get(f"/console/offline/reports?group=product&{args}").get_data(
        as_text=True
    )
    assert "树莓果酒" in by_product and "¥474.00" in by_product
    csv_answer = staff_client.get(f"/console/offline/reports?group=day&{args}&format=csv")
    assert csv_answer.mimetype == "text/csv"
    lines = csv_answer.get_data().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("日期,")
    assert lines[1:] == [
        "2026-01-20,1,2,316.00,40.00",
        "2026-01-21,1,1,158.00,20.00",
        "2026-01-22,1,3,204.00,30.00",
    ]


def test_admin_reverses_an_offline_sale_and_stock_returns(client, admin_user, programme):
    from tests.conftest import ADMIN_PASSWORD, login

    login(client, "admin1", ADMIN_PASSWORD)
    response = upload(client, event_csv(GOOD_ROWS[:1]))
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    batch = db.session.scalar(select(ImportBatch))
    client.post(f"/console/offline/batches/{batch.id}/confirm", data={"csrf_token": csrf_of(page)})
    sale = db.session.scalar(select(OfflineSale))
    owed_before = -db.session.scalar(
        select(func.sum(Account.balance_fen)).where(Account.kind == "household")
    )
    assert owed_before == 4000
    page = client.get("/console/offline/").get_data(as_text=True)
    client.post(f"/console/offline/sales/{sale.id}/reverse", data={"csrf_token": csrf_of(page)})
    client.post(f"/console/offline/sales/{sale.id}/reverse", data={"csrf_token": csrf_of(page)})
    db.session.expire_all()
    sale = db.session.get(OfflineSale, sale.id)
    reversal = db.session.get(Transaction, sale.reversal_transaction_id)
    assert reversal.reverses_id == sale.transaction_id
    assert (
        db.session.scalar(select(func.sum(Account.balance_fen)).where(Account.kind == "household"))
        == 0
    )
    assert (
        db.session.scalar(
            select(func.sum(Entry.amount_fen))
            .join(Account)
            .where(Account.code.like("cash:event:%"))
        )
        == 0
    )
    assert stock(programme["wine"]) == 100
    assert tx_count() == 2
    assert_books_balance()


def test_staff_cannot_reverse_a_sale(staff_client, programme):
    assert staff_client.post("/console/offline/sales/1/reverse").status_code == 403


def test_strangers_are_sent_to_log_in(client, programme):
    for path in ("/console/offline/", "/console/offline/reports", "/console/offline/income"):
        assert client.get(path).status_code == 302


def test_stock_sold_between_preview_and_confirm_is_named_and_nothing_posts(staff_client, programme):
    """A row that can no longer take its stock at confirm refuses the whole file, names
    the row, and leaves the ledger, the sales and the stock as they were."""
    response = upload(staff_client, event_csv(GOOD_ROWS))
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "全部 3 行检查通过" in page
    # Meanwhile the hall sells the gift boxes down to two.
    db.session.execute(update(Product).where(Product.id == programme["box"].id).values(stock=2))
    db.session.commit()
    batch = db.session.scalar(select(ImportBatch))
    confirm = staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=True,
    )
    assert "第 4 行：“树莓鲜果礼盒”库存不足：本文件共 3 瓶，现有 2 瓶。" in confirm.get_data(
        as_text=True
    )
    assert tx_count() == 0
    assert db.session.scalar(select(func.count()).select_from(OfflineSale)) == 0
    assert stock(programme["wine"]) == 100 and stock(programme["box"]) == 2

    # Once stock is back, the same batch posts all three rows, each once.
    db.session.execute(update(Product).where(Product.id == programme["box"].id).values(stock=50))
    db.session.commit()
    staff_client.post(
        f"/console/offline/batches/{batch.id}/confirm", data={"csrf_token": csrf_of(page)}
    )
    assert tx_count() == 3
    assert stock(programme["wine"]) == 97 and stock(programme["box"]) == 47
    assert_books_balance()


def test_posting_rows_names_the_row_whose_stock_ran_out(staff_user, programme):
    """The last check before the one append: stock taken by a racing sale after the
    confirm's own check still names the row, and the caller's rollback undoes the rows
    before it."""
    hall = get_session("hall")
    sale = SaleInput(
        product_id=programme["box"].id,
        quantity=30,
        unit_price_fen=6800,
        payment_method="cash",
        sold_at=None,
    )
    rows = [SaleRow(hall, sale, f"offline_sale:test:{n}", None, n + 2) for n in range(2)]
    with pytest.raises(RowError) as refused:
        post_sale_rows(rows)
    db.session.rollback()
    assert refused.value.row_number == 3
    assert "库存不足（现有 20）" in refused.value.message
    assert tx_count() == 0 and stock(programme["box"]) == 50
