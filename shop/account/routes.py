"""The buyer's own pages: my orders and my impact (any signed-in person)."""

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from shop.account import services
from shop.errors import UserError

bp = Blueprint("account", __name__)


@bp.route("/account/orders")
@login_required
def orders():
    return render_template("account/orders.html", orders=services.my_orders(current_user.id))


@bp.route("/account/orders/<order_no>/reorder", methods=["POST"])
@login_required
def reorder(order_no: str):
    try:
        added, unavailable = services.reorder(current_user.id, order_no)
    except UserError as error:
        flash(error.message, "error")
        return redirect(url_for("account.orders"))
    if added:
        flash(_("已把 %(n)d 种商品放回购物车（按现价）。", n=added), "success")
    if unavailable:
        flash(_("这些商品没能加入购物车：%(names)s", names="、".join(unavailable)), "error")
    return redirect(url_for("cart.show"))


@bp.route("/account/impact")
@login_required
def impact():
    return render_template("account/impact.html", impact=services.my_impact(current_user.id))
