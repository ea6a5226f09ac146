"""The transactional outbox: every e-mail the shop owes someone, as a row.

A message is written in the same database transaction as the change that causes it
(an order placed, paid, shipped, refunded), so it exists exactly when the change does:
a rolled-back payment leaves no "payment received" e-mail, and a committed one always
has its e-mail, whatever happens to the SMTP server. ``event_key`` is unique: one
event, one message, however often the code that records it runs (a notification
re-sent by Alipay, a retried job).

The recipient's address is PII: encrypted at rest, shown to staff masked
(``to_masked``). Subject and body are rendered when the event happens, in the
buyer's language, so the e-mail says what was true then.

Status: ``pending`` (waiting, or being sent by the worker holding ``claimed_until``)
→ ``sent``; or → ``failed`` after ``MAIL_MAX_ATTEMPTS`` tries or a permanent refusal
(kept, with ``last_error``, for the village team to see).
"""

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime, utcnow
from shop.extensions import db
from shop.pii import EncryptedText

MESSAGE_STATUSES = ("pending", "sent", "failed")


class OutboxMessage(db.Model):
    __tablename__ = "outbox_message"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_outbox_message_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    to_address: Mapped[str] = mapped_column(EncryptedText())
    to_masked: Mapped[str] = mapped_column(String(80))
    locale: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The worker sending it now (a random token) and until when its claim holds.
    claimed_by: Mapped[str] = mapped_column(String(40), default="")
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
