"""The shop's periodic work, as jobs (registered in ``create_app``).

- ``expire_orders``, every ``EXPIRE_EVERY_SECONDS`` (60): unpaid orders past their time
  — ask Alipay, apply a late payment or close the trade, cancel, put the stock back.
- ``reconcile_payments``, every ``RECONCILE_EVERY_SECONDS`` (300): orders pending over
  5 minutes (a missed notification), and refunds Alipay has not confirmed.
- ``boards_follow``, every ``BOARDS_FOLLOW_EVERY_SECONDS`` (60): fold any ledger posting
  not yet on the boards (normally none: postings fold as they commit).
- ``deliver_mail``, every ``MAIL_EVERY_SECONDS`` (30): send the e-mail outbox
  (``shop.mail.delivery``), retrying what SMTP refused with back-off.
- ``sign_tree_head``, every ``TREE_HEAD_EVERY_SECONDS`` (60): sign a head of the
  ledger's Merkle tree if it grew (``shop.transparency``); every head is kept.
- ``payouts``, daily from ``PAYOUTS_AT`` (10:00 Asia/Shanghai; empty: never): finish
  payouts in flight. It starts none: a new batch is paid when a second admin approves
  it (four eyes, ``shop.approvals``).

Each returns a one-line summary; a payout run that left transfers failed, unconfirmed
or held counts as failed, so the operator's job list shows it.
"""

from datetime import timedelta

from flask import Flask

from shop.audit.log import acting_as
from shop.boards.projection import follow_ledger
from shop.extensions import db
from shop.jobs.runner import Job, register_job
from shop.mail.delivery import deliver_due
from shop.payments.refunds import retry_pending_refunds
from shop.payments.services import expire_unpaid, reconcile
from shop.payouts.services import finish_in_flight
from shop.transparency import services as transparency


class JobFailed(RuntimeError):
    """The job ran but did not finish its work (the message says what is left)."""


def expire_orders() -> str:
    counts = expire_unpaid()
    return (
        "expired orders: checked {checked}, paid {paid}, cancelled {cancelled}, "
        "errors {errors}".format(**counts)
    )


def reconcile_payments() -> str:
    counts = reconcile(older_than_minutes=5)
    refunds = retry_pending_refunds()
    return (
        "orders: checked {checked}, paid {paid}, cancelled {cancelled}, errors {errors}".format(
            **counts
        )
        + "; refunds retried: "
        + (", ".join(f"{k} {v}" for k, v in sorted(refunds.items())) or "none")
    )


def boards_follow() -> str:
    folded = follow_ledger()
    db.session.commit()
    return f"boards: folded {folded} ledger transactions"


def deliver_mail() -> str:
    return deliver_due().summary()


def sign_tree_head() -> str:
    head = transparency.publish()
    if head is None:
        return "tree head: unchanged"
    return f"tree head: signed size {head['tree_size']} root {head['root_hash'][:16]}…"


def payouts() -> str:
    with acting_as("jobs"):
        report = finish_in_flight()
    if not report.finished:
        raise JobFailed(report.summary())
    return report.summary()


def register(app: Flask) -> None:
    config = app.config
    register_job(
        app, Job("expire_orders", expire_orders, timedelta(seconds=config["EXPIRE_EVERY_SECONDS"]))
    )
    register_job(
        app,
        Job(
            "reconcile_payments",
            reconcile_payments,
            timedelta(seconds=config["RECONCILE_EVERY_SECONDS"]),
        ),
    )
    register_job(
        app,
        Job(
            "boards_follow", boards_follow, timedelta(seconds=config["BOARDS_FOLLOW_EVERY_SECONDS"])
        ),
    )
    register_job(
        app, Job("deliver_mail", deliver_mail, timedelta(seconds=config["MAIL_EVERY_SECONDS"]))
    )
    register_job(
        app,
        Job("sign_tree_head", sign_tree_head, timedelta(seconds=config["TREE_HEAD_EVERY_SECONDS"])),
    )
    if config.get("PAYOUTS_AT"):
        register_job(app, Job("payouts", payouts, at=config["PAYOUTS_AT"]))
