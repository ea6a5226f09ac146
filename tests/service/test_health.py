"""/healthz (the process answers) and /readyz (ready to take money, or which part is not)."""

import socket

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shop import create_app
from shop.extensions import db
from tests.tcp_proxy import TcpProxy


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_healthz_answers_without_touching_the_database(tmp_path):
    url = f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                      "UPLOAD_FOLDER": str(tmp_path / "u")})  # fmt: skip
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "alive"}
    assert "Set-Cookie" not in response.headers


def test_a_migrated_database_is_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "ledger": "ok", "redis": "off"},
    }


def test_a_schema_behind_the_migrations_is_not_ready(client):
    # The shop's row; the sandbox branch (mounted in tests) has a row of its own.
    shop_row = "SELECT version_num FROM alembic_version WHERE version_num NOT LIKE 'sandbox%'"
    head = db.session.scalar(sa.text(shop_row))
    db.session.execute(
        sa.text("UPDATE alembic_version SET version_num = '0009' WHERE version_num = :v"),
        {"v": head},
    )
    db.session.commit()
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json["failing"] == ["migrations"]
        assert response.json["checks"]["migrations"].startswith("behind: at 0009")
    finally:  # the PostgreSQL test database is shared by the tests that follow
        db.session.execute(
            sa.text("UPDATE alembic_version SET version_num = :v WHERE version_num = '0009'"),
            {"v": head},
        )
        db.session.commit()


def test_old_workers_stay_ready_on_a_schema_upgraded_ahead_of_them(client):
    """Rolling upgrade: `db upgrade` to a revision this code has never seen runs first;
    the old workers keep serving readers until the new code replaces them."""
    shop_row = "SELECT version_num FROM alembic_version WHERE version_num NOT LIKE 'sandbox%'"
    head = db.session.scalar(sa.text(shop_row))
    db.session.execute(
        sa.text("UPDATE alembic_version SET version_num = '9999_next' WHERE version_num = :v"),
        {"v": head},
    )
    db.session.commit()
    try:
        response = client.get("/readyz")
        assert response.status_code == 200, response.json
        assert response.json["checks"]["migrations"] == "ok"
    finally:
        db.session.execute(
            sa.text("UPDATE alembic_version SET version_num = :v WHERE version_num = '9999_next'"),
            {"v": head},
        )
        db.session.commit()


def test_a_missing_chain_head_is_not_ready(client):
    db.session.execute(sa.text("DELETE FROM ledger_head"))
    db.session.commit()
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json["failing"] == ["ledger"]


def test_an_unreachable_redis_is_named(client, app):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{_closed_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["failing"] == ["redis"]
    assert response.json["checks"]["redis"].startswith("unreachable")


@pytest.mark.postgres_only
def test_not_ready_while_the_database_is_away_and_ready_when_it_returns(database_url, tmp_path):
    real = make_url(database_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432).start()
    try:
        app = create_app(
            {"TESTING": True, "UPLOAD_FOLDER": str(tmp_path / "u"),
             "SQLALCHEMY_DATABASE_URI": real.set(host="127.0.0.1", port=proxy.port)
             .render_as_string(hide_password=False)}
        )  # fmt: skip
        with app.app_context():
            client = app.test_client()
            assert client.get("/readyz").status_code == 200
            proxy.stop()
            away = client.get("/readyz")
            assert away.status_code == 503
            assert away.json["failing"] == ["database", "ledger", "migrations"]
            assert away.json["checks"]["database"].startswith("unreachable")
            assert "127.0.0.1" not in away.get_data(as_text=True)  # no connection details
            proxy.start()
            back = client.get("/readyz")
            assert back.status_code == 200, back.json
            db.session.remove()
            db.engine.dispose()
    finally:
        proxy.stop()
