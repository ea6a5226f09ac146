from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required, login_user, logout_user

from shop.auth.forms import LoginForm
from shop.auth.services import authenticate
from shop.extensions import limiter

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    # Only same-site relative paths: an open redirect would make phishing links easy.
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is None:
            flash(_("用户名或密码不正确。"), "error")
        else:
            login_user(user)
            flash(_("欢迎回来，%(name)s。", name=user.display_name), "success")
            default = "console.dashboard" if user.has_role("staff") else "catalog.home"
            return redirect(_safe_next(request.args.get("next")) or url_for(default))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash(_("已退出登录。"), "success")
    return redirect(url_for("catalog.home"))
