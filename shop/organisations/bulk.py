"""A recipients CSV placed as one order for an organisation (festival gifts for 200
colleagues): every row checked before anything is placed, and the same list placed once.

The file is read with :mod:`shop.csv_input`'s rules (UTF-8 or GB18030 as Excel saves
it, header row 1, rows numbered as Excel numbers them). Columns: 收货人, 手机号,
收货地址, 商品 (the product's name or its code in the shop's address, ``slug``), 数量.

**All or nothing.** Every row is checked — recipient, phone, address, product on sale,
quantity, and each product's total against its stock — and every problem is reported
with its row number; nothing is placed unless there is none. The order itself is then
placed by :func:`shop.orders.services.place_order` (stock reserved by conditional
UPDATEs, so a bulk order racing web buyers can never oversell: whichever comes second
finds the stock gone and writes nothing), with the upload and its recipients written in
the same transaction.

**Once.** The list's digest (of its checked rows, not the file's bytes) is unique per
organisation while its order is alive (:class:`~shop.organisations.models.BulkUpload`),
so uploading it again — or from two browsers at once — returns the order already
placed. Once that order is cancelled unpaid, the same list may be placed again.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from shop.catalog.models import Product
from shop.csv_input import (
    Columns,
    ImportFailed,
    data_rows,
    decode,
    match_header,
    read_records,
    require_header,
    template_header,
)
from shop.db import utcnow
from shop.errors import UserError
from shop.extensions import db
from shop.orders.holds import Requester
from shop.orders.models import Order
from shop.orders.services import (
    MAX_ADDRESS,
    MAX_LINES_PER_ORDER,
    MAX_NAME,
    MAX_QUANTITY_PER_LINE,
    MIN_ADDRESS,
    BuyerDetails,
    ForOrganisation,
    OrderError,
    RequestedLine,
    check_text,
    normalise_phone,
    parse_quantity,
    place_order,
    validate_buyer,
)
from shop.organisations.models import BulkRecipient, BulkUpload

# validate_buyer's field → the bulk form's field for the same thing.
CONTACT_FIELDS = {"name": "contact_name", "phone": "contact_phone"}
MAX_ROWS = 1000
MAX_FILE_BYTES = 512 * 1024
MAX_ERRORS_SHOWN = 30
COLUMNS: Columns = [
    ("name", "收货人", ("姓名", "收件人", "name", "recipient")),
    ("phone", "手机号", ("手机", "手机号码", "电话", "phone", "mobile")),
    ("address", "收货地址", ("地址", "address")),
    ("product", "商品", ("商品名称", "商品编号", "product", "sku")),
    ("quantity", "数量", ("件数", "quantity", "qty")),
]


@dataclass(frozen=True)
class Row:
    row_no: int
    name: str
    phone: str
    address: str
    product_id: int
    product_name: str
    quantity: int


@dataclass(frozen=True)
class Placed:
    order: Order
    created: bool  # False: this list was placed before; ``order`` is that order
    recipients: int


def template_csv() -> str:
    """The CSV a buyer fills in (UTF-8 with BOM, so Excel opens it in Chinese)."""
    return "\ufeff" + template_header(COLUMNS) + "\r\n"


def read_rows(data: bytes) -> list[Row]:
    """Every row of the file, checked; raises :class:`ImportFailed` listing every
    problem (``第 N 行：…``), so nothing is placed from a list with one bad row."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportFailed([_("文件太大：一次最多上传 %(n)d 行。", n=MAX_ROWS)])
    records = read_records(decode(data))
    match = match_header(require_header(records), COLUMNS)
    missing = [label for field, label, _a in COLUMNS if field not in match.positions]
    if missing:
        raise ImportFailed(
            [
                _(
                    "表头缺少：%(missing)s。第 1 行应为：%(header)s",
                    missing="、".join(missing),
                    header=template_header(COLUMNS),
                )
            ]
        )
    rows = data_rows(records)
    if not rows:
        raise ImportFailed([_("文件里没有收件人：请从第 2 行起每行填写一位。")])
    if len(rows) > MAX_ROWS:
        raise ImportFailed([_("一次最多上传 %(n)d 行。", n=MAX_ROWS)])
    products = _products_named({_cell(cells, match.positions["product"]) for _n, cells in rows})
    errors: list[str] = []
    checked: list[Row] = []
    for number, cells in rows:
        values = {field: _cell(cells, index) for field, index in match.positions.items()}
        try:
            checked.append(_check_row(number, values, products))
        except UserError as error:
            errors.append(_("第 %(row)d 行：%(problem)s", row=number, problem=error.message))
    errors += _stock_problems(checked)
    if len({row.product_id for row in checked}) > MAX_LINES_PER_ORDER:
        errors.append(_("一个订单最多包含 %(max)d 种商品。", max=MAX_LINES_PER_ORDER))
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        if len(errors) > MAX_ERRORS_SHOWN:
            shown.append(_("……另有 %(n)d 处问题。", n=len(errors) - MAX_ERRORS_SHOWN))
        raise ImportFailed(shown)
    return checked


