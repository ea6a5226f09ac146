"""Two-factor login (TOTP, RFC 6238, with an authenticator app), lock-out and passwords.

* A code is six digits for a 30-second step; the step before and after are accepted
  (a phone's clock drifts), and never a step at or before the last one accepted, so a
  code seen over someone's shoulder cannot be used again.
* Recovery codes are shown once at enrolment and kept only as SHA-256 hashes — they are
  80 random bits each, so a fast hash is enough (there is nothing to guess from it).
* ``LOGIN_LOCK_AFTER`` failed passwords or codes in a row lock a staff or admin account
  for ``LOGIN_LOCK_MINUTES``; every failure, lock-out, enrolment and password change is
  in the audit log. Buyers are not locked out (anyone could lock a buyer out by typing
  their name); the login rate limit protects them.
"""

import hashlib
import json
import secrets
from datetime import timedelta

import pyotp
import segno
from flask import current_app
from sqlalchemy import select

from shop.audit.log import actor_for, note, record_now
from shop.auth.models import User
from shop.auth.services import MIN_PASSWORD_LENGTH, AccountError
from shop.db import utcnow
from shop.extensions import db

ISSUER = "连心集市 Lianxin Market"
STEP_SECONDS = 30
RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The enrolment QR code as an SVG ``data:`` URI (an <img>, allowed by the CSP)."""
    svg = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    return svg


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace("-", "").encode()).hexdigest()


def _current_step() -> int:
    return int(utcnow().timestamp()) // STEP_SECONDS


def _accept_totp(user: User, secret: str, code: str) -> bool:
    totp = pyotp.TOTP(secret)
    now = _current_step()
    for step in (now - 1, now, now + 1):
        if step > user.totp_last_step and secrets.compare_digest(
            totp.at(step * STEP_SECONDS), code
        ):
            user.totp_last_step = step
            return True
    return False


def enrol(user: User, secret: str, code: str) -> list[str] | None:
    """Turn on two-factor login if ``code`` is right for ``secret``; commits.

    Returns the recovery codes (to show once) or None when the code is wrong.
    """
    code = (code or "").strip()
    if not (code.isdigit() and len(code) == 6) or not _accept_totp(user, secret, code):
        db.session.rollback()
        return None
    codes = [
        "-".join([secrets.token_hex(5)[:5], secrets.token_hex(5)[:5]])
        for _ in range(RECOVERY_CODES)
    ]
    user.totp_secret = secret
    user.totp_enabled_at = utcnow()
    user.recovery_codes = json.dumps([_hash(c) for c in codes])
    note(db.session, "auth.2fa_enrolled", "user", user.id, actor=actor_for(user))
    db.session.commit()
    return codes


def check_second_factor(user: User, code: str) -> str | None:
    """Check a TOTP code or a recovery code; on success commit and return ``"totp"`` or
    ``"recovery"`` (the recovery code is used up). None (nothing committed) if wrong."""
    code = (code or "").strip()
    if not user.two_factor_enabled:
        return None
    if code.isdigit() and len(code) == 6:
        if _accept_totp(user, user.totp_secret, code):
            return "totp"
        db.session.rollback()
        return None
    hashes = json.loads(user.recovery_codes or "[]")
    digest = _hash(code)
    if code and digest in hashes:
        hashes.remove(digest)
        user.recovery_codes = json.dumps(hashes)
        note(
            db.session,
            "auth.recovery_code_used",
            "user",
            user.id,
            after={"recovery_codes_left": len(hashes)},
            actor=actor_for(user),
        )
        db.session.commit()
        return "recovery"
    return None


def recovery_codes_left(user: User) -> int:
    return len(json.loads(user.recovery_codes or "[]"))


def is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > utcnow()


def register_failure(user: User, what: str) -> bool:
    """Count a failed password or code for a staff or admin account (commits, audited);
    True when this failure locked the account."""
    if not user.has_role("staff"):
        return False
    config = current_app.config
    user.failed_logins = (user.failed_logins or 0) + 1
    actor = actor_for(user)
    if user.failed_logins >= config["LOGIN_LOCK_AFTER"]:
        user.locked_until = utcnow() + timedelta(minutes=config["LOGIN_LOCK_MINUTES"])
        user.failed_logins = 0
        note(db.session, "auth.login_failed", "user", user.id, after={"factor": what}, actor=actor)
        note(
            db.session,
            "auth.lockout",
            "user",
            user.id,
            after={"minutes": config["LOGIN_LOCK_MINUTES"]},
            actor=actor,
        )
        db.session.commit()
        return True
    record_now(
        db.session, "auth.login_failed", "user", user.id, after={"factor": what}, actor=actor
    )
    return False


def record_login(user: User, factor: str) -> None:
    """A completed login: reset the failure count, note the time (commits)."""
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = utcnow()
    if user.has_role("staff"):
        note(
            db.session,
            "auth.login",
            "user",
            user.id,
            after={"factor": factor},
            actor=actor_for(user),
        )
    db.session.commit()


def find_user(username: str) -> User | None:
    username = (username or "").strip()
    if "\x00" in username:
        return None  # no account has one, and PostgreSQL refuses to compare text with it
    return db.session.scalar(select(User).where(User.username == username))


def set_password(user: User, new_password: str, action: str) -> None:
    """Set a new password and sign the user out of every other session (commits).

    ``action``: ``auth.password_changed`` (by the user) or ``auth.password_reset``.
    """
    if len(new_password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    user.set_password(new_password)
    user.session_version = (user.session_version or 1) + 1
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None
    note(db.session, action, "user", user.id)
    db.session.commit()


def reset_two_factor(user: User) -> None:
    """Turn two-factor login off (a lost phone, by an operator); the user enrols again."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.recovery_codes = "[]"
    user.session_version = (user.session_version or 1) + 1
    note(db.session, "auth.2fa_reset", "user", user.id)
    db.session.commit()
