"""A buyer presses "verify" on their order's trace page: the browser recomputes the
audit path with WebCrypto and checks the signed tree head (issue 18). A proof tampered
with on the way (a test double at the HTTP level) is caught and named."""

import json

import pytest
from sqlalchemy import select

from shop.catalog.models import Product
from shop.extensions import db
from shop.transparency import services as transparency
from tests.builders import make_order
from tests.functional.test_my_account import pay, shop_with_two_households
from tests.live_server import live_server

pytestmark = pytest.mark.browser


@pytest.mark.single_backend  # the browser's arithmetic is under test, not the database
def test_the_trace_page_proves_the_order_is_in_the_signed_ledger(app, phone, output_dir):
    wine = shop_with_two_households()
    orders = [make_order([(wine, 1 + n % 2)]) for n in range(5)]
    for n, order in enumerate(orders):
        pay(order, f"T2026120470000{n}")
    with app.app_context():
        assert transparency.publish()["tree_size"] == 5
    order = orders[2]
    with live_server(app) as base_url:
        phone.goto(f"{base_url}/trace/{order.token}")
        phone.get_by_role("button", name="在浏览器里核验").click()
        result = phone.locator("[data-merkle-result]")
        result.filter(has_text="核验").wait_for()
        phone.locator("[data-outcome]").wait_for()
        text = result.inner_text()
        assert result.get_attribute("data-outcome") == "ok", text
        assert "第 5 版" in text  # Chromium has Ed25519 in WebCrypto: the signature too
        phone.screenshot(path=output_dir / "1-verified.png", full_page=True)

        # Now a proof altered on its way to the browser: one hash of the path flipped.
        def tampered(route):
            answer = route.fetch()
            proof = answer.json()
            first = proof["audit_path"][0]
            proof["audit_path"][0] = ("0" if first[0] != "0" else "1") + first[1:]
            route.fulfill(response=answer, body=json.dumps(proof))

        phone.route("**/api/v1/ledger/proof/inclusion*", tampered)
        phone.reload()
        phone.get_by_role("button", name="在浏览器里核验").click()
        phone.locator("[data-outcome]").wait_for()
        failed = phone.locator("[data-merkle-result]")
        assert failed.get_attribute("data-outcome") == "failed"
        assert "根哈希" in failed.inner_text()  # it says which step failed
        phone.screenshot(path=output_dir / "2-tampered.png", full_page=True)
    assert db.session.scalar(select(Product).where(Product.id == wine.id)) is not None
