from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from shop.extensions import limiter
from shop.orders.forms import OrderLookupForm
from shop.orders.ledger_view import order_ledger_view
from shop.orders.services import order_by_number_and_phone, order_by_token

bp = Blueprint("orders", __name__)


def _order_or_404(token: str):
    order = order_by_token(token)
    if order is None:
        abort(404)
    return order


@bp.route("/orders/<token>")
def show(token: str):
    order = _order_or_404(token)
    return render_template("orders/order.html", order=order, ledger=order_ledger_view(order))


@bp.route("/orders/lookup", methods=["GET", "POST"])
@limiter.limit("20 per hour", methods=["POST"])
def lookup():
    form = OrderLookupForm()
    if form.validate_on_submit():
        order = order_by_number_and_phone(form.order_no.data, form.phone.data)
        if order is not None:
            return redirect(url_for("orders.show", token=order.token))
        flash(_("没有找到订单号与手机号都匹配的订单。"), "error")
    return render_template("orders/lookup.html", form=form)
