"""The admins' forms, driven by Hypothesis: households (typed and imported from CSV),
merges, benefit rules and a second admin's decisions — and, over everything the
fuzzers typed, the CSV files the shop hands out; oversized and odd bodies; and the
list of every POST route, so a new form cannot go unfuzzed.

The same properties as ``test_form_fuzz.py`` (see :mod:`tests.functional.form_fuzz`).
Every household change waits as one proposal; a second admin's approval applies it
or changes nothing.
"""

import csv
import io
import re
from decimal import Decimal

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from sqlalchemy import select

from shop.approvals.models import ChangeProposal
from shop.catalog.models import Product
from shop.extensions import db
from shop.households.models import Enterprise, Household
from shop.households.services import id_check_char
from shop.orders.models import Order
from shop.orders.services import apply_payment
from tests.builders import buyer as make_buyer
from tests.builders import make_household, make_order, make_product, make_user, make_village
from tests.conftest import login
from tests.functional.form_fuzz import (
    FUZZ,
    FUZZ_SLOW,
    assert_not_5xx,
    assert_refused_cleanly,
    first,
    form,
    post_form,
    row_counts,
)
from tests.functional.test_form_fuzz_console import (
    PRICES,
    csv_file,
    upload,
)


@pytest.fixture
def register(app):
    """A village of four households, and an enterprise that pays them."""
    enterprise = Enterprise(name="双井树莓果酒厂（扶贫企业）")
    db.session.add(enterprise)
    db.session.commit()
    village = make_village(name="双井村", code="SJ")
    for n, land in enumerate([Decimal("2.5"), Decimal("0"), Decimal("4"), Decimal("1")], 1):
        make_household(village, code=f"SJ-{n:03d}", land_mu=land, members=n)
    return {"payer": f"enterprise:{enterprise.id}", "village": village}


@pytest.fixture
def wine(app):
    return make_product(name="树莓果酒", slug="raspberry-wine", price_fen=15800, stock=100_000)


# --- households (admin; every change waits for a second admin) -------------------------


def fake_id(n: int) -> str:
    body = f"610722198001{n % 28 + 1:02d}{n % 1000:03d}"
    return body + id_check_char(body)


@pytest.fixture
def checker(app):
    """A second admin, logged in on their own browser, who approves proposals."""
    make_user(username="checker", password="checker-password-1", role="admin")
    client = app.test_client()
    assert login(client, "checker", "checker-password-1").status_code == 302
    return client


def approve_latest(checker) -> tuple:
    """The second admin approves the newest proposal; returns (response, row counts
    before). Approval applies the change, or marks it failed and changes nothing."""
    proposal = db.session.scalar(select(ChangeProposal).order_by(ChangeProposal.id.desc()))
    db.session.rollback()
    before = row_counts()
    response = checker.post(f"/admin/proposals/{proposal.id}/approve")
    assert_not_5xx(response)
    assert_not_5xx(checker.get(f"/admin/proposals/{proposal.id}"))
    return response, before


_ids = iter(range(1, 10**6))
HOUSEHOLD_FIELDS = {
    "code": (st.sampled_from(["", "SJ-100"]), st.sampled_from(["sj 1", "SJ-" + "9" * 20])),
    "head_name": st.sampled_from(["张三明", "欧阳娜娜", " 李四 "]),
    "id_number": (
        st.builds(lambda: fake_id(next(_ids))),
        st.sampled_from(["6107221980", "X" * 18]),
    ),
    "village_id": (st.just("VILLAGE"), st.sampled_from(["0", "999"])),
    "group_name": st.sampled_from(["", "一组"]),
    "members": (st.sampled_from(["1", "3", "12"]), st.sampled_from(["0", "-3", "2.5"])),
    "bank_name": st.sampled_from(["", "城固农商银行"]),
    "bank_card": (st.sampled_from(["", "6217 0000 1234 5678"]), st.just("1234")),
    "land_mu": (st.sampled_from(["0", "2.5", "１０"]), st.sampled_from(["-1", "1e9"])),
    "employed": st.sampled_from(["y", ""]),
    "active": st.sampled_from(["y", ""]),
}


