"""People who log in: buyers, the village team (staff) and administrators."""

from datetime import datetime
from functools import cache

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from shop.db import UTCDateTime, utcnow
from shop.extensions import db
from shop.pii import EncryptedText

ROLES = ("buyer", "staff", "admin")
# Each role may do everything the roles before it may.
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


@cache
def _nobodys_hash() -> str:
    return generate_password_hash("no such account", method="scrypt")


def password_matches(user: "User | None", password: str) -> bool:
    """Whether ``password`` is ``user``'s, at the cost of one scrypt check whoever asks:
    an unknown username is checked against a stand-in hash, so the answer's timing does
    not tell which usernames exist. The first call per process makes the stand-in."""
    if user is None:
        check_password_hash(_nobodys_hash(), password or "")
        return False
    return user.check_password(password or "")


class User(UserMixin, db.Model):
    __tablename__ = "user"
    __table_args__ = (CheckConstraint("role IN ('buyer', 'staff', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(80), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="buyer")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Two-factor login (TOTP, RFC 6238): the shared secret encrypted at rest; the last
    # time step accepted, so a code is never accepted twice; recovery codes as SHA-256
    # hashes (JSON list), each removed when used.
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText())
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    totp_last_step: Mapped[int] = mapped_column(default=0, server_default="0")
    recovery_codes: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # Failed password or code attempts in a row; at the limit the account is locked
    # until ``locked_until``.
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Part of the session's user id: raising it signs the user out everywhere.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp_enabled_at is not None

    def get_id(self) -> str:
        """The id kept in the session: ``<id>:<session_version>`` (see ``load_user``)."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active
