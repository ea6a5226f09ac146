"""Stored script injection, in a real browser: no payload a buyer, staff member, admin or
CSV row stores ever runs, and every one is shown as the text that was typed.

**What is stored.** :data:`PAYLOADS` — a ``<script>``, an attribute break-out into
``<img onerror>``, a ``javascript:`` and a ``data:`` URL (in case any field becomes a
link), an ``<svg onload>``, Jinja template injection (``{{7*7}}``, ``{{config}}``), a
``</textarea>`` break-out, and a JS-string break-out ``'-alert(1)-'``. Every one sets
``window.__xss`` (an undeclared assignment inside a handler or script creates it) or
opens a dialog, which the test would see. Fields shorter than a payload get the next
payload that fits (and households' names, which may hold no digits, one without any).

They are put in every free-text field, through the same door an attacker uses: the
checkout form (in the browser, typed) and the JSON API (buyer's name, nickname, board
name, organisation, address); the console product editor (name, subtitle, unit, origin,
producer, story); the carrier an order is shipped with and refund reasons; the hall-sale
form and the event-sales CSV (session, buyer, organisation, receipt number); the income
form and the income CSV (memo); the admin household CSV import and household editor
(head's name, group, bank); benefit rule notes; rejection reasons of four-eyes
proposals. What has no form in the shop is seeded as the CLI or the demo seed makes it:
villages, categories, the enterprise that pays income, and the display names of staff
and admins (``users create --display-name``), which the audit log and proposals show.
A payout batch is paid to the payload-named households through the sandbox's transfer
API. Orders have no remark field and payouts no note; fields that take only a strict
format (phones, ID and card numbers, household codes, periods, tracking numbers, slugs)
are given valid values — they refuse any text to inject. Where a page masks a name (a
household head's ``张*明`` on public pages and the payouts page) the payload is not
expected in full; the escaping checks still apply to what is shown.

**What is checked**, on every page: no dialog opens and ``window.__xss`` is never set;
no element carries an ``on…`` attribute (the shop's own pages have none, so any is
injected — the Content-Security-Policy would stop it running, this proves the escaping
without relying on it); no ``href``/``src``/``action`` is a ``javascript:`` or ``data:``
URL (except a ``data:image/`` picture); no ``<script>`` holds injected code; the text
shows no double escaping (``&lt;``); nothing leaks the app's config. Each payload is seen
as literal text on the pages named in :data:`SHOWN` (so ``{{7*7}}`` is shown, not 49), and
every HTML page answers with the Content-Security-Policy (nonce scripts, no
``unsafe-inline``). Non-HTML answers (JSON, CSV, Python, images) are fetched too: they
must not be served as HTML and carry ``nosniff``, so no browser renders them as a page.

**Which pages.** Every GET route of the URL map: those without arguments as they are,
those with arguments for each seeded object (:func:`detail_urls`). A GET route neither
visited nor listed in :data:`NOT_VISITED` (with why) fails the test, so a page added
later is covered or explicitly excused. Pages that need a login are visited again after
an admin logs in, in the same browser context. The sandbox cashier and the payment
return page are opened by the buyer's own checkout, with the parameters only Alipay's
redirect carries; the two-factor code page while the admin logs in. A search for a
payload (reflected, not stored) and the love board's live fragment are opened as well.
"""

import re

import pytest
from flask import url_for
from sqlalchemy import select

from shop.approvals.models import ChangeProposal
from shop.extensions import db
from shop.orders.models import Order
from tests.browser.stored_payloads import (
    PASSWORD,
    PAYLOADS,
    Seeded,
    fit,
    logged_in,
    newest,
    ok,
    seed_households,
    seed_offline,
    seed_orders,
    seed_organisation,
    seed_payouts,
    seed_people_and_places,
    seed_products,
    seed_rules,
)
from tests.builders import totp_code
from tests.live_server import live_server

# --- what the browser checks ----------------------------------------------------------

# One pass over the document: injected handlers, script URLs, injected scripts and
# embedding elements, the flag, and the text as the person sees it.
SCAN = r"""() => {
  const bad = [];
  const urlAttrs = ['href', 'src', 'action', 'formaction', 'xlink:href', 'srcdoc', 'data',
                    'poster', 'background', 'ping'];
  for (const el of document.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    if (['iframe', 'object', 'embed', 'base', 'frame'].includes(tag)) bad.push('<' + tag + '>');
    if (tag === 'script' && el.textContent.includes('__xss')) bad.push('script: ' + el.textContent);
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase(), value = attr.value.trim().toLowerCase();
      const where = '<' + tag + ' ' + attr.name + '="' + attr.value + '">';
      if (name.startsWith('on')) bad.push('handler ' + where);
      if (urlAttrs.includes(name) && /^(javascript|vbscript|data):/.test(value)
          && !(tag === 'img' && value.startsWith('data:image/'))) bad.push('URL ' + where);
      if (name === 'style' && value.includes('__xss')) bad.push('style ' + where);
    }
  }
  const root = document.body || document.documentElement;
  const values = Array.from(document.querySelectorAll('input, textarea'), (f) => f.value);
  return {bad: bad, flag: window.__xss === undefined ? null : String(window.__xss),
          text: (root ? (root.innerText || root.textContent || '') : '') + '\n' +
                values.join('\n')};
}"""
# Signs of a payload shown wrongly: escaped twice, or a template that was evaluated.
WRONG = [re.compile(r"&(lt|gt|quot|#3[49]|#x2[27]|amp);"), re.compile(r"SECRET_KEY|<Config")]

