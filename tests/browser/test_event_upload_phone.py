"""Village staff on a phone upload an event's sales CSV, check the preview, confirm,
and the sales reach the ledger and the public boards."""

import pytest
from sqlalchemy import func, select

from ledger import Transaction, income_by_household
from shop.benefits.services import set_product_rule
from shop.extensions import db
from shop.offline.models import OfflineSale
from tests.browser.conftest import log_in
from tests.builders import make_household, make_product, make_user, make_village
from tests.live_server import live_server

pytestmark = pytest.mark.browser

CSV = (
    "日期,商品,数量,单价(元),付款方式,购买人,爱心榜展示,单位\r\n"
    "2026-01-20,树莓果酒,2,158,微信,欧阳秀英,实名打码,\r\n"
    "2026-01-21,树莓果酒,1,158,现金,,匿名,汉中某公司\r\n"
)


BOARD_PATHS = ("/board", "/results", "/api/v1/board", "/api/v1/households")


def _board_pages(base_url: str, page) -> dict[str, str]:
    pages = {}
    for path in BOARD_PATHS:
        response = page.request.get(base_url + path)
        assert response.ok, path
        pages[path] = response.text()
    return pages


def test_staff_uploads_event_csv_on_a_phone_and_confirms(app, phone, output_dir, tmp_path):
    village = make_village()
    households = [make_household(village, code=f"SJ-{i:03d}") for i in range(1, 3)]
    wine = make_product(name="树莓果酒", slug="raspberry-wine", price_fen=15800, stock=20)
    set_product_rule(wine.id, households, "weighted", "equal", share_fen_per_unit=2000)
    make_user(username="village1", password="village-pass-1", role="staff")
    csv_file = tmp_path / "春节展销会.csv"
    csv_file.write_bytes(CSV.encode("gb18030"))

    with live_server(app) as base_url:
        before = _board_pages(base_url, phone)
        log_in(phone, base_url, "village1", "village-pass-1")  # password, then the code
        phone.goto(base_url + "/console/offline/")

        phone.select_option("select[name=channel]", "event")
        phone.fill("input[name=session_name]", "2026年春节年货展销会")
        phone.fill("input[name=starts_on]", "2026-01-20")
        phone.fill("input[name=ends_on]", "2026-01-29")
        phone.set_input_files("input[name=file]", str(csv_file))
        phone.screenshot(path=output_dir / "1-upload.png", full_page=True)
        phone.get_by_role("button", name="上传并预览").click()

        phone.wait_for_url("**/console/offline/batches/*")
        phone.get_by_text("全部 2 行检查通过").wait_for()
        assert "欧*" in phone.content() and "欧阳秀英" not in phone.content()
        phone.screenshot(path=output_dir / "2-preview.png", full_page=True)
        phone.get_by_role("button", name="确认入账").click()
        phone.get_by_text("已入账 2 行").wait_for()
        phone.screenshot(path=output_dir / "3-posted.png", full_page=True)
        after = _board_pages(base_url, phone)

        phone.goto(base_url + "/board")
        feed = phone.locator(".feed").inner_text()
        assert "欧*" in feed and "爱心人士" in feed and "树莓果酒 × 2" in feed
        assert "汉中某公司" not in phone.content()  # anonymous: no organisation either
        phone.screenshot(path=output_dir / "4-love-board.png", full_page=True)
        phone.goto(base_url + "/results?q=SJ-00")
        assert "30.00" in phone.locator("table.results").inner_text()  # 3 × ¥20 / 2 each
        phone.screenshot(path=output_dir / "5-results-board.png", full_page=True)

    db.session.expire_all()
    sales = list(db.session.scalars(select(OfflineSale).order_by(OfflineSale.id)))
    assert [(s.quantity, s.board_name, s.organization) for s in sales] == [
        (2, "欧*", ""),
        (1, "爱心人士", "汉中某公司"),
    ]
    kinds = list(db.session.scalars(select(Transaction.kind)))
    assert kinds == ["offline_sale", "offline_sale"]
    assert db.session.scalar(select(func.sum(OfflineSale.total_fen))) == 47400
    rows = income_by_household(db.session)
    assert sum(r["sales"] for r in rows.values()) == 3 * 2000
    for path in BOARD_PATHS:
        assert after[path] != before[path], f"{path} did not change"
    board = app.test_client().get("/api/v1/board").get_json()
    assert board["totals"]["amount_fen"] == 47400 and board["totals"]["units"] == 3
    assert board["totals"]["beneficiary_fen"] == 6000
