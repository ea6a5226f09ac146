"""The audit log: written with the change or not at all, chained so a removed or edited
record is found, refused by PostgreSQL when edited, and tied to the ledger's money moves.
"""

import csv
import io
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import func, select

from ledger import post_refund
from shop.audit.log import note
from shop.audit.models import AuditHead, AuditRecord
from shop.audit.verify import verify_audit
from shop.catalog.models import Product
from shop.extensions import db
from shop.orders.services import apply_payment
from tests.builders import make_order, make_product, make_user
from tests.conftest import STAFF_PASSWORD, login


def records() -> list[AuditRecord]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))


def audit_cli(app):
    return CliRunner().invoke(app.cli, ["audit", "verify"])


@pytest.fixture
def product(app):
    return make_product(name="树莓果酒", price_fen=15800, stock=10)


def test_a_staff_change_is_recorded_with_who_when_and_from_where(staff_client, product):
    before = len(records())
    response = staff_client.post(
        f"/console/products/{product.id}/status",
        data={"action": "archive"},
        headers={"X-Request-ID": "req-audit-0001"},
    )
    assert response.status_code == 302
    new = records()[before:]
    assert len(new) == 1
    record = new[0]
    assert (record.actor_name, record.actor_role) == ("staff1", "staff")
    assert record.action == "console.change_status"
    assert (record.object_type, record.object_id) == ("product", str(product.id))
    assert record.client_addr == "127.0.0.1" and record.request_id == "req-audit-0001"
    rows = json.loads(record.summary)["rows"]
    assert {
        "table": "product",
        "op": "update",
        "id": product.id,
        "values": {"status": ["published", "archived"]},
    } in rows


def test_logins_and_failed_logins_are_recorded(client, staff_user):
    login(client, "staff1", "wrong password")
    login(client, "staff1", STAFF_PASSWORD)
    actions = [(r.action, r.actor_id) for r in records()]
    assert actions == [("auth.login_failed", staff_user.id), ("auth.login", staff_user.id)]


def test_a_change_rolled_back_leaves_no_record(app, product):
    note(db.session, "test.change", "product", product.id, after={"stock": 0})
    db.session.get(Product, product.id).stock = 0
    db.session.flush()
    db.session.rollback()
    assert records() == []
    assert db.session.get(Product, product.id).stock == 10
    # …and the next transaction does not inherit the forgotten note.
    db.session.get(Product, product.id).stock = 9
    db.session.commit()
    assert records() == []


def test_the_chain_verifies_and_a_deleted_or_edited_record_is_caught(
    app, staff_client, product, database_backend
):
    for action in ("archive", "unpublish", "archive"):
        staff_client.post(f"/console/products/{product.id}/status", data={"action": action})
    result = audit_cli(app)
    assert result.exit_code == 0 and "OK 4 audit records" in result.output, result.output

    if database_backend == "postgresql":
        # The database itself refuses to edit or delete an audit record…
        for statement in (
            "UPDATE audit_log SET actor_name = 'someone else' WHERE seq = 2",
            "DELETE FROM audit_log WHERE seq = 2",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                db.session.execute(sa.text(statement))
            db.session.rollback()
        # …so to show that verify catches it anyway, tamper as the owner of the tables
        # would, with triggers off for this session.
        db.session.execute(sa.text("SET session_replication_role = replica"))
    db.session.execute(sa.text("UPDATE audit_log SET actor_name = 'someone else' WHERE seq = 2"))
    db.session.execute(sa.text("DELETE FROM audit_log WHERE seq = 3"))
    db.session.commit()
    if database_backend == "postgresql":
        db.session.execute(sa.text("SET session_replication_role = origin"))
        db.session.commit()
    result = audit_cli(app)
    assert result.exit_code == 1
    assert "audit record 2: changed after it was written" in result.output
    assert "audit record 3 is missing" in result.output


def test_a_removed_tail_is_caught_by_the_head(app, staff_client, product, database_backend):
    staff_client.post(f"/console/products/{product.id}/status", data={"action": "archive"})
    staff_client.post(f"/console/products/{product.id}/status", data={"action": "unpublish"})
    if database_backend == "postgresql":
        db.session.execute(sa.text("SET session_replication_role = replica"))
    last = db.session.scalar(select(func.max(AuditRecord.seq)))
    db.session.execute(sa.text("DELETE FROM audit_log WHERE seq = :s"), {"s": last})
    db.session.commit()
    if database_backend == "postgresql":
        db.session.execute(sa.text("SET session_replication_role = origin"))
        db.session.commit()
    result = verify_audit(db.session)
    assert any("audit head names" in problem for problem in result.problems), result.problems


def test_a_refund_posted_without_an_audit_record_is_reported(app, admin_client, product):
    order = make_order([(product, 1)])
    apply_payment(order.order_no, "TAUDIT1", order.total_fen, paid=True)
    assert verify_audit(db.session).ok
    # A refund through the console names its ledger posting…
    admin_client.post(
        f"/console/orders/{order.order_no}/refund", data={"amount": "10.00", "reason": "破损"}
    )
    result = verify_audit(db.session)
    assert result.ok, result.problems
    # …one written straight into the ledger, by nobody the log knows, is reported.
    from shop.orders.ledger_view import sale_key

    post_refund(db.session, "refund:BYHAND01", sale_key(order.trade_no), 500, memo="by hand")
    db.session.commit()
    result = verify_audit(db.session)
    assert (
        result.problems == [problem for problem in result.problems if "refund:BYHAND01" in problem]
        and len(result.problems) == 1
    )


def test_the_audit_page_filters_and_exports_csv_with_formulas_neutralised(
    app, admin_client, product
):
    make_user(username="=cmd|' /C calc'!A0", role="staff")  # a name that is a formula
    rogue = app.test_client()
    login(rogue, "=cmd|' /C calc'!A0", "password-123")
    rogue.post(f"/console/products/{product.id}/status", data={"action": "archive"})
    admin_client.post(f"/console/products/{product.id}/status", data={"action": "unpublish"})

    page = admin_client.get("/admin/audit/?action=console.").get_data(as_text=True)
    assert page.count("console.change_status") == 2
    only_admin = admin_client.get("/admin/audit/?person=admin1&action=console.").get_data(
        as_text=True
    )
    assert only_admin.count("console.change_status") == 1
    by_object = admin_client.get(f"/admin/audit/?object=product:{product.id}")
    assert by_object.get_data(as_text=True).count("console.change_status") == 2

    export = admin_client.get("/admin/audit/export.csv?action=console.")
    assert export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.get_data().decode("utf-8-sig"))))
    assert [row["actor"] for row in rows] == ["'=cmd|' /C calc'!A0", "admin1"]
    assert all(row["hash"] and row["action"] == "console.change_status" for row in rows)
    assert admin_client.get("/admin/audit/?from=not-a-date").status_code == 200


def test_staff_cannot_read_the_audit_log(staff_client):
    assert staff_client.get("/admin/audit/").status_code == 403
    assert staff_client.get("/admin/audit/export.csv").status_code == 403


def test_the_head_counts_records(app, staff_client, product):
    staff_client.post(f"/console/products/{product.id}/status", data={"action": "archive"})
    head = db.session.get(AuditHead, 1)
    assert head.count == len(records()) and head.hash == records()[-1].hash
