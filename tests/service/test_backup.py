"""Backup and restore: a restored shop has the same books and its households can still
be paid with the kept PII key."""

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ledger import head, verify_database
from shop import create_app
from shop.audit.log import record_now
from shop.audit.verify import verify_audit
from shop.extensions import db
from shop.households.models import Household
from shop.orders.services import apply_payment
from tests.builders import make_household, make_order, make_product

CARD = "6217000099998888"


def _sell_something() -> tuple[int, str]:
    household = make_household(head_name="李四福", card=CARD)
    product = make_product(price_fen=8800, beneficiary_fen_per_unit=1200, stock=20)
    for number in range(3):
        order = make_order([(product, number + 1)])
        apply_payment(order.order_no, f"T{order.order_no}", order.total_fen, paid=True)
    db.session.commit()
    return household.id, head(db.session)[1]


def _empty_database_like(url: str, tmp_path) -> str:
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored.db'}"
    name = f"{parsed.database}_restored"
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def test_a_restored_backup_has_the_same_head_balances_and_decryptable_cards(app, tmp_path):
    household_id, head_hash = _sell_something()
    before = verify_database(db.session)
    assert before.ok and before.count >= 3
    record_now(db.session, "test.before_backup", "household", household_id)
    audit_before = verify_audit(db.session)
    assert audit_before.ok and audit_before.count == 1
    backup = tmp_path / "books.backup"

    made = app.test_cli_runner().invoke(args=["backup", "create", str(backup)])
    assert made.exit_code == 0, made.output
    assert head_hash in made.output
    assert backup.stat().st_mode & 0o077 == 0  # nobody but the operator reads it

    target_url = _empty_database_like(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path)
    # The kept PII key goes with the restored shop; the backup does not carry it.
    restored = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": target_url,
         "UPLOAD_FOLDER": str(tmp_path / "u2"), "PII_KEY": app.config["PII_KEY"]}
    )  # fmt: skip
    with restored.app_context():
        done = restored.test_cli_runner().invoke(args=["backup", "restore", str(backup)])
        assert done.exit_code == 0, done.output
        assert f"ledger OK {before.count} transactions, head {head_hash}" in done.output
        assert (
            f"audit log OK 1 records, head {audit_before.head_hash}" in done.output
        ), done.output
        after = verify_database(db.session)
        assert (after.ok, after.count, after.head_hash) == (True, before.count, head_hash)
        assert db.session.get(Household, household_id).bank_card == CARD

        again = restored.test_cli_runner().invoke(args=["backup", "restore", str(backup)])
        assert again.exit_code != 0
        assert "not empty" in again.output
        db.session.remove()
        db.engine.dispose()


def test_a_backup_never_overwrites_an_existing_file(app, tmp_path):
    existing = tmp_path / "older.backup"
    existing.write_bytes(b"last night's backup")
    result = app.test_cli_runner().invoke(args=["backup", "create", str(existing)])
    assert result.exit_code != 0
    assert "exists already" in result.output
    assert existing.read_bytes() == b"last night's backup"


def test_a_file_that_is_not_a_backup_is_refused(app, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a database")
    target_url = _empty_database_like(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path)
    other = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": target_url,
         "UPLOAD_FOLDER": str(tmp_path / "u3")}
    )  # fmt: skip
    with other.app_context():
        result = other.test_cli_runner().invoke(args=["backup", "restore", str(bogus)])
        assert result.exit_code != 0
        assert "is not a" in result.output
        assert sa.inspect(db.engine).get_table_names() == []
        db.session.remove()
        db.engine.dispose()
