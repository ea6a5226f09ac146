"""``flask audit verify`` on a live shop: a refund or payout committed (with its audit
record) while the check runs must not be reported as a posting nobody made.

Found by the soak (``bench/soak.py``): PostgreSQL's READ COMMITTED gives each statement
its own snapshot, so a posting committed between reading the audit log and reading the
postings was seen without the record that names it."""

import pytest
import sqlalchemy as sa

from ledger import post_refund
from shop.audit.log import note
from shop.audit.verify import verify_audit
from shop.extensions import db
from shop.orders.ledger_view import sale_key
from shop.orders.services import apply_payment
from tests.builders import in_app_thread, make_order, make_product


def _refund_with_its_record(trade_no: str) -> None:
    post_refund(db.session, "refund:LIVE01", sale_key(trade_no), 500, memo="during verify")
    note(db.session, "order.refund", "order", "live", ledger_keys=["refund:LIVE01"])
    db.session.commit()


@pytest.mark.postgres_only
def test_a_refund_committed_while_audit_verify_runs_is_not_reported(app):
    order = make_order([(make_product(), 1)])
    apply_payment(order.order_no, "TLIVE1", order.total_fen, paid=True)
    db.session.commit()
    fired = []

    def meanwhile(_conn, _cursor, statement, *_args):
        # Once the log has been read, another worker commits a refund and its record.
        if "FROM ledger_transaction" in statement and not fired:
            fired.append(statement)
            in_app_thread(app, _refund_with_its_record, "TLIVE1")

    sa.event.listen(db.engine, "before_cursor_execute", meanwhile)
    try:
        db.session.remove()  # verify starts afresh, as `flask audit verify` does
        result = verify_audit(db.session)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", meanwhile)
    assert fired, "the refund was never made during the check"
    assert result.ok, result.problems

    db.session.remove()
    again = verify_audit(db.session)  # the next run sees the refund and its record
    assert again.ok, again.problems
    assert again.count == result.count + 1
