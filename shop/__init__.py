"""Lianxin Market: the Flask application factory."""

import importlib
import os
from pathlib import Path

from flask import (
    Flask,
    current_app,
    has_request_context,
    render_template,
    request,
    session,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

import shop.admin.ledger_routes  # (adds the money pages to the admin blueprint)
import shop.approvals.kinds
import shop.models  # noqa: F401  (complete metadata for Alembic and create_all)
from shop import db_retry, formatting, page_cache, request_log, security
from shop.account.routes import bp as account_bp
from shop.admin.routes import bp as admin_bp
from shop.api.routes import bp as api_bp
from shop.approvals.audit_routes import bp as audit_bp
from shop.approvals.routes import bp as approvals_bp
from shop.approvals.routes import public_bp as changes_bp
from shop.audit import log as audit_log
from shop.auth.models import User
from shop.auth.routes import bp as auth_bp
from shop.auth.routes import staff_session_rules
from shop.benefits.services import post_order_sale, post_refund_reversal
from shop.boards.online import online_purchase
from shop.boards.projection import register_source, start_following
from shop.boards.routes import bp as boards_bp
from shop.cart.routes import bp as cart_bp
from shop.catalog.routes import bp as catalog_bp
from shop.checkout.routes import bp as checkout_bp
from shop.cli import register_cli
from shop.config import PROJECT_ROOT, Config, TestingConfig, UnsafeConfiguration
from shop.console.buyer_routes import bp as buyers_bp
from shop.console.routes import bp as console_bp
from shop.db import MAX_ROW_ID, render_migration_type
from shop.errors import error_response
from shop.extensions import babel, csrf, db, limiter, login_manager, migrate
from shop.health import bp as health_bp
from shop.invoices.routes import bp as invoices_bp
from shop.jobs.schedule import register as register_jobs
from shop.mail import events as mail_events
from shop.media.routes import bp as media_bp
from shop.offline.board_sources import register as register_offline_board_sources
from shop.offline.routes import bp as offline_bp
from shop.orders.routes import bp as orders_bp
from shop.orders.services import register_paid_hook
from shop.organisations.routes import bp as organisations_bp
from shop.payments.refunds import register_refund_hook
from shop.payments.routes import bp as payments_bp
from shop.pii import EXTENSION_KEY, PiiCipher
from shop.schema_migrations import configure_version_locations, db_cli_group


def create_app(config: Config | dict | None = None) -> Flask:
    """Build the application.

    ``config`` may be a :class:`Config` instance, or a dict of overrides applied on top
    of :class:`TestingConfig` (when it sets ``TESTING``) or :class:`Config`.
    """
    instance_path = Path(os.environ.get("INSTANCE_PATH") or PROJECT_ROOT / "instance")
    app = Flask(
        __name__,
        instance_path=str(instance_path),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder="static",
    )
    # Every <int:…> in a URL is a row id: bounded to what an INTEGER column holds, so
    # /batches/99999999999999999999 is a 404, not a database overflow (500).
    app.url_map.converters["int"] = RowIdConverter

    if isinstance(config, dict):
        overrides = dict(config)
        base = TestingConfig() if overrides.get("TESTING") else Config()
        for key, value in overrides.items():
            setattr(base, key, value)
        config = base
    config = config or Config()
    if config.ENV_NAME == "production":
        problems = config.unsafe_settings()
        if problems:
            raise UnsafeConfiguration(problems)
    config.resolve(instance_path)
    app.config.from_object(config)
    Path(app.config["UPLOAD_FOLDER"]).mkdir(parents=True, exist_ok=True)

    request_log.configure_logging()
    request_log.init_app(app)
    security.init_app(app)
    page_cache.init_app(app)
    _init_extensions(app)
    _register_blueprints(app)
    _register_errors(app)
    _register_template_helpers(app)

    _wire_money_flow(app)
    register_jobs(app)
    register_cli(app)
    _warn_when_reached_elsewhere(app)
    return app


def _wire_money_flow(app: Flask) -> None:
    """Connect the packages that hand money on, here and nowhere else, so none of them
    imports the one that reacts to it.

    Sales and refunds post to the ledger inside the transaction that changes the order
    (paid and refund hooks); the public boards fold every posting in the transaction
    that posted it, just before its commit, reading sales and income through the
    sources each package registers.
    """
    register_paid_hook(app, post_order_sale)
    register_refund_hook(app, post_refund_reversal)
    # The buyer's e-mails, recorded in the same transactions (shop/mail).
    register_paid_hook(app, mail_events.order_paid)
    register_refund_hook(app, mail_events.refund_succeeded)
    start_following()
    register_source(app, "sale", purchase=online_purchase)
    register_offline_board_sources(app)


def _warn_when_reached_elsewhere(app: Flask) -> None:
    """Log once if the first request arrives at another address than PUBLIC_BASE_URL:
    Alipay's notify and return URLs and the QR codes are built from it, so a mismatch
    means payments that never confirm (the commonest first-run mistake)."""
    if app.testing:
        return
    checked = []

    @app.before_request
    def _compare_base_url() -> None:
        if checked:
            return
        checked.append(True)
        here = request.host_url.rstrip("/")
        if here != app.config["PUBLIC_BASE_URL"]:
            app.logger.warning(
                "PUBLIC_BASE_URL is %s but this request came to %s: Alipay notifications, "
                "return URLs and QR codes use PUBLIC_BASE_URL; set it to the shop's address",
                app.config["PUBLIC_BASE_URL"],
                here,
            )


class RowIdConverter(IntegerConverter):
    """``<int:…>`` limited to 1 … 2**31-1 (PostgreSQL ``integer``; SQLite is wider)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)


def _select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI, background jobs: the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = request.args.get("lang") or session.get("lang")
    if chosen in languages:
        return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def _init_extensions(app: Flask) -> None:
    db.init_app(app)
    audit_log.install(db.session)
    migrate.init_app(
        app,
        db,
        directory=str(PROJECT_ROOT / "migrations"),
        render_as_batch=True,  # SQLite can only ALTER tables by copying them
        compare_type=True,
        render_item=render_migration_type,
    )
    # Plugins' migration branches (the sandbox's) join this app's version locations, and
    # `flask db upgrade` upgrades every head: see shop/schema_migrations.py.
    if configure_version_locations not in migrate.configure_callbacks:
        migrate.configure(configure_version_locations)
    app.cli.add_command(db_cli_group(), name="db")
    csrf.init_app(app)
    babel.init_app(
        app,
        locale_selector=_select_locale,
        default_translation_directories=str(Path(__file__).parent / "translations"),
    )
    limiter.init_app(app)
    app.extensions[EXTENSION_KEY] = PiiCipher(app.config["PII_KEY"])

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    app.before_request(staff_session_rules)

    @login_manager.user_loader
    def load_user(user_id: str):
        # "<id>:<session_version>": a session from before a password change (or from
        # before versions existed) names an old version and is signed out.
        number, _sep, version = user_id.partition(":")
        if not (number.isdigit() and version.isdigit()):
            return None
        user = db.session.get(User, int(number))
        return user if user is not None and user.session_version == int(version) else None


def _register_blueprints(app: Flask) -> None:
    app.register_blueprint(health_bp)
    app.register_blueprint(catalog_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(cart_bp)
    app.register_blueprint(checkout_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(console_bp, url_prefix="/console")
    app.register_blueprint(offline_bp, url_prefix="/console/offline")
    app.register_blueprint(boards_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(approvals_bp, url_prefix="/admin/proposals")
    app.register_blueprint(audit_bp, url_prefix="/admin/audit")
    app.register_blueprint(changes_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(invoices_bp)
    app.register_blueprint(buyers_bp, url_prefix="/console")
    app.register_blueprint(organisations_bp)
    if app.config["ALIPAY_SANDBOX"]:
        # The pretend Alipay is a plugin, imported by its configured module name and only
        # here, so no shop code can come to depend on it and production (sandbox off)
        # never loads it, its routes or its tables. It mounts itself: blueprint, migration
        # branch, default ALIPAY_GATEWAY_URL.
        importlib.import_module(app.config["SANDBOX_GATEWAY"]).init_app(app)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_errors(app: Flask) -> None:
    def render_error(status: int, code: str, message: str):
        if _wants_json():
            return error_response(status, code, message)
        return render_template("errors/error.html", status=status, message=message), status

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_error(400, "csrf", _("页面已过期，请刷新后重试。"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            400: _("请求有误。"),
            403: _("您没有权限访问此页面。"),
            404: _("页面不存在。"),
            405: _("不支持此操作。"),
            413: _("上传的内容太大。"),
            429: _("操作太频繁，请稍后再试。"),
        }
        code = (error.name or "error").lower().replace(" ", "_")
        response = app.make_response(
            render_error(error.code or 500, code, messages.get(error.code, error.description))
        )
        # Our page replaces werkzeug's, but not the headers a client needs from it: a
        # 405's Allow, a 401's WWW-Authenticate, a 429's Retry-After.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    def answer_failure(status: int, code: str, message: str):
        # Alipay reads only the body: anything but "success" makes it notify again later.
        if request.endpoint == "payments.alipay_notify":
            return "fail", status, {"Content-Type": "text/plain; charset=utf-8"}
        try:
            return render_error(status, code, message)
        except Exception:  # the page itself needed the database (a signed-in user)
            app.logger.exception("error page failed; answering plain text")
            return message, status, {"Content-Type": "text/plain; charset=utf-8"}

    def _rule() -> str:
        # The route's pattern, not the path: paths carry order tokens.
        return request.url_rule.rule if request.url_rule is not None else "(no route)"

    @app.errorhandler(DBAPIError)
    def database_error(error: DBAPIError):
        if not db_retry.is_unavailable(error):
            return unexpected_error(error)
        # A fault that passes (see shop/db_retry.py): nothing of the request committed,
        # so the caller may simply try again — every money step is idempotent by key.
        app.logger.warning(
            "database unavailable on %s %s (SQLSTATE %s): %s",
            request.method,
            _rule(),
            db_retry.sqlstate(error),
            type(error.orig).__name__,
        )
        db.session.rollback()
        response = app.make_response(
            answer_failure(503, "database_unavailable", _("系统暂时繁忙，请稍后重试。"))
        )
        response.headers["Retry-After"] = str(db_retry.RETRY_AFTER_SECONDS)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, _rule())
        db.session.rollback()
        return answer_failure(500, "internal_error", _("服务器出错了，请稍后再试。"))


def _register_template_helpers(app: Flask) -> None:
    formatting.register(app)

    @app.context_processor
    def inject_globals():
        return {
            "languages": app.config["LANGUAGES"],
            "current_locale": str(get_locale()),
        }
