"""Placing orders, applying payments, expiring unpaid orders.

Every state change that must happen once — reserving stock, marking an order paid,
cancelling it and returning its stock — is a conditional UPDATE checked by row count,
so it holds across processes and hosts (PostgreSQL row locks; SQLite's single writer).
Each public function owns its transaction: it commits on success and rolls back
before raising.
"""

import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from shop.catalog.models import Product
from shop.db import MAX_ROW_ID, transaction, utcnow
from shop.errors import UserError
from shop.extensions import db
from shop.faults import crash_point
from shop.formatting import SHANGHAI
from shop.mail import events as mail_events
from shop.mail.outbox import is_email
from shop.money import format_fen
from shop.orders import holds
from shop.orders.holds import Requester
from shop.orders.models import Order, OrderLine
from shop.public_identity import DISPLAYS, public_identity
from shop.text import has_forbidden_characters

log = logging.getLogger("shop.orders")

MAX_QUANTITY_PER_LINE = 999
MAX_LINES_PER_ORDER = 50
# re.ASCII: without it \d also matches "３", "٣" and other scripts' digits.
_PHONE = re.compile(r"1[3-9][0-9]{9}", re.ASCII)
_ASCII_DIGITS = re.compile(r"[0-9]+", re.ASCII)
# An order's secret token as issued (URL-safe base64); the OpenAPI path pattern too.
ORDER_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_ADDRESS, MAX_ADDRESS, MAX_NAME, MAX_NICKNAME, MAX_ORGANIZATION = 5, 200, 40, 20, 60


class OrderError(UserError):
    """A request the buyer can fix; ``code`` is stable for the API, ``message`` is for people."""


class OutOfStock(OrderError):
    status = 409
    code = "out_of_stock"


class PriceChanged(OrderError):
    status = 409
    code = "price_changed"


class UnknownProduct(OrderError):
    status = 422
    code = "unknown_product"


class TooManyUnpaid(OrderError):
    """The phone, account or client address already holds as much unpaid stock as it may."""

    status = 429
    code = "too_many_unpaid_orders"


@dataclass(frozen=True)
class RequestedLine:
    """What the buyer asked for. ``seen_price_fen`` is the price the buyer was shown, if known."""

    product_id: int
    quantity: int
    seen_price_fen: int | None = None


@dataclass
class BuyerDetails:
    name: str
    phone: str
    address: str
    board_display: str = "masked"
    nickname: str = ""
    organization: str = ""
    email: str = ""  # optional: where the order's e-mails go (shop/mail)


@dataclass(frozen=True)
class ForOrganisation:
    """The registered organisation an order is placed for (shop/organisations): its id
    and name as the love board shows it. The caller has checked the membership."""

    id: int
    name: str
    verified: bool = False  # checked by the village team: the organisation's limits apply


@dataclass
class PaymentOutcome:
    """What applying a payment report did. ``accepted`` maps to Alipay's ``success``."""

    accepted: bool
    verdict: str  # paid | repeat | ignored | rejected | cancelled
    reason: str = ""
    order: Order | None = None
    changes: list[str] = field(default_factory=list)


def parse_quantity(raw, *, allow_text: bool = True) -> int:
    """Turn input into a quantity 1..MAX_QUANTITY_PER_LINE or raise OrderError.

    The one rule for quantities, for the cart's forms and the JSON API:

    - an ``int`` (not ``bool``) is read as it is;
    - text (``allow_text``, the forms) must be ASCII digits ``0-9`` only, surrounding
      spaces allowed: ``"1.5"``, ``"1e3"``, ``"-2"``, ``""`` are refused as not whole
      numbers, and so are other scripts' digits — superscripts (``"²"``), full-width
      (``"３"``), Arabic-Indic (``"٣"``), circled (``"①"``) — with a message asking for
      half-width digits. The form's number field sends ASCII; we do not guess at what
      anything else means (unlike :func:`shop.money.parse_typed_yuan`, which folds the
      full-width digits staff type with an input method);
    - the JSON API passes ``allow_text=False``: ``"2"`` is refused, a quantity must be
      a JSON integer.
    """
    if isinstance(raw, str) and allow_text:
        text = raw.strip()
        if _ASCII_DIGITS.fullmatch(text) is None:
            if any(ch.isnumeric() and not ch.isascii() for ch in text):
                raise OrderError(_("数量请用半角数字 0-9 填写。"), field="quantity")
            raise OrderError(_("数量必须是整数。"), field="quantity")
        text = text.lstrip("0") or "0"
        # More digits than any allowed quantity: too many, without converting them.
        value = int(text) if len(text) <= 6 else MAX_QUANTITY_PER_LINE + 1
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str):
        raise OrderError(_("数量必须是整数（JSON 数字，不能是字符串）。"), field="quantity")
    else:
        raise OrderError(_("数量必须是整数。"), field="quantity")
    if value < 1:
        raise OrderError(_("数量至少为 1。"), field="quantity")
    if value > MAX_QUANTITY_PER_LINE:
        raise OrderError(
            _("单个商品最多购买 %(max)d 件。", max=MAX_QUANTITY_PER_LINE), field="quantity"
        )
    return value


