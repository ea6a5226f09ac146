"""Every console and admin route that changes data writes its audit record.

``ROUTES`` names, for each POST route under ``/console/`` or ``/admin/``, one or more
requests that change data as the village team or an admin would. Each case makes its one
request and asserts that it changed what it should, wrote exactly one audit record, and
that every record it wrote names the person who made the request and the request's id;
the audit chain verifies afterwards. A few requests rightly write more than one record —
they commit several transactions (a payout batch, a refund sent to Alipay, several
photos), or an approval applies a change that names its own ledger postings — and such a
case lists the exact actions it writes, in order, and says why.

A POST route added under /console/ or /admin/ without an entry here fails
:func:`test_every_state_changing_route_is_walked`; a request that is refused (a form that
does not validate) writes no record and changes nothing
(:func:`test_a_refused_request_writes_no_record_and_changes_nothing`).
"""

import csv
import io
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from ledger import BenefitRule, Payout
from shop import create_app
from shop.approvals.models import ChangeProposal
from shop.audit.models import AuditRecord
from shop.audit.verify import verify_audit
from shop.benefits.services import set_product_rule
from shop.catalog.models import Product, ProductPhoto
from shop.console import services as console
from shop.extensions import db
from shop.households.models import Enterprise, Household
from shop.households.services import id_check_char, id_digest
from shop.invoices.models import InvoiceRequest
from shop.invoices.services import request_invoice
from shop.offline import income
from shop.offline.models import HouseholdIncome, ImportBatch, OfflineSale
from shop.offline.services import OfflineSaleInput, record_counter_sale
from shop.orders.models import Order
from shop.orders.services import apply_payment, mark_shipped
from tests.alipay_helpers import pay_in_sandbox
from tests.builders import (
    image_bytes,
    make_household,
    make_order,
    make_product,
    make_user,
    make_village,
)
from tests.conftest import ADMIN_PASSWORD, STAFF_PASSWORD, login
from tests.live_server import live_server

STAFF, ADMIN, CHECKER = "staff", "admin", "checker"
PEOPLE = {  # who → (username, password, role); the checker is the second admin
    STAFF: ("staff1", STAFF_PASSWORD, "staff"),
    ADMIN: ("admin1", ADMIN_PASSWORD, "admin"),
    CHECKER: ("admin2", ADMIN_PASSWORD, "admin"),
}
PRODUCT_FORM = {
    "name": "树莓果酒礼盒",
    "subtitle": "双井村树莓产业园自酿",
    "price": "158.00",
    "unit": "盒",
    "stock": "120",
    "beneficiary": "20",
    "category_id": "0",
}
EVENT_FORM = {
    "channel": "event",
    "session_name": "2026年春节年货展销会",
    "starts_on": "2026-01-20",
    "ends_on": "2026-01-29",
}
SALES_CSV = (
    "日期,商品,数量,单价(元),付款方式,购买人,爱心榜展示,单位\r\n"
    "2026-01-20,树莓果酒,2,158,微信,王小明,实名打码,\r\n"
    "2026-01-21,树莓果酒,1,158,现金,,匿名,\r\n"
).encode()
INCOME_CSV = (
    "户编码,类别,期间,数量,单价(元),金额(元),付款方\r\n"
    "SJ-002,土地租金,2026,2.5,340,,\r\n"
    "SJ-003,分红,2026,,,400,村集体\r\n"
).encode()
HOUSEHOLD_HEADER = [
    "户编码", "户主姓名", "身份证号", "家庭人口", "村", "村民小组",
    "开户银行", "银行卡号", "流转土地(亩)", "务工", "分红", "合作社",
]  # fmt: skip
CARD = "6217000012345678"


def fake_id(n: int) -> str:
    body = f"610722198001010{n:02d}"
    return body + id_check_char(body)


def picture(n: int) -> bytes:
    return image_bytes("JPEG", size=(400, 300), color=(40 * n, 90, 20))


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def last_seq() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.max(AuditRecord.seq))) or 0


def records_after(seq: int) -> list[AuditRecord]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(AuditRecord).where(AuditRecord.seq > seq).order_by(AuditRecord.seq)
        )
    )


def pending(kind: str) -> ChangeProposal:
    db.session.expire_all()
    waiting = list(
        db.session.scalars(
            select(ChangeProposal).where(
                ChangeProposal.kind == kind, ChangeProposal.status == "pending"
            )
        )
    )
    assert len(waiting) == 1, f"expected one pending {kind} proposal, found {len(waiting)}"
    return waiting[0]


