"""A signed-in buyer's own side: my orders and the households they reached (issue 16).

The impact page must equal the ledger — the sum over the buyer's sales of each
household's credit, less what refunds took back — and must never show another buyer's
orders, whatever the other buyer's order numbers are.
"""

import re

from sqlalchemy import func, select

from ledger import HOUSEHOLD_PREFIX, Account, Entry, Transaction
from shop.benefits.services import set_product_rule
from shop.cart.models import CartItem
from shop.extensions import db
from shop.orders.services import apply_payment
from tests.builders import buyer, make_household, make_order, make_product, make_user, make_village

PASSWORD = "buyer-pass-1"


def signed_in(app, username):
    user = make_user(username=username, password=PASSWORD)
    client = app.test_client()
    assert (
        client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302
    )
    return user, client


def pay(order, trade_no):
    assert apply_payment(order.order_no, trade_no, order.total_fen, paid=True).verdict == "paid"


def shop_with_two_households():
    village = make_village(name="双井村")
    zhang = make_household(village, head_name="张三明", code="SJ-001")
    li = make_household(village, head_name="李四海", code="SJ-002", card="6217000012340002")
    wine = make_product(name="树莓果酒", price_fen=15800, stock=100)
    set_product_rule(wine.id, [zhang, li], "weighted", "equal", share_fen_per_unit=2001)
    return wine


def ledger_total_for(order_trade_nos) -> dict[str, int]:
    """What the ledger credited each household for these trades, refunds subtracted."""
    sales = select(Transaction.id).where(
        Transaction.key.in_([f"sale:{t}" for t in order_trade_nos])
    )
    rows = db.session.execute(
        select(Account.code, func.sum(Entry.amount_fen))
        .join(Entry, Entry.account_id == Account.id)
        .join(Transaction, Transaction.id == Entry.transaction_id)
        .where(Account.code.startswith(HOUSEHOLD_PREFIX))
        .where(Transaction.id.in_(sales) | Transaction.reverses_id.in_(sales))
        .group_by(Account.code)
    )
    return {code[len(HOUSEHOLD_PREFIX) :]: -int(total) for code, total in rows if total}


def test_my_orders_lists_mine_only_with_status_and_tracking(app):
    wine = shop_with_two_households()
    me, client = signed_in(app, "buyer-me")
    other, _other_client = signed_in(app, "buyer-other")
    mine = make_order([(wine, 2)], user_id=me.id)
    pay(mine, "T20261204000001")
    theirs = make_order([(wine, 1)], buyer(name="赵六"), user_id=other.id)
    from shop.orders.services import mark_shipped

    assert mark_shipped(mine.id, "顺丰速运", "SF0001")
    page = client.get("/account/orders").get_data(as_text=True)
    assert mine.order_no in page and "已发货" in page and "SF0001" in page
    assert f"/orders/{mine.token}" in page and f"/trace/{mine.token}" in page
    assert theirs.order_no not in page and theirs.token not in page
    # Another buyer's order number does nothing for me.
    response = client.post(f"/account/orders/{theirs.order_no}/reorder")
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(CartItem)) == 0


def test_my_impact_equals_the_ledger_with_refunds_subtracted(app):
    wine = shop_with_two_households()
    me, client = signed_in(app, "buyer-impact")
    other, _c = signed_in(app, "buyer-else")
    first = make_order([(wine, 3)], user_id=me.id)
    pay(first, "T20261204000011")
    second = make_order([(wine, 1)], buyer(phone="13912340001"), user_id=me.id)
    pay(second, "T20261204000012")
    elsewhere = make_order([(wine, 5)], buyer(name="赵六", phone="13912340002"), user_id=other.id)
    pay(elsewhere, "T20261204000013")
    unpaid = make_order([(wine, 4)], buyer(phone="13912340003"), user_id=me.id)
    assert unpaid.status == "pending_payment"
    # A refund of part of the second order takes its share back.
    from ledger import post_refund

    post_refund(db.session, "refund:TEST-R1", "sale:T20261204000012", 15800)
    db.session.commit()

    expected = ledger_total_for(["T20261204000011", "T20261204000012"])
    assert expected["SJ-001"] + expected["SJ-002"] == 2001 * 3  # the second order fully back
    page = client.get("/account/impact").get_data(as_text=True)
    for code, fen in expected.items():
        assert code in page
        assert f"¥{fen / 100:,.2f}" in page
    assert f"¥{sum(expected.values()) / 100:,.2f}" in page
    assert "张*明" in page and "张三明" not in page  # masked, as on every public page
    assert "/households/SJ-001" in page
    from shop.account.services import my_impact

    impact = my_impact(me.id)
    assert {h.code: h.amount_fen for h in impact.households} == expected
    assert impact.paid_orders == 2 and impact.to_households_fen == sum(expected.values())


