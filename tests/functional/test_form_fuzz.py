"""Every buyer-facing HTML form, driven by Hypothesis with input nobody means to send.

The fields of each form get hostile Unicode (NUL and other control characters, RTL
overrides, zero-width and combining marks, emoji, very long text), raw bytes that are
not UTF-8 (a lone surrogate cannot be sent as UTF-8; its encoded form ``ED A0 80`` can),
quantities that are huge, negative, fractional, exponents or other scripts' digits, and
fields missing or sent twice. For every example:

- the answer is never a 5xx;
- a refused submission writes nothing: the row count of every table is what it was
  (login may count a staff member's failed attempt: that is the lock-out working);
- an accepted one is coherent: the cart holds exactly what was asked for, an order
  takes exactly its quantity from stock, a new account is logged in;
- a refusal says why: the form again with an error, a flashed error after a redirect,
  or an error page — never a blank.

Examples share the test's database (a fresh one per test); each measures before and
after itself, so what earlier examples wrote does not matter. ``FORM_FUZZ_EXAMPLES``
runs more examples (``FORM_FUZZ_EXAMPLES=500 pytest tests/functional/test_form_fuzz*.py``).
The village team's forms and CSVs are in ``test_form_fuzz_console.py``, the admins',
the CSV exports, oversized bodies and the list of every POST route in
``test_form_fuzz_admin.py``; the strategies and checks in ``form_fuzz.py``.
"""

import re
import time

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from sqlalchemy import select

from shop.auth.models import User
from shop.cart.models import CartItem
from shop.catalog.models import Product
from shop.extensions import db
from shop.orders.models import Order, OrderLine
from shop.orders.services import MAX_QUANTITY_PER_LINE
from tests.builders import buyer, make_order, make_product, make_user, totp_code
from tests.conftest import STAFF_PASSWORD
from tests.functional.form_fuzz import (
    FUZZ,
    FUZZ_SLOW,
    assert_not_5xx,
    assert_refused_cleanly,
    changed_tables,
    first,
    form,
    fresh_client,
    hostile_text,
    numbers,
    phones,
    post_form,
    published,
    row_counts,
    typed_whole_number,
)

# --- the cart --------------------------------------------------------------------------


def cart_quantity(user_id: int, product_id: int) -> int:
    db.session.expire_all()
    line = db.session.scalar(
        select(CartItem).where(CartItem.user_id == user_id, CartItem.product_id == product_id)
    )
    quantity = line.quantity if line else 0
    db.session.rollback()
    return quantity


def login_buyer(client, username="buyer-f", password="buyer-pass-1"):
    user = make_user(username=username, password=password)
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302
    return user


PRODUCT_IDS = st.sampled_from(["wine", "wine", "wine", "draft", "missing"])
QUANTITIES = st.integers(1, 20).map(str)
# What a spoiled quantity or id is: numbers people do not mean, or any hostile text.
STRANGE = st.one_of(numbers, hostile_text)


def product_id_text(choice, wine, draft) -> str:
    return {"wine": str(wine.id), "draft": str(draft.id), "missing": "99999"}.get(choice, choice)


@pytest.fixture
def wine(app):
    return published(price_fen=15800)


@pytest.fixture
def draft(app):
    return make_product(status="draft")


@pytest.fixture
def cart_buyer(client):
    return login_buyer(client)


@FUZZ
@given(data=st.data())
def test_cart_add_and_update_fuzzed(client, cart_buyer, wine, draft, data):
    url = data.draw(st.sampled_from(["/cart/add", "/cart/update"]), label="url")
    pid = data.draw(PRODUCT_IDS, label="product_id")
    pairs = data.draw(
        form(
            {"product_id": st.just(product_id_text(pid, wine, draft)), "quantity": QUANTITIES},
            hostile=STRANGE,
        ),
        label="form",
    )
    if data.draw(st.booleans(), label="buy_now"):
        pairs.append(("buy_now", "1"))
    had = cart_quantity(cart_buyer.id, wine.id)
    before = row_counts()
    response = post_form(client, url, pairs)
    assert_not_5xx(response)
    asked = typed_whole_number(first(pairs, "product_id"))
    raw_quantity = first(pairs, "quantity")
    if raw_quantity is None and url == "/cart/add":
        raw_quantity = "1"  # the add button's default
    quantity = typed_whole_number(raw_quantity)
    now = cart_quantity(cart_buyer.id, wine.id)
    if url == "/cart/add":
        ok = asked == wine.id and quantity is not None and 1 <= quantity <= 999 - had
        expected = had + (quantity or 0)
    else:
        ok = asked == wine.id and quantity is not None and 1 <= quantity <= 999
        expected = quantity
    if ok:
        event("accepted")
        assert now == expected, (pairs, had, now)
    else:
        assert now == had, f"refused {pairs} but the cart line went {had} → {now}"
        assert_refused_cleanly(client, response, before)


