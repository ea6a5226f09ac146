"""Payloads and how the stored-injection test puts them into the shop
(:mod:`tests.browser.test_stored_xss`).

Each ``seed_*`` step stores the payloads through the door an attacker or a careless
insider would use — the shop's own forms, CSV uploads and JSON API, through a Flask test
client logged in as that person — and asserts that the rows were really written (a
refused form also answers with a redirect, so only a count proves the write). What the
shop has no form for is made as the CLI or the demo seed makes it. Fields that accept
only a strict format (phone, ID and card numbers, household codes, periods, tracking
numbers) get valid values: there is no text in them to inject.
"""

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import func, select

from ledger import Payout
from shop.approvals.models import ChangeProposal
from shop.catalog.models import Product
from shop.extensions import db
from shop.households.models import Enterprise, Household
from shop.households.services import id_check_char
from shop.offline.models import HouseholdIncome, ImportBatch, OfflineSale
from shop.orders.models import Order
from shop.orders.services import apply_payment
from tests.builders import approve_pending, image_bytes, make_category, make_user, make_village
from tests.conftest import login

PAYLOADS = [
    "<script>__xss=1</script>",
    '"><img src=x onerror=__xss=1>',
    "javascript:__xss=1",
    "<svg onload=__xss=1>",
    "{{7*7}}",
    "{{config}}",
    "</textarea><script>__xss=1</script>",
    "'-alert(1)-'",
    "data:text/html,<script>__xss=1</script>",
]
N = len(PAYLOADS)
PASSWORD = "stored-xss-password-1"


def fit(i: int, limit: int, digits: bool = True) -> str:
    """Payload ``i``, or the next one that fits in ``limit`` characters (and has no
    digit, when the field refuses digits)."""
    for k in range(N):
        candidate = PAYLOADS[(i + k) % N]
        if len(candidate) <= limit and (digits or not any(c.isdigit() for c in candidate)):
            return candidate
    raise AssertionError(f"no payload fits {limit} characters")


def fake_id(n: int) -> str:
    body = f"610722198001010{n:02d}"
    return body + id_check_char(body)


def card(n: int) -> str:
    return f"62170000{n:08d}"


def ok(response, what: str):
    """A post the app took: a redirect or 201. A refused form re-renders (200) — or,
    for some, redirects with a message, which the counts after each step catch."""
    body = response.get_data(as_text=True)[:400]
    assert response.status_code in (201, 302), f"{what}: {response.status_code} {body}"
    return response


@dataclass
class Seeded:
    products: list[Product] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    households: list[Household] = field(default_factory=list)
    categories: list = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    photo: str = ""
    organisation_id: int = 0
    invite_code: str = ""


def logged_in(app, username: str):
    client = app.test_client()
    assert login(client, username, PASSWORD).status_code == 302, f"{username} cannot log in"
    return client


def _upload(client, url: str, content: bytes, name: str, **form):
    data = {**form, "file": (io.BytesIO(content), name)}
    return client.post(url, data=data, content_type="multipart/form-data")


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def newest(model, *where):
    db.session.expire_all()
    return db.session.scalar(select(model).where(*where).order_by(model.id.desc()))


def _count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def seed_people_and_places(seeded: Seeded) -> None:
    """What the CLI or the demo seed makes (no form for it): logins with payload display
    names, villages, categories, the enterprise that pays income."""
    for n, (name, role) in enumerate(
        [("staff1", "staff"), ("admin1", "admin"), ("checker", "admin"), ("auditor", "admin")]
    ):
        make_user(username=name, password=PASSWORD, role=role, display_name=PAYLOADS[n])
    for i in range(N):
        make_village(code=f"X{i}", name=fit(i, 80))
    seeded.categories = [make_category(name=fit(i, 60)) for i in (4, 6)]
    db.session.add(Enterprise(name=PAYLOADS[1], description=PAYLOADS[0]))
    db.session.commit()


def seed_households(app, admin, seeded: Seeded) -> None:
    header = [
        "户编码", "户主姓名", "身份证号", "家庭人口", "村", "村民小组",
        "开户银行", "银行卡号", "流转土地(亩)", "务工", "分红", "合作社",
    ]  # fmt: skip
    rows = [
        ["", fit(i, 20, digits=False), fake_id(i + 1), "3", fit(i, 80), fit(i, 40),
         fit(i, 80), card(i + 1), "1.5", "是", "是", "是"]
        for i in range(N)
    ]  # fmt: skip
    ok(_upload(admin, "/admin/households/import", _csv(header, rows), "户.csv"), "import")
    approve_pending()
    db.session.expire_all()
    seeded.households = list(db.session.scalars(select(Household).order_by(Household.id)))
    assert len(seeded.households) == N, "the household import did not register every row"
    # An edit left waiting for the second admin: the proposal shows before/after values.
    first = seeded.households[0]
    form = {
        "code": first.code, "head_name": fit(3, 20, digits=False), "id_number": fake_id(1),
        "members": "4", "village_id": first.village_id, "group_name": fit(7, 40),
        "bank_name": fit(8, 80), "bank_card": card(1), "land_mu": "2", "employed": "y",
        "dividend": "y", "coop_member": "y", "active": "y",
    }  # fmt: skip
    ok(admin.post(f"/admin/households/{first.id}/edit", data=form), "household edit")


