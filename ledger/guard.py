"""Append-only, enforced in the ORM: a posted row is never changed or deleted.

Any session that tries to flush an UPDATE or DELETE of a row whose class is marked
:class:`ledger.base.AppendOnly` (transactions, entries, sale lines) fails with
:class:`ledger.errors.AppendOnlyViolation`. PostgreSQL enforces the same with triggers
(migration 0003), so raw SQL cannot do it either. Importing ``ledger.models`` arms it.
"""

from sqlalchemy import event
from sqlalchemy.orm import Session

from ledger.base import AppendOnly
from ledger.errors import AppendOnlyViolation


def _refuse_changes(session: Session, flush_context, instances) -> None:
    for obj in session.deleted:
        if isinstance(obj, AppendOnly):
            raise AppendOnlyViolation(f"ledger rows are never deleted ({obj!r})")
    for obj in session.dirty:
        if isinstance(obj, AppendOnly) and session.is_modified(obj, include_collections=False):
            raise AppendOnlyViolation(f"ledger rows are never updated ({obj!r})")


event.listen(Session, "before_flush", _refuse_changes)
