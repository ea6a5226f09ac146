"""Money at the shop's edges: Alipay's wire format, what people type, display."""

import pytest

from shop.money import (
    fen_to_wire,
    format_fen,
    format_fen_plain,
    parse_typed_hundredths,
    parse_typed_yuan,
    wire_to_fen,
)


def test_yuan_strings_convert_exactly():
    assert fen_to_wire(15800) == "158.00"
    assert fen_to_wire(1) == "0.01"
    assert fen_to_wire(123456789) == "1234567.89"
    assert wire_to_fen("158.00") == 15800
    assert wire_to_fen("158") == 15800
    assert wire_to_fen("0.5") == 50
    assert wire_to_fen("0.07") == 7


@pytest.mark.parametrize(
    "text", ["1e3", "-1", "abc", "158.001", "", " 158.00", "158.", ".5", "１５８", "0x10", None]
)
def test_malformed_yuan_strings_are_refused(text):
    with pytest.raises(ValueError):
        wire_to_fen(text)


@pytest.mark.parametrize("fen", [0, -1, 1.5, True, "100"])
def test_only_positive_integer_fen_go_on_the_wire(fen):
    with pytest.raises(ValueError):
        fen_to_wire(fen)



@pytest.mark.parametrize(
    ("typed", "fen"),
    [
        ("158", 15800),
        ("158.5", 15850),
        ("158.50", 15850),
        (" ¥1,580.50 ", 158050),
        ("￥158元", 15800),
        ("１５８．５０", 15850),  # full-width, as a Chinese input method types it
        ("0", 0),
        ("0.07", 7),
    ],
)
def test_typed_yuan_accepts_what_people_type(typed, fen):
    assert parse_typed_yuan(typed) == fen


@pytest.mark.parametrize(
    "typed",
    ["", "abc", "-1", "+1", "1e3", "1.005", "١٥٨", "٣", "1234567890", "158.", ".5", None],
)
def test_typed_yuan_refuses_what_is_not_an_amount(typed):
    with pytest.raises(ValueError):
        parse_typed_yuan(typed)


def test_typed_hundredths_are_plain_numbers():
    assert parse_typed_hundredths("2.5") == 250
    assert parse_typed_hundredths("１,２00") == 120000
    with pytest.raises(ValueError):
        parse_typed_hundredths("¥2")


def test_fen_formats_as_yuan_with_separators():
    assert format_fen(123456) == "¥1,234.56"
    assert format_fen(5) == "¥0.05"
    assert format_fen(-15800) == "-¥158.00"
    assert format_fen_plain(15800) == "158.00"