@FUZZ
@given(pairs=form({"product_id": PRODUCT_IDS}, hostile=STRANGE))
def test_cart_remove_fuzzed(client, cart_buyer, wine, draft, pairs):
    pairs = [(k, product_id_text(v, wine, draft)) for k, v in pairs]
    client.post("/cart/update", data={"product_id": wine.id, "quantity": "2"})
    response = post_form(client, "/cart/remove", pairs)
    assert response.status_code == 302
    removed = typed_whole_number(first(pairs, "product_id")) == wine.id
    assert cart_quantity(cart_buyer.id, wine.id) == (0 if removed else 2), pairs


@FUZZ
@given(
    pairs=form({"product_id": st.just("wine"), "quantity": QUANTITIES}, hostile=STRANGE),
    url=st.sampled_from(["/cart/add", "/cart/update"]),
)
def test_anonymous_cart_fuzzed(app, wine, pairs, url):
    """The anonymous cart lives in the session cookie: whatever is sent, the cart page
    afterwards still renders and holds only what the rule allows."""
    pairs = [(k, str(wine.id) if v == "wine" else v) for k, v in pairs]
    client = fresh_client(app)
    before = row_counts()
    response = post_form(client, url, pairs)
    assert_not_5xx(response)
    raw = first(pairs, "quantity")
    quantity = typed_whole_number("1" if raw is None and url == "/cart/add" else raw)
    ok = typed_whole_number(first(pairs, "product_id")) == wine.id and quantity is not None
    ok = ok and 1 <= quantity <= MAX_QUANTITY_PER_LINE
    if not ok:
        assert_refused_cleanly(client, response, before)
    page = client.get("/cart").get_data(as_text=True)
    if ok:
        event("accepted")
        assert f'value="{quantity}"' in page, pairs
    else:
        assert "购物车是空的" in page, pairs
    assert changed_tables(before, row_counts()) == {}  # an anonymous cart writes no row


# --- checkout --------------------------------------------------------------------------

GOOD_BUYER = {
    "name": st.sampled_from(["王小明", "李四", "Zhang San", "欧阳娜娜", "王 小明 "]),
    "phone": st.one_of(phones, phones.map(lambda p: f"+86 {p[:3]}-{p[3:7]}-{p[7:]}")),
    "address": st.sampled_from(["陕西省西安市雁塔区科技路1号", "陕西省汉中市\r\n城固县8号"]),
    "board_display": st.sampled_from(["masked", "nickname", "anonymous"]),
    "nickname": st.sampled_from(["", "小明", "🍓爱心"]),
    "organization": st.sampled_from(["", "爱心企业", "=HYPERLINK(1)"]),
}
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@FUZZ
@given(pairs=form(GOOD_BUYER), units=st.integers(1, 5))
@example(
    pairs=[
        ("name", "王小明"),
        ("phone", "13912345678"),
        ("address", "陕西省西安市雁塔区科技路1号"),
        ("board_display", "nickname"),
        ("nickname", "小明"),
    ],
    units=3,
)
@example(
    pairs=[("name", "王\x00小明"), ("phone", "13912345679"), ("address", "陕西省西安市某路1号")],
    units=1,
)
def test_checkout_fuzzed(app, wine, pairs, units):
    client = fresh_client(app)
    assert (
        client.post("/cart/add", data={"product_id": wine.id, "quantity": units}).status_code == 302
    )
    stock_before = db.session.get(Product, wine.id).stock
    before = row_counts()
    response = post_form(client, "/checkout", pairs)
    assert_not_5xx(response)
    after = row_counts()
    db.session.expire_all()
    stock_after = db.session.get(Product, wine.id).stock
    if after["shop_order"] > before["shop_order"]:
        event("accepted")
        assert response.status_code == 302
        assert (after["shop_order"], after["order_line"]) == (
            before["shop_order"] + 1,
            before["order_line"] + 1,
        )
        order = db.session.scalar(select(Order).order_by(Order.id.desc()))
        line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
        assert (line.product_id, line.quantity) == (wine.id, units)
        assert order.total_fen == 15800 * units
        assert stock_after == stock_before - units
        for text in (order.buyer_name, order.buyer_phone, order.shipping_address):
            assert not CONTROL.search(text) and "\ufffd" not in text, text
        assert "购物车是空的" in client.get("/cart").get_data(as_text=True)
    else:
        assert stock_after == stock_before, pairs
        assert_refused_cleanly(client, response, before)
        assert "购物车是空的" not in client.get("/cart").get_data(as_text=True)
    db.session.rollback()


