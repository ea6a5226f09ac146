"""The cart: in the signed session for anonymous buyers, in ``cart_item`` once logged in.

A cart line remembers the price the buyer saw when adding it; the cart view and the
checkout flag a product whose price changed, that ran out or was unpublished, so a
buyer is never silently charged something they did not see.

``session_cart`` is the dict kept in the Flask session: ``{"<product id>": [quantity,
seen_price_fen]}``. Functions take it as a plain mutable dict; routes store it back.
"""

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from shop.cart.models import CartItem
from shop.catalog.models import Product
from shop.extensions import db
from shop.orders.services import (
    MAX_LINES_PER_ORDER,
    MAX_QUANTITY_PER_LINE,
    OrderError,
    RequestedLine,
    UnknownProduct,
    parse_product_id,
    parse_quantity,
)


@dataclass
class CartLineView:
    product: Product
    quantity: int
    seen_price_fen: int
    problems: list[str] = field(default_factory=list)

    @property
    def line_total_fen(self) -> int:
        return self.product.price_fen * self.quantity


@dataclass
class CartView:
    lines: list[CartLineView]

    @property
    def total_fen(self) -> int:
        return sum(line.line_total_fen for line in self.lines if "unavailable" not in line.problems)

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def has_problems(self) -> bool:
        return any(line.problems for line in self.lines)

    @property
    def has_price_changes(self) -> bool:
        return any("price_changed" in line.problems for line in self.lines)

    @property
    def beneficiary_fen(self) -> int:
        return sum(line.product.beneficiary_fen_per_unit * line.quantity for line in self.lines)


def _raw_items(user_id: int | None, session_cart: dict) -> dict[int, tuple[int, int]]:
    if user_id is None:
        items = {}
        for key, value in session_cart.items():
            pid = parse_product_id(key)
            try:
                line = (int(value[0]), int(value[1]))
            except (TypeError, ValueError, IndexError):
                continue  # a damaged session entry is dropped, not a 500
            if pid is not None:
                items[pid] = line
        return items
    rows = db.session.scalars(select(CartItem).where(CartItem.user_id == user_id))
    return {row.product_id: (row.quantity, row.seen_price_fen) for row in rows}


def _published_product(product_id) -> Product:
    """The published product a form names; UnknownProduct for anything else, including
    ids no row can have (``parse_product_id``: never a database overflow)."""
    pid = parse_product_id(product_id)
    if pid is None:
        raise UnknownProduct(_("商品不存在或已下架。"))
    product = db.session.get(Product, pid)
    if product is None or product.status != "published":
        raise UnknownProduct(_("商品不存在或已下架。"))
    return product


def _store(user_id: int | None, session_cart: dict, product: Product, quantity: int) -> None:
    if user_id is None:
        session_cart[str(product.id)] = [quantity, product.price_fen]
        return
    row = db.session.scalar(
        select(CartItem).where(CartItem.user_id == user_id, CartItem.product_id == product.id)
    )
    if row is None:
        db.session.add(
            CartItem(
                user_id=user_id,
                product_id=product.id,
                quantity=quantity,
                seen_price_fen=product.price_fen,
            )
        )
    else:
        row.quantity, row.seen_price_fen = quantity, product.price_fen
    db.session.commit()


def add_item(user_id: int | None, session_cart: dict, product_id, quantity) -> Product:
    """Add ``quantity`` of a published product (adding to what is there); returns it.

    Raises OrderError for a bad quantity, a full cart or a total over the per-line limit,
    UnknownProduct when it is missing or unpublished.
    """
    product = _published_product(product_id)
    quantity = parse_quantity(quantity)
    items = _raw_items(user_id, session_cart)
    if product.id not in items and len(items) >= MAX_LINES_PER_ORDER:
        raise OrderError(_("购物车最多放 %(max)d 种商品。", max=MAX_LINES_PER_ORDER))
    total = items.get(product.id, (0, 0))[0] + quantity
    if total > MAX_QUANTITY_PER_LINE:
        raise OrderError(_("单个商品最多购买 %(max)d 件。", max=MAX_QUANTITY_PER_LINE))
    _store(user_id, session_cart, product, total)
    return product


def set_quantity(user_id: int | None, session_cart: dict, product_id, quantity) -> None:
    """Set a line's quantity; the price the buyer now sees becomes the accepted one."""
    product = _published_product(product_id)
    _store(user_id, session_cart, product, parse_quantity(quantity))


def remove_item(user_id: int | None, session_cart: dict, product_id) -> None:
    pid = parse_product_id(product_id)
    if pid is None:
        return  # no line can have that id
    if user_id is None:
        session_cart.pop(str(pid), None)
        return
    db.session.execute(
        delete(CartItem).where(CartItem.user_id == user_id, CartItem.product_id == pid)
    )
    db.session.commit()


def clear(user_id: int | None, session_cart: dict) -> None:
    session_cart.clear()
    if user_id is not None:
        db.session.execute(delete(CartItem).where(CartItem.user_id == user_id))
        db.session.commit()


def view_cart(user_id: int | None, session_cart: dict) -> CartView:
    """The cart with today's prices and stock, each line flagged with its problems:
    ``unavailable`` (gone or unpublished), ``price_changed``, ``out_of_stock``,
    ``insufficient_stock``."""
    items = _raw_items(user_id, session_cart)
    if not items:
        return CartView([])
    products = {
        p.id: p
        for p in db.session.scalars(
            select(Product).where(Product.id.in_(items)).options(selectinload(Product.photos))
        )
    }
    lines = []
    for pid, (quantity, seen) in sorted(items.items()):
        product = products.get(pid)
        if product is None:
            continue
        line = CartLineView(product, quantity, seen)
        if product.status != "published":
            line.problems.append("unavailable")
        else:
            if product.price_fen != seen:
                line.problems.append("price_changed")
            if product.stock == 0:
                line.problems.append("out_of_stock")
            elif product.stock < quantity:
                line.problems.append("insufficient_stock")
        lines.append(line)
    return CartView(lines)


def accept_current_prices(user_id: int | None, session_cart: dict) -> None:
    """The buyer confirmed the new prices shown in the cart."""
    for line in view_cart(user_id, session_cart).lines:
        if "price_changed" in line.problems:
            _store(user_id, session_cart, line.product, line.quantity)


def requested_lines(user_id: int | None, session_cart: dict) -> list[RequestedLine]:
    """The cart as order lines, each carrying the price the buyer accepted."""
    return [
        RequestedLine(pid, quantity, seen)
        for pid, (quantity, seen) in sorted(_raw_items(user_id, session_cart).items())
    ]


def merge_into_user(user_id: int, session_cart: dict) -> None:
    """Move an anonymous cart into the buyer's saved cart at login; commit.

    Quantities add up (capped at the per-line maximum); the session cart is emptied.
    """
    saved = _raw_items(user_id, {})
    for pid, (quantity, seen) in _raw_items(None, session_cart).items():
        product = db.session.get(Product, pid)
        if product is None or product.status != "published":
            continue
        total = min(saved.get(pid, (0, 0))[0] + quantity, MAX_QUANTITY_PER_LINE)
        row = db.session.scalar(
            select(CartItem).where(CartItem.user_id == user_id, CartItem.product_id == pid)
        )
        if row is None:
            db.session.add(
                CartItem(user_id=user_id, product_id=pid, quantity=total, seen_price_fen=seen)
            )
        else:
            row.quantity = total
    db.session.commit()
    session_cart.clear()
