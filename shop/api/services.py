"""Shapes the JSON API's answers and reads its requests (the contract is in design.md)."""

import json
import re

from flask_babel import gettext as _

from shop.catalog.models import Product
from shop.db import MAX_ROW_ID
from shop.households.services import CODE_MAX
from shop.orders.ledger_view import order_ledger_view
from shop.orders.models import Order
from shop.orders.services import (
    MAX_LINES_PER_ORDER,
    MAX_NICKNAME,
    MAX_QUANTITY_PER_LINE,
    BuyerDetails,
    OrderError,
    RequestedLine,
    parse_product_id,
    parse_quantity,
)

_HOUSEHOLD_CODE = re.compile(rf"[A-Za-z0-9-]{{0,{CODE_MAX}}}")
_ROW_ID = re.compile(r"[0-9]{1,10}")
MAX_CHANGES_PAGE = 200


def parse_changes_query(args, default_limit: int) -> tuple[str | None, int | None, int] | None:
    """``GET /changes``'s (household code, before id, limit), or None when one is out
    of bounds: a code of letters, digits and ``-`` (matched upper-cased, as codes are
    stored), an id 1..MAX_ROW_ID, a limit 1..200 — ASCII digits only, so ``²`` or an
    id past what a column holds is a 400, never a database error."""
    household = args.get("household", "")
    before = args.get("before", "")
    limit = args.get("limit", str(default_limit))
    if not _HOUSEHOLD_CODE.fullmatch(household):
        return None
    if before and not (_ROW_ID.fullmatch(before) and 1 <= int(before) <= MAX_ROW_ID):
        return None
    if not (_ROW_ID.fullmatch(limit) and 1 <= int(limit) <= MAX_CHANGES_PAGE):
        return None
    return household.upper() or None, int(before) if before else None, int(limit)


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


def decode_json(data: bytes):
    """A request body as JSON; raise OrderError (code ``invalid_json``, → 422) for
    bytes that are not JSON — malformed, not UTF-8/16/32, an integer too long to read,
    or nested deeper than the parser's stack (``[[[[…`` 100,000 deep: RecursionError,
    caught here, never a 500). Lone surrogate escapes (``"\\ud800"``) decode; the text
    checks of :func:`shop.orders.services.validate_buyer` refuse them."""
    try:
        return json.loads(data)
    except RecursionError:
        raise OrderError(_("JSON 嵌套层数太多。"), code="invalid_json") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise OrderError(_("请求体不是有效的 JSON。"), code="invalid_json") from None


def parse_order_request(body) -> tuple[list[RequestedLine], BuyerDetails, str]:
    """Read ``POST /api/v1/orders``; raise OrderError (→ 422) naming what is wrong.

    Stricter than the forms, as JSON allows: ``product_id`` and ``quantity`` must be
    JSON integers (``"2"`` is refused), ``product_id`` within 1..MAX_ROW_ID, at most
    MAX_LINES_PER_ORDER items, one product's lines adding up to at most
    MAX_QUANTITY_PER_LINE (code ``quantity_limit``), ``board_name`` at most
    MAX_NICKNAME characters even when anonymous. The OpenAPI document
    (:mod:`shop.api.schemas`) states the same bounds.
    """
    if not isinstance(body, dict):
        raise OrderError(_("请求体必须是 JSON 对象。"))
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise OrderError(_("items 必须是非空数组。"), field="items")
    if len(items) > MAX_LINES_PER_ORDER:
        raise OrderError(_("items 最多 %(max)d 项。", max=MAX_LINES_PER_ORDER), field="items")
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise OrderError(_("items[%(i)d] 必须是对象。", i=index), field="items")
        product_id = parse_product_id(item.get("product_id"), allow_text=False)
        if product_id is None:
            raise OrderError(
                _(
                    "items[%(i)d].product_id 必须是 1 到 %(max)d 之间的整数。",
                    i=index,
                    max=MAX_ROW_ID,
                ),
                field="items",
            )
        quantity = parse_quantity(item.get("quantity"), allow_text=False)
        lines.append(RequestedLine(product_id, quantity))
    per_product: dict[int, int] = {}
    for line in lines:
        per_product[line.product_id] = per_product.get(line.product_id, 0) + line.quantity
        if per_product[line.product_id] > MAX_QUANTITY_PER_LINE:
            raise OrderError(
                _("单个商品最多购买 %(max)d 件。", max=MAX_QUANTITY_PER_LINE),
                field="items",
                code="quantity_limit",
            )
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
    # Checked even when anonymous (the nickname is then not shown): one rule, as the
    # OpenAPI schema states it, whatever the other fields say.
    if len(board_name) > MAX_NICKNAME:
        raise OrderError(_("请填写昵称（不超过20个字）。"), field="board_name")
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


def my_order_json(order: Order) -> dict:
    """An order as its owner sees it: the public view plus its link, time and parcel."""
    return {
        **order_json(order),
        "token": order.token,
        "created_at": order.created_at.isoformat().replace("+00:00", "Z"),
        "carrier": order.carrier,
        "tracking_no": order.tracking_no,
    }


def impact_json(impact) -> dict:
    return {
        "paid_orders": impact.paid_orders,
        "units": impact.units,
        "to_households_fen": impact.to_households_fen,
        "households": [
            {
                "code": h.code,
                "name_masked": h.name_masked,
                "village": h.village,
                "amount_fen": h.amount_fen,
            }
            for h in impact.households
        ],
    }
