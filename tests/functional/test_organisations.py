"""Caring enterprises and units (issue 16): an organisation registered with a valid
unified social credit code, members ordering for it, the love board counting it as one
buyer, its impact page equal to the ledger, and recipients CSVs placed all or nothing,
once."""

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from shop.catalog.models import Product
from shop.extensions import db
from shop.orders.models import Order
from shop.orders.services import BuyerDetails, OutOfStock, RequestedLine, cancel_order, place_order
from shop.organisations import bulk, services
from shop.organisations.models import BulkRecipient, BulkUpload, Organisation
from tests.builders import buyer, in_app_thread, make_order, make_product, make_user
from tests.functional.test_my_account import (
    ledger_total_for,
    pay,
    shop_with_two_households,
    signed_in,
)

CODE = "91350100M000100Y43"  # a valid check character (GB 32100-2015)
OTHER_CODE = "91110108551385082Q"


def register(client, code=CODE, name="连心科技有限公司"):
    return client.post(
        "/organisations/new",
        data={
            "name": name,
            "credit_code": code,
            "contact_name": "赵经理",
            "contact_phone": "13700001111",
            "email": "hr@lianxin.example.org",
        },
    )


def organisation_named(name="连心科技有限公司") -> Organisation:
    db.session.expire_all()
    return db.session.scalar(select(Organisation).where(Organisation.name == name))


def test_an_organisation_needs_a_code_with_the_right_check_character_once(app):
    _me, client = signed_in(app, "org-founder")
    wrong = CODE[:-1] + ("X" if CODE[-1] != "X" else "Y")
    page = register(client, code=wrong).get_data(as_text=True)
    assert "校验位" in page and organisation_named() is None
    response = register(client, code=CODE.lower())  # typed in lower case: the same code
    assert response.status_code == 302
    organisation = organisation_named()
    assert organisation.credit_code == CODE
    assert organisation.contact_phone == "13700001111"
    # Encrypted at rest: the phone is not in the row as stored.
    raw = db.session.execute(db.text("SELECT contact_name, contact_phone FROM organisation")).one()
    assert "13700001111" not in raw.contact_phone and "赵经理" not in raw.contact_name
    _other, rival = signed_in(app, "org-squatter")
    page = register(rival, name="冒名公司").get_data(as_text=True)
    assert "已经登记过" in page and organisation_named("冒名公司") is None


def test_colleagues_join_by_invite_and_outsiders_see_nothing(app):
    _admin, admin = signed_in(app, "org-admin")
    register(admin)
    organisation = organisation_named()
    colleague_user, colleague = signed_in(app, "org-colleague")
    _stranger, stranger = signed_in(app, "org-stranger")
    for url in (f"/organisations/{organisation.id}", f"/organisations/{organisation.id}/impact",
                f"/organisations/{organisation.id}/bulk"):  # fmt: skip
        assert stranger.get(url).status_code == 404
    # The invite is shown to administrators only.
    assert organisation.invite_code in admin.get(f"/organisations/{organisation.id}").get_data(
        as_text=True
    )
    stranger.post("/organisations/join/not-the-invite-code-at-all")
    assert services.membership(_stranger.id, organisation.id) is None
    colleague.post(f"/organisations/join/{organisation.invite_code}")
    assert services.membership(colleague_user.id, organisation.id).role == "member"
    page = colleague.get(f"/organisations/{organisation.id}").get_data(as_text=True)
    assert "org-admin" in page and organisation.invite_code not in page
    # A replaced invite joins nobody.
    old = organisation.invite_code
    admin.post(f"/organisations/{organisation.id}/invite")
    stranger.post(f"/organisations/join/{old}")
    assert services.membership(_stranger.id, organisation.id) is None
    # A member cannot remove anyone; the administrator can.
    colleague.post(f"/organisations/{organisation.id}/members/{_admin.id}/remove")
    assert services.membership(_admin.id, organisation.id) is not None
    admin.post(f"/organisations/{organisation.id}/members/{colleague_user.id}/remove")
    assert services.membership(colleague_user.id, organisation.id) is None
    assert colleague.get(f"/organisations/{organisation.id}").status_code == 404


