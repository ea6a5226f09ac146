"""Accounts: creating users and checking passwords."""

from sqlalchemy import select

from shop.auth.models import ROLES, User, password_matches
from shop.db import utcnow
from shop.errors import UserError
from shop.extensions import db

MIN_PASSWORD_LENGTH = 8


class AccountError(UserError):
    """A user could not be created; the message says why (shown to the operator)."""


def create_user(username: str, password: str, role: str, display_name: str = "") -> User:
    """Create and commit a user with a scrypt-hashed password.

    Raises :class:`AccountError` for an unknown role, a short password or a taken name.
    """
    username = (username or "").strip()
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not username or len(username) > 80:
        raise AccountError("username must be 1–80 characters")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} already exists")
    user = User(username=username, role=role, display_name=display_name or username)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(username: str, password: str) -> User | None:
    """Return the active user with these credentials, or None. Records the login time."""
    user = db.session.scalar(select(User).where(User.username == (username or "").strip()))
    if not password_matches(user, password) or not user.active:
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user
