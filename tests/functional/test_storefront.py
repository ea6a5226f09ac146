from tests.builders import make_category, make_product


def test_home_lists_published_products_only(client, app):
    make_product(name="树莓果酒", slug="raspberry-wine")
    make_product(name="未上架的酒", slug="draft-wine", status="draft")
    page = client.get("/").get_data(as_text=True)
    assert "树莓果酒" in page
    assert "未上架的酒" not in page


def test_product_page_shows_price_stock_and_household_share(client, app):
    make_product(
        name="树莓果酒",
        slug="raspberry-wine",
        price_fen=15800,
        beneficiary_fen_per_unit=2000,
        stock=12,
        origin="陕西城固双井村",
        producer="西达生物",
    )
    page = client.get("/p/raspberry-wine").get_data(as_text=True)
    assert "¥158.00" in page
    assert "每瓶 ¥20.00 直达农户" in page
    assert "12 瓶" in page
    assert "陕西城固双井村" in page


def test_draft_and_unknown_products_are_not_found(client, app):
    make_product(slug="hidden", status="draft")
    assert client.get("/p/hidden").status_code == 404
    assert client.get("/p/nope").status_code == 404


def test_category_page_and_search(client, app):
    wine = make_category(slug="wine", name="果酒")
    make_product(name="桑葚果酒", slug="mulberry", category=wine)
    make_product(name="土蜂蜜", slug="honey")
    page = client.get("/c/wine").get_data(as_text=True)
    assert "桑葚果酒" in page and "土蜂蜜" not in page
    found = client.get("/search?q=桑葚").get_data(as_text=True)
    assert "桑葚果酒" in found and "土蜂蜜" not in found
    # LIKE wildcards are literal, not "match everything".
    assert "桑葚果酒" not in client.get("/search?q=%25").get_data(as_text=True)


def test_english_switch(client, app):
    client.get("/lang/en")
    page = client.get("/").get_data(as_text=True)
    assert "Lianxin Market" in page
