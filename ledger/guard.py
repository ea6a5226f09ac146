"""Append-only, enforced in the ORM: a posted transaction or entry is never changed.

Any session that tries to flush an UPDATE or DELETE of a ``Transaction`` or ``Entry``
fails with :class:`AppendOnlyViolation`. PostgreSQL enforces the same with triggers
(migration 0003), so raw SQL cannot do it either.
"""

from sqlalchemy import event
from sqlalchemy.orm import Session

from ledger.models import Entry, Transaction


class AppendOnlyViolation(RuntimeError):
    pass


def _refuse_changes(session: Session, flush_context, instances) -> None:
    for obj in session.deleted:
        if isinstance(obj, Transaction | Entry):
            raise AppendOnlyViolation(f"ledger rows are never deleted ({obj!r})")
    for obj in session.dirty:
        if isinstance(obj, Transaction | Entry) and session.is_modified(
            obj, include_collections=False
        ):
            raise AppendOnlyViolation(f"ledger rows are never updated ({obj!r})")


event.listen(Session, "before_flush", _refuse_changes)