def parse_product_id(raw, *, allow_text: bool = True) -> int | None:
    """A product id from a form (ASCII digits) or JSON (``allow_text=False``: an int
    only), or ``None`` when it cannot be the id of any row: below 1, above
    :data:`shop.db.MAX_ROW_ID` (the bound the URL converter uses, which PostgreSQL's
    ``integer`` holds), ``bool``, other scripts' digits. Callers say "no such product"
    for ``None`` — the database never sees a number it cannot hold."""
    if isinstance(raw, str) and allow_text:
        text = raw.strip()
        if _ASCII_DIGITS.fullmatch(text) is None:
            return None
        text = text.lstrip("0") or "0"
        value = int(text) if len(text) <= len(str(MAX_ROW_ID)) else 0
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        return None
    return value if 1 <= value <= MAX_ROW_ID else None


def check_text(value: str, field: str, label: str) -> str:
    """Return ``value`` if it holds only characters a text column can store and show;
    raise OrderError naming ``field`` (``label`` is its name for people) when it holds
    a NUL or another control character (tab and line breaks are fine) or a lone
    surrogate. Refused, never cleaned: silently changing an address is worse."""
    if has_forbidden_characters(value):
        raise OrderError(
            _("%(label)s不能包含控制字符或无效字符。", label=label),
            field=field,
            code="invalid_text",
        )
    return value


def normalise_phone(raw: str) -> str:
    """Return an 11-digit mainland mobile number, accepting spaces, dashes and +86.

    ASCII digits only: full-width or other scripts' digits are refused."""
    digits = re.sub(r"[\s\-]", "", raw or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not _PHONE.fullmatch(digits):
        raise OrderError(_("请填写正确的11位手机号码。"), field="phone")
    return digits


def validate_buyer(buyer: BuyerDetails) -> BuyerDetails:
    """Check and normalise the buyer's details; raise OrderError naming the field.

    Every text is checked by :func:`check_text` first (no NUL, control characters or
    lone surrogates — code ``invalid_text``), then trimmed and measured in characters.
    """
    for field_name, label in (
        ("name", _("收货人姓名")),
        ("phone", _("手机号码")),
        ("address", _("收货地址")),
        ("nickname", _("昵称")),
        ("organization", _("单位名称")),
    ):
        check_text(getattr(buyer, field_name) or "", field_name, label)
    name = (buyer.name or "").strip()
    address = (buyer.address or "").strip()
    nickname = (buyer.nickname or "").strip()
    organization = (buyer.organization or "").strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise OrderError(_("请填写收货人姓名（不超过40个字）。"), field="name")
    if not MIN_ADDRESS <= len(address) <= MAX_ADDRESS:
        raise OrderError(_("请填写完整的收货地址（5到200个字）。"), field="address")
    if buyer.board_display not in DISPLAYS:
        raise OrderError(_("请选择在爱心榜上的展示方式。"), field="board_display")
    if buyer.board_display == "nickname" and not 1 <= len(nickname) <= MAX_NICKNAME:
        raise OrderError(_("请填写昵称（不超过20个字）。"), field="nickname")
    if len(organization) > MAX_ORGANIZATION:
        raise OrderError(_("单位名称不能超过60个字。"), field="organization")
    email = (buyer.email or "").strip()
    if email and not is_email(email):
        raise OrderError(_("请填写有效的电子邮箱，或留空。"), field="email")
    return BuyerDetails(
        name=name,
        phone=normalise_phone(buyer.phone),
        address=address,
        board_display=buyer.board_display,
        nickname=nickname,
        organization=organization,
        email=email,
    )


def _new_order_no(now: datetime) -> str:
    # Alipay's out_trade_no: ≤ 64 chars of letters and digits; ours sorts by time.
    return (
        "LX" + now.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**8):08d}"
    )


