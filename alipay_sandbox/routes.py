from flask import Blueprint, redirect, render_template, request
from flask_babel import gettext as _

from alipay_sandbox import cashier
from alipay_sandbox.api import api_call
from alipay_sandbox.errors import SandboxError
from alipay_sandbox.protocol import merged_params, signed_response
from shop.extensions import csrf

bp = Blueprint("sandbox", __name__, template_folder="templates")


def _refused(error: SandboxError):
    message = _("支付宝沙箱拒绝了这个请求：%(reason)s", reason=error.message)
    return render_template("errors/error.html", status=400, message=message), 400


@bp.route("/gateway.do", methods=["GET", "POST"])
@csrf.exempt
def gateway():
    try:
        params = merged_params(request.args, request.form)
    except SandboxError as error:
        return _refused(error)
    if params.get("method") in cashier.PAGE_METHODS:
        try:
            opened = cashier.open_cashier(params)
        except SandboxError as error:
            return _refused(error)
        return render_template("sandbox/pay.html", cashier=opened, trade=opened.trade)
    key, payload = api_call(params)
    body = signed_response(key, payload)
    return body, 200, {"Content-Type": "application/json;charset=utf-8"}


@bp.route("/trades/<trade_no>/pay", methods=["POST"])
def pay(trade_no: str):
    try:
        return redirect(cashier.pay(trade_no, request.form.get("ticket", "")))
    except SandboxError as error:
        return _refused(error)


@bp.route("/trades/<trade_no>/cancel", methods=["POST"])
def cancel(trade_no: str):
    try:
        return redirect(cashier.cancel_url(trade_no, request.form.get("ticket", "")))
    except SandboxError as error:
        return _refused(error)
