from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from shop.extensions import csrf
from shop.orders.services import order_by_token
from shop.payments.services import confirm_by_query, handle_notification, payment_url

bp = Blueprint("payments", __name__)

RETURN_PAGE_CHECKS = 5
# Alipay's notifications are a few KB; anything much larger is not one, and is refused
# (413) before it is read.
NOTIFY_MAX_BYTES = 64 * 1024


@bp.route("/payments/alipay/notify", methods=["POST"])
@csrf.exempt
def alipay_notify():
    request.max_content_length = NOTIFY_MAX_BYTES
    answer = handle_notification(request.form.to_dict(flat=True))
    return answer, 200, {"Content-Type": "text/plain; charset=utf-8"}


def _order_or_404(token: str):
    order = order_by_token(token)
    if order is None:
        abort(404)
    return order


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
