"""Writing the audit log: one record per committed change, in the same transaction.

How it works (installed on the app's session by :func:`install`):

* services name what they do with :func:`note` (an action, the object, a masked before →
  after, the ledger postings it causes); the note waits in ``session.info``;
* while the transaction runs, every ORM insert, update and delete is captured, masked,
  as it is flushed, and every SQL UPDATE/INSERT/DELETE statement by the table it hits;
* just before the commit, the notes are written as audit records, chained to the last
  record under a row lock on ``audit_head`` — inside the transaction, so a change and
  its record commit together or not at all;
* a transaction by a staff member or admin that changed something but named nothing
  still gets one record, named after the route (``console.ship_order``) with the URL's
  ids as its object: a change by staff without its record cannot be committed.

A rollback discards the notes with the changes. Values are masked as they are captured
(:func:`masked`), so the log never holds a name, ID number or card in the clear.
"""

import contextvars
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import event, inspect, select

from shop.audit.chain import GENESIS, record_hash
from shop.audit.models import AuditHead, AuditRecord
from shop.db import utcnow
from shop.pii import EncryptedText, mask_card, mask_id_number, mask_name, mask_phone
from shop.request_log import request_id

_NOTES = "audit_notes"
_CHANGES = "audit_changes"
_STATEMENTS = "audit_statements"
_ANSWER = "audit_outside_answer"
# Derived or bookkeeping tables: writing them is not a change a person makes.
UNAUDITED_TABLES = frozenset(
    {
        "audit_log",
        "audit_head",
        "job_run",
        "job_state",
        "board_feed",
        "board_feed_household",
        "board_household",
        "board_household_month",
        "board_month",
        "board_period",
        "board_rank",
        "board_state",
    }
)
# Never copied into the log, not even masked.
SECRET_COLUMNS = frozenset(
    {"password_hash", "totp_secret", "recovery_codes", "id_number_digest", "session_version"}
)
# How a sensitive column is shown; any other encrypted column shows only that it changed.
_MASKS = {
    "head_name": mask_name,
    "account_name": mask_name,
    "bank_card": mask_card,
    "id_number": mask_id_number,
    "phone": mask_phone,
}
MAX_CAPTURED = 40  # changed rows listed per record; the rest are counted
STAFF_ROLES = ("staff", "admin")

_system_actor: contextvars.ContextVar[str] = contextvars.ContextVar(
    "audit_system_actor", default="system"
)


@dataclass(frozen=True)
class Actor:
    id: int | None
    name: str
    role: str
    client_addr: str = ""
    request_id: str = ""


@dataclass
class Note:
    action: str
    object_type: str = ""
    object_id: str = ""
    before: dict | None = None
    after: dict | None = None
    ledger_keys: list[str] = field(default_factory=list)
    actor: Actor | None = None


@contextmanager
def acting_as(name: str):
    """Name the actor of work done outside a request (``cli``, ``jobs``)."""
    token = _system_actor.set(name)
    try:
        yield
    finally:
        _system_actor.reset(token)


def current_actor() -> Actor:
    """Who is acting now: the logged-in user of this request, else the named system."""
    if has_request_context():
        addr = (request.remote_addr or "")[:64]
        rid = request_id()
        if current_user and current_user.is_authenticated:
            return Actor(
                current_user.id,
                current_user.display_name or current_user.username,
                current_user.role,
                addr,
                rid,
            )
        return Actor(None, "anonymous", "anonymous", addr, rid)
    return Actor(None, _system_actor.get(), "system")


def actor_for(user, base: Actor | None = None) -> Actor:
    """An actor for ``user`` in this request's context (before they are logged in)."""
    base = base or current_actor()
    return Actor(
        user.id,
        user.display_name or user.username,
        user.role,
        base.client_addr,
        base.request_id,
    )


def masked(column_name: str, value, encrypted: bool = False):
    """A value as the log may keep it: PII masked, times as ISO text, long text cut."""
    if value is None:
        return None
    mask = _MASKS.get(column_name)
    if mask is not None:
        return mask(str(value))
    if encrypted:
        return "•••"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def note(
    session,
    action: str,
    object_type: str = "",
    object_id="",
    before: dict | None = None,
    after: dict | None = None,
    ledger_keys=(),
    actor: Actor | None = None,
) -> None:
    """Record ``action`` with the transaction ``session`` is in, at its commit.

    ``before``/``after`` must already be masked (use :func:`masked`). ``ledger_keys``
    names the ledger postings this action causes (now or later, e.g. a refund Alipay
    confirms tomorrow) so ``flask audit verify`` can find who caused each.
    """
    session.info.setdefault(_NOTES, []).append(
        Note(action, object_type, str(object_id), before, after, list(ledger_keys), actor)
    )


def _worth_capturing(session) -> bool:
    """Rows are captured for staff requests and for transactions that named an action;
    a buyer's checkout or Alipay's notification (the hot paths) pays nothing for it."""
    if session.info.get(_NOTES):
        return True
    if has_request_context():
        user = current_user
        return bool(user and user.is_authenticated and user.role in STAFF_ROLES)
    return False


def outside_answer(session) -> None:
    """Mark the current transaction as recording an outside party's answer (Alipay's
    "paid", "refunded", a retry counter), not a person's decision: it gets no fallback
    record, though a staff request runs it, just as when the jobs worker runs it. The
    decision that caused it — the refund asked for, the payout started — has its own."""
    session.info[_ANSWER] = True


