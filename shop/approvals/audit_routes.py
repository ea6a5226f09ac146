"""The audit log in the console: filter by person, action, object and date; export CSV."""

import json
from datetime import date, datetime, time, timedelta

from flask import Blueprint, Response, render_template, request
from sqlalchemy import select

from shop.audit.models import AuditRecord
from shop.auth.decorators import role_required
from shop.csv_input import csv_bytes, neutralise
from shop.db import escape_like
from shop.extensions import db
from shop.formatting import SHANGHAI

bp = Blueprint("audit", __name__)
PAGE = 100
EXPORT_MAX = 50_000


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        return None


def _filtered():
    args = request.args
    query = select(AuditRecord)
    person = args.get("person", "").strip()[:80]
    action = args.get("action", "").strip()[:64]
    obj = args.get("object", "").strip()[:100]
    start, end = _day(args.get("from")), _day(args.get("to"))
    if person:
        query = query.where(
            AuditRecord.actor_name.like(f"%{escape_like(person)}%", escape="\\")
            | (AuditRecord.actor_id == (int(person) if person.isdigit() else -1))
        )
    if action:
        query = query.where(AuditRecord.action.like(f"{escape_like(action)}%", escape="\\"))
    if obj:
        kind, _sep, ident = obj.partition(":")
        query = query.where(AuditRecord.object_type == kind)
        if ident:
            query = query.where(AuditRecord.object_id == ident)
    if start:
        query = query.where(
            AuditRecord.created_at >= datetime.combine(start, time(), tzinfo=SHANGHAI)
        )
    if end:
        query = query.where(
            AuditRecord.created_at
            < datetime.combine(end + timedelta(days=1), time(), tzinfo=SHANGHAI)
        )
    filters = {
        "person": person,
        "action": action,
        "object": obj,
        "from": start.isoformat() if start else "",
        "to": end.isoformat() if end else "",
    }
    return query, filters


@bp.route("/")
@role_required("admin")
def index():
    query, filters = _filtered()
    before = request.args.get("before", type=int)
    if before:
        query = query.where(AuditRecord.seq < before)
    records = list(db.session.scalars(query.order_by(AuditRecord.seq.desc()).limit(PAGE)))
    return render_template(
        "audit/index.html",
        records=records,
        filters=filters,
        page=PAGE,
        summary=lambda r: json.loads(r.summary or "{}"),
    )


@bp.route("/export.csv")
@role_required("admin")
def export():
    query, _filters = _filtered()
    header = [
        "seq",
        "time_utc",
        "actor_id",
        "actor",
        "role",
        "client_addr",
        "request_id",
        "action",
        "object_type",
        "object_id",
        "summary",
        "ledger_keys",
        "hash",
    ]
    rows = [
        [
            str(r.seq),
            r.created_at_text,
            "" if r.actor_id is None else str(r.actor_id),
            r.actor_name,
            r.actor_role,
            r.client_addr,
            r.request_id,
            r.action,
            r.object_type,
            r.object_id,
            r.summary,
            r.ledger_keys,
            r.hash,
        ]
        for r in db.session.scalars(query.order_by(AuditRecord.seq).limit(EXPORT_MAX))
    ]
    data = csv_bytes(header, [[neutralise(cell) for cell in row] for row in rows])
    response = Response(data, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers.set("Content-Disposition", "attachment", filename="audit-log.csv")
    response.headers["Cache-Control"] = "no-store"
    return response