def _merge_lines(lines: Iterable[RequestedLine]) -> list[RequestedLine]:
    merged: dict[int, RequestedLine] = {}
    for line in lines:
        line = RequestedLine(line.product_id, parse_quantity(line.quantity), line.seen_price_fen)
        if line.product_id in merged:
            previous = merged[line.product_id]
            line = RequestedLine(
                line.product_id, previous.quantity + line.quantity, line.seen_price_fen
            )
            if line.quantity > MAX_QUANTITY_PER_LINE:
                raise OrderError(
                    _("单个商品最多购买 %(max)d 件。", max=MAX_QUANTITY_PER_LINE),
                    field="quantity",
                )
        merged[line.product_id] = line
    # Lock products in id order so two checkouts never wait on each other in a cycle.
    return [merged[k] for k in sorted(merged)]


def place_order(
    lines: Iterable[RequestedLine],
    buyer: BuyerDetails,
    channel: str,
    expiry_minutes: int,
    user_id: int | None = None,
    now: datetime | None = None,
    requester: Requester | None = None,
    locale: str = "zh_Hans_CN",
    for_organisation: ForOrganisation | None = None,
    attach: Callable[[Order], None] | None = None,
) -> Order:
    """Create a pending order and reserve its stock, all or nothing, and commit.

    ``requester`` (the public doors: checkout and the API pass one) subjects the order
    to the unpaid-order limits of :mod:`shop.orders.holds`. ``for_organisation``: the
    order is the organisation's (its name is the buyer's organisation; unless the buyer
    chose to be anonymous, the love board shows the organisation's name; once the team
    verified it, the organisation's unpaid-order limits apply). ``attach`` is called
    with the new order (flushed, so it has an id) inside the same transaction, for rows
    that must exist exactly when the order does; what it raises undoes the order.

    Raises :class:`OrderError` (bad input, empty cart), :class:`TooManyUnpaid`,
    :class:`UnknownProduct` (missing or unpublished), :class:`PriceChanged` (the buyer
    saw another price) or :class:`OutOfStock`. Nothing is written when it raises.
    """
    now = now or utcnow()
    buyer = validate_buyer(buyer)
    wanted = _merge_lines(lines)
    if not wanted:
        raise OrderError(_("购物车是空的。"), field="items")
    if len(wanted) > MAX_LINES_PER_ORDER:
        raise OrderError(_("一个订单最多包含 %(max)d 种商品。", max=MAX_LINES_PER_ORDER))
    if channel not in ("pc", "wap", "api"):
        raise OrderError(_("不支持的支付渠道。"), field="channel")

    organisation_id = for_organisation.id if for_organisation else None
    keys = holds.keys_for(
        buyer.phone, user_id, requester, organisation_id,
        organisation_verified=bool(for_organisation and for_organisation.verified),
    )  # fmt: skip
    label = public_identity(buyer.board_display, buyer.name, buyer.nickname).label
    if for_organisation is not None:
        buyer = replace(buyer, organization=for_organisation.name)
        if buyer.board_display != "anonymous":
            label = public_identity(buyer.board_display, label=for_organisation.name).label
    with transaction(db.session):
        if requester is not None:
            # Before any product row is locked (see shop/orders/holds.py).
            refusal = holds.check_room(keys, sum(w.quantity for w in wanted), now)
            if refusal is not None:
                raise TooManyUnpaid(refusal.message, details=refusal.details)
        products = {
            p.id: p
            for p in db.session.scalars(
                select(Product).where(Product.id.in_([w.product_id for w in wanted]))
            )
        }
        order_lines = []
        for want in wanted:
            product = products.get(want.product_id)
            if product is None or product.status != "published":
                raise UnknownProduct(
                    _("商品不存在或已下架。"),
                    field="items",
                    details={"product_id": want.product_id},
                )
            if want.seen_price_fen is not None and want.seen_price_fen != product.price_fen:
                raise PriceChanged(
                    _(
                        "“%(name)s”的价格已变为 %(price)s，请确认后再下单。",
                        name=product.name,
                        price=format_fen(product.price_fen),
                    ),
                    details={"product_id": product.id, "price_fen": product.price_fen},
                )
            reserved = db.session.execute(
                update(Product)
                .where(
                    Product.id == product.id,
                    Product.status == "published",
                    Product.stock >= want.quantity,
                )
                .values(stock=Product.stock - want.quantity)
                .execution_options(synchronize_session=False)
            ).rowcount
            if reserved != 1:
                raise OutOfStock(
                    _("“%(name)s”库存不足。", name=product.name),
                    details={"product_id": product.id},
                )
            order_lines.append(
                OrderLine(
                    product_id=product.id,
                    product_name=product.name,
                    product_slug=product.slug,
                    unit=product.unit,
                    unit_price_fen=product.price_fen,
                    quantity=want.quantity,
                    line_total_fen=product.price_fen * want.quantity,
                    beneficiary_fen_per_unit=product.beneficiary_fen_per_unit,
                )
            )
        order = Order(
            order_no=_new_order_no(now),
            token=secrets.token_urlsafe(24),
            status="pending_payment",
            channel=channel,
            user_id=user_id,
            buyer_name=buyer.name,
            buyer_phone=buyer.phone,
            phone_last4=buyer.phone[-4:],
            shipping_address=buyer.address,
            board_display=buyer.board_display,
            board_name=label,
            organization=buyer.organization,
            organisation_id=organisation_id,
            email=buyer.email or None,
            locale=locale,
            phone_digest=keys.phone_digest,
            client_digest=keys.client_digest,
            total_fen=sum(line.line_total_fen for line in order_lines),
            beneficiary_fen=sum(
                line.beneficiary_fen_per_unit * line.quantity for line in order_lines
            ),
            created_at=now,
            expires_at=now + timedelta(minutes=expiry_minutes),
            lines=order_lines,
        )
        db.session.add(order)
        if attach is not None:
            db.session.flush()
            attach(order)
        mail_events.order_placed(order)
        crash_point("checkout.stock_reserved")
    log.info("order %s placed: %d fen, %d lines", order.order_no, order.total_fen, len(order_lines))
    return order


