"""Running periodic jobs so each runs once at a time across every host.

A job is *due* by its schedule (an interval since it last finished, or a time of day in
Asia/Shanghai) and is *claimed* before it runs:

- on PostgreSQL by a session-level advisory lock, taken on a connection of its own and
  held for the whole run — a second worker on any host gets ``false`` and skips; a
  worker that dies loses its connection, the lock goes with it, and the job is due again
  at the next tick (every job is safe to run again halfway: each of its steps is made
  once by the database's row locks and unique keys);
- on SQLite by a lease on the job's row (``lease_until``), taken with a conditional
  UPDATE; a dead worker's lease expires after ``JOBS_LEASE_SECONDS``;

and in both cases by a compare-and-set of the row's ``last_started_at``, so two workers
that both found the job due at the same moment cannot both start it. Every run is
recorded in ``job_run`` with its outcome.
"""

import hashlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time

from flask import current_app
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shop.db import utcnow
from shop.extensions import db
from shop.formatting import SHANGHAI
from shop.jobs.models import JobRun, JobState

log = logging.getLogger("shop.jobs")
_REGISTRY = "jobs"
_STATE = JobState.__table__


@dataclass(frozen=True)
class Job:
    """``run()`` does the work (owning its transactions) and returns a one-line summary;
    it raises when the run failed. Due every ``every`` since it last finished, or — with
    ``at`` (``"10:00"``, Asia/Shanghai) — once a day from that time on."""

    name: str
    run: Callable[[], str]
    every: timedelta = timedelta(minutes=1)
    at: str | None = None

    def is_due(self, now: datetime, last_finished: datetime | None) -> bool:
        if self.at is None:
            return last_finished is None or now - last_finished >= self.every
        hour, minute = (int(part) for part in self.at.split(":"))
        local = now.astimezone(SHANGHAI)
        start = datetime.combine(local.date(), clock_time(hour, minute), tzinfo=SHANGHAI)
        if local < start:
            return False
        return last_finished is None or last_finished < start


@dataclass
class RunResult:
    name: str
    outcome: str  # ok | failed
    detail: str
    seconds: float


def register_job(app, job: Job) -> None:
    app.extensions.setdefault(_REGISTRY, {})[job.name] = job


def registered_jobs() -> list[Job]:
    return list(current_app.extensions.get(_REGISTRY, {}).values())