class Shop:
    """The data the walk works on: a village of three households paid from the sale of
    raspberry wine, an enterprise that pays them, and one logged-in client per person
    (staff, an admin, and a second admin who approves) — each its own test client."""

    def __init__(self, app):
        self.app = app
        app.config["PAYOUT_THRESHOLD_FEN"] = 1000  # households owed ¥10 are paid
        self.users = {
            who: make_user(username=name, password=password, role=role)
            for who, (name, password, role) in PEOPLE.items()
        }
        self._clients = {}
        self.village = make_village(code="SJ", name="双井村")
        self.households = [
            make_household(
                self.village, code=f"SJ-{n:03d}", card=CARD, land_mu=n, members=n + 1,
                employed=True, dividend=True, coop_member=True,
            )
            for n in (1, 2, 3)
        ]  # fmt: skip
        first = self.households[0]
        first.id_number = fake_id(1)
        first.id_number_digest = id_digest(first.id_number)
        enterprise = Enterprise(name="双井树莓果酒厂（扶贫企业）")
        db.session.add(enterprise)
        db.session.commit()
        self.payer = f"enterprise:{enterprise.id}"
        self.wine = make_product(name="树莓果酒", slug="raspberry-wine", price_fen=15800)
        set_product_rule(self.wine.id, self.households, "weighted", "equal", 2000)
        self.made = SimpleNamespace()  # what a case's set-up made for its request
        self.live = False  # Alipay (the sandbox over HTTP) is up
        self._n = 0

    def user(self, who: str):
        return self.users[who]

    def client(self, who: str):
        """``who``'s client, logged in (password and authenticator code) on first use."""
        if who not in self._clients:
            client = self.app.test_client()
            name, password, _role = PEOPLE[who]
            assert login(client, name, password).status_code == 302, f"{name} cannot log in"
            self._clients[who] = client
        return self._clients[who]

    def post(self, who: str, url: str, **kwargs):
        return self.client(who).post(url, **kwargs)

    def upload(self, who: str, url: str, content: bytes, name: str, **form):
        data = {**form, "file": (io.BytesIO(content), name)}
        return self.post(who, url, data=data, content_type="multipart/form-data")

    # --- set-up: what a case needs before its request (its records are not counted) ---

    def paid_order(self, quantity: int = 2) -> Order:
        """An order paid for by a buyer: through the sandbox cashier when Alipay is up
        (a refund needs the trade there), else by the payment notice it would send."""
        order = make_order([(self.wine, quantity)])
        if self.live:
            assert pay_in_sandbox(self.app, self.app.test_client(), order).status_code == 302
        else:
            self._n += 1
            apply_payment(order.order_no, f"TWALK{self._n}", order.total_fen, paid=True)
        assert fresh(Order, order.id).status == "paid"
        return order

    def product_with_photos(self, photos: int) -> Product:
        product = make_product(status="draft")
        for n in range(photos):
            console.add_product_photo(product.id, picture(n))
        self.made.photo_ids = [p.id for p in fresh(Product, product.id).photos]
        return fresh(Product, product.id)

    def upload_photos(self, who: str, count: int):
        files = [(io.BytesIO(picture(n)), f"photo{n}.jpg") for n in range(count)]
        return self.post(
            who, f"/console/products/{self.made.product.id}/photos",
            data={"photos": files}, content_type="multipart/form-data",
        )  # fmt: skip

    def hall_sale(self, quantity: int) -> OfflineSale:
        self._n += 1
        entry = OfflineSaleInput(product_id=self.wine.id, quantity=quantity)
        return record_counter_sale(entry, f"walk-{self._n}", self.user(STAFF).id)

    def household_income(self, amount: str) -> HouseholdIncome:
        entry = income.IncomeFormInput(
            household_code="SJ-001", channel="coop", period="2026",
            payer_account=self.payer, amount=amount,
        )  # fmt: skip
        record, created = income.record_typed_income(entry, self.user(STAFF).id)
        assert created
        return record

    def household_form(self, household: Household, **changes) -> dict:
        data = {
            "code": household.code, "head_name": "张三明", "id_number": fake_id(1),
            "members": "2", "village_id": household.village_id, "group_name": "一组",
            "bank_name": "城固农商银行", "bank_card": CARD, "land_mu": "1.00",
            "employed": "y", "dividend": "y", "coop_member": "y", "active": "y",
        }  # fmt: skip
        data.update(changes)
        return data

    def propose(self, kind: str) -> ChangeProposal:
        """Have the first admin propose a change of ``kind`` through its page."""
        PROPOSE[kind](self)
        return pending(kind)


