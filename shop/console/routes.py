from flask import Blueprint, render_template

from shop.auth.decorators import role_required

bp = Blueprint("console", __name__)


@bp.route("/")
@role_required("staff")
def dashboard():
    return render_template("console/dashboard.html")