def _capture_flush(session, _flush_context) -> None:
    if not _worth_capturing(session):
        return
    changes = session.info.setdefault(_CHANGES, [])
    for op, objects in (
        ("insert", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in objects:
            table = getattr(obj, "__tablename__", "")
            if not table or table in UNAUDITED_TABLES:
                continue
            state = inspect(obj)
            diff = {}
            for attr in state.mapper.column_attrs:
                column = attr.columns[0]
                if attr.key in SECRET_COLUMNS or attr.key in ("created_at", "updated_at"):
                    continue
                encrypted = isinstance(column.type, EncryptedText)
                history = state.attrs[attr.key].history
                if op == "update":
                    if not history.has_changes():
                        continue
                    old = history.deleted[0] if history.deleted else None
                    new = history.added[0] if history.added else None
                    diff[attr.key] = [
                        masked(attr.key, old, encrypted),
                        masked(attr.key, new, encrypted),
                    ]
                elif op == "insert":
                    diff[attr.key] = masked(attr.key, state.attrs[attr.key].value, encrypted)
            if op == "update" and not diff:
                continue
            identity = state.identity
            changes.append(
                {
                    "table": table,
                    "op": op,
                    "id": identity[0] if identity and len(identity) == 1 else identity,
                    "values": diff,
                }
            )


def _capture_statement(execute_state) -> None:
    if not (execute_state.is_insert or execute_state.is_update or execute_state.is_delete):
        return
    if not _worth_capturing(execute_state.session):
        return
    table = getattr(execute_state.statement, "table", None)
    name = getattr(table, "name", "")
    if name and name not in UNAUDITED_TABLES:
        op = (
            "insert"
            if execute_state.is_insert
            else "update"
            if execute_state.is_update
            else "delete"
        )
        statements = execute_state.session.info.setdefault(_STATEMENTS, [])
        if [op, name] not in statements:
            statements.append([op, name])


def _fallback_note() -> Note:
    """What a staff transaction that named nothing is recorded as: its route and ids."""
    endpoint = request.endpoint or "request" if has_request_context() else "change"
    args = request.view_args if has_request_context() and request.view_args else {}
    object_type, object_id = "", ""
    if args:
        object_type, value = next(iter(args.items()))
        object_type = object_type.removesuffix("_id").removesuffix("_no")
        object_id = str(value)
    return Note(endpoint or "change", object_type, object_id)


def _before_commit(session) -> None:
    # The commit's own flush comes after this hook: flush first so every change of the
    # transaction has been seen.
    session.flush()
    info = session.info
    notes = info.pop(_NOTES, [])
    changes = info.pop(_CHANGES, [])
    statements = info.pop(_STATEMENTS, [])
    answer = info.pop(_ANSWER, False)
    if not notes:
        if answer:
            return
        actor = current_actor()
        if actor.role not in STAFF_ROLES or not (changes or statements):
            return
        notes = [_fallback_note()]
    for position, pending in enumerate(notes):
        captured = (changes, statements) if position == 0 else ([], [])
        _write(session, pending, *captured)


def _write(session, pending: Note, changes: list, statements: list) -> AuditRecord:
    actor = pending.actor or current_actor()
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:  # a database made by create_all (tests); migrations insert it
        head = AuditHead(id=1, count=0, hash=GENESIS, ledger_from=0)
        session.add(head)
    summary: dict = {}
    if pending.before is not None:
        summary["before"] = pending.before
    if pending.after is not None:
        summary["after"] = pending.after
    if changes:
        summary["rows"] = changes[:MAX_CAPTURED]
        if len(changes) > MAX_CAPTURED:
            summary["rows_not_listed"] = len(changes) - MAX_CAPTURED
    if statements:
        summary["statements"] = statements
    now = utcnow()
    fields = {
        "seq": head.count + 1,
        "created_at_text": now.isoformat(),
        "actor_id": actor.id,
        "actor_name": (actor.name or "")[:80],
        "actor_role": actor.role,
        "client_addr": actor.client_addr,
        "request_id": actor.request_id if actor.request_id != "-" else "",
        "action": pending.action[:64],
        "object_type": pending.object_type[:32],
        "object_id": pending.object_id[:64],
        "summary": json.dumps(summary, ensure_ascii=False, sort_keys=True, default=str),
        "ledger_keys": json.dumps(sorted(set(pending.ledger_keys)), ensure_ascii=False),
    }
    digest = record_hash(head.hash, fields)
    record = AuditRecord(created_at=now, prev_hash=head.hash, hash=digest, **fields)
    session.add(record)
    head.count = fields["seq"]
    head.hash = digest
    return record


def _forget(session, *_args) -> None:
    for key in (_NOTES, _CHANGES, _STATEMENTS, _ANSWER):
        session.info.pop(key, None)


def install(session) -> None:
    """Attach the capture and the writing of records to the app's scoped session
    (once per process: the listeners belong to its Session class, not to one app)."""
    if event.contains(session, "before_commit", _before_commit):
        return
    event.listen(session, "after_flush", _capture_flush)
    event.listen(session, "do_orm_execute", _capture_statement)
    event.listen(session, "before_commit", _before_commit)
    event.listen(session, "after_rollback", _forget)


def record_now(
    session,
    action: str,
    object_type: str = "",
    object_id="",
    *,
    after: dict | None = None,
    actor: Actor | None = None,
) -> None:
    """Write one record in a transaction of its own (logins, failed logins, lock-outs)."""
    note(session, action, object_type, object_id, after=after, actor=actor)
    session.commit()
