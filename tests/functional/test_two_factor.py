"""Two-factor login for the village team, as staff and an auditor notice it: enrolling
an authenticator app, codes that work once, recovery codes, lock-out after failures in a
row, idle sign-out, and a password change (by the user or from the command line) that
signs out every other session — each of these in the audit log.

Codes the server must accept come from ``totp_code`` (the current step, or the next one
if the current one was used already); codes it must refuse are made with pyotp for the
steps that make them wrong.
"""

import hashlib
import json
import re
import time
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select, text

from shop.audit.models import AuditRecord
from shop.auth.models import User
from shop.db import utcnow
from shop.extensions import db
from tests.builders import make_user, totp_code
from tests.conftest import STAFF_PASSWORD, login

CONSOLE_PAGE = "/console/products"
LOCKED = "账户已暂时锁定"
WRONG_PASSWORD = "用户名或密码不正确"


def step_now() -> int:
    return int(time.time()) // 30


def wrong_code(secret: str) -> str:
    """Six digits that are not the code of any step the server could accept now."""
    totp = pyotp.TOTP(secret)
    near = {totp.at(step * 30) for step in range(step_now() - 2, step_now() + 3)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


def signed_in_to_console(client) -> bool:
    return client.get(CONSOLE_PAGE).status_code == 200


def sent_to_login(response) -> bool:
    return response.status_code == 302 and "/login" in response.headers["Location"]


def password_step(client, username: str, password: str):
    return client.post("/login", data={"username": username, "password": password})


def reload(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


def audit(action: str, user: User) -> list[AuditRecord]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(AuditRecord)
            .where(AuditRecord.action == action, AuditRecord.object_id == str(user.id))
            .order_by(AuditRecord.seq)
        )
    )


def secret_on(page: str) -> str:
    return re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page).group(1)


def enrol_through_page(client) -> tuple[str, list[str]]:
    """Open the enrolment page, type the code the app shows for its secret; returns the
    secret and the recovery codes the page showed."""
    secret = secret_on(client.get("/account/two-factor").text)
    response = client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200
    return secret, recovery_codes_on(response.get_data(as_text=True))


def recovery_codes_on(page: str) -> list[str]:
    listed = re.search(r'<ul class="recovery-codes">(.*?)</ul>', page, re.S)
    return re.findall(r"<li><code>([^<]+)</code></li>", listed.group(1)) if listed else []


@pytest.fixture
def unenrolled(app):
    return make_user(username="newstaff", password=STAFF_PASSWORD, role="staff", two_factor=False)


# --- enrolment -------------------------------------------------------------------------


def test_staff_without_two_factor_are_sent_to_enrol_from_the_console(client, unenrolled):
    assert login(client, "newstaff", STAFF_PASSWORD).status_code == 302
    for path in ("/console/", CONSOLE_PAGE):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].endswith("/account/two-factor"), path


def test_enrolment_page_shows_a_qr_code_and_refuses_a_wrong_first_code(client, unenrolled):
    login(client, "newstaff", STAFF_PASSWORD)
    page = client.get("/account/two-factor")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert '<img src="data:image/svg+xml' in body
    secret = secret_on(body)

    refused = client.post("/account/two-factor", data={"code": wrong_code(secret)})

    assert refused.status_code == 422
    assert not recovery_codes_on(refused.get_data(as_text=True))
    user = reload(unenrolled)
    assert not user.two_factor_enabled and user.totp_secret is None
    assert not audit("auth.2fa_enrolled", user)
    # The same secret is offered again, so the app already scanned still works.
    assert f'<code id="totp-secret">{secret}</code>' in refused.get_data(as_text=True)
    assert client.get(CONSOLE_PAGE).headers["Location"].endswith("/account/two-factor")