def is_order_token(token: str) -> bool:
    """Whether ``token`` has the shape of one the shop issues (``secrets.token_urlsafe``):
    anything else names no order and never reaches the database (PostgreSQL refuses a
    NUL in a query parameter)."""
    return ORDER_TOKEN.fullmatch(token or "") is not None


def order_by_token(token: str) -> Order | None:
    if not is_order_token(token):
        return None
    return db.session.scalar(select(Order).where(Order.token == token))


def order_by_number_and_phone(order_no: str, phone: str) -> Order | None:
    """Find an order by its number and the buyer's phone (both must match)."""
    order_no = (order_no or "").strip().upper()
    try:
        phone = normalise_phone(phone)
    except OrderError:
        return None
    order = db.session.scalar(select(Order).where(Order.order_no == order_no))
    if order is None or order.phone_last4 != phone[-4:] or order.buyer_phone != phone:
        return None
    return order


# Paid hooks run inside the transaction that marks an order paid: the ledger posts the
# sale there, so "paid" and "posted" commit together or not at all.
PaidHook = Callable[[Order], None]


def _paid_hooks() -> list[PaidHook]:
    return current_app.extensions.setdefault("order_paid_hooks", [])


def register_paid_hook(app, hook: PaidHook) -> None:
    app.extensions.setdefault("order_paid_hooks", []).append(hook)


def _release_stock(order: Order) -> None:
    for line in order.lines:
        db.session.execute(
            update(Product)
            .where(Product.id == line.product_id)
            .values(stock=Product.stock + line.quantity)
            .execution_options(synchronize_session=False)
        )


