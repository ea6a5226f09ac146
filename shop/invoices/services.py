"""Asking for an invoice, issuing it with the tax system's PDF, and finding the file.

Each function owns its transaction. A refused request writes nothing; issuing writes
the file first (atomically, under a random name) and removes it again if the database
change does not commit, so no request points at a missing file and no orphan file is
left behind by a refusal.
"""

import os
import secrets
import tempfile
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from shop.db import transaction, utcnow
from shop.errors import UserError
from shop.extensions import db
from shop.invoices import credit_code
from shop.invoices.models import InvoiceRequest
from shop.mail.outbox import enqueue, is_email
from shop.orders.models import Order
from shop.orders.services import check_text

MAX_TITLE = 100
MAX_PDF_BYTES = 5 * 1024 * 1024
INVOICEABLE = ("paid", "shipped", "completed")


class InvoiceError(UserError):
    """A request or an upload the person can fix."""


def folder() -> Path:
    path = Path(current_app.config["UPLOAD_FOLDER"]) / "invoices"
    path.mkdir(parents=True, exist_ok=True)
    return path


def for_order(order_id: int) -> InvoiceRequest | None:
    return db.session.scalar(select(InvoiceRequest).where(InvoiceRequest.order_id == order_id))


def request_invoice(order: Order, kind: str, title: str, tax_id: str, email: str) -> InvoiceRequest:
    """Record the buyer's request for ``order`` (paid, not refunded); commit."""
    if order.status not in INVOICEABLE:
        raise InvoiceError(_("订单付款后才能申请发票。"))
    if for_order(order.id) is not None:
        raise InvoiceError(_("这个订单已经申请过发票。"))
    if kind not in ("personal", "company"):
        raise InvoiceError(_("请选择个人或单位发票。"), field="kind")
    title = check_text(title or "", "title", _("发票抬头")).strip()
    if not 2 <= len(title) <= MAX_TITLE:
        raise InvoiceError(_("请填写发票抬头（2到100个字）。"), field="title")
    tax_id = credit_code.normalise(tax_id)
    if kind == "company" and not credit_code.is_valid(tax_id):
        raise InvoiceError(_("请填写正确的18位统一社会信用代码（校验位不符）。"), field="tax_id")
    if kind == "personal":
        tax_id = ""
    email = (email or "").strip()
    if not is_email(email):
        raise InvoiceError(_("请填写接收发票的电子邮箱。"), field="email")
    with transaction(db.session):
        invoice = InvoiceRequest(
            order_id=order.id, kind=kind, title=title, tax_id=tax_id, email=email
        )
        db.session.add(invoice)
    return invoice


def pending(limit: int = 200) -> list[InvoiceRequest]:
    """Requests waiting for the team, oldest first."""
    return list(
        db.session.scalars(
            select(InvoiceRequest)
            .where(InvoiceRequest.status == "requested")
            .order_by(InvoiceRequest.requested_at, InvoiceRequest.id)
            .limit(limit)
        )
    )


def recently_issued(limit: int = 50) -> list[InvoiceRequest]:
    return list(
        db.session.scalars(
            select(InvoiceRequest)
            .where(InvoiceRequest.status == "issued")
            .order_by(InvoiceRequest.issued_at.desc())
            .limit(limit)
        )
    )


def _check_pdf(data: bytes) -> None:
    if not data:
        raise InvoiceError(_("请选择税务系统生成的 PDF 发票文件。"), field="pdf")
    if len(data) > MAX_PDF_BYTES:
        raise InvoiceError(_("发票文件不能超过 5 MB。"), field="pdf")
    # A PDF starts with its header and ends with %%EOF (allowing trailing whitespace).
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
        raise InvoiceError(_("这不是一个完整的 PDF 文件。"), field="pdf")


def _write(data: bytes) -> str:
    name = secrets.token_hex(16) + ".pdf"
    fd, temp = tempfile.mkstemp(dir=folder(), prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, folder() / name)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return name


def issue(invoice_id: int, pdf: bytes, by_user_id: int) -> InvoiceRequest:
    """Attach the tax system's PDF to a waiting request, mark it issued and e-mail the
    buyer (outbox, same transaction); commit."""
    _check_pdf(pdf)
    name = _write(pdf)
    try:
        with transaction(db.session):
            moved = db.session.execute(
                update(InvoiceRequest)
                .where(InvoiceRequest.id == invoice_id, InvoiceRequest.status == "requested")
                .values(status="issued", pdf_name=name, issued_at=utcnow(), issued_by_id=by_user_id)
                .execution_options(synchronize_session=False)
            ).rowcount
            if moved != 1:
                raise InvoiceError(_("这张发票已经开具，或申请不存在。"))
            invoice = db.session.get(InvoiceRequest, invoice_id, populate_existing=True)
            order = invoice.order
            base = current_app.config["PUBLIC_BASE_URL"]
            enqueue(
                f"invoice.issued:{invoice.id}",
                "invoice_ready",
                invoice.email,
                order.locale,
                order=order,
                invoice=invoice,
                order_url=f"{base}/orders/{order.token}",
            )
    except BaseException:
        (folder() / name).unlink(missing_ok=True)
        raise
    return invoice


def pdf_path(invoice: InvoiceRequest) -> Path | None:
    """The issued PDF's file, or None (not issued, or the file is missing)."""
    if invoice.status != "issued" or not invoice.pdf_name:
        return None
    path = folder() / invoice.pdf_name
    return path if path.is_file() else None
