from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from shop.benefits.services import order_ledger_view
from shop.extensions import limiter
from shop.orders.forms import OrderLookupForm
from shop.orders.services import order_by_number_and_phone, order_by_token
from shop.payments.services import confirm_by_query, payment_url

bp = Blueprint("orders", __name__)

RETURN_PAGE_CHECKS = 5


def _order_or_404(token: str):
    order = order_by_token(token)
    if order is None:
        abort(404)
    return order


@bp.route("/orders/<token>")
def show(token: str):
    order = _order_or_404(token)
    return render_template("orders/order.html", order=order, ledger=order_ledger_view(order))


@bp.route("/orders/<token>/return")
def payment_return(token: str):
    # The browser's return from Alipay proves nothing by itself; only a notification or a
    # signed query answer marks the order paid. Ask now so a late notification is no wait.
    order = confirm_by_query(_order_or_404(token))
    # Refresh a few times while Alipay confirms; after that the buyer most likely left
    # the pay page without paying, so offer to pay again instead of spinning forever.
    checks = min(request.args.get("checks", 0, type=int), RETURN_PAGE_CHECKS)
    return render_template(
        "orders/return.html", order=order, checks=checks, max_checks=RETURN_PAGE_CHECKS
    )


@bp.route("/orders/<token>/pay", methods=["POST"])
def pay_again(token: str):
    order = _order_or_404(token)
    if order.status != "pending_payment":
        flash(_("这个订单不需要支付。"), "error")
        return redirect(url_for("orders.show", token=token))
    return redirect(payment_url(order))


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
