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
from flask_login import login_required, login_user, logout_user

from shop.auth.forms import LoginForm, RegisterForm
from shop.auth.services import AccountError, authenticate, create_user
from shop.cart.services import merge_into_user
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
            merge_into_user(user.id, session.get("cart", {}))
            session.modified = True
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
