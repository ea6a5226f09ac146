"""Personal API tokens: a buyer reads their own orders and impact from the JSON API.

A token is ``lx_`` + 32 random bytes (URL-safe base64), shown to its owner once, when
made; only its SHA-256 is stored (a random 256-bit secret needs no slow hash), with the
first characters kept so the owner can tell their tokens apart. A token is sent as
``Authorization: Bearer lx_…``; a revoked one never works again. At most
``MAX_TOKENS`` live tokens per account.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import ForeignKey, String, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime, transaction, utcnow
from shop.errors import UserError
from shop.extensions import db
from shop.orders.services import check_text

PREFIX = "lx_"
MAX_TOKENS = 10
MAX_NAME = 40
# A token's last use is written at most this often (a read should not write every time).
TOUCH_EVERY = timedelta(minutes=5)


class ApiToken(db.Model):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    shown_prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def live_tokens(user_id: int) -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.id)
        )
    )


def create(user_id: int, name: str) -> tuple[ApiToken, str]:
    """Make a token; return it and its secret (shown once, never stored); commit."""
    name = check_text(name or "", "name", _("名称")).strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise UserError(_("请给令牌起个名字（不超过40个字）。"), field="name")
    with transaction(db.session):
        live = db.session.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        )
        if live >= MAX_TOKENS:
            raise UserError(_("最多同时保留 %(n)d 个令牌，请先撤销不用的。", n=MAX_TOKENS))
        secret = PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            user_id=user_id, name=name, digest=_digest(secret), shown_prefix=secret[:10]
        )
        db.session.add(token)
    return token, secret


def revoke(user_id: int, token_id: int) -> bool:
    """Revoke one of the user's tokens; commit. False if it is not theirs or gone."""
    revoked = db.session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return revoked == 1


def user_for(authorization: str | None) -> int | None:
    """The user id a ``Bearer`` header's live token belongs to, or None."""
    scheme, _sep, secret = (authorization or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.digest == _digest(secret), ApiToken.revoked_at.is_(None))
    )
    if token is None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        token.last_used_at = now
        db.session.commit()
    return token.user_id
