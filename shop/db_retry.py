"""Database faults that pass: which errors they are, and a bounded retry for them.

Two kinds of failure are not the request's fault and go away by themselves:

- **Lost a lock race** — PostgreSQL aborted the transaction as a deadlock's victim
  (SQLSTATE 40P01), on a serialization conflict (40001), or because a lock did not come
  within ``lock_timeout`` (55P03). The statement failed, so the transaction never
  committed and nothing of it is in the database: running the same unit of work again
  is safe. :func:`run_with_retry` does that, a bounded number of times with jitter.
- **Database unavailable** — the connection was cut (the server restarted, an operator
  ran ``pg_terminate_backend``, the network dropped), a statement was cancelled
  (``statement_timeout``, 57014), or the server refuses connections or cannot take
  them for now (no answer at all, class 08, 53, 57P01–57P03); SQLite's "database is
  locked" after its busy timeout. These are *not* retried inside the request: a COMMIT
  cut off may or may not have happened and the server may be going away, so the
  request answers 503 with ``Retry-After`` (the app's error handler) and the caller —
  Alipay, a browser, an API client — tries again; every money step is idempotent by
  its key, so that retry cannot post twice.
  SQLAlchemy invalidates a cut connection and ``pool_pre_ping`` checks the others at
  checkout, so the next request gets a live one.

Every other database error is a bug: a 500, rolled back, logged with its traceback.
"""

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger("shop.db")

T = TypeVar("T")

# Deadlock victim, serialization failure, lock_timeout: the transaction was rolled back
# by the server before it could commit.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "55P03"})
# The server shuts down, crashed, is starting, cancelled the statement
# (statement_timeout), or has no room (too many connections, out of memory or disk).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57014"})
_UNAVAILABLE_CLASSES = ("08", "53")
RETRY_ATTEMPTS = 3
RETRY_BASE_DELAY_SECONDS = 0.05
# What a 503 asks the caller to wait before trying again.
RETRY_AFTER_SECONDS = 2


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error (PostgreSQL), or None."""
    original = getattr(error, "orig", None)
    return getattr(original, "sqlstate", None) or None


def is_retryable(error: BaseException) -> bool:
    """True for a transaction the server rolled back for losing a lock race (40P01,
    40001, 55P03): running the same unit of work again is safe."""
    return isinstance(error, DBAPIError) and sqlstate(error) in RETRYABLE_SQLSTATES


def is_unavailable(error: BaseException) -> bool:
    """True for a database fault that passes by itself (see the module docstring): the
    request should answer 503 with Retry-After, not 500."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated or is_retryable(error):
        return True
    if hasattr(error.orig, "sqlstate"):  # psycopg
        state = error.orig.sqlstate
        if state is None:
            # No answer from the server at all: it refused the connection or went away.
            return isinstance(error, OperationalError)
        return state in _UNAVAILABLE_SQLSTATES or state.startswith(_UNAVAILABLE_CLASSES)
    # SQLite has no SQLSTATE: a writer that waited out busy_timeout.
    return getattr(error.orig, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")


def run_with_retry(
    session: Session,
    work: Callable[[], T],
    what: str,
    attempts: int = RETRY_ATTEMPTS,
) -> T:
    """Run ``work()`` (one whole unit of work that commits) and return its result; if
    the server rolled it back for losing a lock race (:func:`is_retryable`), roll the
    session back and run it again, up to ``attempts`` times in all, after a short
    random pause (so two twins that deadlocked do not collide again in step).

    Only for work that takes plain values and starts its own transaction, so a second
    run sees the database afresh. ``what`` names it in the log. Raises the last error
    when every attempt lost, and any other error at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as error:
            session.rollback()
            if not is_retryable(error) or attempt == attempts:
                raise
            pause = random.uniform(0, RETRY_BASE_DELAY_SECONDS * 2**attempt)
            log.warning(
                "%s: database rolled back attempt %d of %d (SQLSTATE %s); again in %.0f ms",
                what,
                attempt,
                attempts,
                sqlstate(error),
                pause * 1000,
            )
            time.sleep(pause)
    raise AssertionError("unreachable")  # the loop returns or raises