def holder() -> str:
    """Who runs a job: ``host:pid`` (written to job_state and job_run)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def _advisory_key(name: str) -> int:
    # A stable signed 64-bit key per job name (PostgreSQL's advisory lock space).
    digest = hashlib.sha256(f"lianxin-job:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _ensure_state_rows(names: list[str]) -> None:
    dialect = db.session.get_bind().dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(
        insert_(_STATE).on_conflict_do_nothing(index_elements=["name"]),
        [{"name": name, "last_outcome": "", "lease_holder": ""} for name in names],
    )
    db.session.commit()


class _Claim:
    """A claimed job: release() ends the lease/lock whatever happened."""

    def __init__(self, name: str, run_id: int, connection=None):
        self.name, self.run_id, self._connection = name, run_id, connection

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _advisory_key(self.name)}
                )
            finally:
                self._connection.close()  # closing would release it anyway


def _claim(job: Job, now: datetime) -> _Claim | None:
    """Take the job if it is due and nobody runs it; None otherwise."""
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    connection = None
    if postgresql:
        connection = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        locked = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": _advisory_key(job.name)}
        ).scalar()
        if not locked:
            connection.close()
            return None
    try:
        state = db.session.execute(
            select(_STATE.c.last_started_at, _STATE.c.last_finished_at, _STATE.c.lease_until).where(
                _STATE.c.name == job.name
            )
        ).one()
        leased = not postgresql and state.lease_until is not None and state.lease_until > now
        if leased or not job.is_due(now, state.last_finished_at):
            db.session.rollback()
            raise LookupError
        lease_seconds = current_app.config["JOBS_LEASE_SECONDS"]
        me = holder()
        taken = db.session.execute(
            update(_STATE)
            .where(
                _STATE.c.name == job.name,
                _STATE.c.last_started_at.is_not_distinct_from(state.last_started_at),
            )
            .values(
                last_started_at=now,
                lease_holder=me,
                lease_until=now + timedelta(seconds=lease_seconds),
            )
        ).rowcount
        if taken != 1:
            db.session.rollback()
            raise LookupError
        run_id = db.session.execute(
            insert(JobRun.__table__)
            .values(name=job.name, holder=me, started_at=now, outcome="running", detail="")
            .returning(JobRun.__table__.c.id)
        ).scalar_one()
        db.session.commit()
    except LookupError:
        if connection is not None:
            _Claim(job.name, 0, connection).release()
        return None
    except Exception:
        db.session.rollback()
        if connection is not None:
            _Claim(job.name, 0, connection).release()
        raise
    return _Claim(job.name, run_id, connection)


def _finish(claim: _Claim, outcome: str, detail: str, finished: datetime) -> None:
    db.session.rollback()  # whatever the job left open is not ours to commit
    # An interrupted run did not finish: the job stays due.
    ended = {} if outcome == "interrupted" else {"last_finished_at": finished}
    db.session.execute(
        update(_STATE)
        .where(_STATE.c.name == claim.name)
        .values(**ended, last_outcome=outcome, lease_until=None)
    )
    db.session.execute(
        update(JobRun.__table__)
        .where(JobRun.__table__.c.id == claim.run_id)
        .values(finished_at=finished, outcome=outcome, detail=detail[:2000])
    )
    db.session.commit()


def _later(started_at: datetime, started: float) -> datetime:
    """When a run that started at ``started_at`` (perf counter ``started``) finished, on
    the same clock (a tick given its own ``now`` keeps it)."""
    return started_at + timedelta(seconds=time.perf_counter() - started)


def run_due(now: datetime | None = None, only: set[str] | None = None) -> list[RunResult]:
    """One pass: run every due job nobody else is running; return what ran."""
    jobs = [job for job in registered_jobs() if only is None or job.name in only]
    if not jobs:
        return []
    _ensure_state_rows([job.name for job in jobs])
    results = []
    for job in jobs:
        started_at = now or utcnow()
        claim = _claim(job, started_at)
        if claim is None:
            continue
        started = time.perf_counter()
        try:
            try:
                detail, outcome = job.run() or "", "ok"
            except Exception as error:  # a failed job is recorded; the others still run
                log.exception("job %s failed", job.name)
                detail, outcome = f"{type(error).__name__}: {error}", "failed"
            except BaseException:  # stopped from outside (Ctrl-C): due again next time
                _finish(claim, "interrupted", "", _later(started_at, started))
                raise
            _finish(claim, outcome, detail, _later(started_at, started))
        finally:
            claim.release()
        seconds = time.perf_counter() - started
        log.info("job %s %s in %.2fs: %s", job.name, outcome, seconds, detail)
        results.append(RunResult(job.name, outcome, detail, seconds))
    return results


def run_forever(max_seconds: float | None = None, echo=print) -> None:
    """Tick every ``JOBS_POLL_SECONDS`` until SIGTERM/SIGINT (or ``max_seconds``). A
    signal lets the job in hand finish: the worker stops between jobs, never in one."""
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        echo(f"jobs: signal {signum}, stopping after the job in hand")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    poll = current_app.config["JOBS_POLL_SECONDS"]
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    echo(f"jobs: worker {holder()} started, {len(registered_jobs())} jobs, every {poll}s")
    try:
        while not stopping and (deadline is None or time.monotonic() < deadline):
            try:
                for result in run_due():
                    echo(f"{result.name}: {result.outcome} ({result.seconds:.2f}s) {result.detail}")
            except Exception:  # the database may be away for a while: keep the worker
                db.session.rollback()
                log.exception("jobs: tick failed; trying again in %ss", poll)
            wait_until = time.monotonic() + poll
            while not stopping and time.monotonic() < wait_until:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo("jobs: worker stopped")


def job_status_lines(now: datetime | None = None) -> list[str]:
    """One line per registered job: its schedule, last run and whether it is due."""
    now = now or utcnow()
    jobs = registered_jobs()
    _ensure_state_rows([job.name for job in jobs])
    states = {row.name: row for row in db.session.execute(select(_STATE))}
    lines = []
    for job in jobs:
        state = states[job.name]
        when = f"daily from {job.at}" if job.at else f"every {int(job.every.total_seconds())}s"
        last = (
            state.last_finished_at.isoformat(timespec="seconds")
            if state.last_finished_at
            else "never"
        )
        due = "due" if job.is_due(now, state.last_finished_at) else "not due"
        lines.append(
            f"{job.name}: {when}; last finished {last} ({state.last_outcome or '-'}); {due}"
        )
    return lines
