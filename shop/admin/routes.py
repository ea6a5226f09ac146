from flask import Blueprint, render_template

from shop.auth.decorators import role_required

bp = Blueprint("admin", __name__)


@bp.route("/")
@role_required("admin")
def index():
    return render_template("admin/index.html")
