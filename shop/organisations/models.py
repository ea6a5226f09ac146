"""Caring enterprises and units (爱心企业、单位) that buy as one buyer.

An :class:`Organisation` is registered by a signed-in buyer, who becomes its first
administrator; colleagues join with its invite code (a secret the administrators
share and can replace). Any member may order *for* the organisation: such an order
carries ``shop_order.organisation_id``, appears on the love board as the organisation
(one buyer with its total, :mod:`shop.boards.online`) and counts on the organisation's
impact page. The unified social credit code is unique and passes its check character
(GB 32100-2015, :mod:`shop.invoices.credit_code`); contact name, phone and e-mail are
PII, encrypted at rest. Until the village team verifies the unit, its members' orders
for it are held to each person's unpaid-order limits (shop/orders/holds.py).

A :class:`BulkUpload` is one recipients CSV placed as one order: one payment, one
invoice, one sale in the ledger, many parcels (:class:`BulkRecipient`, one per CSV
row, PII encrypted). ``(organisation_id, digest)`` is unique, so the same list
uploaded again — or twice at once from two browsers — places one order.
"""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import UTCDateTime, utcnow
from shop.extensions import db
from shop.pii import EncryptedText

ROLES = ("admin", "member")


class Organisation(db.Model):
    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    contact_name: Mapped[str] = mapped_column(EncryptedText())
    contact_phone: Mapped[str] = mapped_column(EncryptedText())
    contact_email: Mapped[str | None] = mapped_column(EncryptedText())
    # The invite colleagues join with (secrets.token_urlsafe); replacing it shuts the
    # old one out. Never shown to anyone but the organisation's members.
    invite_code: Mapped[str] = mapped_column(String(48), unique=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when the village team has checked the unit is real (a call to its contact, its
    # licence): only then do its orders get the organisation's larger unpaid-order room.
    # The check character proves a code is well formed, not that the unit exists.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    verified_by: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    members: Mapped[list["OrganisationMember"]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan"
    )


class OrganisationMember(db.Model):
    __tablename__ = "organisation_member"
    __table_args__ = (CheckConstraint("role IN ('admin', 'member')", name="role"),)

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(8), default="member")
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="members")


class BulkUpload(db.Model):
    __tablename__ = "bulk_upload"
    __table_args__ = (UniqueConstraint("organisation_id", "live_digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    # SHA-256 of the validated rows (not of the file's bytes: the same list saved by
    # another spreadsheet program, with other line endings or spacing, is the same list).
    digest: Mapped[str] = mapped_column(String(64))
    # The digest while the list's order may still be paid or is paid; NULL once that
    # order was cancelled (unpaid, expired), so the same list can be placed again. The
    # unique key on it is what makes an upload idempotent across processes.
    live_digest: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_order.id"), unique=True)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    recipients: Mapped[list["BulkRecipient"]] = relationship(
        order_by="BulkRecipient.row_no", cascade="all, delete-orphan"
    )


class BulkRecipient(db.Model):
    """One parcel of a bulk order: who receives how many of which product."""

    __tablename__ = "bulk_recipient"
    __table_args__ = (
        UniqueConstraint("upload_id", "row_no"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("bulk_upload.id"))
    row_no: Mapped[int]  # the CSV line, as the uploader's spreadsheet numbers it
    name: Mapped[str] = mapped_column(EncryptedText())
    phone: Mapped[str] = mapped_column(EncryptedText())
    address: Mapped[str] = mapped_column(EncryptedText())
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    product_name: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int]
