"""Invoices (发票, issue 16): the buyer asks on the order page, the team attaches the
PDF the tax system gave them, the buyer downloads it — and nobody else can."""

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.invoices import credit_code
from shop.invoices.models import InvoiceRequest
from shop.mail.delivery import deliver_due
from shop.mail.models import OutboxMessage
from shop.orders.services import apply_payment
from tests.builders import buyer, make_order, make_product, make_user
from tests.conftest import STAFF_PASSWORD, login

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
COMPANY = {"kind": "company", "title": "某某爱心科技有限公司", "tax_id": "91350100M000100Y43",
           "email": "finance@example.com"}  # fmt: skip


def paid_order(trade_no="T2026120480000001", **buyer_fields):
    wine = make_product(stock=20)
    order = make_order([(wine, 2)], buyer(**buyer_fields))
    assert apply_payment(order.order_no, trade_no, order.total_fen, paid=True).verdict == "paid"
    return order


@pytest.fixture
def staff(app):
    make_user(username="desk", password=STAFF_PASSWORD, role="staff")
    client = app.test_client()
    login(client, "desk", STAFF_PASSWORD)
    return client


def invoices() -> int:
    return db.session.scalar(select(func.count()).select_from(InvoiceRequest))


@pytest.mark.parametrize(
    ("code", "valid"),
    [("91350100M000100Y43", True), ("91110000802100433B", True), ("9131 0000 MA1F L4B2 4G", True),
     ("91350100M000100Y44", False), ("91350100M000100Y4", False), ("91350100M000100I43", False),
     ("", False)],
)  # fmt: skip
def test_the_credit_code_check_character(code, valid):
    assert credit_code.is_valid(code) is valid


def test_request_issue_and_download(app, client, staff):
    order = paid_order()
    page = client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert "申请发票" in page
    client.post(f"/orders/{order.token}/invoice", data=COMPANY)
    assert invoices() == 1
    assert "已申请" in client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert client.get(f"/orders/{order.token}/invoice.pdf").status_code == 404  # not yet
    queue = staff.get("/console/invoices").get_data(as_text=True)
    assert "某某爱心科技有限公司" in queue and "91350100M000100Y43" in queue
    invoice = db.session.scalar(select(InvoiceRequest))
    from io import BytesIO

    answer = staff.post(
        f"/console/invoices/{invoice.id}/issue",
        data={"pdf": (BytesIO(PDF), "fapiao.pdf")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 302
    download = client.get(f"/orders/{order.token}/invoice.pdf")
    assert download.status_code == 200 and download.data == PDF
    assert download.mimetype == "application/pdf"
    assert "attachment" in download.headers["Content-Disposition"]
    assert download.headers["Cache-Control"] == "no-store"
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "invoice_ready"))
    assert message.to_masked == "f***@example.com" and order.order_no in message.subject
    assert deliver_due().sent >= 1


def test_another_buyer_cannot_download_or_request(app, client, staff):
    mine = paid_order("T2026120480000011")
    other = paid_order("T2026120480000012", phone="13912340077")
    client.post(f"/orders/{mine.token}/invoice", data=COMPANY)
    invoice = db.session.scalar(select(InvoiceRequest))
    from io import BytesIO

    staff.post(
        f"/console/invoices/{invoice.id}/issue",
        data={"pdf": (BytesIO(PDF), "fapiao.pdf")},
        content_type="multipart/form-data",
    )
    assert client.get(f"/orders/{other.token}/invoice.pdf").status_code == 404
    assert client.get("/orders/not-a-token/invoice.pdf").status_code == 404
    assert client.get(f"/console/invoices/{invoice.id}.pdf").status_code == 302  # to login
    assert client.get("/console/invoices").status_code == 302


@pytest.mark.parametrize(
    "change",
    [{"tax_id": "91350100M000100Y44"}, {"tax_id": ""}, {"title": "某"}, {"email": "nope"},
     {"kind": "alien"}, {"title": "某某\x00公司"}],
)  # fmt: skip
def test_a_bad_request_is_named_and_writes_nothing(app, client, change):
    order = paid_order()
    client.post(f"/orders/{order.token}/invoice", data={**COMPANY, **change})
    assert invoices() == 0
    page = client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert "flash-error" in page


def test_an_unpaid_order_cannot_ask_and_one_order_asks_once(app, client):
    unpaid = make_order([(make_product(stock=5), 1)])
    client.post(f"/orders/{unpaid.token}/invoice", data=COMPANY)
    assert invoices() == 0
    order = paid_order(phone="13912340088")
    personal = {"kind": "personal", "title": "王小明", "tax_id": "", "email": "w@example.com"}
    client.post(f"/orders/{order.token}/invoice", data=personal)
    client.post(f"/orders/{order.token}/invoice", data=COMPANY)
    assert invoices() == 1
    assert db.session.scalar(select(InvoiceRequest)).kind == "personal"


@pytest.mark.parametrize(
    "upload",
    [b"", b"GIF89a not a pdf", b"%PDF-1.7 cut short", b"<html>%PDF-</html>"],
)
def test_only_a_whole_pdf_is_accepted_and_a_refusal_leaves_no_file(app, client, staff, upload):
    from io import BytesIO
    from pathlib import Path

    order = paid_order()
    client.post(f"/orders/{order.token}/invoice", data=COMPANY)
    invoice = db.session.scalar(select(InvoiceRequest))
    staff.post(
        f"/console/invoices/{invoice.id}/issue",
        data={"pdf": (BytesIO(upload), "x.pdf")},
        content_type="multipart/form-data",
    )
    db.session.expire_all()
    assert db.session.get(InvoiceRequest, invoice.id).status == "requested"
    folder = Path(app.config["UPLOAD_FOLDER"]) / "invoices"
    assert not folder.exists() or list(folder.iterdir()) == []