def test_enrolment_shows_ten_recovery_codes_once_and_keeps_them_only_hashed(client, unenrolled):
    login(client, "newstaff", STAFF_PASSWORD)

    secret, codes = enrol_through_page(client)

    assert len(codes) == 10 and len(set(codes)) == 10
    user = reload(unenrolled)
    assert user.two_factor_enabled and user.totp_secret == secret
    assert signed_in_to_console(client)
    # Shown once: the page afterwards says how many are left, never the codes.
    again = client.get("/account/two-factor").get_data(as_text=True)
    assert not recovery_codes_on(again) and "totp-secret" not in again
    assert "剩余恢复码：10 个" in again
    assert not any(code in again for code in codes)
    # Stored only as SHA-256 hashes; the secret only encrypted.
    stored = json.loads(user.recovery_codes)
    assert sorted(stored) == sorted(
        hashlib.sha256(code.replace("-", "").encode()).hexdigest() for code in codes
    )
    raw = db.session.execute(
        text('SELECT totp_secret, recovery_codes FROM "user" WHERE id = :id'), {"id": user.id}
    ).one()
    assert secret not in raw.totp_secret
    assert not any(code in raw.recovery_codes for code in codes)
    # The enrolment is in the audit log, and neither the secret nor a code is.
    (record,) = audit("auth.2fa_enrolled", user)
    assert record.actor_id == user.id
    log_text = " ".join(r.summary for r in db.session.scalars(select(AuditRecord)))
    assert secret not in log_text and not any(code in log_text for code in codes)


def test_the_next_person_on_a_shared_computer_gets_a_secret_of_their_own(client, unenrolled):
    make_user(username="otherstaff", password=STAFF_PASSWORD, role="staff", two_factor=False)
    login(client, "newstaff", STAFF_PASSWORD)
    seen = secret_on(client.get("/account/two-factor").text)
    client.post("/logout")

    login(client, "otherstaff", STAFF_PASSWORD)

    assert secret_on(client.get("/account/two-factor").text) != seen


def test_a_buyer_who_enrolled_is_asked_for_the_code_too(client):
    make_user(username="buyer1", password="buyer-password-1")
    login(client, "buyer1", "buyer-password-1")
    enrol_through_page(client)
    client.post("/logout")

    response = password_step(client, "buyer1", "buyer-password-1")

    assert response.headers["Location"].endswith("/login/code")
    assert sent_to_login(client.get("/account/password"))


# --- logging in with a code --------------------------------------------------------------


