"""Orders: what a buyer asked for, what they paid, and what was refunded.

An order line keeps its own copy of the product's name, unit, unit price and
beneficiary share, so history survives catalogue edits. ``order_no`` exists before
payment and is Alipay's ``out_trade_no``; ``token`` is the buyer's unguessable link.
Buyer name, phone and address are PII: encrypted at rest; the love board only ever
sees ``board_name`` (masked name, nickname or 爱心人士) and ``organization``.

Status moves only forward, and every move is a conditional UPDATE (``WHERE status =
<expected>``) so concurrent workers cannot both make it:
pending_payment → paid → shipped → completed; pending_payment → cancelled (expired or
closed); paid/shipped/completed → refunded once ``refunded_fen == total_fen``.
"""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import UTCDateTime, utcnow
from shop.extensions import db
from shop.pii import EncryptedText

ORDER_STATUSES = ("pending_payment", "paid", "shipped", "completed", "cancelled", "refunded")


class Order(db.Model):
    __tablename__ = "shop_order"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending_payment', 'paid', 'shipped', 'completed', 'cancelled', "
            "'refunded')",
            name="status",
        ),
        CheckConstraint("total_fen > 0", name="total_positive"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= total_fen", name="refund_bounds"),
        CheckConstraint("channel IN ('pc', 'wap', 'api')", name="channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending_payment", index=True)
    channel: Mapped[str] = mapped_column(String(8), default="pc")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)

    buyer_name: Mapped[str] = mapped_column(EncryptedText())
    buyer_phone: Mapped[str] = mapped_column(EncryptedText())
    phone_last4: Mapped[str] = mapped_column(String(4))
    shipping_address: Mapped[str] = mapped_column(EncryptedText())
    board_display: Mapped[str] = mapped_column(String(12), default="masked")
    board_name: Mapped[str] = mapped_column(String(40))
    organization: Mapped[str] = mapped_column(String(120), default="")
    # Set when a member ordered for a registered organisation (shop/organisations):
    # the love board then counts the organisation as the buyer.
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"), index=True)
    # Keyed digests (never the values) that unpaid-order limits count by; see
    # shop/orders/holds.py. NULL for orders placed before the limits or by staff tools.
    phone_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    client_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    # Where the order's e-mails go (optional, PII: encrypted) and in which language.
    email: Mapped[str | None] = mapped_column(EncryptedText())
    locale: Mapped[str] = mapped_column(
        String(16), default="zh_Hans_CN", server_default="zh_Hans_CN"
    )

    total_fen: Mapped[int]
    beneficiary_fen: Mapped[int] = mapped_column(default=0)
    refunded_fen: Mapped[int] = mapped_column(default=0)

    trade_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    carrier: Mapped[str] = mapped_column(String(40), default="")
    tracking_no: Mapped[str] = mapped_column(String(64), default="")

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str] = mapped_column(String(40), default="")

    lines: Mapped[list["OrderLine"]] = relationship(
        back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )
    refunds: Mapped[list["Refund"]] = relationship(
        back_populates="order", order_by="Refund.id", cascade="all, delete-orphan"
    )

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def refundable_fen(self) -> int:
        return self.total_fen - self.refunded_fen


class OrderLine(db.Model):
    """One product in an order, frozen at checkout.

    Invariant: ``line_total_fen = unit_price_fen × quantity``.
    """

    __tablename__ = "order_line"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("line_total_fen = unit_price_fen * quantity", name="line_total"),
        CheckConstraint("restocked >= 0 AND restocked <= quantity", name="restocked_bounds"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("shop_order.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    product_name: Mapped[str] = mapped_column(String(120))
    product_slug: Mapped[str] = mapped_column(String(80))
    unit: Mapped[str] = mapped_column(String(16))
    unit_price_fen: Mapped[int]
    quantity: Mapped[int]
    line_total_fen: Mapped[int]
    beneficiary_fen_per_unit: Mapped[int]
    # Units put back on the shelf by refunds; never more than were bought.
    restocked: Mapped[int] = mapped_column(default=0)

    order: Mapped[Order] = relationship(back_populates="lines")


class Refund(db.Model):
    """A refund request to Alipay. ``out_request_no`` is its idempotency key there and here."""

    __tablename__ = "refund"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("shop_order.id", ondelete="CASCADE"), index=True
    )
    out_request_no: Mapped[str] = mapped_column(String(64), unique=True)
    amount_fen: Mapped[int]
    reason: Mapped[str] = mapped_column(String(200), default="")
    # JSON {"<order line id>": units}: what goes back on the shelf when the refund succeeds.
    # Stored with the request so a retried refund restocks exactly what was asked.
    restock_items: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(12), default="pending")
    failure: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    order: Mapped[Order] = relationship(back_populates="refunds")
