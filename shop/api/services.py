"""Shapes the JSON API's answers and reads its requests (the contract is in design.md)."""

from flask_babel import gettext as _

from shop.catalog.models import Product
from shop.orders.ledger_view import order_ledger_view
from shop.orders.models import Order
from shop.orders.services import BuyerDetails, OrderError, RequestedLine, parse_quantity


def product_json(product: Product, url_for) -> dict:
    cover = product.cover
    return {
        "id": product.id,
        "slug": product.slug,
        "name": product.name,
        "price_fen": product.price_fen,
        "stock": product.stock,
        "unit": product.unit,
        "beneficiary_fen_per_unit": product.beneficiary_fen_per_unit,
        "image_url": url_for("media.photo", filename=cover.filename(800), _external=True)
        if cover
        else None,
        "url": url_for("catalog.product", slug=product.slug, _external=True),
    }


def _text(mapping: dict, key: str, where: str) -> str:
    value = mapping.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OrderError(_("%(field)s 必须是字符串。", field=f"{where}.{key}"), field=key)
    return value


def parse_order_request(body) -> tuple[list[RequestedLine], BuyerDetails, str]:
    """Read ``POST /api/v1/orders``; raise OrderError (→ 422) naming what is wrong."""
    if not isinstance(body, dict):
        raise OrderError(_("请求体必须是 JSON 对象。"))
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise OrderError(_("items 必须是非空数组。"), field="items")
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise OrderError(_("items[%(i)d] 必须是对象。", i=index), field="items")
        product_id = item.get("product_id")
        if not isinstance(product_id, int) or isinstance(product_id, bool) or product_id < 1:
            raise OrderError(_("items[%(i)d].product_id 必须是正整数。", i=index), field="items")
        lines.append(RequestedLine(product_id, parse_quantity(item.get("quantity"))))
    buyer = body.get("buyer")
    shipping = body.get("shipping")
    if not isinstance(buyer, dict):
        raise OrderError(_("buyer 必须是对象。"), field="buyer")
    if not isinstance(shipping, dict):
        raise OrderError(_("shipping 必须是对象。"), field="shipping")
    anonymous = buyer.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise OrderError(_("buyer.anonymous 必须是 true 或 false。"), field="anonymous")
    board_name = _text(buyer, "board_name", "buyer").strip()
    display = "anonymous" if anonymous else ("nickname" if board_name else "masked")
    channel = body.get("channel", "pc")
    if channel not in ("pc", "wap"):
        raise OrderError(_("channel 只能是 pc 或 wap。"), field="channel")
    details = BuyerDetails(
        name=_text(buyer, "name", "buyer"),
        phone=_text(buyer, "phone", "buyer"),
        address=_text(shipping, "address", "shipping"),
        board_display=display,
        nickname=board_name,
        organization=_text(buyer, "organization", "buyer"),
    )
    return lines, details, channel


def order_json(order: Order) -> dict:
    """The public view of an order: no phone, no address, no full name.

    ``allocations`` are the households the sale's posting credited (masked names and
    codes, fen); ``ledger`` names that transaction in the public hash chain.
    """
    view = order_ledger_view(order)
    return {
        "order_no": order.order_no,
        "status": order.status,
        "total_fen": order.total_fen,
        "refunded_fen": order.refunded_fen,
        "board_name": order.board_name,
        "items": [
            {
                "product_id": line.product_id,
                "name": line.product_name,
                "quantity": line.quantity,
                "unit": line.unit,
                "unit_price_fen": line.unit_price_fen,
                "line_total_fen": line.line_total_fen,
                "beneficiary_fen_per_unit": line.beneficiary_fen_per_unit,
            }
            for line in order.lines
        ],
        "allocations": view.allocations if view else [],
        "ledger": {"transaction_id": view.transaction_id, "hash": view.hash} if view else None,
    }
