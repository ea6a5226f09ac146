"""Command-line interface: ``flask --app wsgi users create`` and ``demo seed``."""

import click
from flask import Flask
from flask.cli import AppGroup

from shop.auth.services import AccountError, create_user

users_cli = AppGroup("users", help="Manage staff and admin accounts.")
demo_cli = AppGroup("demo", help="The demo programme (双井村).")
payments_cli = AppGroup("payments", help="Payments: reconcile with Alipay.")


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
    from shop.demo import DEMO_LOGINS, seed_demo

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
    from shop.orders.refunds import retry_pending_refunds
    from shop.payments.services import reconcile

    counts = reconcile(older_than_minutes=older_than)
    click.echo(
        "orders: checked {checked}, paid {paid}, cancelled {cancelled}, errors {errors}".format(
            **counts
        )
    )
    refunds = retry_pending_refunds()
    click.echo("refunds retried: " + (", ".join(f"{k} {v}" for k, v in refunds.items()) or "none"))


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(payments_cli)
