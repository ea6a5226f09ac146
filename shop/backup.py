"""Backing up the books and restoring them into an empty database.

- PostgreSQL: ``pg_dump`` in its custom format (schema, data, triggers and functions;
  consistent while the shop serves — one snapshot), restored with ``pg_restore`` in a
  single transaction, so a failed restore leaves the target empty.
- SQLite: the online backup API (``sqlite3.Connection.backup``), page by page under the
  database's own locks, so it is consistent while the shop serves too.

What a backup does NOT hold, on purpose: the instance keys. ``PII_KEY`` decrypts
households' names, ID numbers and bank cards; the Alipay merchant key signs payments;
``SECRET_KEY`` signs sessions. Keep them apart from the data (a stolen backup is then
ciphertext) and keep them as carefully (a restored database without its ``PII_KEY`` is
a ledger that still verifies, with households nobody can pay). README "Backup and
restore" says what to keep where.

After a restore the ledger is verified in full and its head printed: compare it with
the head printed when the backup was made.
"""

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from ledger import AuditResult, head, verify_database
from shop.extensions import db

PG_DUMP = os.environ.get("PG_DUMP", "pg_dump")
PG_RESTORE = os.environ.get("PG_RESTORE", "pg_restore")
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"


class BackupError(Exception):
    """The backup or restore could not be made; the message says why."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    count: int  # ledger transactions in the backup
    head_hash: str
    bytes: int


def _libpq(engine: Engine) -> tuple[str, dict]:
    """The database as a libpq URL for pg_dump/pg_restore, with the password moved to
    the environment (command lines are visible to every user of the host)."""
    url = engine.url.set(drivername="postgresql")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
        url = url.set(password=None)
    return url.render_as_string(hide_password=False), env


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _run(command: list[str], env: dict) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError:
        raise BackupError(
            f"{command[0]} not found: install the PostgreSQL client of the server's version "
            f"(or set {'PG_DUMP' if 'dump' in command[0] else 'PG_RESTORE'})"
        ) from None
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip()[:2000]}")


def create_backup(path: str | Path) -> BackupReport:
    """Write a backup of the whole database to ``path`` (which must not exist yet)."""
    target = Path(path)
    if target.exists():
        raise BackupError(f"{target} exists already: choose a new file for each backup")
    target.parent.mkdir(parents=True, exist_ok=True)
    engine = db.engine
    count, head_hash = head(db.session)
    db.session.rollback()
    if engine.dialect.name == "postgresql":
        url, env = _libpq(engine)
        partial = target.with_name(target.name + ".partial")
        _run([PG_DUMP, "--format=custom", "--no-owner", f"--file={partial}", url], env)
        partial.rename(target)
    elif engine.dialect.name == "sqlite":
        source = sqlite3.connect(_sqlite_path(engine))
        partial = target.with_name(target.name + ".partial")
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        partial.rename(target)
    else:  # pragma: no cover - the shop runs on these two
        raise BackupError(f"no backup method for {engine.dialect.name}")
    os.chmod(target, 0o600)  # it holds every household's (encrypted) details
    return BackupReport(target, count, head_hash, target.stat().st_size)


def _refuse_unless_empty(engine: Engine) -> None:
    tables = inspect(engine).get_table_names()
    if tables:
        raise BackupError(
            f"the target database is not empty ({len(tables)} tables, e.g. {tables[0]}): "
            "restore only into a new, empty database"
        )


def restore_backup(path: str | Path) -> AuditResult:
    """Restore the backup at ``path`` into the app's database, which must be empty, then
    verify the ledger in full and return the verification."""
    source = Path(path)
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    magic = source.read_bytes()[:16]
    engine = db.engine
    db.session.remove()
    if engine.dialect.name == "postgresql":
        if not magic.startswith(PG_MAGIC):
            raise BackupError(f"{source} is not a PostgreSQL backup (pg_dump custom format)")
        _refuse_unless_empty(engine)
        url, env = _libpq(engine)
        _run(
            [PG_RESTORE, "--no-owner", "--single-transaction", "--exit-on-error",
             f"--dbname={url}", str(source)],
            env,
        )  # fmt: skip
    elif engine.dialect.name == "sqlite":
        if magic != SQLITE_MAGIC:
            raise BackupError(f"{source} is not an SQLite backup")
        target = _sqlite_path(engine)
        if target.exists() and target.stat().st_size:
            _refuse_unless_empty(engine)
        engine.dispose()
        partial = target.with_name(target.name + ".restoring")
        shutil.copyfile(source, partial)
        for suffix in ("-wal", "-shm"):  # the old, empty database's journal files
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        partial.replace(target)
    else:  # pragma: no cover
        raise BackupError(f"no restore method for {engine.dialect.name}")
    engine.dispose()
    return verify_database(db.session)

