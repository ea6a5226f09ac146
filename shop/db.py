"""Database plumbing for the shop: the shared base (defined in ``ledger.base``), SQLite
pragmas, and how Alembic writes our column types."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from ledger import NAMING_CONVENTION, Base, UTCDateTime, utcnow

__all__ = ["NAMING_CONVENTION", "Base", "UTCDateTime", "transaction", "utcnow"]


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    # WAL lets readers and one writer work at once; foreign keys are off by default in
    # SQLite; busy_timeout makes a second writer wait instead of failing at once.
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


event.listen(Engine, "connect", _sqlite_pragmas)


def render_migration_type(type_, obj, autogen_context):
    """Alembic hook: write our TypeDecorators as their plain column types.

    Revisions then depend only on SQLAlchemy, never on application modules that may
    move or change later.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return "sa." + repr(obj.impl)
    return False


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (use with ``escape="\\\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


MAX_ROW_ID = 2**31 - 1  # the largest id an ``Integer`` column holds on PostgreSQL


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back and re-raise if it raises.

    What a service writes inside the block commits together or not at all (``with
    transaction(db.session): …``). A block that returns early still commits, which
    releases any row locks it took; one that only read commits nothing.
    """
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
