"""Configuration read from the environment (see the table in README).

Secrets that a fresh machine lacks (session key, PII key, sandbox keys) are generated
once into the instance folder and reused, so ``make run`` needs no set-up and a
second run keeps sessions and can still decrypt the data it wrote.
"""

import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_CLOCK = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = (os.environ.get(name) or "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise UnsafeConfiguration([f"{name} must be a whole number, not {value!r}"]) from None


class UnsafeConfiguration(SystemExit):
    """The settings are not safe to serve with; the message lists every problem.

    A SystemExit, so ``flask``, gunicorn and ``make run`` stop with the message and no
    traceback instead of serving."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"Lianxin Market will not start with these settings:\n{lines}")


def read_or_create_secret(instance_path: Path, filename: str, make) -> str:
    """Return the secret stored in ``instance_path/filename``, creating it if absent.

    The file is created with mode 0600 and written atomically (O_EXCL), so two
    processes starting at once agree on one value.
    """
    path = instance_path / filename
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


class Config:
    """Production-shaped defaults; every value can be overridden by the environment.

    Values are read when the object is created (in ``create_app``), not at import,
    so a test or a CLI run can set the environment first.
    """

    TESTING = False
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    RATELIMIT_HEADERS_ENABLED = True

    BABEL_DEFAULT_LOCALE = "zh_Hans_CN"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    LANGUAGES = {"zh_Hans_CN": "中文", "en": "English"}
    WTF_I18N_ENABLED = True

    # Photo uploads: the request cap is a little above the per-file cap so an
    # oversized photo reaches the form and gets a clear message instead of a bare 413.
    MAX_PHOTO_BYTES = 10 * 1024 * 1024
    MAX_CONTENT_LENGTH = 11 * 1024 * 1024
    MAX_PHOTO_PIXELS = 40_000_000
    MAX_PHOTOS_PER_PRODUCT = 8
    PHOTO_WIDTHS = (320, 800, 1600)

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"

    ORDER_EXPIRY_MINUTES = 30
    # The module mounted as the built-in sandbox gateway when ALIPAY_SANDBOX is on (its
    # init_app(app) is called; the shop never imports it by name).
    SANDBOX_GATEWAY = "alipay_sandbox"
    # The sandbox re-sends a notification not answered "success" (like Alipay, but fast).
    SANDBOX_NOTIFY_ATTEMPTS = 3
    SANDBOX_NOTIFY_RETRY_SECONDS = 0.5

    def __init__(self) -> None:
        env = os.environ
        self.ENV_NAME = env.get("LIANXIN_ENV", "development")
        self.SECRET_KEY = env.get("SECRET_KEY") or None
        self.PII_KEY = env.get("PII_KEY") or None
        # Generated secrets are for a laptop: production refuses them (see unsafe_settings).
        self.SECRET_KEY_GENERATED = self.SECRET_KEY is None
        self.PII_KEY_GENERATED = self.PII_KEY is None
        # How many proxies in front of the app set X-Forwarded-*: 0 ignores those headers.
        self.TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)
        self.SQLALCHEMY_DATABASE_URI = env.get("DATABASE_URL") or None
        self.UPLOAD_FOLDER = env.get("UPLOAD_FOLDER") or None
        self.PUBLIC_BASE_URL = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
        self.REDIS_URL = env.get("REDIS_URL") or None
        # The Host names the shop answers to; any other gets a 400 before routing, so no
        # page, API answer (absolute links) or cached copy is ever built around an
        # attacker's Host header. Production: PUBLIC_BASE_URL's host and the machine's own
        # names (health checks, the jobs worker); TRUSTED_HOSTS (comma-separated, a
        # leading dot for subdomains) replaces that list. Development: any host.
        hosts = [h.strip() for h in env.get("TRUSTED_HOSTS", "").split(",") if h.strip()]
        if not hosts and self.ENV_NAME == "production":
            hosts = [urlsplit(self.PUBLIC_BASE_URL).hostname or "", "localhost", "127.0.0.1"]
        self.TRUSTED_HOSTS = [h for h in hosts if h] or None
        # Pages kept per worker for anonymous readers (shop/page_cache.py); 0: off.
        self.PAGE_CACHE_ENTRIES = _env_int("PAGE_CACHE_ENTRIES", 256)
        self.LOGIN_RATE_LIMIT = env.get("LOGIN_RATE_LIMIT") or "10 per minute"
        # Reads of /api/v1 and the open-data downloads, per client address, shared.
        self.API_READ_RATE_LIMIT = env.get("API_READ_RATE_LIMIT") or "300 per minute"
        # Off only for load tests and benchmarks that drive the shop from one address.
        self.RATELIMIT_ENABLED = env.get("RATELIMIT_ENABLED", "1") != "0"
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        self.ALIPAY_APP_ID = env.get("ALIPAY_APP_ID") or "2021000000000001"
        self.ALIPAY_APP_PRIVATE_KEY_FILE = env.get("ALIPAY_APP_PRIVATE_KEY_FILE") or None
        self.ALIPAY_PUBLIC_KEY_FILE = env.get("ALIPAY_PUBLIC_KEY_FILE") or None
        # Ed25519 key that signs the ledger's tree heads; default: generated into the
        # instance folder on first use. Never in the database.
        self.LEDGER_SIGNING_KEY_FILE = env.get("LEDGER_SIGNING_KEY_FILE") or None
        self.ALIPAY_GATEWAY_URL = env.get("ALIPAY_GATEWAY_URL") or None
        # Checked on notifications only when set (the PID of the merchant's Alipay account).
        self.ALIPAY_SELLER_ID = env.get("ALIPAY_SELLER_ID") or None
        self.ALIPAY_TIMEOUT_SECONDS = float(env.get("ALIPAY_TIMEOUT_SECONDS") or 15)
        self.ALIPAY_SANDBOX = _env_flag("ALIPAY_SANDBOX", self.ENV_NAME != "production")
        self.SESSION_COOKIE_SECURE = self.PUBLIC_BASE_URL.startswith("https://")
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        # Alipay's standard rate is 0.6% (60 basis points); the fee is credited to the
        # fees account and borne by the enterprise's share, never by households.
        self.ALIPAY_FEE_BASIS_POINTS = int(env.get("ALIPAY_FEE_BASIS_POINTS") or 60)
        # Households are paid out once they are owed at least this much (fen).
        self.PAYOUT_THRESHOLD_FEN = int(env.get("PAYOUT_THRESHOLD_FEN") or 10000)
        # The jobs worker (flask jobs run / tick): how often each job is due, and when
        # the daily payout runs (Asia/Shanghai; empty: the worker never pays out).
        # Four eyes: a payout to a card changed within this many days needs its own
        # approval; refunds and reversals above this amount (fen) need a second admin;
        # a proposal not decided within this many hours expires.
        self.PAYOUT_CARD_HOLD_DAYS = _env_int("PAYOUT_CARD_HOLD_DAYS", 7)
        self.APPROVAL_THRESHOLD_FEN = _env_int("APPROVAL_THRESHOLD_FEN", 50000)
        self.PROPOSAL_EXPIRY_HOURS = _env_int("PROPOSAL_EXPIRY_HOURS", 72)
        # Stock hoarding: unexpired unpaid orders (and the units in them) one phone or
        # buyer account, and one client address, may hold (shop/orders/holds.py).
        self.UNPAID_ORDERS_PER_BUYER = _env_int("UNPAID_ORDERS_PER_BUYER", 3)
        self.UNPAID_UNITS_PER_BUYER = _env_int("UNPAID_UNITS_PER_BUYER", 200)
        self.UNPAID_ORDERS_PER_CLIENT = _env_int("UNPAID_ORDERS_PER_CLIENT", 10)
        self.UNPAID_UNITS_PER_CLIENT = _env_int("UNPAID_UNITS_PER_CLIENT", 500)
        self.UNPAID_ORDERS_PER_ORGANISATION = _env_int("UNPAID_ORDERS_PER_ORGANISATION", 5)
        self.UNPAID_UNITS_PER_ORGANISATION = _env_int("UNPAID_UNITS_PER_ORGANISATION", 5000)
        # E-mail (shop/mail): the SMTP server the jobs worker sends the outbox through;
        # without SMTP_HOST development writes messages to the log, production waits.
        self.SMTP_HOST = env.get("SMTP_HOST") or None
        self.SMTP_PORT = _env_int("SMTP_PORT", 587)
        self.SMTP_STARTTLS = _env_flag("SMTP_STARTTLS", self.SMTP_PORT == 587)
        self.SMTP_USERNAME = env.get("SMTP_USERNAME") or None
        self.SMTP_PASSWORD = env.get("SMTP_PASSWORD") or None
        self.SMTP_TIMEOUT_SECONDS = _env_int("SMTP_TIMEOUT_SECONDS", 20)
        self.MAIL_FROM = env.get("MAIL_FROM") or "连心集市 <noreply@localhost>"
        self.MAIL_EVERY_SECONDS = _env_int("MAIL_EVERY_SECONDS", 30)
        self.MAIL_RETRY_SECONDS = _env_int("MAIL_RETRY_SECONDS", 60)
        self.MAIL_MAX_ATTEMPTS = _env_int("MAIL_MAX_ATTEMPTS", 10)
        self.MAIL_CLAIM_SECONDS = _env_int("MAIL_CLAIM_SECONDS", 600)
        # Staff sessions: signed out after this many idle minutes; failed password or
        # code attempts in a row before the account locks, and for how long.
        self.STAFF_IDLE_MINUTES = _env_int("STAFF_IDLE_MINUTES", 30)
        self.LOGIN_LOCK_AFTER = _env_int("LOGIN_LOCK_AFTER", 5)
        self.LOGIN_LOCK_MINUTES = _env_int("LOGIN_LOCK_MINUTES", 15)
        # Staff and admins must enrol in two-factor login before using the console.
        self.STAFF_2FA_REQUIRED = _env_flag("STAFF_2FA_REQUIRED", True)
        self.JOBS_POLL_SECONDS = _env_int("JOBS_POLL_SECONDS", 15)
        self.JOBS_LEASE_SECONDS = _env_int("JOBS_LEASE_SECONDS", 900)
        self.EXPIRE_EVERY_SECONDS = _env_int("EXPIRE_EVERY_SECONDS", 60)
        self.RECONCILE_EVERY_SECONDS = _env_int("RECONCILE_EVERY_SECONDS", 300)
        self.BOARDS_FOLLOW_EVERY_SECONDS = _env_int("BOARDS_FOLLOW_EVERY_SECONDS", 60)
        # A signed tree head of the ledger's Merkle tree whenever it grew (shop/transparency).
        self.TREE_HEAD_EVERY_SECONDS = _env_int("TREE_HEAD_EVERY_SECONDS", 60)
        self.PAYOUTS_AT = env.get("PAYOUTS_AT", "10:00").strip()
        if self.PAYOUTS_AT and not _CLOCK.fullmatch(self.PAYOUTS_AT):
            raise UnsafeConfiguration(
                [f"PAYOUTS_AT must be a time like 10:00 (or empty), not {self.PAYOUTS_AT!r}"]
            )

    def resolve(self, instance_path: Path) -> None:
        """Fill the values that default to files in the instance folder."""
        if not self.SECRET_KEY:
            self.SECRET_KEY = read_or_create_secret(
                instance_path, "secret_key", lambda: secrets.token_hex(32)
            )
        if not self.PII_KEY:
            self.PII_KEY = read_or_create_secret(
                instance_path, "pii_key", lambda: Fernet.generate_key().decode()
            )
        if not self.SQLALCHEMY_DATABASE_URI:
            self.SQLALCHEMY_DATABASE_URI = f"sqlite:///{instance_path / 'lianxin.db'}"
        if not self.UPLOAD_FOLDER:
            self.UPLOAD_FOLDER = str(instance_path / "uploads")

    def unsafe_settings(self) -> list[str]:
        """What makes these settings unsafe for the public service (LIANXIN_ENV=production);
        empty when there is nothing."""
        problems = []
        if self.ALIPAY_SANDBOX:
            problems.append(
                "ALIPAY_SANDBOX is on: the built-in pretend Alipay would be mounted and "
                "accept payments that never happened (set ALIPAY_SANDBOX=0)"
            )
        if self.SECRET_KEY_GENERATED:
            problems.append(
                "SECRET_KEY is not set: a key generated into the instance folder signs "
                "sessions (set SECRET_KEY to a long random value kept outside the code)"
            )
        if self.PII_KEY_GENERATED:
            problems.append(
                "PII_KEY is not set: households' names, ID numbers and bank cards would be "
                "encrypted with a key generated on this machine (set PII_KEY and back it up)"
            )
        if not self.PUBLIC_BASE_URL.startswith("https://"):
            problems.append(
                f"PUBLIC_BASE_URL is {self.PUBLIC_BASE_URL!r}: buyers, Alipay's notifications "
                "and the QR codes must reach the shop over https"
            )
        if not self.REDIS_URL:
            problems.append(
                "REDIS_URL is not set: each gunicorn worker would count login attempts and "
                "other limits on its own (10 a minute would be 10 × workers)"
            )
        if not self.STAFF_2FA_REQUIRED:
            problems.append(
                "STAFF_2FA_REQUIRED is off: staff and admins could sign in with a password "
                "alone (remove STAFF_2FA_REQUIRED=0)"
            )
        if not self.LEDGER_SIGNING_KEY_FILE:
            problems.append(
                "LEDGER_SIGNING_KEY_FILE is not set: each host would sign the ledger's tree "
                "heads with a key of its own, made in its instance folder (create one with "
                "`flask ledger public-key` and share the file)"
            )
        elif not Path(self.LEDGER_SIGNING_KEY_FILE).is_file():
            problems.append(
                f"LEDGER_SIGNING_KEY_FILE names {self.LEDGER_SIGNING_KEY_FILE}, which is not "
                "a readable file (production never creates it: a new key breaks witnesses)"
            )
        for name in ("ALIPAY_APP_PRIVATE_KEY_FILE", "ALIPAY_PUBLIC_KEY_FILE"):
            path = getattr(self, name)
            if not path:
                problems.append(f"{name} is not set (the generated sandbox key would be used)")
            elif not Path(path).is_file():
                problems.append(f"{name} names {path}, which is not a readable file")
        return problems


class TestingConfig(Config):
    """Isolated settings for the test suite: CSRF and rate limits off unless a test
    turns them on, a fresh PII key per app, sandbox payments."""

    TESTING = True
    WTF_CSRF_ENABLED = False

    def __init__(self) -> None:
        super().__init__()
        self.ENV_NAME = "testing"
        self.SECRET_KEY = "test-secret-key"
        self.PII_KEY = Fernet.generate_key().decode()
        self.RATELIMIT_STORAGE_URI = "memory://"
        self.RATELIMIT_ENABLED = False
        self.ALIPAY_SANDBOX = True
