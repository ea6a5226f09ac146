"""Every public page, and the buyer's own, read well on a 375-px-wide phone (issue 16).

Tried as a new user would, the results board's household table squeezed its name and
village columns to one character a line and ran off the screen. Here each page of the
demo programme (244 households, real sales) is opened in Chromium at 375 × 667 and
checked: no element reaches past the viewport unless it sits inside its own scroll box
(``overflow-x: auto``), and no table cell is squeezed narrower than two characters of
its own text. Screenshots go to ``test-output/``.
"""

import pytest
from sqlalchemy import select

from shop.catalog.models import Product
from shop.demo import seed_demo
from shop.extensions import db
from shop.households.models import Household
from shop.orders.models import Order
from shop.orders.services import apply_payment
from shop.transparency import services as transparency
from tests.browser.conftest import PHONE
from tests.builders import buyer, make_order, make_user
from tests.live_server import live_server

pytestmark = [pytest.mark.browser, pytest.mark.single_backend]

NARROW = {**PHONE, "viewport": {"width": 375, "height": 667}}
# What overflows, and what is squeezed, on the page now open.
MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const inScrollBox = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.className ? '.' + el.className : '');
  const wide = [], squeezed = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if ((box.right > width + 1 || box.left < -1) && !inScrollBox(el)) {
      wide.push(name(el) + ' right=' + Math.round(box.right));
    }
    if ((el.tagName === 'TD' || el.tagName === 'TH') && el.innerText.trim().length >= 2) {
      const em = parseFloat(getComputedStyle(el).fontSize);
      const text = el.innerText.trim().slice(0, 12);
      if (box.width < 2 * em + 4) squeezed.push(name(el) + ' "' + text + '"');
    }
  }
  return {scroll: document.documentElement.scrollWidth - width, wide: wide.slice(0, 8),
          squeezed: squeezed.slice(0, 8)};
}"""


def paid_demo_order(user_id: int) -> Order:
    wine = db.session.scalar(select(Product).where(Product.slug == "raspberry-wine"))
    order = make_order([(wine, 2)], buyer(), user_id=user_id)
    apply_payment(order.order_no, "T2026120499990001", order.total_fen, paid=True)
    # A signed tree head includes it: the trace page shows the proof section and the
    # open-data page the key and head (long hashes, at phone width).
    transparency.publish()
    db.session.expire_all()
    return db.session.get(Order, order.id)


def test_public_and_buyer_pages_fit_a_375_px_phone(app, browser, output_dir):
    seed_demo()
    me = make_user(username="phone-buyer", password="phone-pass-1")
    order = paid_demo_order(me.id)
    household = db.session.scalar(select(Household).order_by(Household.code))
    pages = {
        "home": "/",
        "product": "/p/raspberry-wine",
        "love-board": "/board",
        "results-board": "/results",
        "household": f"/households/{household.code}",
        "trace": f"/trace/{order.token}",
        "order": f"/orders/{order.token}",
        "changes": "/changes",
        "open-data": "/open-data",
        "my-orders": "/account/orders",
        "my-impact": "/account/impact",
    }
    context = browser.new_context(**NARROW)
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems = {}
    with live_server(app) as base_url:
        page.goto(base_url + "/login")
        page.fill("input[name=username]", "phone-buyer")
        page.fill("input[name=password]", "phone-pass-1")
        page.locator("form button[type=submit]").last.click()
        page.wait_for_load_state()
        for label, url in pages.items():
            response = page.goto(base_url + url)
            assert response.status < 400, (label, response.status)
            page.screenshot(path=output_dir / f"{label}.png", full_page=True)
            measured = page.evaluate(MEASURE)
            if measured["scroll"] > 0 or measured["wide"] or measured["squeezed"]:
                problems[label] = measured
    context.close()
    assert not problems, problems
