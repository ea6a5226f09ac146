"""Invoice requests (发票): a buyer asks, the village team issues it in the tax system
and attaches the PDF the tax system produced; the buyer downloads it.

The shop never invents an invoice number or an invoice: ``pdf_name`` is the file the
team uploaded, stored under ``UPLOAD_FOLDER/invoices/`` with a random name and served
only to whoever holds the order's token (or to staff). One request per order
(``order_id`` unique). Status: ``requested`` → ``issued``.
"""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import UTCDateTime, utcnow
from shop.extensions import db
from shop.orders.models import Order
from shop.pii import EncryptedText


class InvoiceRequest(db.Model):
    __tablename__ = "invoice_request"
    __table_args__ = (
        CheckConstraint("kind IN ('personal', 'company')", name="kind"),
        CheckConstraint("status IN ('requested', 'issued')", name="status"),
        CheckConstraint("kind = 'personal' OR tax_id != ''", name="company_has_tax_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(12))
    title: Mapped[str] = mapped_column(String(100))  # 发票抬头: a person's or company's name
    tax_id: Mapped[str] = mapped_column(String(18), default="")  # 统一社会信用代码
    email: Mapped[str] = mapped_column(EncryptedText())
    status: Mapped[str] = mapped_column(String(12), default="requested", index=True)
    pdf_name: Mapped[str] = mapped_column(String(64), default="")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    order: Mapped[Order] = relationship()
