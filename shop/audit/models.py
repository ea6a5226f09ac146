"""Tables of the audit log. Rows of ``audit_log`` are never updated or deleted
(PostgreSQL triggers refuse both); ``audit_head`` names the last row, locked to append."""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime
from shop.extensions import db


class AuditRecord(db.Model):
    """One recorded action.

    Invariants: ``seq`` runs 1, 2, 3, … without gaps; ``hash`` = SHA-256 over the
    record's canonical fields and ``prev_hash`` (see :mod:`shop.audit.chain`), and
    ``prev_hash`` is the previous record's ``hash`` (64 zeros for the first).
    ``summary`` is JSON of masked before → after values, never PII in the clear;
    ``ledger_keys`` is JSON: the keys of the ledger postings this action caused.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_object", "object_type", "object_id"),
        Index("ix_audit_log_actor_id", "actor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # ISO text exactly as hashed, so the chain never depends on how a database rounds time.
    created_at_text: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None]
    actor_name: Mapped[str] = mapped_column(String(80))
    # staff / admin / buyer / system (the CLI, the jobs worker) / anonymous (a login try)
    actor_role: Mapped[str] = mapped_column(String(16))
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    request_id: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    summary: Mapped[str] = mapped_column(Text, default="{}")
    ledger_keys: Mapped[str] = mapped_column(Text, default="[]")
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(db.Model):
    """The single row (id 1): how many records the log holds and the last one's hash.

    ``ledger_from`` is the number of ledger transactions that existed when the log
    began: postings before it predate the log and are not asked for a record.
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    ledger_from: Mapped[int] = mapped_column(BigInteger, default=0)
