"""A proposed change waiting for (or decided by) a second admin."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime, utcnow
from shop.extensions import db
from shop.pii import EncryptedText

STATUSES = ("pending", "approved", "rejected", "expired", "failed")


class ChangeProposal(db.Model):
    """Invariants: ``decided_by_id`` ≠ ``proposed_by_id``; status leaves ``pending``
    exactly once (a conditional UPDATE), and an approved change was applied in the same
    transaction. ``payload`` (encrypted: it may hold a new card number) is what approval
    applies; ``before``/``after`` are JSON of masked values, what both admins and, for
    public kinds, everyone are shown. ``household_code`` names the household a change is
    about, for its public history.
    """

    __tablename__ = "change_proposal"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'expired', 'failed')", name="status"
        ),
        CheckConstraint(
            "decided_by_id IS NULL OR decided_by_id != proposed_by_id", name="four_eyes"
        ),
        Index("ix_change_proposal_status", "status", "proposed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    household_code: Mapped[str | None] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    payload: Mapped[str] = mapped_column(EncryptedText())
    before: Mapped[str] = mapped_column(Text, default="{}")
    after: Mapped[str] = mapped_column(Text, default="{}")
    public: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    proposed_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    proposed_by_name: Mapped[str] = mapped_column(String(80))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decided_by_name: Mapped[str] = mapped_column(String(80), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    reason: Mapped[str] = mapped_column(String(300), default="")
    # What applying it did (or why it could not), in the admin's words.
    outcome: Mapped[str] = mapped_column(Text, default="")