# --- how each kind of proposal is made (by the first admin, through its page) ------------


def _household_import_csv() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HOUSEHOLD_HEADER)
    writer.writerow(
        ["", "赵六", fake_id(6), "2", "双井村", "二组", "城固农商银行", "6217000033334444",
         "1.5", "是", "否", "否"]
    )  # fmt: skip
    return buffer.getvalue().encode("utf-8-sig")


def _new_household_form(shop: Shop) -> dict:
    return {
        "code": "", "head_name": "赵六", "id_number": fake_id(7), "members": "2",
        "village_id": shop.village.id, "group_name": "二组", "bank_name": "城固农商银行",
        "bank_card": "6217000055556666", "land_mu": "0", "active": "y",
    }  # fmt: skip


RULE_FORM = {
    "share_kind": "fixed", "share_amount": "25", "split": "weighted",
    "weight_basis": "land", "households": "all", "note": "",
}  # fmt: skip


def _propose_refund(shop: Shop):
    order = shop.made.order = shop.paid_order(4)  # ¥632, above the ¥500 approval threshold
    return shop.post(ADMIN, f"/console/orders/{order.order_no}/refund",
                     data={"amount": "600.00", "reason": "破损"})  # fmt: skip


def _propose_sale_reversal(shop: Shop):
    sale = shop.made.sale = shop.hall_sale(4)  # ¥632
    return shop.post(ADMIN, f"/admin/proposals/reverse-sale/{sale.id}")


def _propose_income_reversal(shop: Shop):
    record = shop.made.income = shop.household_income("850")
    return shop.post(ADMIN, f"/admin/proposals/reverse-income/{record.id}")


def _propose_merge(shop: Shop):
    # Registered twice, and named by no rule in force (a merge is refused while one is).
    duplicate = shop.made.duplicate = make_household(shop.village, code="SJ-009")
    return shop.post(ADMIN, f"/admin/households/{duplicate.id}/merge", data={"keep_code": "SJ-001"})


def _propose_payout_batch(shop: Shop):
    shop.paid_order(3)  # ¥60 for the three households: ¥20 each
    return shop.post(ADMIN, "/admin/payouts/run")


def _propose_household_payout(shop: Shop):
    shop.paid_order(3)
    return shop.post(ADMIN, "/admin/payouts/households/SJ-001")


PROPOSE: dict[str, Callable[[Shop], object]] = {
    "household.update": lambda s: s.post(
        ADMIN,
        f"/admin/households/{s.households[0].id}/edit",
        data=s.household_form(s.households[0], members="5"),
    ),
    "household.create": lambda s: s.post(
        ADMIN, "/admin/households/new", data=_new_household_form(s)
    ),
    "household.import": lambda s: s.upload(
        ADMIN, "/admin/households/import", _household_import_csv(), "households.csv"
    ),
    "rule.new": lambda s: s.post(
        ADMIN, "/admin/rules/new", data={**RULE_FORM, "product_id": s.wine.id}
    ),
    "household.merge": _propose_merge,
    "payout.release": _propose_payout_batch,
    "payout.household": _propose_household_payout,
    "order.refund": _propose_refund,
    "offline.reverse_sale": _propose_sale_reversal,
    "offline.reverse_income": _propose_income_reversal,
}


# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request that changes data, as ``who`` makes it.

    ``prepare(shop)`` makes what the request needs (its own audit records are not
    counted); ``act(shop)`` makes the one request and returns the response;
    ``changed(shop)`` asserts the change happened. ``actions`` is None when the request
    must write exactly one audit record; otherwise the exact actions it must write, in
    order, and ``why`` says why more than one is right.
    """

    who: str
    act: Callable[[Shop], object]
    changed: Callable[[Shop], None]
    prepare: Callable[[Shop], None] = lambda shop: None
    label: str = ""
    actions: tuple[str, ...] | None = None
    why: str = ""
    live: bool = False  # needs Alipay (the sandbox gateway over real HTTP)


def _approve(kind: str, changed, **extra) -> Case:
    def prepare(shop: Shop):
        shop.made.proposal = shop.propose(kind)

    def check(shop: Shop):
        assert fresh(ChangeProposal, shop.made.proposal.id).status == "approved"
        changed(shop)

    return Case(
        CHECKER,
        lambda s: s.post(CHECKER, f"/admin/proposals/{s.made.proposal.id}/approve"),
        check,
        prepare,
        label=kind,
        **extra,
    )


def _proposed(kind: str) -> Callable[[Shop], None]:
    def check(shop: Shop):
        proposal = pending(kind)
        assert proposal.proposed_by_id == shop.user(ADMIN).id

    return check


def _product_changed(shop: Shop):
    product = fresh(Product, shop.made.product.id)
    assert (product.name, product.stock) == ("树莓果酒（新酿）", 80)


def _photos(shop: Shop) -> list[ProductPhoto]:
    return list(fresh(Product, shop.made.product.id).photos)


def _set(attr: str, make: Callable[[Shop], object]) -> Callable[[Shop], None]:
    def prepare(shop: Shop):
        setattr(shop.made, attr, make(shop))

    return prepare


def _shipped(shop: Shop):
    order = shop.made.order = shop.paid_order()
    mark_shipped(order.id, "中国邮政", "9876543210123")


def _registered_unit(shop: Shop):
    from shop.organisations import services as organisations

    founder = make_user(username="unit-founder", password="unit-pass-1")
    shop.made.organisation = organisations.register(
        founder.id, "连心科技有限公司", "91350100M000100Y43", "赵经理", "13700001111"
    )


def _hall_sale_form(shop: Shop) -> dict:
    return {
        "token": "walk-hall-token", "product_id": str(shop.wine.id), "quantity": "2",
        "unit_price": "", "payment_method": "wechat", "board_display": "masked",
        "buyer_name": "欧阳秀英", "organization": "",
    }  # fmt: skip


def _uploaded_sales(shop: Shop):
    shop.upload(STAFF, "/console/offline/sales/upload", SALES_CSV, "event.csv", **EVENT_FORM)
    shop.made.batch = db.session.scalar(select(ImportBatch))


def _income_form(shop: Shop) -> dict:
    return {
        "household_code": "SJ-002", "channel": "land", "period": "2026", "quantity": "2.5",
        "rate": "340", "amount": "", "payer": shop.payer, "memo": "",
    }  # fmt: skip


def _roster_form() -> dict:
    return {
        "channel": "dividend", "period": "2026", "pool": "1000.01", "basis": "members",
        "payer": "collective:programme",
    }  # fmt: skip


def _sale_reversed(shop: Shop):
    sale = fresh(OfflineSale, shop.made.sale.id)
    assert sale.reversal_transaction_id is not None


def _income_reversed(shop: Shop):
    record = fresh(HouseholdIncome, shop.made.income.id)
    assert record.reversal_transaction_id is not None


def _paid_out(*codes: str) -> Callable[[Shop], None]:
    def check(shop: Shop):
        db.session.expire_all()
        paid = db.session.scalars(select(Payout.household_code).where(Payout.status == "paid"))
        assert sorted(paid) == sorted(codes)

    return check


def _refunded(shop: Shop):
    order = fresh(Order, shop.made.order.id)
    assert order.refunded_fen == 60000


APPLIED_NOTE = (
    "one commit, two named notes: proposal.approve (who decided on whose proposal) and the "
    "reversal it applies, which names the posting's ledger key for `flask audit verify` — "
    "'the change, the status and both notes at once' (shop/approvals/services.py)"
)

ROUTES: dict[str, list[Case]] = {
    # --- products and photos (staff) ---
    "console.new_product": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, "/console/products/new", data=PRODUCT_FORM),
            lambda s: assert_one(Product, Product.name == "树莓果酒礼盒"),
        )
    ],
    "console.edit_product": [
        Case(
            STAFF,
            lambda s: s.post(
                STAFF,
                f"/console/products/{s.made.product.id}",
                data={**PRODUCT_FORM, "name": "树莓果酒（新酿）", "stock": "80"},
            ),
            _product_changed,
            _set("product", lambda s: make_product(status="draft")),
        )
    ],
    "console.change_status": [
        Case(
            STAFF,
            lambda s: s.post(
                STAFF, f"/console/products/{s.made.product.id}/status", data={"action": "publish"}
            ),
            lambda s: assert_equal(fresh(Product, s.made.product.id).status, "published"),
            _set("product", lambda s: s.product_with_photos(1)),
        )
    ],
    "console.upload_photos": [
        Case(
            STAFF,
            lambda s: s.upload_photos(STAFF, 1),
            lambda s: assert_equal(len(_photos(s)), 1),
            _set("product", lambda s: make_product(status="draft")),
            label="one photo",
        ),
        Case(
            STAFF,
            lambda s: s.upload_photos(STAFF, 2),
            lambda s: assert_equal(len(_photos(s)), 2),
            _set("product", lambda s: make_product(status="draft")),
            label="two photos",
            actions=("console.upload_photos", "console.upload_photos"),
            why="each photo is stored and committed on its own, so a file that is refused "
            "(too big, not a picture, the gallery full) does not lose the others",
        ),
    ],
    "console.photo_cover": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, f"/console/photos/{s.made.photo_ids[1]}/cover"),
            lambda s: assert_equal([p.is_cover for p in _photos(s)], [False, True]),
            _set("product", lambda s: s.product_with_photos(2)),
        )
    ],
    "console.photo_move": [
        Case(
            STAFF,
            lambda s: s.post(
                STAFF,
                f"/console/photos/{s.made.photo_ids[1]}/move",
                data={"direction": "up"},
            ),
            lambda s: assert_equal([p.id for p in _photos(s)], s.made.photo_ids[::-1]),
            _set("product", lambda s: s.product_with_photos(2)),
        )
    ],
    "console.photo_delete": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, f"/console/photos/{s.made.photo_ids[0]}/delete"),
            lambda s: assert_equal(len(_photos(s)), 1),
            _set("product", lambda s: s.product_with_photos(2)),
        )
    ],
    # --- orders ---
    "console.ship_order": [
        Case(
            STAFF,
            lambda s: s.post(
                STAFF,
                f"/console/orders/{s.made.order.order_no}/ship",
                data={"carrier": "中国邮政", "tracking_no": "9876543210123"},
            ),
            lambda s: assert_equal(fresh(Order, s.made.order.id).status, "shipped"),
            _set("order", lambda s: s.paid_order()),
        )
    ],
    "invoices.issue": [
        Case(
            STAFF,
            lambda s: s.post(
                STAFF,
                f"/console/invoices/{s.made.invoice.id}/issue",
                data={"pdf": (io.BytesIO(b"%PDF-1.7\n%%EOF\n"), "fapiao.pdf")},
                content_type="multipart/form-data",
            ),
            lambda s: assert_equal(fresh(InvoiceRequest, s.made.invoice.id).status, "issued"),
            _set(
                "invoice",
                lambda s: request_invoice(
                    s.paid_order(), "personal", "王小明", "", "w@example.com"
                ),
            ),
        )
    ],
    "buyers.verify_organisation": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, f"/console/organisations/{s.made.organisation.id}/verify"),
            lambda s: assert_equal(
                fresh(type(s.made.organisation), s.made.organisation.id).verified_at is None,
                False,
            ),
            _registered_unit,
        )
    ],
    "console.complete_order": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, f"/console/orders/{s.made.order.order_no}/complete"),
            lambda s: assert_equal(fresh(Order, s.made.order.id).status, "completed"),
            _shipped,
        )
    ],
    "console.refund_order": [
        Case(
            ADMIN,
            lambda s: s.post(
                ADMIN,
                f"/console/orders/{s.made.order.order_no}/refund",
                data={"amount": "10.00", "reason": "少发一瓶"},
            ),
            lambda s: assert_equal(
                [(r.amount_fen, r.status) for r in fresh(Order, s.made.order.id).refunds],
                [(1000, "succeeded")],
            ),
            _set("order", lambda s: s.paid_order()),
            label="below the approval threshold",
            live=True,  # one record: order.refund (Alipay's answer is not a decision)
        ),
        Case(
            ADMIN,
            lambda s: _propose_refund(s),
            _proposed("order.refund"),
            label="above the approval threshold: a proposal",
        ),
    ],
    # --- offline sales (the hall counter, CSV batches) ---
    "offline.sales": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, "/console/offline/", data=_hall_sale_form(s)),
            lambda s: assert_one(OfflineSale, OfflineSale.channel == "hall"),
        )
    ],
    "offline.upload_sales": [
        Case(
            STAFF,
            lambda s: s.upload(
                STAFF, "/console/offline/sales/upload", SALES_CSV, "event.csv", **EVENT_FORM
            ),
            lambda s: assert_one(ImportBatch, ImportBatch.purpose == "sales"),
        )
    ],
    "offline.confirm_batch": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, f"/console/offline/batches/{s.made.batch.id}/confirm"),
            lambda s: assert_equal(count(OfflineSale, OfflineSale.channel == "event"), 2),
            _uploaded_sales,
        )
    ],
    "offline.reverse_sale": [
        Case(
            ADMIN,
            lambda s: s.post(ADMIN, f"/console/offline/sales/{s.made.sale.id}/reverse"),
            _sale_reversed,
            _set("sale", lambda s: s.hall_sale(1)),  # ¥158: below the approval threshold
        )
    ],
    # --- household income ---
    "offline.income_page": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, "/console/offline/income", data=_income_form(s)),
            lambda s: assert_one(HouseholdIncome, HouseholdIncome.household_code == "SJ-002"),
        )
    ],
    "offline.upload_income": [
        Case(
            STAFF,
            lambda s: s.upload(
                STAFF, "/console/offline/income/upload", INCOME_CSV, "income.csv", payer=""
            ),
            lambda s: assert_one(ImportBatch, ImportBatch.purpose == "income"),
        )
    ],
    "offline.income_roster": [
        Case(
            STAFF,
            lambda s: s.post(STAFF, "/console/offline/income/roster", data=_roster_form()),
            lambda s: assert_one(ImportBatch, ImportBatch.purpose == "income"),
        )
    ],
    "offline.reverse_income": [
        Case(
            ADMIN,
            lambda s: s.post(ADMIN, f"/console/offline/income/{s.made.income.id}/reverse"),
            _income_reversed,
            _set("income", lambda s: s.household_income("100")),  # below the threshold
        )
    ],
    # --- households, rules, payouts: proposals for a second admin ---
    "admin.new_household": [
        Case(
            ADMIN,
            lambda s: s.post(ADMIN, "/admin/households/new", data=_new_household_form(s)),
            _proposed("household.create"),
        )
    ],
    "admin.edit_household": [
        Case(
            ADMIN,
            lambda s: PROPOSE["household.update"](s),
            _proposed("household.update"),
        )
    ],
    "admin.import_households": [
        Case(
            ADMIN,
            lambda s: PROPOSE["household.import"](s),
            _proposed("household.import"),
        )
    ],
    "admin.merge_household": [
        Case(ADMIN, _propose_merge, _proposed("household.merge")),
    ],
    "admin.new_rule": [
        Case(ADMIN, lambda s: PROPOSE["rule.new"](s), _proposed("rule.new")),
    ],
    "admin.run_payouts_now": [
        Case(ADMIN, _propose_payout_batch, _proposed("payout.release")),
    ],
    "admin.propose_household_payout": [
        Case(ADMIN, _propose_household_payout, _proposed("payout.household")),
    ],
    "approvals.propose_sale_reversal": [
        Case(ADMIN, _propose_sale_reversal, _proposed("offline.reverse_sale")),
    ],
    "approvals.propose_income_reversal": [
        Case(ADMIN, _propose_income_reversal, _proposed("offline.reverse_income")),
    ],
    # --- the second admin decides ---
    "approvals.approve": [
        _approve(
            "household.update",
            lambda s: assert_equal(fresh(Household, s.households[0].id).members, 5),
        ),
        _approve(
            "household.create",
            lambda s: assert_one(Household, Household.code == "SJ-004"),
        ),
        _approve(
            "household.import",
            lambda s: assert_one(Household, Household.code == "SJ-004"),
        ),
        _approve(
            "household.merge",
            lambda s: assert_equal(fresh(Household, s.made.duplicate.id).active, False),
            actions=("proposal.approve", "household.merge"),
            why=APPLIED_NOTE,
        ),
        _approve(
            "rule.new",
            lambda s: assert_equal(
                db.session.scalar(
                    select(func.max(BenefitRule.version)).where(BenefitRule.product_id == s.wine.id)
                ),
                2,
            ),
        ),
        _approve(
            "offline.reverse_sale",
            _sale_reversed,
            actions=("proposal.approve", "offline.reverse_sale"),
            why=APPLIED_NOTE,
        ),
        _approve(
            "offline.reverse_income",
            _income_reversed,
            actions=("proposal.approve", "offline.reverse_income"),
            why=APPLIED_NOTE,
        ),
        _approve(
            "order.refund",
            _refunded,
            actions=("proposal.approve", "order.refund"),
            why="the approval commits the refund request — proposal.approve, and order.refund "
            "with the refund's ledger key — then sends it to Alipay and applies the answer "
            "in a transaction of its own: Alipay's answer, not a decision, which writes no "
            "record (as when `payments reconcile` applies it)",
            live=True,
        ),
        _approve(
            "payout.release",
            _paid_out("SJ-001", "SJ-002", "SJ-003"),
            actions=("proposal.approve", *["payout.start"] * 3, "proposal.released"),
            why="the approval commits first; then each household's payout is started, with "
            "its ledger key, in a commit of its own before Alipay is asked (so a crash never "
            "pays twice); proposal.released records the outcome. Counting the attempt and "
            "settling on Alipay's answer are bookkeeping, which write no record (as when "
            "the jobs worker finishes a payout in flight)",
            live=True,
        ),
        _approve(
            "payout.household",
            _paid_out("SJ-001"),
            actions=("proposal.approve", "payout.start", "proposal.released"),
            why="as payout.release, for one household",
            live=True,
        ),
    ],
    "approvals.reject": [
        Case(
            CHECKER,
            lambda s: s.post(
                CHECKER,
                f"/admin/proposals/{s.made.proposal.id}/reject",
                data={"reason": "人口没有变化"},
            ),
            lambda s: assert_equal(fresh(ChangeProposal, s.made.proposal.id).status, "rejected"),
            _set("proposal", lambda s: s.propose("household.update")),
        )
    ],
}


def assert_equal(actual, expected):
    assert actual == expected


def assert_one(model, *where):
    assert count(model, *where) == 1, f"expected one {model.__name__} row"


CASES = [
    pytest.param(endpoint, case, id=f"{endpoint}[{case.label}]" if case.label else endpoint)
    for endpoint, cases in ROUTES.items()
    for case in cases
]


def state_changing_endpoints(app) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and rule.rule.startswith(("/console/", "/admin/"))
    }


@pytest.mark.parametrize(("endpoint", "case"), CASES)
def test_route_writes_its_audit_record(app, endpoint, case):
    shop = Shop(app)
    shop.live = case.live
    with live_server(app) if case.live else nullcontext():
        case.prepare(shop)
        actor = shop.user(case.who)
        shop.client(case.who)  # logging in writes its own records: before counting
        before = last_seq()
        response = case.act(shop)
        assert response.status_code < 400, f"{endpoint}: {response.status_code}"
        case.changed(shop)
        written = records_after(before)
    actions = [r.action for r in written]
    if case.actions is None:
        assert len(written) == 1, f"{endpoint} wrote {len(written)} audit records: {actions}"
    else:
        assert actions == list(case.actions), (
            f"{endpoint} wrote {actions}, not {list(case.actions)}: {case.why}"
        )
    for record in written:
        assert record.action, f"{endpoint}: a record without an action"
        assert record.actor_id == actor.id, (
            f"{endpoint}: {record.action} names actor {record.actor_id}, not {actor.id}"
        )
        assert record.request_id, f"{endpoint}: {record.action} has no request id"
    assert len({r.request_id for r in written}) == 1, f"{endpoint}: records of several requests"
    result = verify_audit(db.session)
    assert result.ok, result.problems


def test_every_state_changing_route_is_walked():
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    endpoints = state_changing_endpoints(app)
    missing = sorted(endpoints - ROUTES.keys())
    assert not missing, (
        f"POST routes under /console/ or /admin/ not walked: {', '.join(missing)} — "
        "add it to ROUTES with a request that changes data"
    )
    gone = sorted(ROUTES.keys() - endpoints)
    assert not gone, f"ROUTES names endpoints the app no longer has: {', '.join(gone)}"
    for endpoint, cases in ROUTES.items():
        assert cases, f"{endpoint}: no case"
        for case in cases:
            assert case.actions is None or case.why, f"{endpoint}: say why it writes several"


# --- requests that are refused write nothing ---------------------------------------------


def snapshot() -> dict[str, list[str]]:
    """Every row of every table, as text: what "changed nothing" is compared against."""
    db.session.expire_all()
    return {
        table.name: sorted(repr(tuple(row)) for row in db.session.execute(select(table)))
        for table in db.metadata.sorted_tables
    }


def _own_proposal(shop: Shop):
    shop.made.proposal = shop.propose("household.update")


def _wrong_id() -> str:
    right = fake_id(7)
    return right[:-1] + ("0" if right[-1] != "0" else "1")


def _refund(amount: str):
    return lambda s: s.post(
        ADMIN, f"/console/orders/{s.made.order.order_no}/refund", data={"amount": amount}
    )


def told(shop: Shop, who: str, response) -> str:
    """What the person was told: the page, or the messages flashed for the next one."""
    if response.status_code != 302:
        return response.get_data(as_text=True)
    with shop.client(who).session_transaction() as session:
        return " ".join(message for _category, message in session.get("_flashes", []))


REFUSED = [  # who, the request, its set-up, the status and words that say it was refused
    pytest.param(
        STAFF,
        lambda s: s.post(STAFF, "/console/products/new", data={**PRODUCT_FORM, "name": ""}),
        lambda s: None,
        422,
        "商品名称",
        id="product without a name",
    ),
    pytest.param(
        STAFF,
        lambda s: s.post(
            STAFF, f"/console/products/{s.wine.id}", data={**PRODUCT_FORM, "price": "1.999"}
        ),
        lambda s: None,
        422,
        "请输入金额",
        id="product with a bad price",
    ),
    pytest.param(
        STAFF,
        lambda s: s.post(
            STAFF,
            f"/console/orders/{s.made.order.order_no}/ship",
            data={"carrier": "中国邮政", "tracking_no": "bad no!"},
        ),
        _set("order", lambda s: s.paid_order()),
        302,
        "快递单号应为4到64位字母或数字",
        id="shipping with a bad tracking number",
    ),
    pytest.param(
        ADMIN,
        _refund("abc"),
        _set("order", lambda s: s.paid_order()),
        302,
        "请输入金额",
        id="refund of a bad amount",
    ),
    pytest.param(
        ADMIN,
        _refund("200"),
        _set("order", lambda s: s.paid_order(1)),
        302,
        "退款金额不能超过可退金额",
        id="refund of more than was paid",
    ),
    pytest.param(
        # Above APPROVAL_THRESHOLD_FEN (¥500) a refund is proposed; proposing "checks
        # everything the change would check" (shop/approvals/kinds.py).
        ADMIN,
        _refund("9999"),
        _set("order", lambda s: s.paid_order(1)),
        302,
        "退款金额不能超过可退金额",
        id="refund above the approval threshold of more than was paid",
    ),
    pytest.param(
        STAFF,
        lambda s: s.post(
            STAFF, "/console/offline/", data={**_hall_sale_form(s), "quantity": "101"}
        ),
        lambda s: None,
        422,
        "库存不足",
        id="hall sale beyond the stock",
    ),
    pytest.param(
        STAFF,
        lambda s: s.post(
            STAFF, "/console/offline/income", data={**_income_form(s), "household_code": "SJ-999"}
        ),
        lambda s: None,
        422,
        "没有户编码为“SJ-999”的农户",
        id="income for an unknown household",
    ),
    pytest.param(
        ADMIN,
        lambda s: s.post(
            ADMIN,
            "/admin/households/new",
            data={**_new_household_form(s), "id_number": _wrong_id()},
        ),
        lambda s: None,
        422,
        "身份证号校验位不对",
        id="household with a bad ID number",
    ),
    pytest.param(
        ADMIN,
        lambda s: s.post(
            ADMIN,
            "/admin/rules/new",
            data={**RULE_FORM, "product_id": s.wine.id, "share_amount": "999"},
        ),
        lambda s: None,
        422,
        "不能超过售价",
        id="rule giving more than the price",
    ),
    pytest.param(
        ADMIN,
        lambda s: s.post(ADMIN, f"/admin/proposals/{s.made.proposal.id}/approve"),
        _own_proposal,
        302,
        "不能审批自己提出的变更",
        id="approving one's own proposal",
    ),
    pytest.param(
        CHECKER,
        lambda s: s.post(
            CHECKER, f"/admin/proposals/{s.made.proposal.id}/reject", data={"reason": ""}
        ),
        _own_proposal,
        302,
        "请写明驳回理由",
        id="rejecting without a reason",
    ),
]


@pytest.mark.parametrize(("who", "act", "prepare", "status", "words"), REFUSED)
def test_a_refused_request_writes_no_record_and_changes_nothing(
    app, who, act, prepare, status, words
):
    shop = Shop(app)
    prepare(shop)
    shop.client(who)  # logging in writes its own records: before comparing
    before, rows = last_seq(), snapshot()
    response = act(shop)
    assert response.status_code == status
    written = [(r.action, r.object_type, r.object_id) for r in records_after(before)]
    assert not written, f"a refused request wrote audit records: {written}"
    after = snapshot()
    changed = sorted(name for name in rows if rows[name] != after[name])
    assert not changed, f"a refused request changed {', '.join(changed)}"
    said = told(shop, who, response)
    assert words in said, f"not refused for the reason expected: {said[:300]}"
    assert verify_audit(db.session).ok