def test_the_password_alone_does_not_sign_staff_in(client, staff_user):
    response = password_step(client, "staff1", STAFF_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login/code")
    assert sent_to_login(client.get(CONSOLE_PAGE))


def test_login_with_the_right_code(client, staff_user):
    password_step(client, "staff1", STAFF_PASSWORD)

    response = client.post("/login/code", data={"code": totp_code("staff1")})

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/console/")
    assert signed_in_to_console(client)
    (record,) = audit("auth.login", staff_user)
    assert record.actor_id == staff_user.id
    assert json.loads(record.summary)["after"] == {"factor": "totp"}


def test_a_wrong_code_is_refused_and_recorded(client, staff_user):
    password_step(client, "staff1", STAFF_PASSWORD)

    response = client.post("/login/code", data={"code": wrong_code(staff_user.totp_secret)})

    assert response.status_code == 422
    assert "验证码不正确" in response.get_data(as_text=True)
    assert sent_to_login(client.get(CONSOLE_PAGE))
    (record,) = audit("auth.login_failed", staff_user)
    assert record.actor_id == staff_user.id
    assert json.loads(record.summary)["after"] == {"factor": "code"}
    # A typo does not end the attempt: the right code still works.
    assert client.post("/login/code", data={"code": totp_code("staff1")}).status_code == 302
    assert signed_in_to_console(client)


def test_a_code_from_a_minute_ago_is_refused(client, staff_user):
    old = pyotp.TOTP(staff_user.totp_secret).at((step_now() - 2) * 30)
    password_step(client, "staff1", STAFF_PASSWORD)

    assert client.post("/login/code", data={"code": old}).status_code == 422
    assert sent_to_login(client.get(CONSOLE_PAGE))


def test_a_code_works_for_one_login_only(app, staff_user):
    first, second = app.test_client(), app.test_client()
    code = totp_code("staff1")
    password_step(first, "staff1", STAFF_PASSWORD)
    assert first.post("/login/code", data={"code": code}).status_code == 302

    # Seen over a shoulder and typed on another device: refused.
    password_step(second, "staff1", STAFF_PASSWORD)
    assert second.post("/login/code", data={"code": code}).status_code == 422
    # So is the code before it, though a phone's clock may lag a step.
    accepted_step = reload(staff_user).totp_last_step
    earlier = pyotp.TOTP(staff_user.totp_secret).at((accepted_step - 1) * 30)
    assert second.post("/login/code", data={"code": earlier}).status_code == 422

    assert sent_to_login(second.get(CONSOLE_PAGE))
    assert signed_in_to_console(first)


def test_a_recovery_code_works_once(app, unenrolled):
    setup = app.test_client()
    login(setup, "newstaff", STAFF_PASSWORD)
    _secret, codes = enrol_through_page(setup)
    phone_lost, again = app.test_client(), app.test_client()

    password_step(phone_lost, "newstaff", STAFF_PASSWORD)
    response = phone_lost.post("/login/code", data={"code": codes[0]})

    assert response.status_code == 302
    assert "还剩 9 个" in phone_lost.get(response.headers["Location"], follow_redirects=True).text
    assert signed_in_to_console(phone_lost)
    (used,) = audit("auth.recovery_code_used", unenrolled)
    assert used.actor_id == unenrolled.id
    assert json.loads(used.summary)["after"] == {"recovery_codes_left": 9}

    password_step(again, "newstaff", STAFF_PASSWORD)
    assert again.post("/login/code", data={"code": codes[0]}).status_code == 422
    assert sent_to_login(again.get(CONSOLE_PAGE))
    assert len(json.loads(reload(unenrolled).recovery_codes)) == 9


# --- lock-out ------------------------------------------------------------------------------


def fail_once(client, user: User, factor: str):
    if factor == "password":
        return password_step(client, user.username, "not-the-password")
    password_step(client, user.username, STAFF_PASSWORD)
    return client.post("/login/code", data={"code": wrong_code(user.totp_secret)})


@pytest.mark.parametrize("factor", ["password", "code"])
def test_five_failures_in_a_row_lock_the_account_until_the_time_passes(
    app, client, staff_user, factor
):
    assert app.config["LOGIN_LOCK_AFTER"] == 5
    for _ in range(4):
        fail_once(client, staff_user, factor)
    assert reload(staff_user).locked_until is None

    fail_once(client, staff_user, factor)

    assert reload(staff_user).locked_until > utcnow()
    # Now even the right password (and so the right code) gets nowhere.
    response = password_step(client, "staff1", STAFF_PASSWORD)
    assert response.status_code == 200
    assert LOCKED in response.get_data(as_text=True)
    assert sent_to_login(client.get(CONSOLE_PAGE))

    failures = audit("auth.login_failed", staff_user)
    assert len(failures) == 5
    assert {r.actor_id for r in failures} == {staff_user.id}
    assert {json.loads(r.summary)["after"]["factor"] for r in failures} == {factor}
    (lockout,) = audit("auth.lockout", staff_user)
    assert lockout.actor_id == staff_user.id
    assert json.loads(lockout.summary)["after"] == {"minutes": app.config["LOGIN_LOCK_MINUTES"]}

    # When the lock-out time has passed, the right password and code work again.
    user = reload(staff_user)
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert login(client, "staff1", STAFF_PASSWORD).status_code == 302
    assert signed_in_to_console(client)


def test_the_lock_stops_a_login_already_past_the_password(app, staff_user):
    other_device, attacker = app.test_client(), app.test_client()
    password_step(other_device, "staff1", STAFF_PASSWORD)
    for _ in range(5):
        fail_once(attacker, staff_user, "code")

    response = other_device.post("/login/code", data={"code": totp_code("staff1")})

    assert sent_to_login(response)
    assert sent_to_login(other_device.get(CONSOLE_PAGE))


def test_a_login_resets_the_count_of_failures(client, staff_user):
    for _ in range(4):
        fail_once(client, staff_user, "password")
    assert login(client, "staff1", STAFF_PASSWORD).status_code == 302
    client.post("/logout")
    for _ in range(4):
        fail_once(client, staff_user, "password")

    assert reload(staff_user).locked_until is None
    assert password_step(client, "staff1", STAFF_PASSWORD).status_code == 302
    assert not audit("auth.lockout", staff_user)


def test_a_buyer_is_never_locked_out(client):
    buyer = make_user(username="buyer1", password="buyer-password-1")
    for _ in range(8):
        response = password_step(client, "buyer1", "not-the-password")
        assert WRONG_PASSWORD in response.get_data(as_text=True)

    response = password_step(client, "buyer1", "buyer-password-1")

    assert response.status_code == 302
    assert client.get("/account/password").status_code == 200
    assert reload(buyer).locked_until is None
    assert not audit("auth.lockout", buyer)


# --- sessions ------------------------------------------------------------------------------


def test_an_idle_staff_session_is_signed_out(app, staff_client):
    assert signed_in_to_console(staff_client)
    with staff_client.session_transaction() as session:
        session["seen"] = time.time() - (app.config["STAFF_IDLE_MINUTES"] + 1) * 60

    response = staff_client.get(CONSOLE_PAGE)

    assert sent_to_login(response)
    assert sent_to_login(staff_client.get(CONSOLE_PAGE))


def test_a_password_change_signs_out_the_other_sessions_but_not_this_one(app, staff_user):
    here, elsewhere = app.test_client(), app.test_client()
    assert login(here, "staff1", STAFF_PASSWORD).status_code == 302
    assert login(elsewhere, "staff1", STAFF_PASSWORD).status_code == 302

    response = here.post(
        "/account/password",
        data={
            "current": STAFF_PASSWORD,
            "password": "a-new-password-2",
            "confirm": "a-new-password-2",
        },
    )

    assert response.status_code == 302
    assert signed_in_to_console(here)
    assert sent_to_login(elsewhere.get(CONSOLE_PAGE))
    (record,) = audit("auth.password_changed", staff_user)
    assert record.actor_id == staff_user.id
    assert record.actor_role == "staff"
    assert WRONG_PASSWORD in password_step(elsewhere, "staff1", STAFF_PASSWORD).text
    assert password_step(elsewhere, "staff1", "a-new-password-2").status_code == 302


def test_a_wrong_current_password_changes_nothing(staff_client, staff_user):
    response = staff_client.post(
        "/account/password",
        data={"current": "not-it", "password": "a-new-password-2", "confirm": "a-new-password-2"},
    )

    assert response.status_code == 422
    assert reload(staff_user).check_password(STAFF_PASSWORD)
    assert signed_in_to_console(staff_client)
    assert not audit("auth.password_changed", staff_user)


def test_a_password_reset_from_the_command_line_signs_the_user_out(app, staff_client, staff_user):
    result = app.test_cli_runner().invoke(
        args=["users", "reset-password", "staff1"], input="reset-password-3\nreset-password-3\n"
    )

    assert result.exit_code == 0, result.output
    assert "password reset for 'staff1'" in result.output
    assert sent_to_login(staff_client.get(CONSOLE_PAGE))
    (record,) = audit("auth.password_reset", staff_user)
    assert record.actor_role == "system"
    assert record.actor_name == "cli"
    assert record.actor_id is None
    assert WRONG_PASSWORD in password_step(staff_client, "staff1", STAFF_PASSWORD).text
    assert login(staff_client, "staff1", "reset-password-3").status_code == 302
    assert signed_in_to_console(staff_client)


def test_an_unknown_username_costs_the_same_password_check_as_a_known_one(client, app, monkeypatch):
    """Timing must not tell which usernames exist: every login attempt — unknown name,
    wrong password, locked or inactive account — runs exactly one scrypt check."""
    import shop.auth.models as models

    make_user(username="known-1", password="right-password-1")
    inactive = make_user(username="gone-1", password="right-password-1")
    inactive.active = False
    db.session.commit()
    checks = []
    real = models.check_password_hash
    monkeypatch.setattr(models, "check_password_hash", lambda h, p: checks.append(h) or real(h, p))
    for username in ("nobody-here", "known-1", "gone-1"):
        checks.clear()
        page = client.post("/login", data={"username": username, "password": "wrong-guess-1"})
        assert "用户名或密码不正确" in page.get_data(as_text=True)
        assert len(checks) == 1, username
        assert checks[0].startswith("scrypt:"), username