def _cell(cells: list[str], index: int) -> str:
    return cells[index].strip() if index < len(cells) else ""


def _products_named(names: set[str]) -> dict[str, Product | None]:
    """Published products by slug and by exact name (a slug wins over a name); a name
    two products share maps to None."""
    names = {name for name in names if name}
    if not names:
        return {}
    found = db.session.scalars(
        select(Product).where(
            Product.status == "published", or_(Product.slug.in_(names), Product.name.in_(names))
        )
    ).all()
    by_name: dict[str, Product | None] = {}
    for product in found:
        # Two products on sale under one name: which one is meant is not ours to guess.
        by_name[product.name] = None if product.name in by_name else product
    return by_name | {p.slug: p for p in found}


def _check_row(number: int, values: dict[str, str], products: dict[str, Product]) -> Row:
    for field, label in (
        ("name", _("收货人")),
        ("phone", _("手机号")),
        ("address", _("收货地址")),
        ("product", _("商品")),
    ):
        check_text(values[field], field, label)
    name, address = values["name"], values["address"]
    if not 1 <= len(name) <= MAX_NAME:
        raise UserError(_("请填写收货人姓名（不超过40个字）。"), field="name")
    phone = normalise_phone(values["phone"])
    if not MIN_ADDRESS <= len(address) <= MAX_ADDRESS:
        raise UserError(_("请填写完整的收货地址（5到200个字）。"), field="address")
    if values["product"] in products and products[values["product"]] is None:
        raise UserError(
            _("有几种在售商品都叫“%(name)s”，请填写商品编号。", name=values["product"][:60]),
            field="product",
        )
    product = products.get(values["product"])
    if product is None:
        raise UserError(
            _("没有在售的商品“%(name)s”（请填写商品名称或编号）。", name=values["product"][:60]),
            field="product",
        )
    quantity = parse_quantity(values["quantity"])
    return Row(number, name, phone, address, product.id, product.name, quantity)


def _stock_problems(rows: list[Row]) -> list[str]:
    """Each product whose rows together want more than its stock or than one order may
    hold, named with the row where the total first runs over."""
    stock = {
        product_id: available
        for product_id, available in db.session.execute(
            select(Product.id, Product.stock).where(Product.id.in_({r.product_id for r in rows}))
        )
    }
    running: Counter[int] = Counter()
    problems, reported = [], set()
    for row in rows:
        running[row.product_id] += row.quantity
        if row.product_id in reported:
            continue
        limit = min(stock.get(row.product_id, 0), MAX_QUANTITY_PER_LINE)
        if running[row.product_id] > limit:
            reported.add(row.product_id)
            total = sum(r.quantity for r in rows if r.product_id == row.product_id)
            problems.append(
                _(
                    "第 %(row)d 行：“%(name)s”共需 %(total)d 件，现有库存 %(stock)d 件"
                    "（一个订单每种商品最多 %(max)d 件）。",
                    row=row.row_no,
                    name=row.product_name,
                    total=total,
                    stock=stock.get(row.product_id, 0),
                    max=MAX_QUANTITY_PER_LINE,
                )
            )
    return problems


