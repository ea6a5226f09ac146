"""Carts of logged-in buyers (anonymous carts live in the signed session)."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime, utcnow
from shop.extensions import db


class CartItem(db.Model):
    """A logged-in buyer's cart line; anonymous carts live in the session and merge in at login."""

    __tablename__ = "cart_item"
    __table_args__ = (
        UniqueConstraint("user_id", "product_id", name="uq_cart_item_user_product"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id", ondelete="CASCADE"))
    quantity: Mapped[int]
    # Price seen when added, so checkout can flag a change instead of charging silently.
    seen_price_fen: Mapped[int]
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
