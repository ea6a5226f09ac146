from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for

from ledger import head, iter_export_lines
from shop.account import services as account
from shop.account import tokens
from shop.api import services
from shop.api.openapi import openapi_document
from shop.approvals import public as change_log
from shop.boards import reads as boards
from shop.catalog.services import published_products
from shop.errors import error_response, user_error_response
from shop.extensions import csrf, db, limiter
from shop.orders.holds import Requester
from shop.orders.services import OrderError, order_by_token, place_order
from shop.payments.services import payment_url
from shop.transparency import services as transparency

bp = Blueprint("api", __name__)
# JSON clients authenticate nothing with cookies, so CSRF tokens do not apply here.
csrf.exempt(bp)
# Every read shares one count per client address: generous for people and tools, a
# wall for a crawler that would re-download the ledger in a loop. Storage is Redis
# when REDIS_URL is set, so the count holds across workers and hosts.
read_limit = limiter.shared_limit(
    lambda: current_app.config["API_READ_RATE_LIMIT"], scope="api-read"
)
# A real order is a few KB; a body over 1 MiB is refused (413) before it is read,
# rather than parsed from the 11 MB the photo uploads need.
MAX_ORDER_BODY_BYTES = 1024 * 1024


@bp.route("/products")
@read_limit
def products():
    return jsonify({"products": [services.product_json(p, url_for) for p in published_products()]})


@bp.route("/orders", methods=["POST"])
@limiter.limit("30 per minute")
def create_order():
    request.max_content_length = MAX_ORDER_BODY_BYTES
    try:
        # Not request.get_json(): a body nested too deep raises RecursionError there.
        body = services.decode_json(request.get_data(cache=False)) if request.is_json else None
        lines, buyer, channel = services.parse_order_request(body)
        order = place_order(
            lines,
            buyer,
            channel,
            expiry_minutes=current_app.config["ORDER_EXPIRY_MINUTES"],
            requester=Requester(request.remote_addr),
        )
    except OrderError as exc:
        return user_error_response(exc)
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
@read_limit
def get_order(token: str):
    order = order_by_token(token)
    if order is None:
        return error_response(404, "not_found", "order not found")
    return jsonify(services.order_json(order))


def _token_owner() -> int | None:
    return tokens.user_for(request.headers.get("Authorization"))


def _unauthorized():
    body, status = error_response(401, "unauthorized", "a personal API token is needed")
    return body, status, {"WWW-Authenticate": 'Bearer realm="lianxin"'}


@bp.route("/me/orders")
@read_limit
def my_orders():
    user_id = _token_owner()
    if user_id is None:
        return _unauthorized()
    return jsonify({"orders": [services.my_order_json(o) for o in account.my_orders(user_id)]})


@bp.route("/me/impact")
@read_limit
def my_impact():
    user_id = _token_owner()
    if user_id is None:
        return _unauthorized()
    return jsonify(services.impact_json(account.my_impact(user_id)))


@bp.route("/board")
@read_limit
def board():
    """The love board. Polled by the board page: the ETag names the last ledger posting
    on the boards and the day, so an unchanged board answers 304 from two tiny reads."""
    period = request.args.get("period", "all", type=str)
    if period not in boards.PERIODS:
        return error_response(422, "invalid_period", "period must be one of: today, month, all")
    raw_limit = request.args.get("limit", "10")
    limit = int(raw_limit) if raw_limit.isascii() and raw_limit.isdigit() else None
    if limit is None or not 1 <= limit <= 100:
        return error_response(422, "invalid_limit", "limit must be an integer from 1 to 100")
    etag = f"board-{boards.board_version()}-{boards.today_label()}-{period}-{limit}"
    if request.if_none_match.contains(etag):
        response = current_app.response_class(status=304)
    else:
        response = jsonify(boards.board_json(period, limit=limit))
    response.set_etag(etag)
    response.cache_control.no_cache = True  # always revalidate; a 304 costs nothing
    return response


@bp.route("/households")
@read_limit
def households():
    # No ETag: a household edited in the admin changes this without a ledger posting.
    return jsonify(boards.households_json())


@bp.route("/changes")
@read_limit
def changes():
    """Approved changes to households, rules and the register, newest first, masked."""
    query = services.parse_changes_query(request.args, default_limit=change_log.PAGE_SIZE)
    if query is None:
        return error_response(
            400, "bad_request", "household must be a code; before an id; limit 1–200"
        )
    household, before, limit = query
    rows = change_log.approved_changes(household, before, limit)
    body = {"changes": [change_log.change_json(row) for row in rows]}
    if len(rows) == limit:
        body["next"] = url_for("api.changes", household=household, before=rows[-1].id, limit=limit)
    return jsonify(body)


@bp.route("/ledger/head")
@read_limit
def ledger_head():
    count, head_hash = head(db.session)
    return jsonify({"count": count, "hash": head_hash})


@bp.route("/ledger/export.jsonl")
@read_limit
def ledger_export_jsonl():
    # Streamed in batches: the chain can be long, memory stays flat.
    lines = stream_with_context(iter_export_lines(db.session))
    response = Response(lines, mimetype="application/x-ndjson")
    response.headers["Content-Type"] = "application/x-ndjson; charset=utf-8"
    response.headers["Content-Disposition"] = 'inline; filename="lianxin-ledger.jsonl"'
    return response


def _count_argument(name: str, required: bool = False) -> int | None:
    """A size or id from the query: ASCII digits, at most 18 (a bigint), or absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        if required:
            raise transparency.ProofRequestError(f"{name} is required", code="bad_request")
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise transparency.ProofRequestError(f"{name} must be a whole number", code="bad_request")
    return int(raw)


def _log_answer(build):
    """Run ``build()``; a refused request is its 4xx JSON error (400 for a malformed
    argument, 404 for what does not exist)."""
    try:
        return jsonify(build())
    except transparency.ProofRequestError as error:
        status = {"bad_request": 400, "invalid_range": 422}.get(error.code, 404)
        return error_response(status, error.code, error.message)


@bp.route("/ledger/tree-head")
@read_limit
def ledger_tree_head():
    """The latest signed tree head, or the one published for ``?tree_size=N``."""
    return _log_answer(lambda: transparency.tree_head_json(_count_argument("tree_size")))


@bp.route("/ledger/public-key")
@read_limit
def ledger_public_key():
    return jsonify(transparency.public_key_json())


@bp.route("/ledger/proof/inclusion")
@read_limit
def ledger_inclusion_proof():
    return _log_answer(
        lambda: transparency.inclusion_json(
            _count_argument("transaction_id", required=True), _count_argument("tree_size")
        )
    )


@bp.route("/ledger/proof/consistency")
@read_limit
def ledger_consistency_proof():
    return _log_answer(
        lambda: transparency.consistency_json(
            _count_argument("first", required=True), _count_argument("second", required=True)
        )
    )


@bp.route("/openapi.json")
@read_limit
def openapi():
    return jsonify(openapi_document())
