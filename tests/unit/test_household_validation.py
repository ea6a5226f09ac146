"""The rules a household's details must follow, shared by the admin form and the CSV import."""

import random
from decimal import Decimal

import pytest

from shop.csv_input import ImportFailed, decode
from shop.demo import resident_id
from shop.households import importer
from shop.households.importer import parse_bool
from shop.households.services import (
    HouseholdError,
    id_check_char,
    parse_bank_card,
    parse_code,
    parse_id_number,
    parse_land_mu,
    parse_members,
    parse_name,
)

VALID_X = "11010119000101009X"  # the template's fake ID: checksum X


def with_check(body17: str) -> str:
    return body17 + id_check_char(body17)


def test_gb11643_check_character_matches_the_standard_example():
    # GB 11643-1999 appendix example.
    assert id_check_char("11010519491231002") == "X"
    assert parse_id_number("11010519491231002X") == "11010519491231002X"


@pytest.mark.parametrize("seed", range(20))
def test_generated_demo_ids_are_accepted(seed):
    number = resident_id(random.Random(seed))
    assert parse_id_number(number) == number


def test_id_number_is_normalised():
    assert parse_id_number(" 110101190001010 09x ") == VALID_X
    full_width = "１１０１０１１９０００１０１００９Ｘ"
    assert parse_id_number(full_width) == VALID_X
    assert parse_id_number(f'="{VALID_X}"') == VALID_X  # Excel's keep-as-text trick


def test_wrong_check_character_is_rejected_with_a_message():
    wrong = VALID_X[:-1] + "1"
    with pytest.raises(HouseholdError) as caught:
        parse_id_number(wrong)
    assert caught.value.field == "id_number"
    assert "校验位" in caught.value.message


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "请填写身份证号"),
        ("110101190001010", "18 位的新身份证号"),
        ("1101011900010100", "18 位"),
        ("11010119000101009Y", "18 位"),
        ("6.10722E+17", "科学计数法"),
        (with_check("11010119001301001"), "出生日期"),  # month 13
        (with_check("11010118991231001"), "出生日期"),  # before 1900
        (with_check("11010129990101001"), "出生日期"),  # in the future
    ],
)
def test_malformed_id_numbers(value, words):
    with pytest.raises(HouseholdError) as caught:
        parse_id_number(value)
    assert words in caught.value.message


def test_bank_card_allows_spaces_and_checks_length():
    assert parse_bank_card("6217 0000 1234 5678") == "6217000012345678"
    assert parse_bank_card("621700001234") == "621700001234"  # 12 digits
    assert parse_bank_card("6" * 19) == "6" * 19
    assert parse_bank_card("  ") is None
    for bad in ("62170000123", "6" * 20, "6217-abcd-1234-5678", "6.21700E+18"):
        with pytest.raises(HouseholdError) as caught:
            parse_bank_card(bad)
        assert caught.value.field == "bank_card"


def test_members_between_1_and_20():
    assert parse_members("1") == 1
    assert parse_members(" 20 ") == 20
    assert parse_members("3.0") == 3  # how Excel sometimes writes integers
    for bad in ("0", "21", "-1", "2.5", "三", ""):
        with pytest.raises(HouseholdError) as caught:
            parse_members(bad)
        assert caught.value.field == "members"


def test_land_mu_two_decimals_up_to_9999_99():
    assert parse_land_mu("") == Decimal("0")
    assert parse_land_mu("2.5") == Decimal("2.50")
    assert parse_land_mu("9999.99") == Decimal("9999.99")
    for bad in ("10000", "1.234", "-1", "abc", "1,5"):
        with pytest.raises(HouseholdError) as caught:
            parse_land_mu(bad)
        assert caught.value.field == "land_mu"


def test_name_1_to_20_characters():
    assert parse_name(" 张三明 ") == "张三明"
    assert parse_name("阿依古丽·买买提") == "阿依古丽·买买提"
    for bad in ("", "  ", "张" * 21, "张3", "张\x07明"):
        with pytest.raises(HouseholdError):
            parse_name(bad)


def test_code_is_upper_cased_and_restricted():
    assert parse_code(" sj-001 ") == "SJ-001"
    assert parse_code("") == ""
    for bad in ("SJ 001", "-SJ", "户001", "A" * 17):
        with pytest.raises(HouseholdError):
            parse_code(bad)


@pytest.mark.parametrize(
    ("word", "value"),
    [("是", True), ("否", False), ("1", True), ("0", False), ("YES", True), ("no", False),
     ("", False)],
)  # fmt: skip
def test_boolean_words(word, value):
    assert parse_bool(word, "employed") is value


def test_unknown_boolean_word_names_the_column():
    with pytest.raises(HouseholdError) as caught:
        parse_bool("也许", "dividend")
    assert "分红" in caught.value.message


def test_decode_utf8_with_and_without_bom_and_gb18030():
    text = "户主姓名,村\r\n张三明,双井村\r\n"
    assert decode(text.encode("utf-8-sig")) == text
    assert decode(text.encode("utf-8")) == text
    assert decode(text.encode("gb18030")) == text
    assert decode(text.encode("gbk")) == text


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "空"),
        (b"\xef\xbb\xbf\r\n  \r\n", "空"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "Excel"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "Excel"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "不是 CSV"),
        ("户主姓名".encode("utf-16"), "不是 CSV"),
        (bytes(range(1, 32)) * 4, "无法读取"),
    ],
)
def test_decode_refuses_what_is_not_csv_text(data, words):
    with pytest.raises(ImportFailed) as caught:
        decode(data)
    assert any(words in error for error in caught.value.errors)


def test_every_column_has_a_distinct_header():
    labels = [label for _field, label, _aliases in importer.COLUMNS]
    assert len(labels) == len(set(labels)) == 12
    assert set(importer.REQUIRED) <= {f for f, _label, _aliases in importer.COLUMNS}
