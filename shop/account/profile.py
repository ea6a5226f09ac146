"""A signed-in buyer's saved checkout details: where to ship, how to appear on the
love board (masked name, nickname or anonymous), the unit they buy for, their e-mail.

Saved from each order a signed-in buyer places (what big shopping apps do: the last
address is the next default) and editable on ``/account/profile``; name, phone,
address and e-mail are PII, encrypted at rest, and shown masked on the profile's
summary. Values are kept exactly as :func:`shop.orders.services.validate_buyer`
accepted them, so a saved profile always passes checkout's checks. One row per user.
"""

from sqlalchemy import ForeignKey, String, delete
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import transaction
from shop.extensions import db
from shop.orders.services import BuyerDetails, validate_buyer
from shop.pii import EncryptedText, mask_name, mask_phone
from shop.public_identity import public_identity


class BuyerProfile(db.Model):
    __tablename__ = "buyer_profile"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), primary_key=True)
    name: Mapped[str] = mapped_column(EncryptedText())
    phone: Mapped[str] = mapped_column(EncryptedText())
    address: Mapped[str] = mapped_column(EncryptedText())
    email: Mapped[str | None] = mapped_column(EncryptedText())
    board_display: Mapped[str] = mapped_column(String(12), default="masked")
    nickname: Mapped[str] = mapped_column(String(20), default="")
    organization: Mapped[str] = mapped_column(String(120), default="")


def load(user_id: int) -> BuyerDetails | None:
    row = db.session.get(BuyerProfile, user_id)
    if row is None:
        return None
    return BuyerDetails(
        name=row.name,
        phone=row.phone,
        address=row.address,
        board_display=row.board_display,
        nickname=row.nickname,
        organization=row.organization,
        email=row.email or "",
    )


def save(user_id: int, details: BuyerDetails) -> BuyerDetails:
    """Validate and keep ``details`` as the buyer's defaults; commit. Raises OrderError."""
    details = validate_buyer(details)
    with transaction(db.session):
        row = db.session.get(BuyerProfile, user_id) or BuyerProfile(user_id=user_id)
        row.name, row.phone, row.address = details.name, details.phone, details.address
        row.email = details.email or None
        row.board_display, row.nickname = details.board_display, details.nickname
        row.organization = details.organization
        db.session.add(row)
    return details


def forget(user_id: int) -> None:
    with transaction(db.session):
        db.session.execute(delete(BuyerProfile).where(BuyerProfile.user_id == user_id))


def summary(details: BuyerDetails) -> dict:
    """What the profile page shows of the saved details (masked PII)."""
    address = details.address
    return {
        "name": mask_name(details.name),
        "phone": mask_phone(details.phone),
        "address": address[:6] + "…" if len(address) > 6 else address,
        "email": details.email and (details.email[:1] + "***@" + details.email.partition("@")[2]),
        "appears_as": public_identity(details.board_display, details.name, details.nickname).label,
        "organization": details.organization,
    }
