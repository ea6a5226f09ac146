"""Fixtures: database → app → client → logged-in client.

Every test that takes ``app`` runs once on SQLite and, when ``TEST_DATABASE_URL`` is
set, once more on PostgreSQL. Both databases are built by the Alembic migrations (never
``create_all``), once per session; each test then starts from an empty copy (SQLite: a
copied file; PostgreSQL: TRUNCATE … RESTART IDENTITY).
"""

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import g
from flask_migrate import upgrade

from shop import create_app
from shop.extensions import db
from tests.builders import make_user, totp_code

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
STAFF_PASSWORD = "staff-password-1"
ADMIN_PASSWORD = "admin-password-1"


@contextmanager
def scratch_postgres_database(prefix: str):
    """A new, empty database on the test server, dropped afterwards; yields its URL.
    Skips without ``TEST_DATABASE_URL`` (fails under ``REQUIRE_POSTGRES=1``)."""
    if not TEST_DATABASE_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
        pytest.skip("no PostgreSQL (set TEST_DATABASE_URL)")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def pytest_configure(config):
    if REQUIRE_POSTGRES and not TEST_DATABASE_URL:
        raise pytest.UsageError("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")


def pytest_generate_tests(metafunc):
    if "database_backend" in metafunc.fixturenames:
        backends = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])
        marker = metafunc.definition.get_closest_marker("postgres_only")
        if marker:
            backends = ["postgresql"] if TEST_DATABASE_URL else []
            if not backends:
                if REQUIRE_POSTGRES:
                    raise pytest.UsageError("postgres_only test but no TEST_DATABASE_URL")
                backends = [pytest.param("postgresql", marks=pytest.mark.skip("no PostgreSQL"))]
        if metafunc.definition.get_closest_marker("single_backend"):
            backends = backends[-1:]  # PostgreSQL when configured, else SQLite
        metafunc.parametrize("database_backend", backends, scope="session")


def _migrated_app(url: str, tmp: Path):
    return create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "UPLOAD_FOLDER": str(tmp / "uploads")}
    )


@pytest.fixture(scope="session", autouse=True)
def _isolated_instance(tmp_path_factory):
    # Nothing a test does may write into the developer's instance/ folder.
    os.environ["INSTANCE_PATH"] = str(tmp_path_factory.mktemp("instance"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An SQLite file upgraded to head by the migrations, copied by each test."""
    folder = tmp_path_factory.mktemp("sqlite-template")
    path = folder / "template.db"
    app = _migrated_app(f"sqlite:///{path}", folder)
    with app.app_context():
        upgrade(revision="heads")  # the shop's head and the sandbox branch's
        db.engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_migrated(tmp_path_factory) -> str:
    """The PostgreSQL test database, emptied and upgraded to head once per session."""
    engine = sa.create_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    app = _migrated_app(TEST_DATABASE_URL, tmp_path_factory.mktemp("pg"))
    with app.app_context():
        upgrade(revision="heads")  # the shop's head and the sandbox branch's
        db.engine.dispose()
    return TEST_DATABASE_URL


def _truncate_all(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [t.name for t in db.metadata.sorted_tables]
        quoted = ", ".join(f'"{name}"' for name in tables)
        conn.execute(sa.text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        # Rows the migrations seed, as a freshly migrated database has them.
        conn.execute(
            sa.text("INSERT INTO ledger_head (id, count, hash) VALUES (1, 0, :h)"), {"h": "0" * 64}
        )
        conn.execute(sa.text("INSERT INTO board_state (id, last_transaction_id) VALUES (1, 0)"))
        conn.execute(
            sa.text("INSERT INTO audit_head (id, count, hash, ledger_from) VALUES (1, 0, :h, 0)"),
            {"h": "0" * 64},
        )
    engine.dispose()


@pytest.fixture
def database_url(database_backend, request, tmp_path) -> str:
    if database_backend == "postgresql":
        url = request.getfixturevalue("postgres_migrated")
        _truncate_all(url)
        return url
    template = request.getfixturevalue("sqlite_template")
    path = tmp_path / "test.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def app(database_url, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        }
    )

    # Tests hold one app context open, and a request reuses it, so flask.g would carry the
    # last request's user, request id and language into the next (production pushes a
    # context per request). Forget them first, so two clients in one test are two people.
    def forget_last_request():
        g.pop("_login_user", None)
        g.pop("request_id", None)
        g.pop("_flask_babel", None)  # the locale Flask-Babel chose for the last request

    app.before_request_funcs.setdefault(None, []).insert(0, forget_last_request)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, username: str, password: str):
    """Log in as a person would: the password, then (staff and admins) the code from
    their authenticator app."""
    response = client.post(
        "/login", data={"username": username, "password": password}, follow_redirects=False
    )
    if response.status_code == 302 and response.headers["Location"].endswith("/login/code"):
        response = client.post(
            "/login/code", data={"code": totp_code(username)}, follow_redirects=False
        )
    return response


@pytest.fixture
def staff_user(app):
    return make_user(username="staff1", password=STAFF_PASSWORD, role="staff")


@pytest.fixture
def admin_user(app):
    return make_user(username="admin1", password=ADMIN_PASSWORD, role="admin")


@pytest.fixture
def staff_client(client, staff_user):
    response = login(client, "staff1", STAFF_PASSWORD)
    assert response.status_code == 302, "staff login failed"
    return client


@pytest.fixture
def admin_client(client, admin_user):
    response = login(client, "admin1", ADMIN_PASSWORD)
    assert response.status_code == 302, "admin login failed"
    return client