# Where each payload must be seen as typed (path prefix → what shows it, which payloads):
# the pages whose job is to show what was stored, so an evaluated template (49 instead
# of {{7*7}}), a dropped or mangled payload is seen. Form inputs count as shown.
SHOWN = {
    "/p/": ("product name, subtitle, origin, producer, story", PAYLOADS),
    "/c/": ("category and product names", PAYLOADS),
    "/board": ("buyers' nicknames and organisations: online, hall, event", PAYLOADS),
    "/households/": ("village names", PAYLOADS),
    "/trace/": ("products and the households' villages", PAYLOADS),
    "/results": ("villages and products", PAYLOADS),
    "/changes": ("approved changes", PAYLOADS),
    "/orders/": ("the buyer's own name, address, carrier", PAYLOADS),
    "/organisations/": ("the unit's name on its pages", [PAYLOADS[1]]),
    "/cart": ("the product the buyer left in the cart", [PAYLOADS[3]]),
    "/checkout": ("the cart's product, again", [PAYLOADS[3]]),
    "checkout refused": ("what the buyer typed, given back", [PAYLOADS[6], PAYLOADS[8]]),
    "/console/orders/": ("buyer, address, organisation, carrier, refund reason", PAYLOADS),
    "/console/products/": ("every product field, in the editor", PAYLOADS),
    "/console/offline/": ("hall-sale buyers and organisations, event sessions", PAYLOADS),
    "/console/offline/batches/": ("every CSV cell, as previewed", PAYLOADS),
    "/admin/households": ("heads' names, groups, banks, villages", PAYLOADS),
    "/admin/rules": ("rule notes", PAYLOADS),
    "/admin/proposals/": ("proposals, before/after values, rejection reasons", PAYLOADS),
    "/admin/audit/": ("the display names of staff and admins", PAYLOADS[:4]),
    "after login": ("the welcome names the admin", [PAYLOADS[3]]),
}

# GET routes this test does not open in the browser, and why.
NOT_VISITED = {
    "static": "the shop's own CSS and scripts: nothing anyone stores",
    "catalog.set_language": "a redirect that switches the language; it shows nothing",
    "invoices.download": "the PDF the village team uploaded from the tax system, as a file",
    "invoices.staff_pdf": "the same PDF, for staff",
    "api.my_orders": "JSON for a personal API token (401 without one); /account/orders is walked",
    "api.my_impact": "JSON for a personal API token (401 without one); /account/impact is walked",
    "api.ledger_tree_head": "JSON of numbers, hashes and a signature (nothing anyone types); "
    "the trace pages that show the head are walked",
    "api.ledger_inclusion_proof": "JSON of hashes, needs a transaction id; the trace pages "
    "fetch it when verify is pressed (tests/browser/test_merkle_verify.py)",
    "api.ledger_consistency_proof": "JSON of hashes, needs two sizes (test_ledger_tree.py)",
    "account.public_impact": "a buyer's opt-in card (board label, masked households); "
    "test_my_account stores markup in its label and checks it is escaped",
}


def detail_urls(app, seeded: Seeded) -> dict[str, list[dict]]:
    """Arguments for each GET route that takes some: the seeded objects it can show."""
    db.session.expire_all()
    orders = [db.session.get(Order, o.id) for o in seeded.orders]
    proposals = db.session.scalars(select(ChangeProposal.id).order_by(ChangeProposal.id))
    return {
        "catalog.category": [{"slug": c.slug} for c in seeded.categories],
        "catalog.product": [{"slug": p.slug} for p in seeded.products],
        "catalog.product_qr": [{"slug": seeded.products[0].slug}],
        "boards.household": [{"code": h.code} for h in seeded.households],
        "boards.trace": [{"token": o.token} for o in orders],
        "boards.trace_qr": [{"token": orders[0].token}],
        "boards.verifier_source": [{"name": "verify"}, {"name": "canonical"}],
        "orders.show": [{"token": o.token} for o in orders],
        "payments.payment_return": [{"token": orders[0].token}],
        "api.get_order": [{"token": o.token} for o in orders[:2]],
        "console.order_detail": [{"order_no": o.order_no} for o in orders],
        "console.edit_product": [{"product_id": p.id} for p in seeded.products],
        "admin.edit_household": [{"household_id": h.id} for h in seeded.households],
        "admin.household_statement": [{"household_id": h.id} for h in seeded.households],
        "approvals.detail": [{"proposal_id": pid} for pid in proposals],
        "offline.batch": [{"batch_id": b} for b in seeded.batches],
        "media.photo": [{"filename": seeded.photo}],
        **{
            f"organisations.{name}": [{"organisation_id": seeded.organisation_id}]
            for name in ("show", "impact", "bulk_order")
        },
        "organisations.join": [{"code": seeded.invite_code}],
    }


