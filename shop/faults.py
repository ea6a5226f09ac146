"""Crash points: places between two money steps where a test may kill this process.

``crash_point(name)`` does nothing unless the environment variable
``LIANXIN_CRASH_AT`` names that point (a comma-separated list of names from
:data:`POINTS`); then it sends SIGKILL to its own process. No ``except`` or
``finally`` block, ``atexit`` handler, rollback or log flush runs: the process vanishes
as when a host loses power, and the database keeps what was committed and drops what
was not. ``tests/service/test_crash_injection.py`` starts the real shop in a child
process with the variable set, lets it die at the point, and checks that a restart and
a rerun pay, post and reserve everything exactly once.

Invariants:

- Read once, at import: an unset variable leaves :data:`ARMED` empty, and a crash point
  costs one truth test of an empty frozenset.
- Never armed when ``LIANXIN_ENV=production`` (how :class:`shop.config.Config` marks
  the public service): there the variable is ignored with a warning, so a stray setting
  cannot turn a payout into a crash.
- A name not in :data:`POINTS` is refused at import (``ValueError``), so a test that
  misspells a point fails instead of passing without ever crashing.
- ``when`` lets a point fire only part-way through a loop (``when=2 * done >= total``,
  "halfway through the rows"); it is evaluated by the caller, so keep it cheap.
"""

import logging
import os
import signal
from collections.abc import Mapping

log = logging.getLogger("shop.faults")

ENV_VAR = "LIANXIN_CRASH_AT"

# Every crash point in the code, with the state the database is left in.
POINTS: dict[str, str] = {
    "payout.batch_approved": "a batch approval committed, no payout of it started yet",
    "payout.before_transfer": "a payout and its in-flight posting committed, Alipay not asked",
    "payout.transfer_sent": "Alipay answered the transfer, the answer not yet applied",
    "payout.posting_uncommitted": "the answer applied and posted, not committed",
    "checkout.stock_reserved": "an order's stock reserved, the order not committed",
    "payment.posted_uncommitted": "a verified payment applied and its sale posted, not committed",
    "notify.before_answer": "a notification applied and committed, 'success' not sent",
    "offline.sales_halfway": "half a sales CSV's rows took their stock, nothing committed",
    "offline.income_halfway": "half the rows of an income CSV posted, nothing committed",
}


def armed_points(environ: Mapping[str, str]) -> frozenset[str]:
    """The crash points ``environ`` arms (empty in production). Raises ``ValueError``
    naming a point that does not exist."""
    names = frozenset(
        name.strip() for name in (environ.get(ENV_VAR) or "").split(",") if name.strip()
    )
    if not names:
        return frozenset()
    if environ.get("LIANXIN_ENV", "development") == "production":
        log.warning("%s is ignored in production (it named %s)", ENV_VAR, ", ".join(sorted(names)))
        return frozenset()
    unknown = sorted(names - POINTS.keys())
    if unknown:
        raise ValueError(f"{ENV_VAR} names unknown crash points: {', '.join(unknown)}")
    log.warning("crash points armed: this process dies at %s", ", ".join(sorted(names)))
    return names


ARMED: frozenset[str] = armed_points(os.environ)


def crash_point(name: str, when: bool = True) -> None:
    """Kill this process with SIGKILL here if ``name`` is armed and ``when`` holds."""
    if ARMED and when and name in ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
