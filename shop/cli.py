"""Command-line interface: ``flask --app wsgi users|demo|payments|ledger|payouts|audit …``."""

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from ledger import check_tree, verify_database
from shop.audit.log import acting_as
from shop.audit.verify import verify_audit
from shop.auth.services import AccountError, create_user
from shop.auth.two_factor import find_user, reset_two_factor, set_password
from shop.backup import BackupError, create_backup, restore_backup
from shop.boards.projection import follow_ledger, rebuild
from shop.demo import DEMO_LOGINS, seed_demo
from shop.extensions import db
from shop.jobs.runner import job_status_lines, run_due, run_forever
from shop.payments.refunds import retry_pending_refunds
from shop.payments.services import reconcile
from shop.payouts.services import finish_in_flight, plan_batch
from shop.transparency import services as transparency

users_cli = AppGroup("users", help="Manage staff and admin accounts.")
demo_cli = AppGroup("demo", help="The demo programme (双井村).")
payments_cli = AppGroup("payments", help="Payments: reconcile with Alipay.")
ledger_cli = AppGroup("ledger", help="The ledger: verify the hash chain and balances.")
payouts_cli = AppGroup("payouts", help="Pay households what they are owed.")
audit_cli = AppGroup("audit", help="The staff audit log.")
boards_cli = AppGroup("boards", help="The public boards: aggregates kept in step with the ledger.")
backup_cli = AppGroup("backup", help="Back up the database, restore it into an empty one.")
jobs_cli = AppGroup(
    "jobs", help="Periodic work: reconcile, expiry, payouts, boards (once across hosts)."
)


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["staff", "admin", "buyer"]), default="staff")
@click.option("--display-name", default="")
@click.password_option(help="Prompted for (twice) when not given.")
def users_create(username: str, role: str, display_name: str, password: str) -> None:
    """Create a user with a hashed password."""
    try:
        user = create_user(username, password, role, display_name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {user.role} {user.username!r}")


@demo_cli.command("seed")
@click.option("--if-empty", is_flag=True, help="Do nothing when the shop already has data.")
def demo_seed(if_empty: bool) -> None:
    """Create the demo village, enterprise, 244 households, products and logins (idempotent)."""
    report = seed_demo(only_if_empty=if_empty)
    click.echo(report.summary())
    for username, password, role in DEMO_LOGINS:
        click.echo(f"  demo login ({role}): {username} / {password}")


@payments_cli.command("reconcile")
@click.option(
    "--older-than", default=5, show_default=True, help="Minutes an order must be pending."
)
def payments_reconcile(older_than: int) -> None:
    """Ask Alipay about pending orders and refunds and apply the answers (run every few minutes)."""
    counts = reconcile(older_than_minutes=older_than)
    click.echo(
        "orders: checked {checked}, paid {paid}, cancelled {cancelled}, errors {errors}".format(
            **counts
        )
    )
    refunds = retry_pending_refunds()
    click.echo("refunds retried: " + (", ".join(f"{k} {v}" for k, v in refunds.items()) or "none"))


@ledger_cli.command("verify")
def ledger_verify() -> None:
    """Recompute every hash, zero sum and balance; exit 1 naming any mismatch."""
    result = verify_database(db.session)
    tree_problems = check_tree(db.session)
    if result.ok and not tree_problems:
        click.echo(f"OK {result.count} transactions, head {result.head_hash}")
        click.echo("OK Merkle tree: every node and every signed head matches the chain")
        return
    _fail_naming([*result.problems, *tree_problems])


@ledger_cli.command("public-key")
def ledger_public_key() -> None:
    """Print the key that signs the ledger's tree heads (base64, and its key id)."""
    key = transparency.public_key_json()
    click.echo(f"{key['algorithm']} {key['public_key']} key_id {key['key_id']}")


@ledger_cli.command("sign-head")
def ledger_sign_head() -> None:
    """Sign a tree head now if the tree grew (the jobs worker does it every minute)."""
    head = transparency.publish()
    if head is None:
        click.echo("unchanged: the latest head covers the tree")
    else:
        click.echo(f"signed the tree head of size {head['tree_size']}, root {head['root_hash']}")


@payouts_cli.command("run")
@click.option(
    "--threshold-fen",
    type=click.IntRange(min=1),
    default=None,
    help="Count households owed at least this many fen (default PAYOUT_THRESHOLD_FEN).",
)
def payouts_run(threshold_fen: int | None) -> None:
    """Finish payouts in flight (ask Alipay again, settle). New payouts start only when a
    second admin approves a batch in /admin/payouts (four eyes), never from here.
    Exit status 1 when a transfer failed or is still unconfirmed (for cron to notice)."""
    with acting_as("cli"):
        report = finish_in_flight()
        plan = plan_batch(threshold_fen)
    click.echo(report.summary())
    click.echo(
        f"{len(plan.lines)} households are due {plan.total_fen} fen: an admin proposes the "
        "batch in /admin/payouts and a second admin approves it"
        + (
            f"; {len(plan.recent_card)} with a recently changed card need their own approval"
            if plan.recent_card
            else ""
        )
    )
    if not report.finished:
        raise SystemExit(1)


@users_cli.command("reset-password")
@click.argument("username")
@click.password_option(help="Prompted for (twice) when not given.")
def users_reset_password(username: str, password: str) -> None:
    """Set a user's password and sign them out everywhere (recorded in the audit log)."""
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    try:
        with acting_as("cli"):
            set_password(user, password, "auth.password_reset")
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password reset for {user.username!r}; their sessions are signed out")


@users_cli.command("reset-2fa")
@click.argument("username")
def users_reset_two_factor(username: str) -> None:
    """Turn off a user's two-factor login (a lost phone); they enrol again at next login."""
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    with acting_as("cli"):
        reset_two_factor(user)
    click.echo(f"two-factor login reset for {user.username!r}")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Check the audit chain, and that every payout, refund and reversal posted since the
    log began is named by an audit record; exit 1 naming any problem."""
    result = verify_audit(db.session)
    if result.ok:
        click.echo(f"OK {result.count} audit records, head {result.head_hash}")
        return
    _fail_naming(result.problems)


@boards_cli.command("follow")
def boards_follow() -> None:
    """Fold ledger postings not yet on the boards (after an upgrade; a no-op otherwise)."""
    folded = follow_ledger()
    db.session.commit()
    click.echo(f"boards: folded {folded} ledger transactions")


@boards_cli.command("rebuild")
def boards_rebuild() -> None:
    """Empty the boards' aggregates and fold the whole ledger again."""
    folded = rebuild()
    db.session.commit()
    click.echo(f"boards: rebuilt from {folded} ledger transactions")


@jobs_cli.command("tick")
@click.option("--job", "only", multiple=True, help="Run only this job (repeatable).")
def jobs_tick(only: tuple[str, ...]) -> None:
    """Run every job that is due and that no other worker is running, once (for cron).
    Exit status 1 when a job failed."""
    results = run_due(only=set(only) or None)
    for result in results:
        click.echo(f"{result.name}: {result.outcome} ({result.seconds:.2f}s) {result.detail}")
    if not results:
        click.echo("jobs: nothing due")
    if any(result.outcome != "ok" for result in results):
        raise SystemExit(1)


@jobs_cli.command("run")
@click.option(
    "--max-seconds", type=click.FloatRange(min=0), default=None, help="Stop after this long."
)
def jobs_run(max_seconds: float | None) -> None:
    """The worker: run due jobs until stopped (SIGTERM or Ctrl-C finish the job in hand)."""
    run_forever(max_seconds=max_seconds, echo=click.echo)


@jobs_cli.command("list")
def jobs_list() -> None:
    """Each job's schedule and its last run."""
    for line in job_status_lines():
        click.echo(line)


@backup_cli.command("create")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_create(path: Path) -> None:
    """Write a backup of the database to PATH (a new file); safe while the shop serves.
    The instance keys (PII_KEY, the Alipay key, SECRET_KEY) are not in it: keep them apart."""
    try:
        report = create_backup(path)
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"backup {report.path} ({report.bytes:,} bytes): ledger {report.count} transactions, "
        f"head {report.head_hash}"
    )


@backup_cli.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def backup_restore(path: Path) -> None:
    """Restore PATH into the (empty) database DATABASE_URL names, then verify the ledger
    and the audit log. Exit status 1 if either does not verify."""
    try:
        result = restore_backup(path)
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    if not result.ok:
        _fail_naming(result.problems)
    click.echo(f"restored: ledger OK {result.count} transactions, head {result.head_hash}")
    audit = verify_audit(db.session)
    db.session.rollback()
    if not audit.ok:
        _fail_naming(audit.problems)
    click.echo(f"restored: audit log OK {audit.count} records, head {audit.head_hash}")


def _fail_naming(problems: list[str]) -> None:
    """A verification that failed: one MISMATCH line a problem on stderr, exit status 1."""
    for problem in problems:
        click.echo(f"MISMATCH {problem}", err=True)
    raise SystemExit(1)


def register_cli(app: Flask) -> None:
    for group in (
        users_cli,
        demo_cli,
        payments_cli,
        ledger_cli,
        payouts_cli,
        boards_cli,
        jobs_cli,
        backup_cli,
        audit_cli,
    ):
        app.cli.add_command(group)
