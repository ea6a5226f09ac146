"""How the shop's Alembic (Flask-Migrate) environment is put together, and how a plugin
mounted into the app brings its own tables.

The shop's revisions are one line in ``migrations/versions`` (0001, 0002, …; the next
is 0011). A plugin that owns tables the shop does not — the built-in sandbox gateway,
``alipay_sandbox`` — keeps them in its own Alembic branch (its own version directory and
branch label, ``depends_on`` the shop revision it needs) and, when it is mounted, adds
that directory with :func:`add_version_location`. So the branch exists only for an app
that mounts the plugin: a production database (sandbox off) never gets those tables.

With a plugin's branch there is more than one head, and Alembic's ``head`` means "the
one head" (an error with two). So the ``db`` commands are Flask-Migrate's with two
defaults changed (:func:`db_cli_group`): ``flask db upgrade`` without a revision
upgrades every head (``heads``, the same as ``head`` when there is one), and ``flask db
migrate`` / ``db revision`` without ``--head`` put a new revision on the shop's own line.
``/readyz`` expects every head of the app's configuration (:func:`expected_heads`).
Code that upgrades through Python (tests) passes ``revision="heads"``.
"""

import copy
import os

import click
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask import Flask, current_app, has_app_context
from flask_migrate.cli import db as flask_migrate_db

from shop.config import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "migrations"
SHOP_VERSIONS = MIGRATIONS / "versions"
_LOCATIONS = "migration_version_locations"


def add_version_location(app: Flask, path: str | os.PathLike) -> None:
    """Make ``path`` (a plugin's Alembic version directory) part of this app's
    migrations, beside the shop's own ``migrations/versions``."""
    locations = app.extensions.setdefault(_LOCATIONS, [])
    if str(path) not in locations:
        locations.append(str(path))


def configure_version_locations(config: AlembicConfig) -> AlembicConfig:
    """Flask-Migrate ``configure`` callback: the shop's version directory plus those the
    current app's plugins added. Registered once on the process-wide ``Migrate``, it
    reads the app it runs for, so one process may hold apps with and without plugins."""
    extra = current_app.extensions.get(_LOCATIONS) if has_app_context() else None
    if extra:
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join([str(SHOP_VERSIONS), *extra]))
    return config


def alembic_config(app: Flask) -> AlembicConfig:
    """The Alembic configuration ``flask db`` uses for ``app`` (plugins' branches
    included). Needs an app context."""
    return app.extensions["migrate"].migrate.get_config()


def expected_heads(app: Flask) -> set[str]:
    """Every head revision of ``app``'s migrations: the shop's, and each plugin's."""
    return set(ScriptDirectory.from_config(alembic_config(app)).get_heads())


def shop_head() -> str:
    """The head of the shop's own line (``migrations/versions`` alone), or ``head`` when
    that line has several (Alembic then says what to do)."""
    config = AlembicConfig(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    return heads[0] if len(heads) == 1 else "head"


def _with_default(command: click.Command, name: str, default) -> click.Command:
    changed = copy.copy(command)
    changed.params = [copy.copy(param) for param in command.params]
    for param in changed.params:
        if param.name == name:
            param.default = default
    return changed


def db_cli_group() -> click.Group:
    """Flask-Migrate's ``db`` group, copied (the original is left alone) with
    ``upgrade``'s revision defaulting to ``heads`` and ``migrate``/``revision``'s
    ``--head`` to the shop's head."""
    group = copy.copy(flask_migrate_db)
    group.commands = dict(flask_migrate_db.commands)
    group.commands["upgrade"] = _with_default(group.commands["upgrade"], "revision", "heads")
    for name in ("migrate", "revision"):
        group.commands[name] = _with_default(group.commands[name], "head", shop_head)
    return group
