"""Started as production, the app refuses unsafe settings — all of them, in one message."""

import pytest
from cryptography.fernet import Fernet
from flask_migrate import upgrade

from ledger import load_or_create_private_key
from shop import create_app
from shop.config import Config, UnsafeConfiguration

SETTINGS = (
    "LIANXIN_ENV", "ALIPAY_SANDBOX", "SECRET_KEY", "PII_KEY", "PUBLIC_BASE_URL",
    "ALIPAY_APP_PRIVATE_KEY_FILE", "ALIPAY_PUBLIC_KEY_FILE", "DATABASE_URL",
    "REDIS_URL", "STAFF_2FA_REQUIRED", "LEDGER_SIGNING_KEY_FILE",
)  # fmt: skip


@pytest.fixture
def production(monkeypatch, tmp_path):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIANXIN_ENV", "production")
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")
    private, public = tmp_path / "app_private.pem", tmp_path / "alipay_public.pem"
    private.write_text("-----BEGIN RSA PRIVATE KEY-----\n")
    public.write_text("-----BEGIN PUBLIC KEY-----\n")
    ledger_key = tmp_path / "ledger-signing-key.pem"
    load_or_create_private_key(ledger_key)
    safe = {
        "SECRET_KEY": "x" * 64,
        "PII_KEY": Fernet.generate_key().decode(),
        "PUBLIC_BASE_URL": "https://shop.example.org",
        "ALIPAY_APP_PRIVATE_KEY_FILE": str(private),
        "ALIPAY_PUBLIC_KEY_FILE": str(public),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "LEDGER_SIGNING_KEY_FILE": str(ledger_key),
    }
    for name, value in safe.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_safe_production_settings_start(production, tmp_path):
    app = create_app(Config())
    assert app.config["ENV_NAME"] == "production"
    assert "sandbox.gateway" not in app.view_functions  # no pretend Alipay
    assert not any(rule.rule.startswith("/sandbox") for rule in app.url_map.iter_rules())
    # Nothing was generated into the instance folder.
    assert not (tmp_path / "instance" / "secret_key").exists()
    assert not (tmp_path / "instance" / "pii_key").exists()


def test_every_unsafe_setting_is_named_in_one_message(production, tmp_path):
    production.setenv("ALIPAY_SANDBOX", "1")
    production.delenv("SECRET_KEY")
    production.delenv("PII_KEY")
    production.setenv("PUBLIC_BASE_URL", "http://shop.example.org")
    production.delenv("ALIPAY_APP_PRIVATE_KEY_FILE")
    production.setenv("ALIPAY_PUBLIC_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(Config())
    message = str(refused.value)
    for expected in (
        "ALIPAY_SANDBOX is on",
        "SECRET_KEY is not set",
        "PII_KEY is not set",
        "PUBLIC_BASE_URL is 'http://shop.example.org'",
        "ALIPAY_APP_PRIVATE_KEY_FILE is not set",
        f"ALIPAY_PUBLIC_KEY_FILE names {tmp_path / 'missing.pem'}",
    ):
        assert expected in message
    assert len(refused.value.problems) == 6
    assert not (tmp_path / "instance" / "secret_key").exists()  # refused before generating


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("ALIPAY_SANDBOX", "yes", "ALIPAY_SANDBOX"),
        ("SECRET_KEY", "", "SECRET_KEY"),
        ("PII_KEY", "", "PII_KEY"),
        ("PUBLIC_BASE_URL", "http://127.0.0.1:5000", "PUBLIC_BASE_URL"),
        ("ALIPAY_APP_PRIVATE_KEY_FILE", "", "ALIPAY_APP_PRIVATE_KEY_FILE"),
        ("ALIPAY_PUBLIC_KEY_FILE", "/nonexistent/alipay.pem", "ALIPAY_PUBLIC_KEY_FILE"),
        ("STAFF_2FA_REQUIRED", "0", "STAFF_2FA_REQUIRED"),
        ("LEDGER_SIGNING_KEY_FILE", "", "LEDGER_SIGNING_KEY_FILE is not set"),
        ("LEDGER_SIGNING_KEY_FILE", "/nonexistent/key.pem", "LEDGER_SIGNING_KEY_FILE names"),
        ("REDIS_URL", "", "REDIS_URL"),
    ],
)
def test_each_unsafe_setting_alone_is_refused(production, name, value, named):
    production.setenv(name, value)
    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(Config())
    assert len(refused.value.problems) == 1
    assert refused.value.problems[0].startswith(named)


def test_development_keeps_its_conveniences(monkeypatch, tmp_path):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'dev.db'}")
    app = create_app(Config())
    assert app.config["ALIPAY_SANDBOX"] is True
    assert (tmp_path / "instance" / "secret_key").exists()


def test_a_malformed_number_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", "one")
    with pytest.raises(UnsafeConfiguration, match="TRUSTED_PROXIES must be a whole number"):
        Config()
    monkeypatch.delenv("TRUSTED_PROXIES")
    monkeypatch.setenv("PAYOUTS_AT", "25:00")
    with pytest.raises(UnsafeConfiguration, match="PAYOUTS_AT"):
        Config()


def test_production_answers_only_to_its_own_host_names(production):
    production.setenv("RATELIMIT_ENABLED", "0")  # REDIS_URL names no running server here
    app = create_app(Config())
    with app.app_context():
        upgrade(revision="heads")
    assert app.config["TRUSTED_HOSTS"] == ["shop.example.org", "localhost", "127.0.0.1"]
    client = app.test_client()
    assert client.get("/healthz", base_url="http://127.0.0.1:5000").status_code == 200
    assert client.get("/healthz", base_url="https://shop.example.org").status_code == 200
    # A forged Host would otherwise end up in the API's absolute links and in any cache.
    for url in ("/", "/api/v1/products", "/healthz"):
        refused = client.get(url, base_url="https://evil.example")
        assert refused.status_code == 400, url
        assert b"evil.example" not in refused.data
    forwarded = client.get(
        "/api/v1/products",
        base_url="https://shop.example.org",
        headers={"X-Forwarded-Host": "evil.example"},
    )
    assert forwarded.status_code == 200  # X-Forwarded-Host is believed only from proxies
    assert b"evil.example" not in forwarded.data


def test_trusted_hosts_can_be_listed(production):
    production.setenv("TRUSTED_HOSTS", "shop.example.org, .example.org")
    app = create_app(Config())
    assert app.config["TRUSTED_HOSTS"] == ["shop.example.org", ".example.org"]
    client = app.test_client()
    assert client.get("/healthz", base_url="https://www.example.org").status_code == 200
    assert client.get("/healthz", base_url="http://127.0.0.1:5000").status_code == 400