def _reserve_again(order: Order) -> bool:
    for line in sorted(order.lines, key=lambda ln: ln.product_id):
        done = db.session.execute(
            update(Product)
            .where(Product.id == line.product_id, Product.stock >= line.quantity)
            .values(stock=Product.stock - line.quantity)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done != 1:
            return False
    return True


def apply_payment(
    out_trade_no: str,
    trade_no: str,
    total_fen: int,
    *,
    paid: bool,
    paid_at: datetime | None = None,
) -> PaymentOutcome:
    """Apply a verified payment report (notification or query answer) to its order; commit.

    ``paid`` says whether the report is of money received (the payment provider
    decides that from its own vocabulary); a report that is not is accepted and
    ignored, once the order and amount are known to match.

    The order moves pending_payment → paid exactly once, whatever the number, order or
    concurrency of reports: the move is ``UPDATE … WHERE status = 'pending_payment'``
    and the paid hooks (ledger posting) run in the same transaction. A report for an
    order already paid with the same ``trade_no`` is a repeat: accepted, nothing changes.
    A report for an order cancelled by expiry re-reserves its stock if it can.

    Refusals (unknown order, amount mismatch, another trade_no) return
    ``accepted=False`` and change nothing.
    """
    if not isinstance(paid, bool):
        raise TypeError("paid must be True or False")
    paid_at = paid_at or utcnow()
    with transaction(db.session):
        order = db.session.scalar(
            select(Order).where(Order.order_no == out_trade_no).with_for_update()
        )
        if order is None:
            return PaymentOutcome(False, "rejected", "unknown order")
        if total_fen != order.total_fen:
            return PaymentOutcome(
                False, "rejected", f"amount {total_fen} fen != order {order.total_fen} fen", order
            )
        if not paid:
            return PaymentOutcome(True, "ignored", "not a payment", order)
        if order.trade_no is not None:
            if order.trade_no == trade_no:
                return PaymentOutcome(True, "repeat", "already applied", order)
            return PaymentOutcome(
                False, "rejected", f"order already paid by trade {order.trade_no}", order
            )

        if order.status == "cancelled":
            # Paid just before expiry, notified after: take the stock back if it is there.
            if not _reserve_again(order):
                db.session.rollback()
                log.error("order %s paid after cancellation and stock is gone", order.order_no)
                return PaymentOutcome(False, "rejected", "paid after cancellation; out of stock")
            from_status = "cancelled"
        else:
            from_status = "pending_payment"
        moved = db.session.execute(
            update(Order)
            .where(Order.id == order.id, Order.status == from_status, Order.trade_no.is_(None))
            .values(
                status="paid",
                trade_no=trade_no,
                paid_at=paid_at,
                cancelled_at=None,
                cancel_reason="",
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            db.session.rollback()
            return PaymentOutcome(True, "repeat", "applied concurrently")
        db.session.refresh(order)
        for hook in _paid_hooks():
            hook(order)
        crash_point("payment.posted_uncommitted")
    log.info("order %s paid by trade %s", order.order_no, trade_no)
    return PaymentOutcome(True, "paid", "", order)


def cancel_order(order_id: int, reason: str, now: datetime | None = None) -> bool:
    """Cancel a still-unpaid order and return its stock, once; commit. True if this call did it."""
    now = now or utcnow()
    with transaction(db.session):
        moved = db.session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "pending_payment")
            .values(status="cancelled", cancelled_at=now, cancel_reason=reason[:40])
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved == 1:
            order = db.session.get(Order, order_id)
            _release_stock(order)
    return moved == 1


def mark_shipped(
    order_id: int, carrier: str, tracking_no: str, now: datetime | None = None
) -> bool:
    """Record shipment of a paid order; commit. False when the order is not in 'paid'."""
    carrier, tracking_no = (carrier or "").strip(), (tracking_no or "").strip()
    check_text(carrier, "carrier", _("快递公司"))  # NUL: stored, or a 500 on PostgreSQL
    if not carrier or len(carrier) > 40:
        raise OrderError(_("请填写快递公司（不超过40个字）。"), field="carrier")
    if not re.fullmatch(r"[A-Za-z0-9\-]{4,64}", tracking_no):
        raise OrderError(_("快递单号应为4到64位字母或数字。"), field="tracking_no")
    moved = db.session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == "paid")
        .values(
            status="shipped", carrier=carrier, tracking_no=tracking_no, shipped_at=now or utcnow()
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved == 1:
        order = db.session.get(Order, order_id, populate_existing=True)
        mail_events.order_shipped(order)
    db.session.commit()
    return moved == 1


def mark_completed(order_id: int, now: datetime | None = None) -> bool:
    """Close a shipped order as received; commit. False when it is not 'shipped'."""
    moved = db.session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == "shipped")
        .values(status="completed", completed_at=now or utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return moved == 1