def _checkout(client, wine, buy_for, offered=True):
    client.post("/cart/add", data={"product_id": wine.id, "quantity": 2})
    assert ("连心科技有限公司" in client.get("/checkout").get_data(as_text=True)) == offered
    return client.post(
        "/checkout",
        data={
            "name": "钱同事",
            "phone": "13700002222",
            "address": "福建省福州市鼓楼区软件大道1号",
            "board_display": "masked",
            "buy_for": buy_for,
        },
    )


def test_members_order_for_the_organisation_and_it_is_one_buyer_on_the_love_board(app):
    wine = shop_with_two_households()
    admin_user, admin = signed_in(app, "org-buyer-1")
    register(admin)
    organisation = organisation_named()
    colleague_user, colleague = signed_in(app, "org-buyer-2")
    colleague.post(f"/organisations/join/{organisation.invite_code}")
    _outsider, outsider = signed_in(app, "org-outsider")

    for client in (admin, colleague):
        assert _checkout(client, wine, organisation.id).status_code == 302
    # Someone who is not a member cannot order for it (the choice is not theirs).
    _checkout(outsider, wine, organisation.id, offered=False)
    orders = db.session.scalars(
        select(Order).where(Order.organisation_id == organisation.id).order_by(Order.id)
    ).all()
    assert [o.user_id for o in orders] == [admin_user.id, colleague_user.id]
    assert {o.board_name for o in orders} == {"连心科技有限公司"}
    # A colleague sees the unit's orders but not another member's order link (its key).
    unit_page = colleague.get(f"/organisations/{organisation.id}").get_data(as_text=True)
    assert orders[0].order_no in unit_page and orders[0].token not in unit_page
    assert orders[1].token in unit_page
    for number, order in enumerate(orders):
        pay(order, f"T2026120490000{number}")
    # A personal order by the same colleague stays theirs.
    personal = make_order([(wine, 1)], user_id=colleague_user.id)
    pay(personal, "T20261204900009")

    # Someone outside types the unit's name as their organisation: not counted in it.
    typed = make_order([(wine, 1)], buyer(phone="13900001234", organization="连心科技有限公司"))
    pay(typed, "T20261204900010")

    board = app.test_client().get("/api/v1/board").get_json()
    assert board["totals"]["buyers"] == 3  # the organisation, the colleague alone, the typist
    unit = [r for r in board["top_organizations"] if r["name"] == "连心科技有限公司"]
    assert sorted(r["orders"] for r in unit) == [1, 2]
    top = {row["name"]: row for row in board["top_buyers"]}
    assert top["连心科技有限公司"]["orders"] == 2
    assert top["连心科技有限公司"]["amount_fen"] == sum(o.total_fen for o in orders)

    # The organisation's impact page sums its members' orders, from the ledger.
    expected = ledger_total_for([o.trade_no for o in orders])
    impact = services.impact(organisation.id)
    assert {h.code: h.amount_fen for h in impact.households} == expected
    assert impact.paid_orders == 2 and impact.units == 4
    page = colleague.get(f"/organisations/{organisation.id}/impact").get_data(as_text=True)
    assert "SJ-001" in page and "SJ-002" in page


def _csv(*rows, header="收货人,手机号,收货地址,商品,数量") -> bytes:
    return ("\ufeff" + "\r\n".join([header, *rows]) + "\r\n").encode("utf-8")


def _upload(client, organisation_id, data: bytes):
    return client.post(
        f"/organisations/{organisation_id}/bulk",
        data={
            "recipients": (io.BytesIO(data), "recipients.csv"),
            "contact_name": "赵经理",
            "contact_phone": "13700001111",
            "board_display": "masked",
        },
        content_type="multipart/form-data",
    )


def _org_with_member(app, username="org-bulk"):
    user, client = signed_in(app, username)
    register(client)
    return user, client, organisation_named()


def _orders_of(organisation):
    return db.session.scalar(
        select(func.count()).select_from(Order).where(Order.organisation_id == organisation.id)
    )


