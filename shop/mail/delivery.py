"""Sending the outbox: the jobs worker's ``deliver_mail``.

Each due message is first *claimed* by a conditional UPDATE (``pending``, not claimed
or its claim expired) that sets a random token and ``claimed_until``, and committed:
of two workers — on one host or two — exactly one wins each message. The winner sends
it, then marks it ``sent`` where its token still holds. A message whose sending
failed goes back to ``pending`` with ``next_attempt_at`` pushed back exponentially
(``MAIL_RETRY_SECONDS`` × 2^(attempts − 1), at most six hours) until
``MAIL_MAX_ATTEMPTS``; a permanent refusal (SMTP 5xx: no such mailbox) fails it at
once. SMTP being down therefore loses nothing: the rows wait.

What this cannot promise is exactly-once *delivery*: a worker killed after the SMTP
server accepted a message but before it marked the row sent leaves the claim to
expire (``MAIL_CLAIM_SECONDS``) and the message is sent again. Its ``Message-ID`` is
the same both times (derived from the row), which lets mail systems drop the twin.

Transport: SMTP when ``SMTP_HOST`` is set (``SMTP_PORT``, ``SMTP_STARTTLS``,
``SMTP_USERNAME``/``SMTP_PASSWORD``, from ``MAIL_FROM``); otherwise, outside
production, the message is written to the log and counts as sent (development);
in production without ``SMTP_HOST`` nothing is sent and the messages wait.
"""

import logging
import secrets
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate

from flask import current_app
from sqlalchemy import or_, select, update

from shop.db import utcnow
from shop.extensions import db
from shop.mail.models import OutboxMessage

log = logging.getLogger("shop.mail")
MAX_BACKOFF = timedelta(hours=6)


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0  # claimed by another worker first
    waiting: int = 0  # not sent: no SMTP server configured

    def summary(self) -> str:
        return (
            f"mail: sent {self.sent}, retrying {self.retrying}, failed {self.failed}, "
            f"taken by another worker {self.skipped}, waiting for SMTP {self.waiting}"
        )


class PermanentFailure(Exception):
    """The server refused the message for good (e.g. 550 no such mailbox)."""


def message_id(message: OutboxMessage) -> str:
    domain = current_app.config["MAIL_FROM"].rpartition("@")[2].strip("> ") or "localhost"
    return f"<lianxin-{message.id}-{message.event_key.replace(':', '.')}@{domain}>"


def build_email(message: OutboxMessage) -> EmailMessage:
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email["Message-ID"] = message_id(message)
    email["Date"] = formatdate(localtime=False)
    email.set_content(message.body)  # (clears Content-* headers: set them after)
    email["Content-Language"] = "en" if message.locale.startswith("en") else "zh-CN"
    return email


def _send_smtp(email: EmailMessage) -> None:
    config = current_app.config
    try:
        with smtplib.SMTP(
            config["SMTP_HOST"], config["SMTP_PORT"], timeout=config["SMTP_TIMEOUT_SECONDS"]
        ) as server:
            if config["SMTP_STARTTLS"]:
                server.starttls()
            if config["SMTP_USERNAME"]:
                server.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"] or "")
            server.send_message(email)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _text in error.recipients.values()]
        if all(500 <= code < 600 for code in codes):
            raise PermanentFailure(str(error.recipients)) from error
        raise
    except smtplib.SMTPResponseException as error:
        if 500 <= error.smtp_code < 600 and error.smtp_code not in (530, 535):
            raise PermanentFailure(f"{error.smtp_code} {error.smtp_error!r}") from error
        raise


def _claim(message_id_: int, now: datetime) -> str | None:
    token = secrets.token_hex(16)
    claimed = db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id_,
            OutboxMessage.status == "pending",
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )
        .values(
            claimed_by=token,
            claimed_until=now + timedelta(seconds=current_app.config["MAIL_CLAIM_SECONDS"]),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return token if claimed == 1 else None


def _settle(message_id_: int, token: str, **values) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id_, OutboxMessage.claimed_by == token)
        .values(claimed_by="", claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def deliver_due(now: datetime | None = None, limit: int = 100) -> DeliveryReport:
    """Send up to ``limit`` due messages, oldest first; commits per message."""
    now = now or utcnow()
    config = current_app.config
    report = DeliveryReport()
    smtp = bool(config.get("SMTP_HOST"))
    due = list(
        db.session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
            .where(or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
    )
    db.session.commit()
    if not smtp and config["ENV_NAME"] == "production":
        report.waiting = len(due)
        if due:
            log.warning("SMTP_HOST is not set: %d e-mails are waiting in the outbox", len(due))
        return report
    for number in due:
        token = _claim(number, now)
        if token is None:
            report.skipped += 1
            continue
        message = db.session.get(OutboxMessage, number)
        email = build_email(message)
        attempts = message.attempts + 1
        try:
            if smtp:
                _send_smtp(email)
            else:
                log.info(
                    "e-mail (no SMTP_HOST, development)\nTo: %s\nSubject: %s\n\n%s",
                    message.to_address,
                    message.subject,
                    message.body,
                )
        except PermanentFailure as error:
            _settle(number, token, status="failed", attempts=attempts, last_error=str(error)[:300])
            report.failed += 1
            log.warning("e-mail %s refused for good: %s", message.event_key, error)
        except (OSError, smtplib.SMTPException) as error:
            failed = attempts >= config["MAIL_MAX_ATTEMPTS"]
            delay = timedelta(seconds=config["MAIL_RETRY_SECONDS"] * 2 ** (attempts - 1))
            _settle(
                number,
                token,
                status="failed" if failed else "pending",
                attempts=attempts,
                next_attempt_at=now + min(delay, MAX_BACKOFF),
                last_error=f"{type(error).__name__}: {error}"[:300],
            )
            report.failed += failed
            report.retrying += not failed
            log.warning("e-mail %s not sent (attempt %d): %s", message.event_key, attempts, error)
        else:
            _settle(number, token, status="sent", attempts=attempts, sent_at=utcnow())
            report.sent += 1
    return report