def all_urls(app, seeded: Seeded) -> list[tuple[str, str]]:
    """(endpoint, URL) for every GET route; a route with arguments and no entry in
    :func:`detail_urls` or :data:`NOT_VISITED` fails here."""
    details = detail_urls(app, seeded)
    urls = []
    with app.test_request_context():
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
            if "GET" not in rule.methods or rule.endpoint in NOT_VISITED:
                continue
            if rule.arguments - set(rule.defaults or {}):
                assert rule.endpoint in details, (
                    f"GET {rule.rule} ({rule.endpoint}) takes arguments: give it seeded "
                    "objects in detail_urls() or say why not in NOT_VISITED"
                )
                urls += [
                    (rule.endpoint, url_for(rule.endpoint, **a)) for a in details[rule.endpoint]
                ]
            else:
                urls.append((rule.endpoint, url_for(rule.endpoint)))
        urls += [
            ("catalog.search", url_for("catalog.search", q=PAYLOADS[1])),  # reflected
            ("boards.love_board", url_for("boards.love_board", live=1)),  # the live fragment
        ]
    return urls


class Walk:
    """One browser page that opens URLs and records what it saw."""

    def __init__(self, page, base_url: str):
        self.page, self.base_url = page, base_url
        self.dialogs: list[str] = []
        self.problems: list[str] = []
        self.texts: dict[str, str] = {}
        self.visited: set[str] = set()
        page.on("dialog", self._dialog)

    def _dialog(self, dialog):
        self.dialogs.append(f"{self.page.url}: {dialog.type} {dialog.message!r}")
        dialog.dismiss()

    def log_in(self, username: str) -> None:
        """Password, then the authenticator's code (the code page is scanned too: it is
        only ever shown between the two)."""
        page = self.page
        page.goto(self.base_url + "/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.locator("form button[type=submit]").last.click()
        page.wait_for_url("**/login/code*")
        self.check_page("/login/code")
        self.visited.add("auth.login_code")
        page.fill("input[name=code]", totp_code(username))
        page.locator("form button[type=submit]").last.click()
        page.wait_for_load_state()
        assert "/login" not in page.url, f"{username} could not log in"
        self.check_page("after login (the welcome names the admin)")

    def check_page(self, where: str) -> None:
        seen = self.page.evaluate(SCAN)
        if seen["bad"] or seen["flag"] is not None:
            self.problems.append(f"{where}: {seen['bad'][:5]} flag={seen['flag']}")
        for wrong in WRONG:
            found = wrong.search(seen["text"])
            if found:
                self.problems.append(f"{where}: shows {found.group(0)!r}")
        self.texts[where] = seen["text"]

    def open(self, endpoint: str, url: str) -> bool:
        """Open ``url``; False if it sent us to the login page (try again logged in)."""
        answer = self.page.request.get(self.base_url + url, max_redirects=0)
        headers = answer.headers
        kind = headers.get("content-type", "")
        if answer.status in (301, 302, 303) and "/login" in headers.get("location", ""):
            return False
        self.visited.add(endpoint)
        if answer.status >= 400:  # every URL here names something that exists
            self.problems.append(f"{url}: {answer.status}")
        if not kind.startswith(("text/html", "image/svg+xml")):
            # JSON, CSV, Python, JPEG: never a type a browser renders as a page.
            sniffable = headers.get("x-content-type-options") != "nosniff"
            if "html" in kind or "xml" in kind or sniffable:
                self.problems.append(f"{url}: served as {kind!r} without nosniff")
            return True
        if kind.startswith("text/html"):
            policy = headers.get("content-security-policy", "")
            script_src = re.search(r"script-src ([^;]*)", policy)
            if not script_src or "'nonce-" not in script_src.group(1) or "unsafe" in policy:
                self.problems.append(f"{url}: Content-Security-Policy {policy!r}")
        self.page.goto(self.base_url + url)
        self.check_page(url)
        return True


def buy_in_the_browser(walk: Walk, admin, seeded: Seeded) -> None:
    """A buyer types payloads into the checkout form (first with a wrong phone, so the
    form comes back holding them), pays in the sandbox cashier, and the village team
    (an admin) refunds part of it with a payload reason; then leaves a product in the cart."""
    page, base = walk.page, walk.base_url
    page.goto(base + f"/p/{seeded.products[6].slug}")
    page.fill("input[name=quantity]", "1")
    page.get_by_role("button", name="立即购买").click()
    page.wait_for_url("**/checkout")
    page.fill("input[name=name]", PAYLOADS[6])
    page.fill("input[name=phone]", "not-a-phone")
    page.fill("textarea[name=address]", PAYLOADS[6])
    page.check("input[name=board_display][value=nickname]")
    page.fill("input[name=nickname]", fit(7, 20))
    page.fill("input[name=organization]", PAYLOADS[8])
    page.get_by_role("button", name="提交订单并用支付宝付款").click()
    page.wait_for_load_state()
    walk.check_page("checkout refused, holding what was typed")
    assert page.input_value("textarea[name=address]") == PAYLOADS[6]
    page.fill("input[name=phone]", "13812340099")
    page.get_by_role("button", name="提交订单并用支付宝付款").click()
    page.wait_for_url("**/sandbox/alipay/**")
    walk.check_page("sandbox cashier")
    walk.visited.add("sandbox.gateway")
    page.get_by_role("button", name="确认付款").click()
    page.wait_for_url("**/orders/*/return*")
    page.get_by_text("支付成功").wait_for()
    walk.check_page("payment return")
    walk.visited.add("payments.payment_return")
    order = newest(Order)
    assert order.status == "paid", "the browser's order was not paid"
    seeded.orders.append(order)
    refund = {"amount": "1.00", "reason": PAYLOADS[0]}
    ok(admin.post(f"/console/orders/{order.order_no}/refund", data=refund), "refund")
    page.goto(base + f"/p/{seeded.products[3].slug}")
    page.get_by_role("button", name="加入购物车").click()
    page.wait_for_load_state()


@pytest.fixture
def desk(browser):
    """One desktop browser context for the whole walk (a phone's 3× pixels cost time to
    paint on every page and change nothing here)."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.mark.browser
@pytest.mark.single_backend  # escaping is the templates' work, not the database's
def test_no_stored_payload_runs_and_each_is_shown_as_text(app, desk):
    seeded = Seeded()
    seed_people_and_places(seeded)
    app.config["BOARD_POLL_MS"] = 600_000  # the live board's polling is not under test here
    with live_server(app) as base_url:
        staff, admin, checker = (logged_in(app, name) for name in ("staff1", "admin1", "checker"))
        seed_households(app, admin, seeded)
        seed_products(staff, seeded)
        seed_rules(admin, checker, seeded)
        seed_orders(app, staff, seeded)
        seed_offline(staff, seeded)
        seed_organisation(app, seeded)
        seed_payouts(app, admin)

        walk = Walk(desk, base_url)
        buy_in_the_browser(walk, admin, seeded)
        # The code page exists only between password and code: Walk.log_in opens it.
        urls = [(e, url) for e, url in all_urls(app, seeded) if e != "auth.login_code"]
        needs_login = [(endpoint, url) for endpoint, url in urls if not walk.open(endpoint, url)]
        walk.log_in("auditor")  # an admin: may open every page
        for endpoint, url in needs_login:
            assert walk.open(endpoint, url), f"{url} still sends an admin to the login page"

    assert not walk.dialogs, walk.dialogs
    assert not walk.problems, "\n".join(walk.problems)
    get_routes = {r.endpoint for r in app.url_map.iter_rules() if "GET" in r.methods}
    missed = get_routes - walk.visited - set(NOT_VISITED)
    assert not missed, f"GET routes not opened: {sorted(missed)}"
    for prefix, (what, expected) in SHOWN.items():
        text = "\n".join(t for where, t in walk.texts.items() if where.startswith(prefix))
        assert text, f"no page under {prefix} was opened"
        absent = [p for p in expected if p not in text]
        assert not absent, f"{prefix} ({what}) does not show, as typed: {absent}"


def test_every_page_has_headers_a_server_can_send(app, admin_client):
    """HTTP header values are Latin-1. A header a real server cannot encode (the
    household template's Chinese file name was one) breaks the download over HTTP —
    though Flask's test client, which never encodes them, passes it."""
    with app.test_request_context():
        urls = [
            url_for(rule.endpoint)
            for rule in app.url_map.iter_rules()
            if "GET" in rule.methods
            and not rule.arguments
            and rule.endpoint not in NOT_VISITED
            and not rule.endpoint.startswith("sandbox.")
        ]
    for url in urls:
        for name, value in admin_client.get(url).headers.items():
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                pytest.fail(f"{url}: header {name} cannot be sent: {value!r}")