def test_a_recipients_csv_with_one_bad_row_places_nothing_and_names_the_row(app):
    wine = shop_with_two_households()  # stock 100
    _user, client, organisation = _org_with_member(app)
    good = "孙一,13700003331,福建省福州市鼓楼区一号路1号,树莓果酒,2"
    for bad_row, expected in (
        ("孙二,1370000333,福建省福州市鼓楼区二号路2号,树莓果酒,1", "第 3 行"),  # bad phone
        ("孙二,13700003332,福建省福州市鼓楼区二号路2号,没有这个酒,1", "没有在售的商品"),
        ("孙二,13700003332,福建省福州市鼓楼区二号路2号,树莓果酒,99", "库存"),  # 2 + 99 > 100
    ):
        page = _upload(client, organisation.id, _csv(good, bad_row)).get_data(as_text=True)
        assert expected in page and "第 3 行" in page, bad_row
        assert _orders_of(organisation) == 0
    # A bad phone for the person in charge is shown on that field; nothing is placed.
    response = client.post(
        f"/organisations/{organisation.id}/bulk",
        data={"recipients": (io.BytesIO(_csv(good)), "r.csv"), "contact_name": "赵经理",
              "contact_phone": "123", "board_display": "masked"},
        content_type="multipart/form-data",
    )  # fmt: skip
    page = response.get_data(as_text=True)
    phone_field = page.split('id="contact_phone"')[1].split("</div>")[0]
    assert "请填写正确的11位手机号码" in phone_field
    assert _orders_of(organisation) == 0
    db.session.expire_all()
    assert db.session.get(Product, wine.id).stock == 100


def test_a_good_recipients_csv_places_one_order_once(app):
    wine = shop_with_two_households()
    _user, client, organisation = _org_with_member(app)
    rows = [
        f"员工{i},137000044{i:02d},福建省福州市鼓楼区{i}号楼,{wine.slug},{1 + i % 3}"
        for i in range(12)
    ]
    response = _upload(client, organisation.id, _csv(*rows))
    assert response.status_code == 302
    order = db.session.scalar(select(Order).where(Order.organisation_id == organisation.id))
    units = sum(1 + i % 3 for i in range(12))
    assert order.units == units and order.total_fen == units * wine.price_fen
    db.session.expire_all()
    assert db.session.get(Product, wine.id).stock == 100 - units
    recipients = db.session.scalars(select(BulkRecipient).order_by(BulkRecipient.row_no)).all()
    assert [r.row_no for r in recipients] == list(range(2, 14))
    assert recipients[0].name == "员工0" and recipients[0].phone == "13700004400"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "12 位" in page and "137****4400" in page and "13700004400" not in page
    # The same list again — saved by another program, with other spacing — places nothing.
    again = _csv(*[r.replace(",", " , ") for r in rows]).decode().encode("gb18030")
    assert (
        _upload(client, organisation.id, again).headers["Location"] == response.headers["Location"]
    )
    assert _orders_of(organisation) == 1
    db.session.expire_all()
    assert db.session.get(Product, wine.id).stock == 100 - units
    # Once that order was cancelled unpaid, the list can be placed again.
    cancel_order(order.id, "expired")
    assert _upload(client, organisation.id, _csv(*rows)).status_code == 302
    assert _orders_of(organisation) == 2


def test_only_a_verified_unit_gets_more_unpaid_room_than_a_person(app, staff_client):
    make_product(name="桑葚酒", price_fen=9900, stock=1000)
    _user, client, organisation = _org_with_member(app, "org-festival")
    rows = [f"员工{i},1370000{i:04d},福建省福州市鼓楼区{i}号楼,桑葚酒,1" for i in range(300)]
    assert app.config["UNPAID_UNITS_PER_BUYER"] < 300
    # A code with a right check character proves nothing: until the team has checked
    # the unit, its member gets a person's room.
    page = _upload(client, organisation.id, _csv(*rows)).get_data(as_text=True)
    assert "未付款的订单最多保留" in page and _orders_of(organisation) == 0
    assert "连心科技有限公司" in staff_client.get("/console/buyers").get_data(as_text=True)
    staff_client.post(f"/console/organisations/{organisation.id}/verify")
    assert organisation_named().verified_at is not None
    assert _upload(client, organisation.id, _csv(*rows)).status_code == 302
    assert _orders_of(organisation) == 1


