"""What the jobs worker knows across hosts: each job's schedule state, and its runs.

``job_state`` holds one row per job: when it last started and finished, and (SQLite)
who holds its lease until when. ``job_run`` records every run, kept for the operator
("did last night's payouts run, where, and how did they end?").
"""

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import UTCDateTime, utcnow
from shop.extensions import db


class JobState(db.Model):
    __tablename__ = "job_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_outcome: Mapped[str] = mapped_column(String(16), default="")
    # SQLite has no advisory locks: a lease row, taken by a conditional UPDATE.
    lease_holder: Mapped[str] = mapped_column(String(120), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobRun(db.Model):
    __tablename__ = "job_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), index=True)
    holder: Mapped[str] = mapped_column(String(120))  # host:pid
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(16), default="running")  # ok | failed
    detail: Mapped[str] = mapped_column(Text, default="")
