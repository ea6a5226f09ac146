"""Real-browser tests: Playwright driving the system's Chromium, headless.

No browser is downloaded: Chromium is found at ``CHROMIUM_PATH`` or on the PATH
(Debian's ``chromium``). Without one these tests are skipped — unless
``REQUIRE_BROWSER=1`` (CI), where a missing browser fails the run instead.
Screenshots go to ``test-output/<test name>/``.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from shop.config import PROJECT_ROOT

REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
    ),
    "locale": "zh-CN",
}


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured and Path(configured).exists():
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        if REQUIRE_BROWSER:
            pytest.fail("REQUIRE_BROWSER=1 but no Chromium found (set CHROMIUM_PATH)")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRE_BROWSER:
            raise
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # Running as root in a container needs --no-sandbox; /dev/shm may be tiny.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture
def phone(browser):
    context = browser.new_context(**PHONE)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def output_dir(request) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = PROJECT_ROOT / "test-output" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page, base_url: str, username: str, password: str) -> None:
    """Log in as the person would: the password, then the code from their authenticator
    app — or, for staff not yet enrolled, the enrolment page (scan, first code), which
    the console requires before anything else."""
    import pyotp
    from sqlalchemy import select

    from shop.auth.models import User
    from shop.extensions import db

    page.goto(base_url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_load_state()
    if page.url.split("?")[0].endswith("/login/code"):
        db.session.expire_all()
        user = db.session.scalar(select(User).where(User.username == username))
        page.fill("input[name=code]", pyotp.TOTP(user.totp_secret).now())
        page.locator("form button[type=submit]").last.click()
        page.wait_for_load_state()
    if page.url.split("?")[0].endswith("/account/two-factor"):
        secret = page.locator("#totp-secret").inner_text().strip()
        page.fill("input[name=code]", pyotp.TOTP(secret).now())
        page.locator("form button[type=submit]").last.click()
        page.locator(".recovery-codes").wait_for()
