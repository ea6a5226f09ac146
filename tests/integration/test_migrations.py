"""The Alembic revisions build exactly the schema the models describe, on both databases,
and can be walked down to nothing and up again."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from shop import create_app
from shop.extensions import db


def schema_differences(engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def table_names(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_migrations_match_models_and_round_trip(empty_database_url, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": empty_database_url,
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        }
    )
    with app.app_context():
        upgrade(revision="heads")  # the shop's head and the sandbox branch's
        assert schema_differences(db.engine) == []
        assert table_names(db.engine) == set(db.metadata.tables)

        downgrade(revision="base")
        assert table_names(db.engine) == set()

        upgrade(revision="heads")  # the shop's head and the sandbox branch's
        assert schema_differences(db.engine) == []
        db.session.remove()
        db.engine.dispose()
