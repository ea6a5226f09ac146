"""Admin household management: roles, the form, PII at rest and in lists, CSV import."""

import csv
import io
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from shop.extensions import db
from shop.households import importer, services
from shop.households.models import Household
from shop.households.services import id_check_char
from tests.builders import SecondPairOfEyes, make_household, make_village

HEADER = [
    "户编码", "户主姓名", "身份证号", "家庭人口", "村", "村民小组",
    "开户银行", "银行卡号", "流转土地(亩)", "务工", "分红", "合作社",
]  # fmt: skip
URLS = [
    "/admin/households",
    "/admin/households/new",
    "/admin/households/import",
    "/admin/households/template.csv",
]


def fake_id(n: int, birth: str = "19800101") -> str:
    body = f"610722{birth}{n:03d}"
    return body + id_check_char(body)


def csv_bytes(rows, header=HEADER, encoding="utf-8-sig", delimiter=",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", delimiter=delimiter)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def row(code="", name="张三明", n=1, members="3", village="双井村", card="6217 0000 1234 5678",
        land="2.5", employed="是", dividend="否", coop="0", group="一组"):  # fmt: skip
    return [code, name, fake_id(n), members, village, group, "城固农商银行", card, land,
            employed, dividend, coop]  # fmt: skip


def upload(client, data: bytes, filename="households.csv"):
    return client.post(
        "/admin/households/import",
        data={"file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def household_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(sa.func.count()).select_from(Household))


def form_data(**overrides):
    data = {
        "code": "",
        "head_name": "张三明",
        "id_number": fake_id(1),
        "village_id": "",
        "group_name": "一组",
        "members": "3",
        "bank_name": "城固农商银行",
        "bank_card": "6217 0000 1234 5678",
        "land_mu": "2.5",
        "employed": "y",
        "coop_member": "y",
        "active": "y",
    }
    data.update(overrides)
    return data


@pytest.fixture
def admin_client(admin_client):
    # Registering and editing households is four-eyes (tests/functional/test_four_eyes.py):
    # here a second admin approves each proposal at once.
    return SecondPairOfEyes(admin_client)


@pytest.fixture
def village(app):
    return make_village(code="SJ", name="双井村")


# --- who may use it ---------------------------------------------------------------


@pytest.mark.parametrize("url", URLS)
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("url", URLS)
def test_staff_is_forbidden(staff_client, url):
    assert staff_client.get(url).status_code == 403


def test_staff_cannot_post_an_import(staff_client, village):
    assert upload(staff_client, csv_bytes([row()])).status_code == 403
    assert household_count() == 0


def test_admin_index_links_to_households(admin_client):
    html = admin_client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/households"' in html


# --- create and edit --------------------------------------------------------------


def test_admin_registers_a_household_with_a_generated_code(admin_client, village):
    response = admin_client.post("/admin/households/new", data=form_data(village_id=village.id))
    assert response.status_code == 302
    second = form_data(village_id=village.id, id_number=fake_id(2), head_name="李四")
    assert admin_client.post("/admin/households/new", data=second).status_code == 302

    db.session.expire_all()
    first, other = db.session.scalars(select(Household).order_by(Household.id)).all()
    assert (first.code, other.code) == ("SJ-001", "SJ-002")
    assert first.head_name == "张三明" and first.name_masked == "张*明"
    assert first.id_number == fake_id(1)
    assert first.bank_card == "6217000012345678" and first.card_last4 == "5678"
    assert first.land_mu == Decimal("2.50")
    assert (first.employed, first.dividend, first.coop_member, first.active) == (
        True, False, True, True,
    )  # fmt: skip


def test_generated_codes_continue_after_the_highest(admin_client, village):
    make_household(village=village, code="SJ-244")
    admin_client.post("/admin/households/new", data=form_data(village_id=village.id))
    assert services.holder_of_id(fake_id(1)).code == "SJ-245"


def test_typed_code_is_used_and_must_be_unique(admin_client, village):
    data = form_data(village_id=village.id, code="sj-900")
    assert admin_client.post("/admin/households/new", data=data).status_code == 302
    again = form_data(village_id=village.id, code="SJ-900", id_number=fake_id(2))
    response = admin_client.post("/admin/households/new", data=again)
    assert response.status_code == 422
    assert "户编码 SJ-900 已被使用" in response.get_data(as_text=True)
    assert household_count() == 1


def test_pii_is_encrypted_at_rest(admin_client, village):
    admin_client.post("/admin/households/new", data=form_data(village_id=village.id))
    raw = db.session.execute(
        sa.text("SELECT head_name, id_number, bank_card, name_masked, card_last4 FROM household")
    ).one()
    stored = " ".join(str(value) for value in raw)
    for secret in ("张三明", fake_id(1), "6217000012345678", "621700001234"):
        assert secret not in stored
    assert raw.name_masked == "张*明" and raw.card_last4 == "5678"
    assert raw.head_name.startswith("gAAAA")  # a Fernet token


def test_list_shows_only_masked_values(admin_client, village):
    admin_client.post("/admin/households/new", data=form_data(village_id=village.id))
    html = admin_client.get("/admin/households").get_data(as_text=True)
    assert "SJ-001" in html and "张*明" in html and "**** 5678" in html
    assert "610*************" in html  # ID masked: first 3 and last 2 kept
    for secret in ("张三明", fake_id(1), "6217000012345678", "6217 0000 1234 5678"):
        assert secret not in html
    assert "双井村" in html and "务工" in html and "合作社" in html


def test_edit_form_shows_decrypted_values_to_the_admin(admin_client, village):
    admin_client.post("/admin/households/new", data=form_data(village_id=village.id))
    household = services.holder_of_id(fake_id(1))
    response = admin_client.get(f"/admin/households/{household.id}/edit")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "张三明" in html and fake_id(1) in html and "6217000012345678" in html
    assert response.headers["Cache-Control"] == "no-store"


def test_admin_edits_a_household_but_not_its_code(admin_client, village):
    household = make_household(village=village, code="SJ-007", head_name="王五")
    data = form_data(
        village_id=village.id, code="SJ-999", head_name="王五六", id_number=fake_id(7),
        bank_card="6228 4800 0000 0000 123", members="5", land_mu="0", employed="",
        coop_member="", active="",
    )  # fmt: skip
    del data["employed"], data["coop_member"], data["active"]
    response = admin_client.post(f"/admin/households/{household.id}/edit", data=data)
    assert response.status_code == 302

    db.session.expire_all()
    changed = db.session.get(Household, household.id)
    assert changed.code == "SJ-007"
    assert changed.head_name == "王五六" and changed.name_masked == "王*六"
    assert changed.id_number == fake_id(7)
    assert changed.card_last4 == "0123" and changed.members == 5
    assert not changed.employed and not changed.active


def test_bad_id_checksum_is_refused_with_a_message(admin_client, village):
    wrong = fake_id(1)[:-1] + ("0" if fake_id(1)[-1] != "0" else "1")
    response = admin_client.post(
        "/admin/households/new", data=form_data(village_id=village.id, id_number=wrong)
    )
    assert response.status_code == 422
    assert "身份证号校验位不对" in response.get_data(as_text=True)
    assert household_count() == 0


def test_all_field_problems_are_shown_at_once(admin_client, village):
    data = form_data(village_id=village.id, members="0", bank_card="123", land_mu="1.234")
    html = admin_client.post("/admin/households/new", data=data).get_data(as_text=True)
    assert "家庭人口应为 1 到 20" in html
    assert "银行卡号应为 12 到 19 位数字" in html
    assert "最多两位小数" in html


def test_duplicate_id_number_is_refused(admin_client, village):
    admin_client.post("/admin/households/new", data=form_data(village_id=village.id))
    again = form_data(village_id=village.id, head_name="李四")
    response = admin_client.post("/admin/households/new", data=again)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "已登记在户 SJ-001" in html
    assert household_count() == 1


def test_edit_cannot_take_another_households_id_number(admin_client, village):
    admin_client.post("/admin/households/new", data=form_data(village_id=village.id))
    other = make_household(village=village, code="SJ-050", head_name="李四")
    data = form_data(village_id=village.id, head_name="李四")
    response = admin_client.post(f"/admin/households/{other.id}/edit", data=data)
    assert response.status_code == 422
    assert "已登记在户 SJ-001" in response.get_data(as_text=True)


def test_editing_a_missing_household_is_404(admin_client):
    assert admin_client.get("/admin/households/9999/edit").status_code == 404


def test_service_refuses_to_change_a_code(app, village):
    values = services.HouseholdInput(
        head_name="张三明", id_number=fake_id(1), members=3, village_id=village.id
    )
    household = services.create_household(values)
    values.code = "SJ-777"
    with pytest.raises(services.HouseholdError) as caught:
        services.update_household(household.id, values)
    assert caught.value.field == "code"


# --- list: filters and pages ------------------------------------------------------


def test_filters_by_village_search_and_status(admin_client, village):
    other_village = make_village(code="LH", name="六合村")
    make_household(village=village, code="SJ-001", head_name="张三明")
    make_household(village=village, code="SJ-002", head_name="李四", active=False)
    make_household(village=other_village, code="LH-001", head_name="王五", card="6217000099998888")

    def codes(**params):
        html = admin_client.get("/admin/households", query_string=params).get_data(as_text=True)
        return {c for c in ("SJ-001", "SJ-002", "LH-001") if c in html}

    assert codes() == {"SJ-001", "SJ-002", "LH-001"}
    assert codes(village=other_village.id) == {"LH-001"}
    assert codes(q="sj-00") == {"SJ-001", "SJ-002"}
    assert codes(q="张*明") == {"SJ-001"}
    assert codes(q="张三明") == {"SJ-001"}  # matched through its masked form
    assert codes(q="8888") == {"LH-001"}  # card's last four
    assert codes(status="inactive") == {"SJ-002"}
    assert codes(status="active", village=village.id) == {"SJ-001"}
    assert codes(q="100%_") == set()


def test_search_by_whole_id_number_uses_the_blind_index(admin_client, village):
    services.create_household(
        services.HouseholdInput(
            head_name="张三明", id_number=fake_id(5), members=2, village_id=village.id
        )
    )
    make_household(village=village, code="SJ-900")
    html = admin_client.get("/admin/households", query_string={"q": fake_id(5)}).get_data(
        as_text=True
    )
    assert "SJ-001" in html and "SJ-900" not in html
    assert fake_id(5) not in html.replace('value="' + fake_id(5) + '"', "")


def test_list_is_paginated(admin_client, village):
    rows = [row(name=f"农户{chr(0x4E00 + i)}", n=i) for i in range(1, 56)]
    assert upload(admin_client, csv_bytes(rows)).status_code == 302
    first = admin_client.get("/admin/households").get_data(as_text=True)
    assert "共 55 户" in first and "SJ-050" in first and "SJ-051" not in first
    assert "第 1 / 2 页" in first
    second = admin_client.get("/admin/households?page=2").get_data(as_text=True)
    assert "SJ-051" in second and "SJ-055" in second and "SJ-001" not in second
    assert admin_client.get("/admin/households?page=99").status_code == 200


# --- CSV import -------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030", "gbk"])
def test_import_happy_path(admin_client, village, encoding):
    rows = [
        row(name="张三明", n=1),
        row(name="李四", n=2, code="SJ-100", card="", land="", employed="否", coop="是"),
    ]
    response = upload(admin_client, csv_bytes(rows, encoding=encoding))
    assert response.status_code == 302
    flashed = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "新登记 2 户，更新 0 户" in flashed

    db.session.expire_all()
    first = services.holder_of_id(fake_id(1))
    second = services.holder_of_id(fake_id(2))
    assert first.code == "SJ-101"  # continues after the highest code, also one in the file
    assert first.head_name == "张三明" and first.card_last4 == "5678"
    assert first.land_mu == Decimal("2.50") and first.employed and not first.coop_member
    assert first.group_name == "一组" and first.bank_name == "城固农商银行"
    assert second.code == "SJ-100" and second.bank_card is None and second.coop_member
    assert second.land_mu == Decimal("0")


def test_import_accepts_english_headers_and_village_code(admin_client, village):
    header = ["code", "head_name", "ID_Number", "members", "village", "land_mu", "employed"]
    data = csv_bytes([["", "赵六", fake_id(3), "4", "sj", "1", "yes"]], header=header)
    assert upload(admin_client, data).status_code == 302
    assert services.holder_of_id(fake_id(3)).employed


def test_import_accepts_semicolons_and_full_width_header(admin_client, village):
    header = ["户主姓名", "身份证号 *", "家庭人口", "村", "流转土地（亩）"]
    data = csv_bytes([["赵六", fake_id(3), "4", "双井村", "3"]], header=header, delimiter=";")
    assert upload(admin_client, data).status_code == 302
    assert services.holder_of_id(fake_id(3)).land_mu == Decimal("3.00")


def test_one_bad_row_writes_nothing_and_names_the_row(admin_client, village):
    bad_id = fake_id(3)[:-1] + ("0" if fake_id(3)[-1] != "0" else "1")
    rows = [row(n=1), row(n=2), [*row(n=3)[:2], bad_id, *row(n=3)[3:]], row(n=4)]
    response = upload(admin_client, csv_bytes(rows))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "第 4 行：身份证号校验位不对" in html  # header is row 1, so the third data row is 4
    for good in (2, 3, 5):
        assert f"第 {good} 行" not in html
    assert "一行也没有写入" in html
    assert household_count() == 0


def test_every_bad_row_is_reported_counting_blank_lines(admin_client, village):
    data = csv_bytes([row(n=1), [], row(n=2, members="0"), [""] * 12, row(n=3, land="-2")])
    response = upload(admin_client, data)
    html = response.get_data(as_text=True)
    assert "第 4 行：家庭人口应为 1 到 20" in html
    assert "第 6 行：流转土地" in html
    assert household_count() == 0
    # The same file without the mistakes imports; blank lines are skipped.
    fixed = csv_bytes([row(n=1), [], row(n=2), [""] * 12, row(n=3)])
    assert upload(admin_client, fixed).status_code == 302
    assert household_count() == 3


def test_duplicates_within_the_file(admin_client, village):
    rows = [row(code="SJ-101", n=1), row(code="SJ-102", n=2), row(code="sj-101", n=3), row(n=2)]
    html = upload(admin_client, csv_bytes(rows)).get_data(as_text=True)
    assert "第 4 行：户编码 SJ-101 与第 2 行重复" in html
    assert "第 5 行：身份证号与第 3 行重复" in html
    assert household_count() == 0


def test_id_number_already_registered_is_refused(admin_client, village):
    services.create_household(
        services.HouseholdInput(
            head_name="李四", id_number=fake_id(2), members=2, village_id=village.id
        )
    )
    html = upload(admin_client, csv_bytes([row(n=1), row(n=2)])).get_data(as_text=True)
    assert "第 3 行：身份证号已登记在户 SJ-001（李*）名下" in html
    assert household_count() == 1


def test_reimporting_an_existing_code_updates_it(admin_client, village):
    assert upload(admin_client, csv_bytes([row(code="SJ-001", n=1)])).status_code == 302
    changed = row(code="SJ-001", n=1, name="张三", members="5", employed="否")
    response = upload(admin_client, csv_bytes([changed, row(n=2)]))
    assert response.status_code == 302
    html = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "新登记 1 户，更新 1 户" in html
    db.session.expire_all()
    household = services.holder_of_id(fake_id(1))
    assert household.code == "SJ-001" and household.head_name == "张三"
    assert household.members == 5 and not household.employed
    assert household_count() == 2


def test_reimport_leaves_columns_the_file_omits(admin_client, village):
    upload(admin_client, csv_bytes([row(code="SJ-001", n=1)]))
    header = ["户编码", "户主姓名", "身份证号", "家庭人口", "村"]
    assert upload(admin_client, csv_bytes([["SJ-001", "张三明", fake_id(1), "4", "双井村"]],
                                          header=header)).status_code == 302  # fmt: skip
    db.session.expire_all()
    household = services.holder_of_id(fake_id(1))
    assert household.members == 4
    assert household.card_last4 == "5678" and household.land_mu == Decimal("2.50")


def test_unknown_village_is_reported(admin_client, village):
    html = upload(admin_client, csv_bytes([row(village="不存在村")])).get_data(as_text=True)
    assert "第 2 行：系统里没有“不存在村”这个村" in html


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (["户编码", "户主姓名", "家庭人口", "村"], "缺少必填的列：身份证号"),
        ([*HEADER[:11], "合作社编号"], "不认识的列"),
        ([*HEADER, "身份证号码"], "出现了两次"),
        (None, "第 1 行"),  # the first row is data, not a header
    ],
)
def test_wrong_or_missing_header(admin_client, village, header, words):
    response = upload(admin_client, csv_bytes([row(n=1), row(n=2)], header=header))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert words in html and "第 1 行" in html
    assert household_count() == 0