def seed_products(staff, seeded: Seeded) -> None:
    for i in range(N):
        form = {
            "name": fit(i, 120), "subtitle": fit(i + 1, 200), "price": "12.00",
            "unit": fit(i, 16), "stock": "500", "beneficiary": "3",
            "category_id": str(seeded.categories[i % 2].id), "origin": fit(i + 2, 120),
            "producer": fit(i + 3, 120), "story": " ".join(PAYLOADS[i:] + PAYLOADS[:i]),
        }  # fmt: skip
        ok(staff.post("/console/products/new", data=form), f"product {i}")
        product = newest(Product)
        photo = {"photos": [(io.BytesIO(image_bytes(size=(400, 300))), "p.jpg")]}
        staff.post(
            f"/console/products/{product.id}/photos", data=photo, content_type="multipart/form-data"
        )
        ok(staff.post(f"/console/products/{product.id}/status", data={"action": "publish"}), "pub")
        product = newest(Product)
        assert product.status == "published", f"product {i} was not published"
        seeded.products.append(product)
    seeded.photo = seeded.products[0].photos[0].filename()


def seed_rules(admin, checker, seeded: Seeded) -> None:
    """A rule per product with a payload note (approved), and as many rule proposals
    rejected by the second admin with a payload reason."""
    for i, product in enumerate(seeded.products):
        rule = {
            "product_id": product.id, "share_kind": "fixed", "share_amount": "3",
            "split": "weighted", "weight_basis": "equal", "households": "all",
            "note": fit(i, 200),
        }  # fmt: skip
        ok(admin.post("/admin/rules/new", data=rule), f"rule {i}")
        approve_pending()
        ok(admin.post("/admin/rules/new", data={**rule, "share_amount": "4"}), "rule 2")
        proposal = newest(ChangeProposal, ChangeProposal.status == "pending")
        ok(
            checker.post(f"/admin/proposals/{proposal.id}/reject", data={"reason": fit(i, 300)}),
            "r",
        )
    assert _count(ChangeProposal, ChangeProposal.status == "rejected") == N


def seed_orders(app, staff, seeded: Seeded) -> None:
    """Orders placed through the checkout form and the JSON API, paid, some shipped."""
    for i, product in enumerate(seeded.products):
        buyer = app.test_client()
        ok(buyer.post("/cart/add", data={"product_id": product.id, "quantity": "2"}), "cart")
        form = {
            "name": fit(i, 40), "phone": f"1381234{i:04d}", "address": fit(i + 1, 200),
            "board_display": "nickname", "nickname": fit(i + 2, 20),
            "organization": fit(i + 3, 60), "email": f"{{{{7*7}}}}.{i}@example.cn",
        }  # fmt: skip
        ok(buyer.post("/checkout", data=form), f"checkout {i}")
        order = newest(Order)
        apply_payment(order.order_no, f"TXSS{i}", order.total_fen, paid=True)
        seeded.orders.append(order)
    for i in range(0, N, 2):
        order = seeded.orders[i]
        ship = {"carrier": fit(i, 40), "tracking_no": f"SF{i:010d}"}  # letters, digits
        ok(staff.post(f"/console/orders/{order.order_no}/ship", data=ship), "ship")
    api = app.test_client().post(
        "/api/v1/orders",
        json={
            "items": [{"product_id": seeded.products[1].id, "quantity": 1}],
            "buyer": {"name": PAYLOADS[6], "phone": "13900000001", "board_name": fit(1, 20),
                      "organization": PAYLOADS[5], "anonymous": False},
            "shipping": {"address": PAYLOADS[6]},
            "channel": "pc",
        },
    )  # fmt: skip
    ok(api, "API order")
    order = newest(Order)
    apply_payment(order.order_no, "TXSSAPI", order.total_fen, paid=True)
    seeded.orders.append(order)
    assert _count(Order, Order.carrier != "") == len(range(0, N, 2)), "not every order shipped"