def test_reorder_puts_the_lines_back_at_todays_price(app):
    wine = shop_with_two_households()
    honey = make_product(name="土蜂蜜", slug="honey", price_fen=6800, stock=10)
    me, client = signed_in(app, "buyer-again")
    order = make_order([(wine, 2), (honey, 1)], user_id=me.id)
    honey.status = "archived"
    wine.price_fen = 16800
    db.session.commit()
    response = client.post(f"/account/orders/{order.order_no}/reorder")
    assert response.status_code == 302 and response.headers["Location"].endswith("/cart")
    page = client.get("/cart").get_data(as_text=True)
    assert "树莓果酒" in page and "¥336.00" in page
    assert "土蜂蜜" in page  # named in the message: it could not be added
    lines = db.session.scalars(select(CartItem).where(CartItem.user_id == me.id)).all()
    assert [(line.product_id, line.quantity) for line in lines] == [(wine.id, 2)]


def test_account_pages_need_a_login(client, app):
    for url in ("/account/orders", "/account/impact"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_guest_order_is_claimed_by_its_link_and_a_wrong_one_claims_nothing(app):
    wine = shop_with_two_households()
    me, client = signed_in(app, "buyer-claims")
    other, other_client = signed_in(app, "buyer-rival")
    guest = make_order([(wine, 1)])  # placed before the account existed
    pay(guest, "T20261204000021")
    someone_elses = make_order([(wine, 1)], buyer(phone="13912340009"), user_id=other.id)
    for wrong in ("", "not-a-token", someone_elses.token, f"/orders/{someone_elses.token}"):
        client.post("/account/orders/claim", data={"order": wrong})
    assert guest.order_no not in client.get("/account/orders").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(someone_elses), someone_elses.id).user_id == other.id
    # The order page offers it; pasting the whole link works too.
    assert "加入我的订单" in client.get(f"/orders/{guest.token}").get_data(as_text=True)
    response = client.post(
        "/account/orders/claim", data={"order": f"https://shop.example.org/orders/{guest.token}"}
    )
    assert response.status_code == 302
    page = client.get("/account/orders").get_data(as_text=True)
    assert guest.order_no in page and "已加入您的账户" in page
    assert "SJ-001" in client.get("/account/impact").get_data(as_text=True)
    # Now it is mine: the rival cannot take it.
    other_client.post("/account/orders/claim", data={"order": guest.token})
    db.session.expire_all()
    assert db.session.get(type(guest), guest.id).user_id == me.id


def test_a_personal_token_reads_my_orders_and_impact_until_revoked(app):
    wine = shop_with_two_households()
    me, client = signed_in(app, "buyer-api")
    other, other_client = signed_in(app, "buyer-api-2")
    mine = make_order([(wine, 2)], user_id=me.id)
    pay(mine, "T20261204000031")
    theirs = make_order([(wine, 1)], buyer(phone="13912340031"), user_id=other.id)
    page = client.post("/account/tokens", data={"name": "公司报表"}).get_data(as_text=True)
    secret = re.search(r"lx_[A-Za-z0-9_-]{40,}", page).group(0)
    assert "公司报表" in page
    from shop.account.tokens import ApiToken

    stored = db.session.scalar(select(ApiToken))
    assert secret not in (stored.digest, stored.shown_prefix)  # only its hash is kept
    api = app.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    orders = api.get("/api/v1/me/orders", headers=auth).get_json()["orders"]
    assert [o["order_no"] for o in orders] == [mine.order_no]
    assert theirs.order_no not in str(orders)
    impact = api.get("/api/v1/me/impact", headers=auth).get_json()
    assert impact["to_households_fen"] == 2001 * 2 and impact["paid_orders"] == 1
    assert {h["code"] for h in impact["households"]} == {"SJ-001", "SJ-002"}
    for bad in ({}, {"Authorization": "Bearer lx_nope"}, {"Authorization": secret}):
        refused = api.get("/api/v1/me/orders", headers=bad)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"]
    # Another buyer cannot revoke it; its owner can, and then it is dead.
    other_client.post(f"/account/tokens/{stored.id}/revoke")
    assert api.get("/api/v1/me/orders", headers=auth).status_code == 200
    client.post(f"/account/tokens/{stored.id}/revoke")
    assert api.get("/api/v1/me/orders", headers=auth).status_code == 401