def test_extra_cells_beyond_the_header_are_reported(admin_client, village):
    html = upload(admin_client, csv_bytes([[*row(n=1), "多余"]])).get_data(as_text=True)
    assert "第 2 行：这一行的格子比表头多" in html


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "文件是空的"),
        (b"\xef\xbb\xbf", "文件是空的"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)), "Excel 工作簿"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "不是 CSV"),
        (bytes(range(1, 32)) * 10, "无法读取"),
        ("户主姓名,身份证号,家庭人口,村\r\n".encode(), "只有表头"),
        (b'"unterminated\r\n' * 3 + b"\x1b", "无法读取"),
    ],
)
def test_unusable_uploads_get_a_clear_message(admin_client, village, data, words):
    response = upload(admin_client, data)
    assert response.status_code == 422
    assert words in response.get_data(as_text=True)
    assert household_count() == 0


def test_missing_file_field(admin_client):
    response = admin_client.post("/admin/households/import", data={})
    assert response.status_code == 422
    assert "请选择要导入的 CSV 文件" in response.get_data(as_text=True)


def test_size_and_row_limits(app, admin_client, village):
    app.config["HOUSEHOLD_IMPORT_MAX_ROWS"] = 2
    response = upload(admin_client, csv_bytes([row(n=1), row(n=2), row(n=3)]))
    assert "一次最多导入 2 户" in response.get_data(as_text=True)
    app.config["HOUSEHOLD_IMPORT_MAX_BYTES"] = 200
    response = upload(admin_client, csv_bytes([row(n=1), row(n=2)]))
    assert "文件太大" in response.get_data(as_text=True)
    assert household_count() == 0


def test_excel_scientific_notation_is_explained(admin_client, village):
    html = upload(admin_client, csv_bytes([[*row(n=1)[:2], "6.10722E+17", *row(n=1)[3:]]]))
    assert "科学计数法" in html.get_data(as_text=True)


def test_template_download_round_trips_through_the_importer(admin_client, village):
    response = admin_client.get("/admin/households/template.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0].split(",") == HEADER
    assert importer.EXAMPLE_ID in lines[1] and "双井村" in lines[1]

    assert upload(admin_client, data, "农户导入模板.csv").status_code == 302
    household = services.holder_of_id(importer.EXAMPLE_ID)
    assert household.code == "SJ-001" and household.name_masked == "王*例"
    assert household.card_last4 == "0000" and household.employed


def test_import_page_renders(admin_client, village):
    html = admin_client.get("/admin/households/import").get_data(as_text=True)
    assert "下载模板" in html and "身份证号" in html and 'enctype="multipart/form-data"' in html


def test_import_with_csrf_enabled_needs_the_token(app, admin_client, village):
    app.config["WTF_CSRF_ENABLED"] = True
    response = upload(admin_client, csv_bytes([row(n=1)]))
    assert response.status_code in (400, 422)
    assert household_count() == 0
