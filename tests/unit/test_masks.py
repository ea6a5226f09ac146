from shop.pii import mask_card, mask_name, mask_phone


def test_masks_keep_only_what_is_public():
    assert mask_name("张三明") == "张*明"
    assert mask_name("王五") == "王*"
    assert mask_name("欧阳小明") == "欧**明"
    assert mask_card("6217 0000 1234 5678") == "**** 5678"
    assert mask_phone("13812345678") == "138****5678"
