"""Recording an e-mail in the outbox, inside the caller's transaction.

:func:`enqueue` renders the message now, in the recipient's language, and adds its row
to the session the caller is about to commit; it never commits and never talks to an
SMTP server. An ``event_key`` recorded before is not recorded again.
"""

import re

from flask import render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from shop.db import utcnow
from shop.extensions import db
from shop.mail.models import OutboxMessage

# What the shop accepts as an e-mail address: one @, a dot in the domain, no spaces or
# control characters, at most 254 characters (RFC 5321's path limit). Deliverability is
# the SMTP server's to judge; this only keeps out what cannot be an address.
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+")
MAX_EMAIL = 254


def is_email(value: str) -> bool:
    return len(value) <= MAX_EMAIL and EMAIL.fullmatch(value) is not None


def mask_email(address: str) -> str:
    """w***@example.com: enough for staff to recognise, not to write to."""
    local, _sep, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def enqueue(event_key: str, kind: str, to: str, locale: str, **context) -> OutboxMessage | None:
    """Add the ``kind`` message for ``event_key`` to the session (no commit); None if that
    event already has its message or ``to`` is empty.

    The subject is ``mail/<kind>.subject.txt`` and the body ``mail/<kind>.txt``, both
    rendered with ``context`` under ``locale`` (the buyer's, e.g. ``en``).
    """
    if not to:
        return None
    if db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.event_key == event_key)):
        return None
    with force_locale(locale):
        subject = render_template(f"mail/{kind}.subject.txt", **context).strip()
        body = render_template(f"mail/{kind}.txt", **context).strip() + "\n"
        signature = _("连心集市 · 消费帮扶，连着每一户")
    message = OutboxMessage(
        event_key=event_key,
        kind=kind,
        to_address=to,
        to_masked=mask_email(to),
        locale=locale,
        subject=" ".join(subject.split())[:200],
        body=f"{body}\n-- \n{signature}\n",
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
    )
    db.session.add(message)
    return message