def digest_of(rows: list[Row]) -> str:
    """SHA-256 of the checked rows in order: the same list, however it was saved."""
    canonical = [[r.name, r.phone, r.address, r.product_id, r.quantity] for r in rows]
    return hashlib.sha256(
        json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()


def _dead(order: Order, now) -> bool:
    """An order that will never be paid: cancelled, or unpaid past its time."""
    return order.status == "cancelled" or (
        order.status == "pending_payment" and order.expires_at <= now
    )


def _live_upload(organisation_id: int, digest: str) -> BulkUpload | None:
    return db.session.scalar(
        select(BulkUpload).where(
            BulkUpload.organisation_id == organisation_id, BulkUpload.live_digest == digest
        )
    )


def place_bulk_order(
    rows: list[Row],
    organisation: ForOrganisation,
    contact: BuyerDetails,
    user_id: int,
    channel: str,
    expiry_minutes: int,
    requester: Requester | None = None,
    locale: str = "zh_Hans_CN",
) -> Placed:
    """Place ``rows`` (from :func:`read_rows`) as one order for ``organisation``, or
    return the order this list already placed. ``contact`` is who the shop and Alipay
    deal with (its address is replaced by a summary: each parcel has its own); its
    problems are raised naming the bulk form's fields (``contact_name``,
    ``contact_phone``). Raises what :func:`place_order` raises (stock taken meanwhile,
    unpaid-order limits); nothing is written then."""
    summary = _("分送 %(n)d 位收件人（见收件人清单）", n=len(rows))
    try:  # the contact's problems name the bulk form's fields
        contact = validate_buyer(replace(contact, address=summary, nickname="", organization=""))
    except OrderError as error:
        error.field = CONTACT_FIELDS.get(error.field, error.field)
        raise
    digest, now = digest_of(rows), utcnow()
    existing = _live_upload(organisation.id, digest)
    if existing is not None:
        order = db.session.get(Order, existing.order_id)
        if not _dead(order, now):
            return Placed(order, False, len(rows))
    # A cancelled or expired (never paid) order frees its list to be placed again. An
    # expired one not yet swept by the expiry job keeps its stock until it is: this
    # placing then needs the stock twice for a moment, and may find it short.
    dead = select(Order.id).where(
        (Order.status == "cancelled")
        | ((Order.status == "pending_payment") & (Order.expires_at <= now))
    )
    db.session.execute(
        update(BulkUpload)
        .where(
            BulkUpload.organisation_id == organisation.id,
            BulkUpload.live_digest == digest,
            BulkUpload.order_id.in_(dead),
        )
        .values(live_digest=None)
        .execution_options(synchronize_session=False)
    )
    totals: Counter[int] = Counter()
    for row in rows:
        totals[row.product_id] += row.quantity

    def attach(order: Order) -> None:
        upload = BulkUpload(
            organisation_id=organisation.id,
            digest=digest,
            live_digest=digest,
            order_id=order.id,
            uploaded_by=user_id,
            recipients=[
                BulkRecipient(
                    row_no=r.row_no,
                    name=r.name,
                    phone=r.phone,
                    address=r.address,
                    product_id=r.product_id,
                    product_name=r.product_name,
                    quantity=r.quantity,
                )
                for r in rows
            ],
        )
        db.session.add(upload)
        db.session.flush()  # the unique key answers here, inside the order's transaction

    try:
        order = place_order(
            [RequestedLine(product_id, quantity) for product_id, quantity in totals.items()],
            contact,
            channel=channel,
            expiry_minutes=expiry_minutes,
            user_id=user_id,
            requester=requester,
            locale=locale,
            for_organisation=organisation,
            attach=attach,
        )
    except (IntegrityError, UserError):
        # The same list placed from another browser a moment earlier: the unique key
        # refused this copy, or that order took the stock this one wanted. That order.
        existing = _live_upload(organisation.id, digest)
        if existing is None:
            raise
        return Placed(db.session.get(Order, existing.order_id), False, len(rows))
    return Placed(order, True, len(rows))


def recipients_of(order_id: int) -> list[BulkRecipient]:
    """The parcels of a bulk order (empty for any other order), in CSV row order."""
    upload = db.session.scalar(select(BulkUpload).where(BulkUpload.order_id == order_id))
    return list(upload.recipients) if upload is not None else []


PARCELS_HEADER = ["订单号", "单位", "清单行号", "收货人", "手机号", "收货地址", "商品", "数量"]


def parcel_rows() -> Iterator[list]:
    """Every parcel of the bulk orders paid and not yet shipped, oldest order first: the
    list the village team hands the courier (staff only; names, phones and addresses
    in clear)."""
    rows = db.session.execute(
        select(Order.order_no, Order.organization, BulkRecipient)
        .join(BulkUpload, BulkUpload.order_id == Order.id)
        .join(BulkRecipient, BulkRecipient.upload_id == BulkUpload.id)
        .where(Order.status == "paid")
        .order_by(Order.paid_at, Order.id, BulkRecipient.row_no)
    )
    for order_no, organisation, parcel in rows:
        yield [
            order_no, organisation, parcel.row_no, parcel.name, parcel.phone, parcel.address,
            parcel.product_name, parcel.quantity,
        ]  # fmt: skip
