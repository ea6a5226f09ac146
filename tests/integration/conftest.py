"""Fixtures of the integration tests."""

import pytest

from tests.conftest import scratch_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with scratch_postgres_database("lianxin_migrations") as url:
        yield url