CHECKOUT = {
    "name": "王小明", "phone": "138 1234 5678", "address": "陕西省西安市雁塔区科技路1号",
    "board_display": "nickname", "nickname": "秦岭小王", "organization": "某某科技",
    "email": "wang@example.com",
}  # fmt: skip


def test_checkout_details_are_remembered_encrypted_and_editable(app):
    wine = shop_with_two_households()
    _me, client = signed_in(app, "buyer-profile")
    client.post("/cart/add", data={"product_id": str(wine.id), "quantity": "1"})
    assert client.post("/checkout", data=CHECKOUT).status_code == 302
    # The next checkout starts filled in (the phone as the shop normalised it).
    client.post("/cart/add", data={"product_id": str(wine.id), "quantity": "1"})
    form = client.get("/checkout").get_data(as_text=True)
    assert 'value="13812345678"' in form and "科技路1号" in form and 'value="秦岭小王"' in form
    raw = db.session.execute(db.text("SELECT name, phone, address FROM buyer_profile")).one()
    assert not any("王小明" in v or "13812345678" in v or "科技路" in v for v in raw)
    page = client.get("/account/profile").get_data(as_text=True)
    assert "138****5678" in page and "秦岭小王" in page  # masked summary; appears as nickname
    # Edit: appear anonymously; a bad phone is refused on the form and changes nothing.
    refused = client.post("/account/profile", data={**CHECKOUT, "phone": "12345"})
    assert refused.status_code == 200 and "手机" in refused.get_data(as_text=True)
    client.post("/account/profile", data={**CHECKOUT, "board_display": "anonymous"})
    assert "爱心人士" in client.get("/account/profile").get_data(as_text=True)
    # Another buyer starts empty; forgetting removes the row.
    _other, other_client = signed_in(app, "buyer-profile-2")
    other_client.post("/cart/add", data={"product_id": str(wine.id), "quantity": "1"})
    assert "13812345678" not in other_client.get("/checkout").get_data(as_text=True)
    client.post("/account/profile/forget")
    assert db.session.execute(db.text("SELECT count(*) FROM buyer_profile")).scalar() == 0


def test_a_shared_impact_card_shows_the_households_and_no_personal_data(app):
    wine = shop_with_two_households()
    me, client = signed_in(app, "buyer-card")
    client.post("/account/profile", data={**CHECKOUT, "board_display": "nickname"})
    order = make_order([(wine, 1)], user_id=me.id)
    pay(order, "T20261204000041")
    assert "生成公开卡片" in client.get("/account/impact").get_data(as_text=True)
    client.post("/account/impact/share")
    page = client.get("/account/impact").get_data(as_text=True)
    link = re.search(r'href="(/impact/[A-Za-z0-9_-]+)"', page).group(1)
    public = app.test_client().get(link).get_data(as_text=True)
    assert "秦岭小王" in public and "某某科技" in public  # the name chosen for the board
    assert ("SJ-001" in public and "¥20.01" in public) or "¥20.00" in public
    for secret in ("王小明", "13812345678", "科技路", "wang@example.com"):
        assert secret not in public
    client.post("/account/profile", data={**CHECKOUT, "board_display": "anonymous"})
    anonymous = app.test_client().get(link).get_data(as_text=True)
    assert "爱心人士" in anonymous and "某某科技" not in anonymous and "秦岭小王" not in anonymous
    client.post("/account/profile", data={**CHECKOUT, "nickname": "<i>秦岭</i>"})
    escaped = app.test_client().get(link).get_data(as_text=True)
    assert "<i>秦岭</i>" not in escaped and "&lt;i&gt;秦岭&lt;/i&gt;" in escaped
    client.post("/account/impact/unshare")
    assert app.test_client().get(link).status_code == 404
    assert app.test_client().get("/impact/not-a-card").status_code == 404


def test_the_token_is_found_in_every_link_the_shop_gives_a_buyer():
    from shop.account.services import _token_in

    token = "AbC-d_9"
    for pasted in (
        token,
        f" {token} ",
        f"https://shop.example.org/orders/{token}",
        f"https://shop.example.org/orders/{token}/return?out_trade_no=1",
        f"https://shop.example.org/trace/{token}#households",
        f"/orders/{token}/",
    ):
        assert _token_in(pasted) == token, pasted
