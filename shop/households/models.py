"""The programme's people and places: villages, the enterprise, registered households.

Household PII (head's name, resident ID number, bank card) is encrypted at rest;
``name_masked`` and ``card_last4`` are derived at write time for public display.
"""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import UTCDateTime, utcnow
from shop.extensions import db
from shop.pii import EncryptedText, mask_card, mask_name


class Village(db.Model):
    __tablename__ = "village"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    county: Mapped[str] = mapped_column(String(80), default="")
    province: Mapped[str] = mapped_column(String(80), default="")
    story: Mapped[str] = mapped_column(Text, default="")

    households: Mapped[list["Household"]] = relationship(back_populates="village")


class Enterprise(db.Model):
    """A producer or assistance enterprise (扶贫企业) that makes and sells products."""

    __tablename__ = "enterprise"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class Household(db.Model):
    """A registered household (建档立卡户) that receives a share of sales and income.

    Invariants: ``code`` is unique and never reused; ``members`` ≥ 1; ``land_mu`` ≥ 0;
    ``name_masked``/``card_last4`` always match the encrypted values (set them only
    through :meth:`set_head_name` and :meth:`set_bank_card`).
    """

    __tablename__ = "household"
    __table_args__ = (
        CheckConstraint("members >= 1", name="members_positive"),
        CheckConstraint("land_mu >= 0", name="land_mu_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), index=True)
    group_name: Mapped[str] = mapped_column(String(40), default="")
    members: Mapped[int] = mapped_column(default=1)

    head_name: Mapped[str] = mapped_column(EncryptedText())
    name_masked: Mapped[str] = mapped_column(String(40))
    id_number: Mapped[str | None] = mapped_column(EncryptedText())
    # Keyed digest of the ID number: finds duplicates without decrypting.
    id_number_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    bank_name: Mapped[str] = mapped_column(String(80), default="")
    bank_card: Mapped[str | None] = mapped_column(EncryptedText())
    card_last4: Mapped[str] = mapped_column(String(4), default="")

    # Benefit links of the "4+1" model (land transfer, employment, dividend, co-op).
    land_mu: Mapped[Decimal] = mapped_column(Numeric(8, 2), default=Decimal("0"))
    employed: Mapped[bool] = mapped_column(default=False)
    dividend: Mapped[bool] = mapped_column(default=False)
    coop_member: Mapped[bool] = mapped_column(default=False)

    active: Mapped[bool] = mapped_column(default=True)
    # When the bank card last changed on a registered household: a payout within
    # PAYOUT_CARD_HOLD_DAYS of it needs its own approval.
    card_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    village: Mapped[Village] = relationship(back_populates="households")

    def set_head_name(self, name: str) -> None:
        self.head_name = name
        self.name_masked = mask_name(name)

    def set_bank_card(self, card_number: str | None) -> None:
        digits = "".join(ch for ch in (card_number or "") if ch.isdigit())
        if self.id is not None and (digits or None) != self.bank_card:
            self.card_changed_at = utcnow()
        self.bank_card = digits or None
        self.card_last4 = digits[-4:] if digits else ""

    @property
    def card_masked(self) -> str:
        return mask_card(self.card_last4) if self.card_last4 else ""
