"""The sandbox gateway's tables come from its own Alembic branch, part of an app's
migrations only when the sandbox is mounted: a production-style app (sandbox off) has
neither its routes nor its tables, and a database made before the branch existed
(sandbox tables created by the shop's 0002) upgrades cleanly and keeps their rows."""

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask_migrate import downgrade

from alipay_sandbox.models import SandboxTrade
from shop import create_app
from shop.config import PROJECT_ROOT
from shop.extensions import db
from tests.integration.test_migrations import schema_differences, table_names

SANDBOX_TABLES = {"sandbox_trade", "sandbox_refund", "sandbox_transfer"}
# The shop's own head revision: the newest file in migrations/versions.
SHOP_HEAD = ScriptDirectory(str(PROJECT_ROOT / "migrations")).get_current_head()


def _app(url: str, tmp_path, sandbox: bool):
    return create_app(
        {
            "TESTING": True,
            "ALIPAY_SANDBOX": sandbox,
            "SQLALCHEMY_DATABASE_URI": url,
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        }
    )


def _cli_upgrade(app) -> None:
    # Exactly what `make run` and an operator type: `flask db upgrade`, no revision.
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output


def _versions(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))


def test_a_production_app_has_no_sandbox_routes_and_no_sandbox_tables(empty_database_url, tmp_path):
    app = _app(empty_database_url, tmp_path, sandbox=False)
    assert not any(rule.rule.startswith("/sandbox") for rule in app.url_map.iter_rules())
    assert "sandbox" not in app.blueprints
    with app.app_context():
        _cli_upgrade(app)
        assert table_names(db.engine) & SANDBOX_TABLES == set()
        assert table_names(db.engine) == set(db.metadata.tables) - SANDBOX_TABLES
        assert _versions(db.engine) == {SHOP_HEAD}
        assert app.test_client().get("/readyz").json["checks"]["migrations"] == "ok"
        db.session.remove()
        db.engine.dispose()


def test_flask_db_upgrade_with_the_sandbox_creates_its_tables(empty_database_url, tmp_path):
    app = _app(empty_database_url, tmp_path, sandbox=True)
    with app.app_context():
        _cli_upgrade(app)
        assert SANDBOX_TABLES <= table_names(db.engine)
        assert schema_differences(db.engine) == []
        assert _versions(db.engine) == {SHOP_HEAD, "sandbox_0001"}
        assert app.test_client().get("/readyz").json["checks"]["migrations"] == "ok"
        db.session.remove()
        db.engine.dispose()


def test_a_database_from_before_the_branch_keeps_its_sandbox_rows(empty_database_url, tmp_path):
    # A database at the shop's head whose sandbox tables 0002 created, with a trade in them.
    old = _app(empty_database_url, tmp_path, sandbox=False)
    with old.app_context():
        _cli_upgrade(old)
        sandbox_tables = [db.metadata.tables[name] for name in sorted(SANDBOX_TABLES)]
        db.metadata.create_all(db.engine, tables=sandbox_tables)
        db.session.add(
            SandboxTrade(
                app_id="2021000000000001", out_trade_no="LX0001", trade_no="T1", total_fen=1
            )
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()

    # Production keeps running on it (the branch is not there)…
    with old.app_context():
        _cli_upgrade(old)
        assert _versions(db.engine) == {SHOP_HEAD}
        db.engine.dispose()

    # …and with the sandbox mounted, the branch adopts the tables it finds.
    app = _app(empty_database_url, tmp_path, sandbox=True)
    with app.app_context():
        _cli_upgrade(app)
        assert _versions(db.engine) == {SHOP_HEAD, "sandbox_0001"}
        assert schema_differences(db.engine) == []
        assert db.session.scalar(sa.select(SandboxTrade.out_trade_no)) == "LX0001"
        db.session.rollback()  # the read's transaction would hold up the DROPs below

        downgrade(revision="base")
        assert table_names(db.engine) == set()
        db.session.remove()
        db.engine.dispose()


def test_a_database_from_before_the_branch_downgrades_to_nothing(empty_database_url, tmp_path):
    # Without the sandbox branch applied, the shop's 0002 still takes its old tables away.
    app = _app(empty_database_url, tmp_path, sandbox=False)
    with app.app_context():
        _cli_upgrade(app)
        sandbox_tables = [db.metadata.tables[name] for name in sorted(SANDBOX_TABLES)]
        db.metadata.create_all(db.engine, tables=sandbox_tables)
        downgrade(revision="base")
        assert table_names(db.engine) == set()
        db.session.remove()
        db.engine.dispose()