def seed_offline(staff, seeded: Seeded) -> None:
    """Hall sales by form; an event's sales and households' income by CSV, confirmed;
    income typed in the form."""
    for i in range(N):
        hall = {
            "token": f"xss-hall-{i}", "product_id": str(seeded.products[i].id), "quantity": "1",
            "unit_price": "", "payment_method": "wechat", "board_display": "nickname",
            "buyer_name": fit(i + 4, 40), "organization": fit(i + 5, 60),
        }  # fmt: skip
        ok(staff.post("/console/offline/", data=hall), f"hall sale {i}")
    header = ["日期", "商品", "数量", "单价(元)", "活动/场次", "付款方式", "购买人", "爱心榜展示",
              "单位", "单号"]  # fmt: skip
    rows = [
        ["2026-01-20", seeded.products[i].name, "1", "12", fit(i, 80), "现金", fit(i + 6, 40),
         "昵称", fit(i + 7, 60), fit(i, 40)]
        for i in range(N)
    ]  # fmt: skip
    event = {"channel": "event", "session_name": fit(2, 80), "starts_on": "2026-01-20",
             "ends_on": "2026-01-29"}  # fmt: skip
    ok(_upload(staff, "/console/offline/sales/upload", _csv(header, rows), "x.csv", **event), "ev")
    batch = newest(ImportBatch)
    ok(staff.post(f"/console/offline/batches/{batch.id}/confirm"), "confirm sales")
    seeded.batches.append(batch.id)

    enterprise = db.session.scalar(select(Enterprise))
    payer = f"enterprise:{enterprise.id}"
    codes = [h.code for h in seeded.households]
    header = ["户编码", "类别", "期间", "数量", "单价(元)", "金额(元)", "付款方", "备注"]
    rows = [[codes[i], "分红", "2026", "", "", "100", "", fit(i, 120)] for i in range(N)]
    ok(_upload(staff, "/console/offline/income/upload", _csv(header, rows), "i.csv", payer=payer),
       "income upload")  # fmt: skip
    batch = newest(ImportBatch)
    ok(staff.post(f"/console/offline/batches/{batch.id}/confirm"), "confirm income")
    seeded.batches.append(batch.id)
    for i in range(N):
        typed = {
            "household_code": codes[i], "channel": "coop", "period": "2026", "quantity": "",
            "rate": "", "amount": "50", "payer": payer, "memo": fit(i + 3, 120),
        }  # fmt: skip
        ok(staff.post("/console/offline/income", data=typed), f"income {i}")
    # A form that refuses its input also answers with a redirect (and a message): count.
    assert _count(OfflineSale) == 2 * N, "not every hall sale and CSV row was posted"
    assert _count(HouseholdIncome) == 2 * N, "not every income row was posted"


def seed_payouts(app, admin) -> None:
    """A payout batch to every household, proposed and approved, paid through the
    sandbox's transfer API (the payee names are payloads): the payouts page then lists
    the households, by their masked names."""
    app.config.update(PAYOUT_THRESHOLD_FEN=100, PAYOUT_CARD_HOLD_DAYS=0)
    ok(admin.post("/admin/payouts/run"), "payout batch")
    approve_pending()
    assert _count(Payout, Payout.status == "paid") == N, "not every household was paid"


def seed_organisation(app, seeded: Seeded) -> None:
    """A caring unit registered by the auditor (who walks its pages as its administrator)
    through the form, and its recipients CSV placed and paid: payloads in the unit's
    name and contact, and in every recipient's name and address."""
    from shop.organisations.models import BulkRecipient, Organisation

    auditor = logged_in(app, "auditor")
    form = {"name": fit(1, 60), "credit_code": "91350100M000100Y43",
            "contact_name": fit(2, 40), "contact_phone": "13700001111"}  # fmt: skip
    ok(auditor.post("/organisations/new", data=form), "organisation")
    organisation = newest(Organisation)
    seeded.organisation_id, seeded.invite_code = organisation.id, organisation.invite_code
    product = seeded.products[0]
    rows = [[fit(i, 40), f"1370000{i:04d}", fit(i + 1, 200), product.slug, "1"] for i in range(N)]
    content = _csv(["收货人", "手机号", "收货地址", "商品", "数量"], rows)
    response = auditor.post(
        f"/organisations/{organisation.id}/bulk",
        data={"recipients": (io.BytesIO(content), "list.csv"), "contact_name": fit(3, 40),
              "contact_phone": "13700001111", "board_display": "masked"},
        content_type="multipart/form-data",
    )  # fmt: skip
    ok(response, "bulk order")
    assert _count(BulkRecipient) == N, "the recipients were not all written"
    order = newest(Order)
    apply_payment(order.order_no, "TXSSBULK", order.total_fen, paid=True)
    seeded.orders.append(order)
    # A signed tree head covers the orders: their trace pages show the proof section.
    from shop.transparency import services as transparency

    with app.app_context():
        assert transparency.publish() is not None
