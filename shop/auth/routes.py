import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from shop.auth import two_factor
from shop.auth.forms import CodeForm, LoginForm, PasswordChangeForm, RegisterForm
from shop.auth.models import password_matches
from shop.auth.services import AccountError, create_user
from shop.cart.services import merge_into_user
from shop.extensions import db, limiter

bp = Blueprint("auth", __name__)
# A password accepted but no code yet: how long the code page waits (seconds).
SECOND_STEP_SECONDS = 300
# Blueprints that are the village team's console: two-factor login required there.
CONSOLE_BLUEPRINTS = ("console", "admin", "offline", "approvals", "audit")


def _safe_next(target: str | None) -> str | None:
    # Only same-site relative paths: an open redirect would make phishing links easy.
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None  # browsers read "/\\evil.example" as "//evil.example"
    return target


def _finish_login(user, factor: str, next_url: str | None):
    login_user(user)
    session["seen"] = time.time()
    two_factor.record_login(user, factor)
    merge_into_user(user.id, session.get("cart", {}))
    session.modified = True
    flash(_("欢迎回来，%(name)s。", name=user.display_name), "success")
    default = "console.dashboard" if user.has_role("staff") else "catalog.home"
    return redirect(_safe_next(next_url) or url_for(default))


def _locked_message():
    return _(
        "失败次数过多，账户已暂时锁定，请 %(n)s 分钟后再试。",
        n=current_app.config["LOGIN_LOCK_MINUTES"],
    )


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = two_factor.find_user(form.username.data)
        # Checked first and always, so no answer is quicker for names that do not exist.
        password_ok = password_matches(user, form.password.data)
        if user is not None and two_factor.is_locked(user):
            flash(_locked_message(), "error")
        elif user is None or not user.active or not password_ok:
            locked = user is not None and two_factor.register_failure(user, "password")
            flash(_locked_message() if locked else _("用户名或密码不正确。"), "error")
        elif user.two_factor_enabled:  # anyone enrolled, as the enrolment page promises
            session["second_step"] = {
                "user": user.get_id(),
                "at": time.time(),
                "next": request.args.get("next"),
            }
            return redirect(url_for("auth.login_code"))
        else:
            return _finish_login(user, "password", request.args.get("next"))
    return render_template("auth/login.html", form=form)


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login_code():
    step = session.get("second_step") or {}
    number, _sep, version = str(step.get("user", "")).partition(":")
    user = db.session.get(two_factor.User, int(number)) if number.isdigit() else None
    fresh = time.time() - float(step.get("at", 0)) < SECOND_STEP_SECONDS
    if user is None or not fresh or str(user.session_version) != version:
        session.pop("second_step", None)
        flash(_("请重新输入用户名和密码。"), "error")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if form.validate_on_submit():
        if two_factor.is_locked(user):
            session.pop("second_step", None)
            flash(_locked_message(), "error")
            return redirect(url_for("auth.login"))
        factor = two_factor.check_second_factor(user, form.code.data)
        if factor is not None:
            session.pop("second_step", None)
            if factor == "recovery":
                flash(
                    _("已使用一个恢复码，还剩 %(n)s 个。", n=two_factor.recovery_codes_left(user)),
                    "error",
                )
            return _finish_login(user, factor, step.get("next"))
        if two_factor.register_failure(user, "code"):
            session.pop("second_step", None)
            flash(_locked_message(), "error")
            return redirect(url_for("auth.login"))
        flash(_("验证码不正确或已使用过。"), "error")
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login_code.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    session.pop("seen", None)
    flash(_("已退出登录。"), "success")
    return redirect(url_for("catalog.home"))


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def register():
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.username.data, form.password.data, "buyer")
        except AccountError:
            form.username.errors.append(_("这个用户名已被使用，或不符合要求。"))
        else:
            login_user(user)
            merge_into_user(user.id, session.get("cart", {}))
            session.modified = True
            flash(_("注册成功，欢迎！"), "success")
            return redirect(url_for("catalog.home"))
    return render_template("auth/register.html", form=form)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def two_factor_setup():
    """Enrol an authenticator app: a QR code, then a first code proves it works."""
    if current_user.two_factor_enabled:
        return render_template(
            "auth/two_factor.html",
            enabled=True,
            left=two_factor.recovery_codes_left(current_user),
        )
    # The secret waiting for its first code belongs to this user: the next person to log
    # in on a shared computer must not be offered a secret the last one has seen.
    pending = session.get("totp_enrolment")
    if not isinstance(pending, dict) or pending.get("user") != current_user.get_id():
        pending = {"user": current_user.get_id(), "secret": two_factor.new_secret()}
    session["totp_enrolment"] = pending
    secret = pending["secret"]
    form = CodeForm()
    if form.validate_on_submit():
        codes = two_factor.enrol(current_user, secret, form.code.data)
        if codes is not None:
            session.pop("totp_enrolment", None)
            response = current_app.make_response(
                render_template("auth/recovery_codes.html", codes=codes)
            )
            response.headers["Cache-Control"] = "no-store"
            return response
        form.code.errors.append(_("验证码不正确，请看手机上最新的六位数字。"))
    uri = two_factor.provisioning_uri(current_user, secret)
    response = current_app.make_response(
        (
            render_template(
                "auth/two_factor.html",
                enabled=False,
                form=form,
                secret=secret,
                qr=two_factor.qr_data_uri(uri),
            ),
            422 if request.method == "POST" else 200,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """A new password signs out every other session of this user."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        if not current_user.check_password(form.current.data):
            form.current.errors.append(_("当前密码不正确。"))
        else:
            user = current_user._get_current_object()
            two_factor.set_password(user, form.password.data, "auth.password_changed")
            login_user(user)  # this session carries the new version; the others do not
            session["seen"] = time.time()
            flash(_("密码已修改，其他设备上的登录已退出。"), "success")
            return redirect(url_for("catalog.home"))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/password.html", form=form), status


def staff_session_rules():
    """Before every request: sign idle staff out, and send staff without two-factor
    login to enrol before they may use the console."""
    if request.endpoint in (None, "static") or not current_user.is_authenticated:
        return None
    if not current_user.has_role("staff"):
        return None
    now = time.time()
    idle = current_app.config["STAFF_IDLE_MINUTES"] * 60
    seen = session.get("seen")
    if seen is not None and now - float(seen) > idle:
        logout_user()
        session.pop("seen", None)
        flash(_("长时间未操作，已自动退出，请重新登录。"), "error")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    session["seen"] = now
    if (
        current_app.config["STAFF_2FA_REQUIRED"]
        and not current_user.two_factor_enabled
        and request.blueprint in CONSOLE_BLUEPRINTS
    ):
        flash(_("使用管理后台前，请先开启两步验证。"), "error")
        return redirect(url_for("auth.two_factor_setup"))
    return None
