"""The catalogue: categories, products and their photos.

Money columns are integer fen. A product's ``beneficiary_fen_per_unit`` is the share
of each unit sold that goes to households (shown as "每瓶 ¥20 直达农户"); the ledger's
benefit rules take over the exact split when sales are posted.
"""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import UTCDateTime, utcnow
from shop.extensions import db

PRODUCT_STATUSES = ("draft", "published", "archived")


class Category(db.Model):
    __tablename__ = "category"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(60), default="")
    position: Mapped[int] = mapped_column(default=0)

    products: Mapped[list["Product"]] = relationship(back_populates="category")


class Product(db.Model):
    """A product on sale. Invariants: 0 ≤ beneficiary_fen_per_unit ≤ price_fen; stock ≥ 0."""

    __tablename__ = "product"
    __table_args__ = (
        CheckConstraint("price_fen > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_nonnegative"),
        CheckConstraint(
            "beneficiary_fen_per_unit >= 0 AND beneficiary_fen_per_unit <= price_fen",
            name="beneficiary_within_price",
        ),
        CheckConstraint("status IN ('draft', 'published', 'archived')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120), index=True)
    subtitle: Mapped[str] = mapped_column(String(200), default="")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"))
    price_fen: Mapped[int]
    stock: Mapped[int] = mapped_column(default=0)
    unit: Mapped[str] = mapped_column(String(16), default="瓶")
    beneficiary_fen_per_unit: Mapped[int] = mapped_column(default=0)
    origin: Mapped[str] = mapped_column(String(120), default="")
    producer: Mapped[str] = mapped_column(String(120), default="")
    story: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    featured: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    category: Mapped[Category | None] = relationship(back_populates="products")
    photos: Mapped[list["ProductPhoto"]] = relationship(
        back_populates="product",
        order_by="ProductPhoto.position",
        cascade="all, delete-orphan",
    )

    @property
    def is_published(self) -> bool:
        return self.status == "published"

    @property
    def cover(self) -> "ProductPhoto | None":
        for photo in self.photos:
            if photo.is_cover:
                return photo
        return self.photos[0] if self.photos else None


class ProductPhoto(db.Model):
    """One uploaded photo, stored as re-encoded JPEGs named ``<key>-<width>.jpg``.

    ``key`` is the SHA-256 of the normalised image, so the same picture uploaded twice
    shares its files; ``widths`` lists the stored sizes, smallest first.
    """

    __tablename__ = "product_photo"
    __table_args__ = (UniqueConstraint("product_id", "key", name="uq_product_photo_product_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("product.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(64))
    widths: Mapped[str] = mapped_column(String(40))
    width: Mapped[int]
    height: Mapped[int]
    position: Mapped[int] = mapped_column(default=0)
    is_cover: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    product: Mapped[Product] = relationship(back_populates="photos")

    @property
    def width_list(self) -> list[int]:
        return [int(w) for w in self.widths.split(",") if w]

    def filename(self, width: int | None = None) -> str:
        """File name for the stored size nearest ≥ ``width`` (largest when None)."""
        sizes = self.width_list
        chosen = sizes[-1]
        if width is not None:
            chosen = next((w for w in sizes if w >= width), sizes[-1])
        return f"{self.key}-{chosen}.jpg"
