"""The declarative base every table of the application shares, shop's and ledger's.

It lives here, not in ``shop``, so the ledger can define its tables without importing
Flask; ``shop.db`` re-exports it. The naming convention gives every index and
constraint a stable name, so Alembic revisions agree on SQLite and PostgreSQL.
"""

from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AppendOnly:
    """Marks a table whose rows, once written, are never updated or deleted.

    ``ledger.guard`` refuses both in every ORM session; on PostgreSQL triggers refuse
    them in SQL too. Corrections are new rows that point at what they correct.
    """


def utcnow() -> datetime:
    """Timezone-aware current time in UTC; every stored timestamp is UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no time zone type and hands back naive values; normalising here means
    the rest of the code can compare and format times without guessing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; store UTC-aware values only")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
