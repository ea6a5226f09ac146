from shop.formatting import format_fen, format_fen_plain
from shop.pii import mask_card, mask_name, mask_phone


def test_fen_formats_as_yuan_with_separators():
    assert format_fen(123456) == "¥1,234.56"
    assert format_fen(5) == "¥0.05"
    assert format_fen(-15800) == "-¥158.00"
    assert format_fen_plain(15800) == "158.00"


def test_masks_keep_only_what_is_public():
    assert mask_name("张三明") == "张*明"
    assert mask_name("王五") == "王*"
    assert mask_name("欧阳小明") == "欧**明"
    assert mask_card("6217 0000 1234 5678") == "**** 5678"
    assert mask_phone("13812345678") == "138****5678"