# --- logging in, registering, passwords ------------------------------------------------


@pytest.fixture
def login_buyer_account(app):
    return make_user(username="buyer-f", password="buyer-pass-1")


USERNAMES = st.sampled_from(["buyer-f", "staff1", " buyer-f ", "nobody", "BUYER-F"])
PASSWORDS = st.sampled_from(["buyer-pass-1", STAFF_PASSWORD, "wrong-password", "buyer-pass-1 "])


@FUZZ
@given(pairs=form({"username": USERNAMES, "password": PASSWORDS}))
@example(pairs=[("username", "nobody\x00"), ("password", "x")])
@example(pairs=[("username", "buyer-f"), ("password", "buyer-pass-1")])
def test_login_fuzzed(app, staff_user, login_buyer_account, pairs):
    client = fresh_client(app)
    before = row_counts()
    response = post_form(client, "/login", pairs)
    assert_not_5xx(response)
    username = (first(pairs, "username") or "").strip()
    password = first(pairs, "password")
    right = {"buyer-f": "buyer-pass-1", "staff1": STAFF_PASSWORD}
    if response.status_code == 302:
        event("accepted")
        assert right.get(username) == password, pairs
        target = response.headers["Location"]
        assert target.endswith("/login/code") == (username == "staff1")
    else:
        # A staff member's failed password is counted and audited (the lock-out).
        assert_refused_cleanly(client, response, before, allowed=("audit_log",))
        with client.session_transaction() as session:
            assert "_user_id" not in session and "second_step" not in session


@FUZZ_SLOW
@given(
    pairs=form(
        {"code": st.sampled_from(["right", "000000", "12345", "1234567", "abcdef-ghijk"])},
        hostile=st.one_of(hostile_text, numbers),
    )
)
def test_login_code_fuzzed(app, staff_user, pairs):
    app.config["LOGIN_LOCK_AFTER"] = 10**6  # keep every example reaching the code page
    client = fresh_client(app)
    if not hasattr(staff_user, "step_one"):  # the password step, once: its cookie is reused
        answer = client.post("/login", data={"username": "staff1", "password": STAFF_PASSWORD})
        assert answer.headers["Location"].endswith("/login/code")
        with client.session_transaction() as session:
            staff_user.step_one = dict(session["second_step"])
    with client.session_transaction() as session:
        session["second_step"] = {**staff_user.step_one, "at": time.time()}
    if any(v == "right" for _k, v in pairs):
        # Each example is a later login: forget the steps used (codes are single-use,
        # and more examples than two a 30-second step would run out of them).
        db.session.get(User, staff_user.id).totp_last_step = 0
        db.session.commit()
        code = totp_code("staff1")
        pairs = [(k, code if v == "right" else v) for k, v in pairs]
    before = row_counts()
    response = post_form(client, "/login/code", pairs)
    assert_not_5xx(response)
    if response.status_code == 302 and "/console" in response.headers["Location"]:
        event("accepted")
        assert re.fullmatch(r"\s*[0-9]{6}\s*", first(pairs, "code") or ""), pairs
    else:
        # A wrong code is counted and audited; nothing else is written.
        assert_refused_cleanly(client, response, before, allowed=("audit_log",))
        with client.session_transaction() as session:
            assert "_user_id" not in session


