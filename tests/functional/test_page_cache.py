"""The anonymous page cache (shop/page_cache.py): a product page and the love board are
served from it only while nothing they show has changed, never with someone else's
nonce or CSRF token, and never to a signed-in buyer or one with a cart."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ledger import create_rule
from shop import page_cache
from shop.benefits.services import set_product_rule
from shop.boards.reads import love_board_version
from shop.catalog.services import product_page_version
from shop.console import services as console
from shop.extensions import db
from shop.households.models import Household
from shop.orders.services import apply_payment
from tests.builders import buyer, image_bytes, make_household, make_order, make_product


@pytest.fixture
def wine(app):
    households = [make_household(head_name="张三明"), make_household(head_name="李四福")]
    product = make_product(name="树莓果酒", slug="raspberry-wine", price_fen=15800, stock=30)
    set_product_rule(product.id, households, "weighted", "equal", share_fen_per_unit=2000)
    return product


def _page(client, path="/p/raspberry-wine"):
    response = client.get(path)
    assert response.status_code == 200
    return response, response.get_data(as_text=True)


def test_a_second_anonymous_view_is_a_hit_with_its_own_nonce(client, wine):
    first, first_html = _page(client)
    second, second_html = _page(client)
    assert (first.headers["X-Page-Cache"], second.headers["X-Page-Cache"]) == ("miss", "hit")
    for response, html in ((first, first_html), (second, second_html)):
        nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])[1]
        assert f'nonce="{nonce}"' in html  # the page's script runs under this response's CSP
    assert first.headers["Content-Security-Policy"] != second.headers["Content-Security-Policy"]
    assert "¥158.00" in second_html


def test_a_served_page_carries_a_csrf_token_that_works_for_its_own_visitor(app, wine):
    app.config["WTF_CSRF_ENABLED"] = True
    _page(app.test_client())  # someone else's visit fills the cache
    visitor = app.test_client()
    response, html = _page(visitor)
    assert response.headers["X-Page-Cache"] == "hit"
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
    added = visitor.post(
        "/cart/add", data={"csrf_token": token, "product_id": wine.id, "quantity": 1}
    )
    assert added.status_code == 302  # a stranger's token would be a 400


def test_stock_price_and_photos_each_make_the_next_view_fresh(client, wine):
    _page(client)
    make_order([(wine, 3)], buyer())  # reserves stock
    response, html = _page(client)
    assert response.headers["X-Page-Cache"] == "miss"
    assert "27 瓶" in html

    values = console.ProductInput(
        name="树莓果酒", price_fen=16800, stock=27, unit="瓶", beneficiary_fen_per_unit=2000,
        slug="raspberry-wine",
    )  # fmt: skip
    console.update_product(wine.id, values)
    response, html = _page(client)
    assert response.headers["X-Page-Cache"] == "miss" and "¥168.00" in html

    first = console.add_product_photo(wine.id, image_bytes(color=(10, 200, 10)))
    console.add_product_photo(wine.id, image_bytes(color=(200, 10, 10)))
    _page(client)
    assert _page(client)[0].headers["X-Page-Cache"] == "hit"
    console.move_photo(first.id, +1)
    assert _page(client)[0].headers["X-Page-Cache"] == "miss"


def test_a_sale_shows_on_the_product_page_and_the_love_board_at_once(client, wine):
    _page(client)
    _page(client, "/board")
    assert _page(client, "/board")[0].headers["X-Page-Cache"] == "hit"
    order = make_order([(wine, 1)], buyer(name="欧阳秀英", board_display="masked"))
    apply_payment(order.order_no, f"T{order.order_no}", order.total_fen, paid=True)

    response, html = _page(client)
    assert response.headers["X-Page-Cache"] == "miss"
    assert "消费帮扶累计 ¥10.00" in html  # each of the two households got half of ¥20
    board, board_html = _page(client, "/board")
    assert board.headers["X-Page-Cache"] == "miss"
    assert "<strong>欧*</strong>" in board_html and "欧阳秀英" not in board_html


def test_a_household_renamed_is_not_shown_under_its_old_name(client, wine):
    _page(client)
    household = db.session.scalars(select(Household).order_by(Household.id)).first()
    household.set_head_name("赵五")
    db.session.commit()
    response, html = _page(client)
    assert response.headers["X-Page-Cache"] == "miss"
    assert "赵*" in html


def test_signed_in_buyers_and_carts_are_never_served_from_the_cache(client, wine, app):
    _page(client)
    client.post("/cart/add", data={"product_id": wine.id, "quantity": 1})
    response, _ = _page(client)
    assert "X-Page-Cache" not in response.headers

    other = app.test_client()
    _page(other)
    with other.session_transaction() as session:
        session["_flashes"] = [("success", "已保存。")]
    assert "X-Page-Cache" not in _page(other)[0].headers


def test_a_rule_that_takes_effect_later_changes_the_version_when_its_time_comes(
    app, wine, monkeypatch
):
    now = datetime.now(UTC)
    create_rule(
        db.session, wine.id, "fixed", "weighted", {make_household().code: 1},
        share_fen_per_unit=3000, effective_from=now + timedelta(hours=2),
    )  # fmt: skip
    db.session.commit()
    before = product_page_version("raspberry-wine")
    monkeypatch.setattr("shop.catalog.services.utcnow", lambda: now + timedelta(hours=3))
    assert product_page_version("raspberry-wine") != before


def test_the_love_board_starts_a_new_day_with_a_new_version(app):
    evening = datetime(2026, 12, 2, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    assert love_board_version(evening) != love_board_version(evening + timedelta(minutes=2))


def test_an_unpublished_product_is_not_cached(client, wine):
    console.set_status(wine.id, "archived")
    assert client.get("/p/raspberry-wine").status_code == 404
    assert product_page_version("raspberry-wine") is None


def test_the_cache_can_be_turned_off(app, wine):
    app.config["PAGE_CACHE_ENTRIES"] = 0
    page_cache.init_app(app)
    client = app.test_client()
    assert "X-Page-Cache" not in _page(client)[0].headers
