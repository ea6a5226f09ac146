from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for

from ledger import export as ledger_export
from shop.api import services
from shop.api.openapi import openapi_document
from shop.extensions import csrf, db, limiter
from shop.orders.services import OrderError, order_by_token, place_order
from shop.payments.services import payment_url

bp = Blueprint("api", __name__)
# JSON clients authenticate nothing with cookies, so CSRF tokens do not apply here.
csrf.exempt(bp)


def error(status: int, code: str, message: str, **extra):
    body = {"error": {"code": code, "message": message, **extra}}
    return jsonify(body), status


@bp.route("/products")
def products():
    return jsonify(
        {"products": [services.product_json(p, url_for) for p in services.published_products()]}
    )


@bp.route("/orders", methods=["POST"])
@limiter.limit("30 per minute")
def create_order():
    body = request.get_json(silent=True)
    try:
        lines, buyer, channel = services.parse_order_request(body)
        order = place_order(
            lines,
            buyer,
            channel,
            expiry_minutes=current_app.config["ORDER_EXPIRY_MINUTES"],
        )
    except OrderError as exc:
        extra = {"field": exc.field} if exc.field else {}
        extra.update(exc.details)
        return error(exc.status, exc.code, exc.message, **extra)
    return jsonify(
        {
            "order_no": order.order_no,
            "token": order.token,
            "status": order.status,
            "total_fen": order.total_fen,
            "pay_url": payment_url(order),
            "expires_at": order.expires_at.isoformat().replace("+00:00", "Z"),
        }
    ), 201


@bp.route("/orders/<token>")
def get_order(token: str):
    order = order_by_token(token)
    if order is None:
        return error(404, "not_found", "order not found")
    return jsonify(services.order_json(order))


@bp.route("/ledger/head")
def ledger_head():
    count, head_hash = ledger_export.head(db.session)
    return jsonify({"count": count, "hash": head_hash})


@bp.route("/ledger/export.jsonl")
def ledger_export_jsonl():
    # Streamed in batches: the chain can be long, memory stays flat.
    lines = stream_with_context(ledger_export.iter_export_lines(db.session))
    response = Response(lines, mimetype="application/x-ndjson")
    response.headers["Content-Type"] = "application/x-ndjson; charset=utf-8"
    response.headers["Content-Disposition"] = 'inline; filename="lianxin-ledger.jsonl"'
    return response


@bp.route("/openapi.json")
def openapi():
    return jsonify(openapi_document())
