"""Is the service alive, and is it ready to take money? For load balancers and operators.

- ``GET /healthz``: the process answers. Touches nothing (no database, no session), so
  a slow database never makes a supervisor restart healthy workers.
- ``GET /readyz``: everything a payment needs — the database answers, its schema is at
  the migrations' head or newer (a worker started before ``db upgrade`` finished is
  not ready; an old worker on a schema upgraded ahead of it is),
  the ledger's chain head is readable, and Redis answers when ``REDIS_URL`` is set.
  ``200`` with each check ``"ok"``, or ``503`` naming the parts that failed.

No login, no personal data, no connection strings in the answers: a failure is named
by its part and the kind of error only.
"""

from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from redis import Redis
from sqlalchemy import text

from ledger import LedgerHead
from shop.extensions import db, limiter
from shop.schema_migrations import alembic_config

bp = Blueprint("health", __name__)

_HEADS = "health_migration_heads"


@bp.route("/healthz")
@limiter.exempt
def healthz():
    return jsonify({"status": "alive"})


@bp.route("/readyz")
@limiter.exempt
def readyz():
    checks = readiness()
    failing = sorted(name for name, state in checks.items() if state not in ("ok", "off"))
    body = {"status": "not ready" if failing else "ready", "checks": checks}
    if failing:
        body["failing"] = failing
    return jsonify(body), 503 if failing else 200


def readiness() -> dict[str, str]:
    """Each part's state: ``ok``, ``off`` (not configured) or what is wrong."""
    checks = {"database": _database()}
    if checks["database"] == "ok":
        checks["migrations"] = _migrations()
        checks["ledger"] = _ledger_head()
    else:
        checks["migrations"] = checks["ledger"] = "database unreachable"
    db.session.rollback()  # read-only checks: end the transaction, return the connection
    checks["redis"] = _redis()
    return checks


def _database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as error:  # whatever the driver raises, the answer is "not ready"
        db.session.rollback()
        return f"unreachable ({type(error).__name__})"
    return "ok"


def _script() -> tuple[set[str], set[str]]:
    """This app's migration heads — the shop's, and the sandbox branch's when the
    sandbox is mounted, the same configuration ``flask db upgrade`` uses — and every
    revision it knows. Read once per process: they change only with a deployment, which
    restarts the workers."""
    known = current_app.extensions.get(_HEADS)
    if known is None:
        # Alembic's own reading of the revision files, so a branch is counted as it does.
        script = ScriptDirectory.from_config(alembic_config(current_app._get_current_object()))
        known = current_app.extensions[_HEADS] = (
            set(script.get_heads()),
            {revision.revision for revision in script.walk_revisions()},
        )
    return known


def expected_heads() -> set[str]:
    return _script()[0]


def _migrations() -> str:
    try:
        applied = set(db.session.scalars(text("SELECT version_num FROM alembic_version")))
    except Exception as error:
        db.session.rollback()
        return f"not migrated ({type(error).__name__})"
    heads, known = _script()
    if not applied:
        return "not migrated"
    # A revision this code does not know is a newer one: during a rolling upgrade
    # `db upgrade` runs first, and the old workers keep serving readers on the newer
    # schema (migrations only add until the old code is gone; docs/deploy.md).
    behind = {revision for revision in applied - heads if revision in known}
    if behind:
        return f"behind: at {', '.join(sorted(behind))}, head {', '.join(sorted(heads))}"
    return "ok"


def _ledger_head() -> str:
    try:
        row = db.session.get(LedgerHead, 1)
    except Exception as error:
        db.session.rollback()
        return f"unreadable ({type(error).__name__})"
    return "ok" if row is not None else "missing"


def _redis() -> str:
    url = current_app.config.get("REDIS_URL")
    if not url:
        return "off"
    try:
        Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"
