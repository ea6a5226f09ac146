"""A buyer on a phone: home page, search, product page — in a real browser."""

import pytest

from shop.demo import seed_demo
from tests.live_server import live_server

pytestmark = pytest.mark.browser


def test_phone_buyer_finds_raspberry_wine(app, phone, output_dir):
    seed_demo()
    with live_server(app) as base_url:
        phone.goto(base_url + "/")
        assert "连心集市" in phone.title()
        # Mobile-first: nothing wider than the phone's screen.
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        phone.screenshot(path=output_dir / "1-home.png", full_page=True)

        phone.fill("input[name=q]", "树莓")
        phone.press("input[name=q]", "Enter")
        phone.wait_for_url("**/search?q=*")
        results = phone.locator("a.card")
        assert results.count() >= 2
        phone.screenshot(path=output_dir / "2-search.png", full_page=True)

        phone.get_by_role("link", name="树莓果酒").first.click()
        phone.wait_for_url("**/p/raspberry-wine")
        assert phone.locator("h1").inner_text().strip() == "树莓果酒"
        assert "每瓶 ¥20.00 直达农户" in phone.content()
        cover = phone.locator(".gallery-main img").first
        cover.wait_for()
        # The photo really loaded (served from the upload pipeline's files).
        assert phone.evaluate("img => img.complete && img.naturalWidth > 0", cover.element_handle())
        phone.screenshot(path=output_dir / "3-product.png", full_page=True)
    assert (output_dir / "3-product.png").stat().st_size > 10_000