@FUZZ
@given(pairs=form(HOUSEHOLD_FIELDS))
@example(pairs=[("head_name", "张\x00三明"), ("id_number", fake_id(999)), ("village_id", "VILLAGE"),
                ("members", "3")])  # fmt: skip
def test_new_household_fuzzed(admin_client, checker, register, pairs):
    client = admin_client
    village = register["village"]
    pairs = [(k, str(village.id) if v == "VILLAGE" else v) for k, v in pairs]
    before = row_counts()
    response = post_form(client, "/admin/households/new", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["change_proposal"] == before["change_proposal"]:
        assert response.status_code == 422
        assert_refused_cleanly(client, response, before)
        return
    event("accepted")
    assert after["household"] == before["household"]  # not before a second admin says so
    response, before = approve_latest(checker)
    after = row_counts()
    assert after["household"] - before["household"] in (0, 1)
    if after["household"] > before["household"]:
        household = db.session.scalar(select(Household).order_by(Household.id.desc()))
        assert household.head_name == first(pairs, "head_name").strip()
        assert household.village_id == village.id
        db.session.rollback()


HOUSEHOLD_STATE = ("code", "head_name", "id_number", "members", "village_id", "group_name",
                   "bank_name", "bank_card", "land_mu", "employed", "active")  # fmt: skip


def household_state(household_id):
    db.session.expire_all()
    household = db.session.get(Household, household_id)
    state = tuple(getattr(household, name) for name in HOUSEHOLD_STATE)
    db.session.rollback()
    return state


@FUZZ
@given(pairs=form({**HOUSEHOLD_FIELDS, "code": st.just("ignored")}))
# "members" left out: the household's own number reached the form's length check (a 500).
@example(pairs=[("head_name", "张三明"), ("id_number", fake_id(777)), ("village_id", "VILLAGE")])
def test_edit_household_fuzzed(admin_client, checker, register, pairs):
    """An edit waits as a proposal; once approved the household is what was typed
    (its code never changes); a refused edit, or a failed approval, changes nothing."""
    client = admin_client
    household = db.session.scalar(select(Household).where(Household.code == "SJ-002"))
    village = register["village"]
    pairs = [(k, str(village.id) if v == "VILLAGE" else v) for k, v in pairs]
    state = household_state(household.id)
    before = row_counts()
    response = post_form(client, f"/admin/households/{household.id}/edit", pairs)
    assert_not_5xx(response)
    after = row_counts()
    assert household_state(household.id) == state  # nothing before the second admin
    if after["change_proposal"] == before["change_proposal"]:
        assert response.status_code == 422
        assert_refused_cleanly(client, response, before)
        return
    event("accepted")
    approve_latest(checker)
    now = household_state(household.id)
    assert now[0] == "SJ-002"
    if now != state:
        assert now[1] == first(pairs, "head_name").strip()


HOUSEHOLD_HEADER = ["户编码", "户主姓名", "身份证号", "家庭人口", "村", "村民小组", "流转土地(亩)"]
HOUSEHOLD_CELLS = [
    (st.just(""), st.sampled_from(["sj 1", "SJ-001"])),
    (st.sampled_from(["张三明", "李四"]), st.just("")),
    (st.builds(lambda: fake_id(next(_ids))), st.sampled_from(["6.10722E+17", "61072219800101001"])),
    (st.sampled_from(["1", "4"]), st.sampled_from(["0", "-1", "三"])),
    (st.sampled_from(["双井村", "SJ", "sj"]), st.just("不存在村")),
    (st.sampled_from(["", "一组"]), st.just("组" * 50)),
    (st.sampled_from(["0", "2.5"]), st.sampled_from(["-2", "1e3"])),
]


@FUZZ
@given(
    content=csv_file(HOUSEHOLD_HEADER, HOUSEHOLD_CELLS),
    filename=st.sampled_from(["h.csv", "农户.CSV", "h.xlsx"]),
)
def test_household_import_fuzzed(admin_client, checker, register, content, filename):
    client = admin_client
    before = row_counts()
    response = upload(client, "/admin/households/import", {}, content, filename)
    assert_not_5xx(response)
    after = row_counts()
    if after["change_proposal"] == before["change_proposal"]:
        assert response.status_code == 422
        assert_refused_cleanly(client, response, before)
        return
    event("accepted")
    assert after["household"] == before["household"]
    response, before = approve_latest(checker)
    after = row_counts()
    rows = max(0, content.count(b"\n") or content.count(b"\r"))
    assert 0 <= after["household"] - before["household"] <= rows


@FUZZ
@given(pairs=form({"keep_code": (st.sampled_from(["SJ-002", "sj-002"]), st.just("SJ-001"))}))
def test_household_merge_fuzzed(admin_client, register, pairs):
    household = db.session.scalar(select(Household).where(Household.code == "SJ-001"))
    before = row_counts()
    response = post_form(admin_client, f"/admin/households/{household.id}/merge", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["change_proposal"] > before["change_proposal"]:
        event("accepted")
        assert after["household"] == before["household"]
    else:
        assert_refused_cleanly(admin_client, response, before)


@FUZZ
@given(
    pairs=form(
        {
            "product_id": (st.sampled_from(["0", "WINE"]), st.sampled_from(["999", "-1"])),
            "share_kind": (st.sampled_from(["fixed", "percent"]), st.just("all")),
            "share_amount": (st.sampled_from(["20", "12.5", "0"]), PRICES[1]),
            "split": (st.sampled_from(["weighted", "matched"]), st.just("random")),
            "weight_basis": (st.sampled_from(["equal", "land", "members"]), st.just("x")),
            "households": (st.sampled_from(["all", "land", "coop"]), st.just("none")),
            "note": st.sampled_from(["", "2026年规则"]),
        }
    )
)
def test_benefit_rule_fuzzed(admin_client, register, wine, pairs):
    client = admin_client
    pairs = [(k, str(wine.id) if v == "WINE" else v) for k, v in pairs]
    before = row_counts()
    response = post_form(client, "/admin/rules/new", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["change_proposal"] > before["change_proposal"]:
        event("accepted")
        assert after["ledger_benefit_rule"] == before["ledger_benefit_rule"]
    else:
        assert response.status_code == 422
        assert_refused_cleanly(client, response, before)


@FUZZ
@given(pairs=form({"reason": st.sampled_from(["证件号码填错了", "重复登记"])}))
@example(pairs=[("reason", "重复\x00登记")])  # NUL: a 500 on PostgreSQL
def test_reject_reason_fuzzed(admin_client, checker, register, pairs):
    """The second admin's reason for refusing a proposal."""
    proposal = db.session.scalar(select(ChangeProposal).where(ChangeProposal.status == "pending"))
    if proposal is None:
        data = {"head_name": "王五", "id_number": fake_id(next(_ids)),
                "village_id": register["village"].id, "members": "2"}  # fmt: skip
        assert admin_client.post("/admin/households/new", data=data).status_code == 302
        proposal = db.session.scalar(select(ChangeProposal).order_by(ChangeProposal.id.desc()))
    db.session.rollback()
    before = row_counts()
    response = post_form(checker, f"/admin/proposals/{proposal.id}/reject", pairs)
    assert_not_5xx(response)
    db.session.expire_all()
    status = db.session.get(ChangeProposal, proposal.id).status
    db.session.rollback()
    if status == "pending":
        assert_refused_cleanly(checker, response, before)
    else:
        event("accepted")
        assert status == "rejected"
        assert row_counts()["household"] == before["household"]


# --- shipping an order (staff) ---------------------------------------------------------


@FUZZ
@given(
    pairs=form(
        {
            "carrier": (st.sampled_from(["顺丰速运", "EMS", "中通快递"]), st.just("快" * 41)),
            "tracking_no": (
                st.sampled_from(["SF1234567890", "9876543210123"]),
                st.sampled_from(["12", "SF 123 456", "单号1234"]),
            ),
        }
    )
)
@example(pairs=[("carrier", "顺丰\x00速运"), ("tracking_no", "SF1234567890")])
def test_ship_order_fuzzed(staff_client, wine, pairs):
    """Each example ships a new paid order, or is refused and the order stays paid."""
    order = make_order([(wine, 1)], make_buyer(phone=f"139{next(_ids):08d}"))
    apply_payment(order.order_no, f"T{order.order_no}", order.total_fen, paid=True)
    before = row_counts()
    response = post_form(staff_client, f"/console/orders/{order.order_no}/ship", pairs)
    assert_not_5xx(response)
    db.session.expire_all()
    shipped = db.session.get(Order, order.id)
    if shipped.status == "shipped":
        event("accepted")
        assert shipped.carrier == first(pairs, "carrier").strip()
        assert "\x00" not in shipped.carrier + shipped.tracking_no
    else:
        assert shipped.status == "paid"
        db.session.rollback()
        assert_refused_cleanly(staff_client, response, before)
    db.session.rollback()


# --- what the fuzzers typed, in every CSV the shop hands out ---------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
formula_text = st.tuples(st.sampled_from(FORMULA_STARTS), st.sampled_from(
    ['cmd|"/C calc"!A0', "HYPERLINK(\"http://evil.example\",\"点我\")", "1+1", "SUM(A1:A9)", "3"]
)).map("".join)  # fmt: skip


def csv_exports(app) -> list[str]:
    """Every CSV the URL map serves, and the report's CSV form."""
    urls = [rule.rule for rule in app.url_map.iter_rules() if rule.rule.endswith(".csv")]
    return [*sorted(urls), "/console/offline/reports?format=csv&days=3660"]


@FUZZ_SLOW
@given(product=formula_text, buyer=formula_text, organization=formula_text)
def test_every_csv_export_keeps_typed_formulas_as_text(
    app, admin_client, register, product, buyer, organization
):
    """Text put in through the forms comes out of every CSV as text: a cell that starts
    like a formula is either a number the shop computed or starts with an apostrophe."""
    client = admin_client
    new = post_form(client, "/console/products/new",
                    [("name", product), ("price", "158"), ("unit", "瓶"), ("stock", "50"),
                     ("beneficiary", "20")])  # fmt: skip
    assert new.status_code == 302, new.get_data(as_text=True)
    product_id = int(new.headers["Location"].rsplit("/", 1)[1])
    db.session.expire_all()
    db.session.get(Product, product_id).status = "published"
    db.session.commit()
    sale = post_form(client, "/console/offline/",
                     [("token", f"t{next(_ids)}"), ("product_id", str(product_id)),
                      ("quantity", "1"), ("payment_method", "cash"), ("board_display", "masked"),
                      ("buyer_name", "王" + buyer), ("organization", organization)])  # fmt: skip
    assert_not_5xx(sale)
    order = make_order([(db.session.get(Product, product_id), 1)],
                       make_buyer(board_display="nickname", nickname=buyer.strip()[:20] or "x",
                                  organization=organization,
                                  phone=f"139{next(_ids):08d}"))  # fmt: skip
    apply_payment(order.order_no, f"T{order.order_no}", order.total_fen, paid=True)
    for url in csv_exports(app):
        response = client.get(url)
        assert response.status_code == 200, url
        rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"), newline="")))
        for row in rows:
            for cell in row:
                if cell.startswith(FORMULA_STARTS):
                    assert NUMBER.fullmatch(cell), (url, cell)
    db.session.rollback()


# --- bodies too big, and bodies of the wrong kind --------------------------------------


@pytest.fixture
def full_cart(admin_client, wine):
    """Something in the cart, so the checkout reads its form."""
    assert admin_client.post("/cart/add", data={"product_id": wine.id}).status_code == 302
    return admin_client


FORM_ROUTES = ["/checkout", "/login", "/register", "/console/products/new",
               "/console/offline/sales/upload", "/admin/households/import"]  # fmt: skip


def test_a_body_past_max_content_length_is_a_413_page(app, full_cart):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = b"file=" + b"x" * limit
    big = b"a,b\r\n" * (limit // 5 + 1)
    before = row_counts()
    for url in FORM_ROUTES:
        for response in (
            full_cart.post(url, data=body, content_type="application/x-www-form-urlencoded"),
            full_cart.post(url, data={"file": (io.BytesIO(big), "big.csv")},
                           content_type="multipart/form-data"),
        ):  # fmt: skip
            assert response.status_code == 413, url
            assert "上传的内容太大" in response.get_data(as_text=True)
    assert row_counts() == before


ODD_BODIES = [
    ("application/json", b'{"name": "\\u0000", "quantity": 1}'),
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=name\r\n\r\nx"),
    ("multipart/form-data; boundary=x", b"--x\r\nbroken"),
    ("application/x-www-form-urlencoded", b"%%%&&&==&name=%ZZ&" + b"a=" * 2000),
    ("application/x-www-form-urlencoded; charset=gbk", "name=王".encode("gbk")),
    ("text/csv", "日期,商品\r\n".encode("gbk")),
    ("application/x-www-form-urlencoded", b"name=" + b"%E4%B8%AD" * 300_000),  # 900 kB
]


@pytest.mark.parametrize("content_type, body", ODD_BODIES)
def test_a_body_of_the_wrong_kind_is_refused_with_words(full_cart, content_type, body):
    for url in FORM_ROUTES:
        before = row_counts()
        response = full_cart.post(url, data=body, content_type=content_type)
        assert_not_5xx(response)
        assert_refused_cleanly(full_cart, response, before)


@FUZZ
@given(
    pairs=form(
        {
            # Above APPROVAL_THRESHOLD_FEN (¥500): a proposal, so no example calls Alipay.
            "amount": (st.sampled_from(["501", "632", "600.50"]), st.sampled_from(["633", "0"])),
            "reason": st.sampled_from(["", "买家退货", "破损"]),
            "restock": st.sampled_from(["", "y"]),
        }
    )
)
@example(pairs=[("amount", "632"), ("reason", "退\x00货")])  # NUL: a 500 once approved
@example(pairs=[("amount", "100"), ("reason", "退\x00货")])  # below it: a 500 on PostgreSQL
def test_refund_request_fuzzed(admin_client, wine, pairs):
    """A refund above the threshold waits for a second admin: one proposal, or nothing."""
    order = make_order([(wine, 4)], make_buyer(phone=f"139{next(_ids):08d}"))
    apply_payment(order.order_no, f"T{order.order_no}", order.total_fen, paid=True)
    before = row_counts()
    response = post_form(admin_client, f"/console/orders/{order.order_no}/refund", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["change_proposal"] > before["change_proposal"]:
        event("accepted")
        assert after["refund"] == before["refund"]
    else:
        assert_refused_cleanly(admin_client, response, before)


# --- every POST route is fuzzed here, or says why not ----------------------------------

FUZZED = {
    "cart.add": "test_form_fuzz.py::test_cart_add_and_update_fuzzed, test_anonymous_cart_fuzzed",
    "cart.update": "test_form_fuzz.py::test_cart_add_and_update_fuzzed",
    "cart.remove": "test_form_fuzz.py::test_cart_remove_fuzzed",
    "checkout.checkout": "test_form_fuzz.py::test_checkout_fuzzed",
    "auth.login": "test_form_fuzz.py::test_login_fuzzed",
    "auth.login_code": "test_form_fuzz.py::test_login_code_fuzzed",
    "auth.register": "test_form_fuzz.py::test_register_fuzzed",
    "auth.change_password": "test_form_fuzz.py::test_password_change_fuzzed",
    "auth.two_factor_setup": "test_form_fuzz.py::test_two_factor_enrolment_fuzzed",
    "orders.lookup": "test_form_fuzz.py::test_order_lookup_fuzzed",
    "invoices.request_invoice": "test_form_fuzz.py::test_invoice_request_fuzzed",
    "account.claim": "test_form_fuzz.py::test_claim_order_fuzzed",
    "account.api_tokens": "test_form_fuzz.py::test_api_token_name_fuzzed",
    "account.buyer_profile": "test_form_fuzz.py::test_saved_buyer_details_fuzzed",
    "organisations.register": "test_form_fuzz_organisations.py::test_register_organisation_fuzzed",
    "organisations.bulk_order": "test_form_fuzz_organisations.py::test_recipients_csv_fuzzed",
    "console.new_product": "test_form_fuzz_console.py::test_new_product_fuzzed",
    "console.edit_product": "test_form_fuzz_console.py::test_edit_product_fuzzed",
    "console.change_status": "test_form_fuzz_console.py::test_product_status_fuzzed",
    "offline.sales": "test_form_fuzz_console.py::test_counter_sale_fuzzed",
    "offline.upload_sales": "test_form_fuzz_console.py::test_sales_csv_fuzzed",
    "offline.confirm_batch": "test_form_fuzz_console.py::test_sales_csv_fuzzed, income_csv",
    "offline.income_page": "test_form_fuzz_console.py::test_typed_income_fuzzed",
    "offline.upload_income": "test_form_fuzz_console.py::test_income_csv_fuzzed",
    "offline.income_roster": "test_form_fuzz_console.py::test_income_roster_fuzzed",
    "admin.new_household": "test_new_household_fuzzed",
    "admin.edit_household": "test_edit_household_fuzzed",
    "admin.import_households": "test_household_import_fuzzed",
    "admin.merge_household": "test_household_merge_fuzzed",
    "admin.new_rule": "test_benefit_rule_fuzzed",
    "approvals.reject": "test_reject_reason_fuzzed",
    "approvals.approve": "approve_latest, after every accepted household change",
    "console.ship_order": "test_ship_order_fuzzed",
    "console.refund_order": "test_refund_request_fuzzed (above the approval threshold)",
}
NOT_FUZZED = {
    # Not HTML forms: each has its own suite.
    "api.create_order": "JSON API: Schemathesis from its OpenAPI document, test_hostile_input",
    "payments.alipay_notify": "Alipay's signed notification: test_notification_abuse",
    "sandbox.gateway": "the built-in stand-in for Alipay (never mounted in production)",
    "sandbox.pay": "the built-in stand-in for Alipay (never mounted in production)",
    "sandbox.cancel": "the built-in stand-in for Alipay (never mounted in production)",
    "console.upload_photos": "image files: the upload tests (bombs, polyglots, truncations)",
    "invoices.issue": "a PDF file: the invoice tests",
    # Buttons: no input but the CSRF token (test_csrf) and the id in the URL (test_bad_ids).
    "auth.logout": "a button",
    "account.reorder": "a button",
    "account.revoke_api_token": "a button",
    "account.forget_profile": "a button",
    "account.share_impact": "a button",
    "account.unshare_impact": "a button",
    "organisations.join": "a button (the invite code is in the URL: test_organisations)",
    "organisations.new_invite": "a button",
    "buyers.verify_organisation": "a button (the id in the URL: test_bad_ids)",
    "organisations.remove_member": "a button (ids in the URL: test_organisations)",
    "cart.accept_prices": "a button",
    "payments.pay_again": "a button",
    "console.complete_order": "a button",
    "console.photo_cover": "a button",
    "console.photo_delete": "a button",
    "console.photo_move": "a button (direction: 'up', anything else is down)",
    "offline.reverse_sale": "a button",
    "offline.reverse_income": "a button",
    "admin.run_payouts_now": "a button",
    "admin.propose_household_payout": "a button",
    "approvals.propose_sale_reversal": "a button",
    "approvals.propose_income_reversal": "a button",
}


def test_every_post_route_is_fuzzed_or_says_why_not(app):
    """A new POST route fails here until it is fuzzed above or listed with its reason."""
    posts = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    assert not set(FUZZED) & set(NOT_FUZZED)
    assert posts - set(FUZZED) - set(NOT_FUZZED) == set(), "a POST route nobody fuzzes"
    assert set(FUZZED) | set(NOT_FUZZED) <= posts, "listed, but no longer a POST route"