@FUZZ
@given(
    pairs=form(
        {
            "username": st.from_regex(r"[a-z][a-z0-9_.@-]{2,12}", fullmatch=True),
            "password": st.sampled_from(["long-enough-1", "short", "口令口令口令口令"]),
            "confirm": st.sampled_from(["long-enough-1", "short", "口令口令口令口令"]),
        }
    )
)
@example(
    pairs=[("username", "newbie\n"), ("password", "long-enough-1"), ("confirm", "long-enough-1")]
)
def test_register_fuzzed(app, pairs):
    client = fresh_client(app)
    before = row_counts()
    response = post_form(client, "/register", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["user"] > before["user"]:
        event("accepted")
        assert after["user"] == before["user"] + 1
        assert response.status_code == 302
        db.session.expire_all()
        user = db.session.scalar(select(User).order_by(User.id.desc()))
        assert re.fullmatch(r"[A-Za-z0-9_.@-]{3,40}", user.username), user.username
        assert user.role == "buyer"
        assert first(pairs, "password") == first(pairs, "confirm")
        assert len(first(pairs, "password")) >= 8
        with client.session_transaction() as session:
            assert session.get("_user_id") == str(user.get_id())
        db.session.rollback()
    else:
        assert_refused_cleanly(client, response, before)


@pytest.fixture
def password_owner(client):
    """A logged-in buyer, and the password they have now (accepted examples change it)."""
    return {"user": login_buyer(client, "buyer-pw", "first-password"), "password": "first-password"}


@FUZZ_SLOW
@given(
    pairs=form(
        {
            "current": st.sampled_from(["CURRENT", "wrong-password"]),
            "password": st.sampled_from(["new-password-1", "short", "新的口令新的口令"]),
            "confirm": st.sampled_from(["new-password-1", "short", "新的口令新的口令"]),
        }
    )
)
def test_password_change_fuzzed(client, pairs, password_owner):
    fuzz = password_owner
    pairs = [(k, fuzz["password"] if v == "CURRENT" else v) for k, v in pairs]
    db.session.expire_all()
    hash_before = db.session.get(User, fuzz["user"].id).password_hash
    before = row_counts()
    response = post_form(client, "/account/password", pairs)
    assert_not_5xx(response)
    db.session.expire_all()
    hash_after = db.session.get(User, fuzz["user"].id).password_hash
    if response.status_code == 302:
        event("accepted")
        assert first(pairs, "current") == fuzz["password"], pairs
        assert first(pairs, "password") == first(pairs, "confirm")
        assert hash_after != hash_before
        fuzz["password"] = first(pairs, "password")
        assert db.session.get(User, fuzz["user"].id).check_password(fuzz["password"])
    else:
        assert response.status_code == 422
        assert hash_after == hash_before
        assert_refused_cleanly(client, response, before)
    db.session.rollback()


@FUZZ_SLOW
@given(pairs=form({"code": st.sampled_from(["000000", "123456"])}))
def test_two_factor_enrolment_fuzzed(client, cart_buyer, pairs):
    """A buyer's enrolment with a guessed code: refused with a message, nothing stored."""
    before = row_counts()
    response = post_form(client, "/account/two-factor", pairs)
    assert_not_5xx(response)
    db.session.expire_all()
    if db.session.get(User, cart_buyer.id).totp_enabled_at is None:
        assert_refused_cleanly(client, response, before)
    db.session.rollback()


@pytest.fixture
def placed_order(wine):
    return make_order([(wine, 1)], buyer(phone="13912345678"))


@FUZZ
@given(
    pairs=form(
        {
            "order_no": st.sampled_from(["ORDER", "ORDER", "LX000"]),
            "phone": st.sampled_from(["13912345678", "139 1234 5678", "13800000000"]),
        }
    )
)
def test_order_lookup_fuzzed(app, placed_order, pairs):
    order = placed_order
    pairs = [(k, order.order_no if v == "ORDER" else v) for k, v in pairs]
    client = fresh_client(app)
    before = row_counts()
    response = post_form(client, "/orders/lookup", pairs)
    assert_not_5xx(response)
    if response.status_code == 302:
        event("accepted")
        assert response.headers["Location"].endswith(f"/orders/{order.token}")
        assert (first(pairs, "order_no") or "").strip() == order.order_no
    else:
        assert_refused_cleanly(client, response, before)


# --- invoices and claiming a guest order ------------------------------------------------


@pytest.fixture
def paid_orders(wine):
    """A fresh paid order for each example that asks (an order takes one invoice)."""
    from shop.orders.services import apply_payment

    def make():
        order = make_order([(wine, 1)], buyer(phone=f"139{next(_phones):08d}"))
        apply_payment(order.order_no, f"T{order.order_no}", order.total_fen, paid=True)
        return order

    return make


_phones = iter(range(10**6))


@FUZZ
@given(
    pairs=form(
        {
            "kind": (st.sampled_from(["personal", "company"]), st.just("club")),
            "title": (st.sampled_from(["王小明", "汉中某爱心企业有限公司"]), st.just("王")),
            "tax_id": (
                st.sampled_from(["", "91610722MA6YXXXX0X", "91350100M000100Y43"]),
                st.just("123"),
            ),
            "email": (st.sampled_from(["a@example.com", "王@例子.中国"]), st.just("not-an-email")),
        }
    )
)
@example(pairs=[("kind", "personal"), ("title", "王小明"), ("email", "a@example.com\x00")])
def test_invoice_request_fuzzed(app, paid_orders, pairs):
    order = paid_orders()
    client = fresh_client(app)
    before = row_counts()
    response = post_form(client, f"/orders/{order.token}/invoice", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["invoice_request"] > before["invoice_request"]:
        event("accepted")
        assert changed_tables(before, after) == {
            "invoice_request": (before["invoice_request"], before["invoice_request"] + 1)
        }
    else:
        assert_refused_cleanly(client, response, before)


@FUZZ
@given(pairs=form({"order": st.sampled_from(["TOKEN", "LINK", "LINK/", "nothing"])}))
@example(pairs=[("order", "/orders/\x00")])
def test_claim_order_fuzzed(client, cart_buyer, paid_orders, pairs):
    order = paid_orders()
    link = f"http://127.0.0.1:5000/orders/{order.token}"
    pairs = [(k, {"TOKEN": order.token, "LINK": link, "LINK/": link + "/"}.get(v, v))
             for k, v in pairs]  # fmt: skip
    before = row_counts()
    response = post_form(client, "/account/orders/claim", pairs)
    assert_not_5xx(response)
    db.session.expire_all()
    owner = db.session.get(Order, order.id).user_id
    db.session.rollback()
    if owner is not None:
        event("accepted")
        assert owner == cart_buyer.id
    else:
        assert_refused_cleanly(client, response, before)


@FUZZ
@given(pairs=form({"name": (st.sampled_from(["记账脚本", "my-app"]), st.just("名" * 41))}))
def test_api_token_name_fuzzed(client, cart_buyer, pairs):
    """A buyer's API token: made with its name, or refused with a message and not made."""
    before = row_counts()
    response = post_form(client, "/account/tokens", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["api_token"] > before["api_token"]:
        event("accepted")
        assert after["api_token"] == before["api_token"] + 1
    else:
        assert_refused_cleanly(client, response, before)


@FUZZ
@given(pairs=form(GOOD_BUYER))
@example(pairs=[("name", "王\x00小明"), ("phone", "13912345678"), ("address", "陕西某路1号")])
# An unknown display choice was refused without a word: the page showed no error.
@example(pairs=[("name", "王小明"), ("phone", "13912345678"), ("address", "陕西某路1号"),
                ("board_display", "x")])  # fmt: skip
def test_saved_buyer_details_fuzzed(client, cart_buyer, pairs):
    """The details a buyer saves for the next checkout: saved as checked, or refused with
    a message and what was saved before kept."""
    from shop.account import profile  # a feature of its own, read only by this test

    saved = profile.load(cart_buyer.id)
    before = row_counts()
    response = post_form(client, "/account/profile", pairs)
    assert_not_5xx(response)
    db.session.expire_all()
    if response.status_code == 302:
        event("accepted")
        now = profile.load(cart_buyer.id)
        for text in (now.name, now.phone, now.address, now.nickname, now.organization):
            assert not CONTROL.search(text or ""), text
    else:
        assert profile.load(cart_buyer.id) == saved
        assert_refused_cleanly(client, response, before)
    db.session.rollback()
