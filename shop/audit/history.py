"""Reading the audit log back: one object's history (an admin's household page)."""

import json

from sqlalchemy import select

from shop.audit.models import AuditRecord
from shop.extensions import db


def object_history(object_type: str, object_id, limit: int = 100) -> list[dict]:
    """The records about one object, newest first, with their summaries decoded."""
    records = db.session.scalars(
        select(AuditRecord)
        .where(AuditRecord.object_type == object_type, AuditRecord.object_id == str(object_id))
        .order_by(AuditRecord.seq.desc())
        .limit(limit)
    )
    return [{"record": r, "summary": json.loads(r.summary or "{}")} for r in records]