@pytest.mark.postgres_only
def test_a_bulk_order_racing_web_buyers_never_oversells(app):
    wine_id = make_product(stock=40).id
    member = make_user(username="org-racer")
    organisation = services.register(member.id, "赛跑公司", OTHER_CODE, "周经理", "13700005555")
    org_id, user_id, slug = organisation.id, member.id, db.session.get(Product, wine_id).slug
    rows_csv = _csv(
        *[f"员工{i},1370001{i:04d},福建省福州市鼓楼区{i}号楼,{slug},1" for i in range(30)]
    )

    def bulk_buy(_):
        rows = bulk.read_rows(rows_csv)
        contact = BuyerDetails(name="周经理", phone="13700005555", address="")
        try:
            bulk.place_bulk_order(
                rows, services.ordering_for(user_id, org_id), contact, user_id, "pc", 30
            )
            return "bulk"
        except OutOfStock:
            return "bulk-out"

    def web_buy(i):
        try:
            place_order([RequestedLine(wine_id, 1)], buyer(phone=f"139{i:08d}"), "wap", 30)
            return "web"
        except OutOfStock:
            return "web-out"

    jobs = [(bulk_buy, 0), (bulk_buy, 1)] + [(web_buy, i) for i in range(20)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda job: in_app_thread(app, *job), jobs))
    db.session.expire_all()
    sold = db.session.scalar(
        select(func.coalesce(func.sum(Order.total_fen), 0)).where(Order.status == "pending_payment")
    )
    stock = db.session.get(Product, wine_id).stock
    price = db.session.get(Product, wine_id).price_fen
    assert stock >= 0 and sold == (40 - stock) * price  # every unit sold is a unit reserved
    # Two identical uploads at once are one order (the unique key), never two.
    assert db.session.scalar(select(func.count()).select_from(BulkUpload)) <= 1
    assert results.count("bulk") in (0, 2)
    if results.count("bulk") == 2:  # it got its 30: at most 10 web buyers did
        assert results.count("web") <= 10


def test_the_team_gets_the_parcels_of_paid_bulk_orders_for_the_courier(app, staff_client):
    shop_with_two_households()
    _user, client, organisation = _org_with_member(app, "org-parcels")
    rows = ["周一,13700006601,福建省福州市鼓楼区甲路1号,树莓果酒,2",
            "周二,13700006602,福建省福州市鼓楼区乙路2号,树莓果酒,1"]  # fmt: skip
    order_url = _upload(client, organisation.id, _csv(*rows)).headers["Location"]
    order = db.session.scalar(select(Order).where(Order.organisation_id == organisation.id))
    assert "13700006601" not in staff_client.get("/console/parcels.csv").get_data(as_text=True)
    pay(order, "T20261204900101")  # paid: now it is the courier's to carry
    parcels = staff_client.get("/console/parcels.csv").get_data(as_text=True)
    assert "周一,13700006601,福建省福州市鼓楼区甲路1号,树莓果酒,2" in parcels
    assert "周二,13700006602" in parcels and order.order_no in parcels
    console = staff_client.get(f"/console/orders/{order.order_no}").get_data(as_text=True)
    assert "福建省福州市鼓楼区乙路2号" in console
    # The buyer's own order page shows the list masked; the buyer cannot get the CSV.
    page = client.get(order_url).get_data(as_text=True)
    assert "周*" in page and "福建省福州市鼓楼区乙路2号" not in page
    assert client.get("/console/parcels.csv").status_code in (302, 403)


def test_a_name_two_products_share_is_refused_and_an_expired_list_can_be_placed_again(app):
    make_product(name="土鸡蛋", slug="eggs-30", price_fen=4500, stock=50)
    make_product(name="土鸡蛋", slug="eggs-60", price_fen=8500, stock=50)
    _user, client, organisation = _org_with_member(app, "org-eggs")
    row = "吴一,13700007701,福建省福州市鼓楼区丙路3号,{},1"
    page = _upload(client, organisation.id, _csv(row.format("土鸡蛋"))).get_data(as_text=True)
    assert "请填写商品编号" in page and _orders_of(organisation) == 0
    assert _upload(client, organisation.id, _csv(row.format("eggs-60"))).status_code == 302
    order = db.session.scalar(select(Order).where(Order.organisation_id == organisation.id))
    # Unpaid past its time (the expiry job has not swept it yet): the list is free again.
    order.expires_at = order.created_at
    db.session.commit()
    assert _upload(client, organisation.id, _csv(row.format("eggs-60"))).status_code == 302
    assert _orders_of(organisation) == 2
