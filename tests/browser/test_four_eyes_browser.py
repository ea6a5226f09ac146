"""Four eyes in a real browser: one admin changes a household's bank card, it waits as
a proposal they cannot approve themselves, a second admin (password + TOTP) approves
it, and the public change log shows who did what — with the cards masked throughout."""

import pyotp
import pytest
from sqlalchemy import select

from shop.approvals.models import ChangeProposal
from shop.extensions import db
from shop.households.models import Household
from shop.households.services import id_check_char, id_digest
from tests.builders import make_household, make_user, make_village
from tests.conftest import ADMIN_PASSWORD
from tests.live_server import live_server

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 900}, "locale": "zh-CN"}
OLD_CARD = "6217000012345678"
NEW_CARD = "6228480012349876"
SECOND_PASSWORD = "admin-password-2"

# Collects every Content-Security-Policy violation; added before any page script runs.
LISTEN = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') +
                           ' at ' + e.sourceFile + ':' + e.lineNumber);
});
"""


def _context(browser):
    """A fresh desktop browser (its own cookies), whose page records every console
    error, script error and CSP violation; ``page.check(where)`` fails on any."""
    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.add_init_script(LISTEN)

    def on_console(message) -> None:
        # Chromium asks for /favicon.ico by itself; the shop has none (a 404), which is
        # no error of the pages under test. Every other console error counts.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"console error: {message.text} at {message.location}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"script error: {error}"))

    def check(where: str) -> None:
        found = page.evaluate("window.__violations || []")
        assert not found and not errors, f"{where}: {found + errors}"

    page.check = check
    return context, page


def _log_in(page, base_url, username, password, secret, next_path):
    page.goto(f"{base_url}/login?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/login/code*")
    page.check("two-factor page")
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url(f"**{next_path}")


def _assert_no_full_card(page, where):
    html = page.content()
    for card in (OLD_CARD, NEW_CARD):
        assert card not in html, f"{where}: full card number {card} shown"
        assert card[-8:] not in html, f"{where}: more than the last four digits shown"


def test_second_admin_approves_a_card_change_seen_masked_on_the_change_log(
    app, browser, output_dir
):
    village = make_village(name="莲心村")
    household = make_household(village, code="LX-001", head_name="欧阳秀英", card=OLD_CARD)
    body = "61072219800101001"
    household.id_number = body + id_check_char(body)
    household.id_number_digest = id_digest(household.id_number)
    db.session.commit()
    household_id = household.id
    maker = make_user(
        username="admin1", password=ADMIN_PASSWORD, role="admin", display_name="李会计"
    )
    checker = make_user(
        username="admin2", password=SECOND_PASSWORD, role="admin", display_name="王主任"
    )

    with live_server(app) as base_url:
        # Admin A: password, code, the household form, a new card.
        context_a, page_a = _context(browser)
        edit_path = f"/admin/households/{household_id}/edit"
        _log_in(page_a, base_url, "admin1", ADMIN_PASSWORD, maker.totp_secret, edit_path)
        page_a.check("household form")
        assert page_a.input_value("input[name=code]") == "LX-001"
        assert page_a.locator("input[name=code]").get_attribute("readonly") is not None
        page_a.fill("input[name=bank_card]", NEW_CARD)
        page_a.screenshot(path=output_dir / "1-admin-a-edit.png", full_page=True)
        page_a.get_by_role("button", name="保存").click()
        page_a.wait_for_url("**/admin/proposals/*")
        page_a.check("proposal page (proposer)")
        proposal_url = page_a.url
        proposal_id = int(proposal_url.rstrip("/").rsplit("/", 1)[1])
        assert page_a.locator("#proposal-status").inner_text() == "待审批"
        assert page_a.locator("#approve").count() == 0, "the proposer is offered approval"
        assert "需要另一位管理员审批" in page_a.locator("main, body").first.inner_text()
        assert page_a.locator("table.diff td.before").first.inner_text() == "**** 5678"
        assert page_a.locator("table.diff td.after").first.inner_text() == "**** 9876"
        _assert_no_full_card(page_a, "proposal page (proposer)")
        page_a.screenshot(path=output_dir / "2-admin-a-pending.png", full_page=True)

        # Even posting the approval by hand is refused: the server, not only the page.
        refused = page_a.request.post(f"{proposal_url}/approve", form={})
        assert refused.ok
        assert "不能审批自己提出的变更" in refused.text()
        db.session.expire_all()
        assert db.session.get(ChangeProposal, proposal_id).status == "pending"
        assert db.session.get(Household, household_id).bank_card == OLD_CARD
        context_a.close()

        # Admin B, in a browser of their own: password and code, then the proposal.
        context_b, page_b = _context(browser)
        proposal_path = f"/admin/proposals/{proposal_id}"
        _log_in(page_b, base_url, "admin2", SECOND_PASSWORD, checker.totp_secret, proposal_path)
        page_b.check("proposal page (checker)")
        assert page_b.locator("#proposal-status").inner_text() == "待审批"
        assert "李会计" in page_b.locator("dl.facts").inner_text()
        row = page_b.locator("table.diff tbody tr", has_text="**** 9876")
        assert row.locator("td.before").inner_text() == "**** 5678"
        assert row.locator("td.after").inner_text() == "**** 9876"
        assert page_b.locator("table.diff tbody tr").count() == 1, "only the card changed"
        _assert_no_full_card(page_b, "proposal page (checker)")
        page_b.screenshot(path=output_dir / "3-admin-b-review.png", full_page=True)
        page_b.locator("#approve").click()
        page_b.wait_for_load_state()
        page_b.locator("#proposal-status", has_text="已批准").wait_for()
        page_b.check("proposal approved")
        assert page_b.locator("#approve").count() == 0
        assert "王主任" in page_b.locator("dl.facts").inner_text()
        _assert_no_full_card(page_b, "proposal approved")
        page_b.screenshot(path=output_dir / "4-admin-b-approved.png", full_page=True)
        # The console's list and the household's own page now show it as decided.
        page_b.goto(base_url + "/admin/proposals/")
        page_b.check("proposal list")
        assert page_b.locator("#waiting").count() == 0
        assert page_b.get_by_role("link", name="修改农户 LX-001：银行卡号").count() == 1
        _assert_no_full_card(page_b, "proposal list")
        page_b.screenshot(path=output_dir / "5-admin-b-proposal-list.png", full_page=True)
        page_b.goto(base_url + edit_path)
        page_b.check("household form after approval")
        assert page_b.input_value("input[name=bank_card]") == NEW_CARD
        page_b.screenshot(path=output_dir / "6-admin-b-household.png", full_page=True)
        context_b.close()

        # Anyone: the public change log names both admins and shows only last fours.
        context_c, page_c = _context(browser)
        for path in ("/changes", "/changes?household=LX-001"):
            page_c.goto(base_url + path)
            page_c.check(path)
            change = page_c.locator("article.change", has_text="LX-001")
            assert change.count() == 1, path
            text = change.inner_text()
            assert "修改农户 LX-001" in text
            assert "李会计" in text and "王主任" in text
            assert change.locator("td.before").first.inner_text() == "**** 5678"
            assert change.locator("td.after").first.inner_text() == "**** 9876"
            _assert_no_full_card(page_c, path)
            assert "欧阳秀英" not in page_c.content()
        page_c.screenshot(path=output_dir / "7-public-change-log.png", full_page=True)
        context_c.close()

    db.session.expire_all()
    assert db.session.get(Household, household_id).bank_card == NEW_CARD
    proposal = db.session.get(ChangeProposal, proposal_id)
    assert proposal.status == "approved"
    assert (proposal.proposed_by_id, proposal.decided_by_id) == (maker.id, checker.id)
    assert db.session.scalar(select(Household.code).where(Household.id == household_id)) == (
        "LX-001"
    )
