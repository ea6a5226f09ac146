from flask import Blueprint, request

from shop.extensions import csrf
from shop.payments.services import handle_notification

bp = Blueprint("payments", __name__)


@bp.route("/payments/alipay/notify", methods=["POST"])
@csrf.exempt
def alipay_notify():
    answer = handle_notification(request.form.to_dict(flat=True))
    return answer, 200, {"Content-Type": "text/plain; charset=utf-8"}
