"""A buyer's public impact card: opt-in, no personal data.

A buyer who chooses to share gets an unguessable link (``/impact/<slug>``) showing what
their paid orders gave each household (the same figures as "my impact", from the
ledger), under the name they chose for the love board: their masked name, nickname or
爱心人士 — taken from their saved details, 爱心人士 when there are none or they chose
anonymous. Their organisation appears only if they appear by name or nickname. Never
a phone, an address or a full name. Sharing stops when they delete the card; the old
link then answers 404.
"""

import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from shop.account import profile
from shop.account.services import Impact, my_impact
from shop.db import UTCDateTime, transaction, utcnow
from shop.extensions import db
from shop.public_identity import public_identity


class ImpactCard(db.Model):
    __tablename__ = "impact_card"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def card_of(user_id: int) -> ImpactCard | None:
    return db.session.get(ImpactCard, user_id)


def share(user_id: int) -> ImpactCard:
    """The buyer's card, made if they had none; commit."""
    card = card_of(user_id)
    if card is None:
        with transaction(db.session):
            card = ImpactCard(user_id=user_id, slug=secrets.token_urlsafe(16))
            db.session.add(card)
    return card


def stop_sharing(user_id: int) -> None:
    with transaction(db.session):
        db.session.execute(delete(ImpactCard).where(ImpactCard.user_id == user_id))


def public_card(slug: str) -> tuple[str, str, Impact] | None:
    """(label, organisation, impact) for a shared card, or None."""
    if not slug or len(slug) > 32 or "\x00" in slug:
        return None
    user_id = db.session.scalar(select(ImpactCard.user_id).where(ImpactCard.slug == slug))
    if user_id is None:
        return None
    saved = profile.load(user_id)
    if saved is None:
        label, organisation = public_identity("anonymous").label, ""
    else:
        label = public_identity(saved.board_display, saved.name, saved.nickname).label
        organisation = saved.organization if saved.board_display != "anonymous" else ""
    return label, organisation, my_impact(user_id)
