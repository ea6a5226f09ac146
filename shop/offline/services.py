"""Offline sales: the exhibition hall counter, events and live-stream sessions.

Each sold line is one ledger transaction of kind ``offline_sale`` (the ledger's ``post_sale``,
the same benefit rules as an online order), debiting the till of its channel —
``cash:hall``, ``cash:event:<session id>`` or ``cash:live:<session id>`` — with an
:class:`OfflineSale` row beside it. Stock decreases by a conditional UPDATE, so two
counters (or two workers) can never sell the same last box.

Idempotency: every row has a key (the ledger key, also ``OfflineSale.row_key``) derived
from its cause — the counter form's one-time token, or an uploaded row's content (or its
receipt number) — so submitting the form twice or uploading the same rows again posts
nothing new.

Times: the ledger books a sale when it is recorded (the chain's time is the time of
writing, and the benefit rule in force then applies); the day the goods were sold is
``OfflineSale.sold_at``, which reports group by. Money is integer fen throughout.

Public functions own their transaction (``shop.db.transaction``): they commit on
success and roll back before raising :class:`OfflineError`.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import select, update

from ledger import (
    LedgerError,
    SaleLine,
    SaleLineRecord,
    SaleRequest,
    Transaction,
    ensure_account,
    post_refund,
    post_sales,
)
from shop.audit.log import note
from shop.benefits.services import remainder_account
from shop.catalog.models import Product
from shop.csv_input import csv_bytes
from shop.db import transaction, utcnow
from shop.db_retry import run_with_retry
from shop.errors import UserError
from shop.extensions import db
from shop.faults import crash_point
from shop.formatting import SHANGHAI, format_fen_plain
from shop.money import parse_typed_yuan
from shop.offline.models import OfflineSale, SalesSession
from shop.orders.models import Order
from shop.public_identity import ANONYMOUS_LABEL, public_identity

HALL_NAME = "扶贫馆"
MAX_QUANTITY = 9999
MAX_PRICE_FEN = 10_000_000


class OfflineError(UserError):
    """An offline sale or income the village team can fix; ``message`` is for people."""


def channel_labels() -> dict[str, str]:
    return {"online": _("网店"), "hall": _("扶贫馆"), "event": _("展销活动"), "live": _("直播")}


def payment_labels() -> dict[str, str]:
    return {
        "cash": _("现金"),
        "wechat": _("微信"),
        "alipay": _("支付宝"),
        "card": _("银行卡"),
        "transfer": _("对公转账"),
        "other": _("其他"),
    }


@dataclass(frozen=True)
class SaleInput:
    """One offline sale line as plain values (money in fen)."""

    product_id: int
    quantity: int
    unit_price_fen: int
    payment_method: str = "cash"
    board_display: str = "anonymous"
    board_name: str = ANONYMOUS_LABEL
    organization: str = ""
    sold_at: datetime | None = None
    receipt_no: str = ""


def sale_row_key(channel: str, session_name: str, sale: SaleInput, occurrence: int = 1) -> str:
    """The ledger key of an uploaded row: its receipt number within the session if it has
    one, else its content (plus which identical copy in the file it is)."""
    if sale.receipt_no:
        cause = f"{channel}|{session_name}|receipt|{sale.receipt_no}"
    else:
        sold = sale.sold_at.astimezone(SHANGHAI).isoformat() if sale.sold_at else ""
        cause = "|".join(
            str(part)
            for part in (
                channel, session_name, sold, sale.product_id, sale.quantity,
                sale.unit_price_fen, sale.payment_method, sale.board_display,
                sale.board_name, sale.organization, occurrence,
            )
        )  # fmt: skip
    return f"offline_sale:{channel}:" + hashlib.sha256(cause.encode("utf-8")).hexdigest()[:40]


def get_session(channel: str, name: str = "", starts_on=None, ends_on=None) -> SalesSession:
    """The hall, or the event/live session called ``name`` (created if new; flush only).

    Dates given for an existing session widen its span, never narrow it."""
    if channel == "hall":
        name = HALL_NAME
    session = db.session.scalar(
        select(SalesSession).where(SalesSession.channel == channel, SalesSession.name == name)
    )
    if session is None:
        session = SalesSession(channel=channel, name=name, starts_on=starts_on, ends_on=ends_on)
        db.session.add(session)
        db.session.flush()
    else:
        if starts_on and (session.starts_on is None or starts_on < session.starts_on):
            session.starts_on = starts_on
        if ends_on and (session.ends_on is None or ends_on > session.ends_on):
            session.ends_on = ends_on
    labels = channel_labels()
    ensure_account(db.session, session.cash_account, "cash", f"{labels[channel]}·{name}"[:120])
    return session


@dataclass(frozen=True)
class SaleRow:
    """One offline sale to post: where it was sold, what, under which key (a hall
    form's token or an import row), and which import batch row it came from."""

    sales_session: SalesSession
    sale: SaleInput
    key: str
    batch_id: int | None = None
    row_number: int | None = None


class RowError(OfflineError):
    """An :class:`OfflineError` about one row of several (``row_number``)."""

    def __init__(self, row_number: int | None, error: OfflineError):
        super().__init__(error.message, error.field)
        self.row_number = row_number


def post_sale_row(
    sales_session: SalesSession,
    sale: SaleInput,
    key: str,
    batch_id: int | None = None,
    row_number: int | None = None,
    user_id: int | None = None,
    now: datetime | None = None,
) -> tuple[OfflineSale, bool]:
    """Take the stock and post one line (flush, no commit). Returns (row, created).

    A key already posted returns its row and changes nothing. Raises
    :class:`OfflineError` when the product is gone or has too little stock.
    """
    try:
        return post_sale_rows(
            [SaleRow(sales_session, sale, key, batch_id, row_number)], user_id, now
        )[0]
    except RowError as error:
        raise OfflineError(error.message, error.field) from None


def post_sale_rows(
    rows: list[SaleRow], user_id: int | None = None, now: datetime | None = None
) -> list[tuple[OfflineSale, bool]]:
    """Take the stock for every row and post them all, each row its own ledger
    transaction, in one append (the ledger's ``post_sales``): what an import does.
    Flush, no commit; returns (row, created) per row, in order. Rows whose key was
    posted before return their record and change nothing.

    Raises :class:`RowError` (naming the row) when a product is gone or has too little
    stock, and :class:`OfflineError` when a twin request posted a key meanwhile; the
    caller rolls back.
    """
    keys = [row.key for row in rows]
    existing = {
        record.row_key: record
        for record in db.session.scalars(select(OfflineSale).where(OfflineSale.row_key.in_(keys)))
    }
    moment = now or utcnow()
    labels = channel_labels()
    fresh: list[tuple[SaleRow, Product]] = []
    requests: list[SaleRequest] = []
    remainders: dict[int, str] = {}  # product id → the account that keeps the rest
    for row in rows:
        if row.key in existing:
            continue
        try:
            product = _take_stock(row.sale)
        except OfflineError as error:
            raise RowError(row.row_number, error) from None
        sold_at = row.sale.sold_at or moment
        memo = (
            f"{labels[row.sales_session.channel]}·{row.sales_session.name} "
            f"{sold_at.astimezone(SHANGHAI):%Y-%m-%d} {product.name}×{row.sale.quantity}"
        )[:200]
        if product.id not in remainders:
            remainders[product.id] = remainder_account(product.id)
        line = SaleLine(
            product.id, row.sale.unit_price_fen, row.sale.quantity, remainders[product.id]
        )
        requests.append(
            SaleRequest(
                row.key,
                [line],
                paid_at=moment,
                memo=memo,
                kind="offline_sale",
                debit_account=row.sales_session.cash_account,
            )
        )
        fresh.append((row, product))
        crash_point("offline.sales_halfway", when=2 * len(fresh) >= len(rows))
    results = post_sales(db.session, requests)
    for (row, product), result in zip(fresh, results, strict=True):
        if not result.posted.created:
            # Not in our table a moment ago, yet in the ledger now: a twin request won.
            raise OfflineError(_("这笔销售刚刚被别人同时入账了，请刷新页面查看。"))
        sold_at = row.sale.sold_at or moment
        existing[row.key] = OfflineSale(
            row_key=row.key,
            channel=row.sales_session.channel,
            session_id=row.sales_session.id,
            session_name=row.sales_session.name,
            batch_id=row.batch_id,
            row_number=row.row_number,
            sold_at=sold_at,
            sold_on=sold_at.astimezone(SHANGHAI).date(),
            product_id=product.id,
            product_name=product.name,
            unit=product.unit,
            quantity=row.sale.quantity,
            unit_price_fen=row.sale.unit_price_fen,
            total_fen=row.sale.unit_price_fen * row.sale.quantity,
            beneficiary_fen=sum(a.share_fen for a in result.allocations),
            payment_method=row.sale.payment_method,
            board_display=row.sale.board_display,
            board_name=row.sale.board_name,
            organization=row.sale.organization,
            receipt_no=row.sale.receipt_no,
            transaction_id=result.posted.id,
            created_by_id=user_id,
        )
        db.session.add(existing[row.key])
    db.session.flush()
    created = {row.key for row, _product in fresh}
    return [(existing[row.key], row.key in created) for row in rows]


def _take_stock(sale: SaleInput) -> Product:
    """Take ``sale.quantity`` from the product's stock (one guarded UPDATE, so two
    counters cannot sell the last bottle twice). Raises :class:`OfflineError`."""
    product = db.session.get(Product, sale.product_id)
    if product is None or product.status == "archived":
        raise OfflineError(_("商品不存在或已归档。"), "product_id")
    taken = db.session.execute(
        update(Product)
        .where(Product.id == product.id, Product.stock >= sale.quantity)
        .values(stock=Product.stock - sale.quantity)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        # Read afresh: earlier rows of the same import took stock with plain UPDATEs.
        stock = db.session.scalar(select(Product.stock).where(Product.id == product.id))
        raise OfflineError(
            _("“%(name)s”库存不足（现有 %(stock)s）。", name=product.name, stock=stock),
            "quantity",
        )
    return product


def parse_form_yuan(text: str | None, field: str) -> int | None:
    """Yuan typed in a form field → fen; None when the field is blank. Raises
    OfflineError naming ``field`` (the rule is :func:`shop.money.parse_typed_yuan`'s)."""
    if not (text or "").strip():
        return None
    try:
        return parse_typed_yuan(text)
    except ValueError:
        raise OfflineError(_("请输入金额，例如 158 或 158.50（最多两位小数）。"), field) from None


@dataclass(frozen=True)
class OfflineSaleInput:
    """The hall counter form as the person filled it in: the unit price is yuan as
    typed (blank: the product's own price), the buyer's name may be blank."""

    product_id: int | None
    quantity: int
    unit_price: str = ""
    payment_method: str = "cash"
    board_display: str = "anonymous"
    buyer_name: str = ""
    organization: str = ""


def hall_sale_input(entry: OfflineSaleInput) -> SaleInput:
    """Decide what the counter form leaves open: the price defaults to the product's,
    and the love board shows "爱心人士" unless a buyer is named (masked or nickname
    need a name). Raises :class:`OfflineError` for a bad price or a missing product."""
    price = parse_form_yuan(entry.unit_price, "unit_price")
    product = db.session.get(Product, entry.product_id) if entry.product_id else None
    if product is None or product.status == "archived":
        raise OfflineError(_("请选择商品。"), "product_id")
    display = entry.board_display or "anonymous"
    buyer = entry.buyer_name or ""
    return SaleInput(
        product_id=product.id,
        quantity=entry.quantity,
        unit_price_fen=price if price is not None else product.price_fen,
        payment_method=entry.payment_method,
        board_display=display if buyer or display == "anonymous" else "anonymous",
        board_name=public_identity(display, buyer, buyer).label,
        organization=(entry.organization or "").strip(),
    )


def record_counter_sale(
    entry: OfflineSaleInput, token: str, user_id: int | None = None
) -> OfflineSale:
    """The hall counter form's sale (:func:`hall_sale_input`, then
    :func:`record_hall_sale`). Commits. Raises :class:`OfflineError`."""
    return record_hall_sale(hall_sale_input(entry), token, user_id)


def record_hall_sale(sale: SaleInput, token: str, user_id: int | None = None) -> OfflineSale:
    """One sale at the exhibition hall counter; ``token`` is the form's one-time token,
    so a double submit posts once. Commits. Raises :class:`OfflineError`."""
    if not token or len(token) > 64:
        raise OfflineError(_("页面已过期，请刷新后重试。"))
    validate_sale(sale)

    def post_once() -> OfflineSale:
        with transaction(db.session):
            key = f"offline_sale:hall:{token}"
            return post_sale_row(get_session("hall"), sale, key, user_id=user_id)[0]

    try:
        # Keyed by the form's token: run again after a deadlock or lock timeout (which
        # rolled the first attempt back), it still posts once (shop/db_retry.py).
        record = run_with_retry(db.session, post_once, f"hall sale {token}")
    except LedgerError as error:
        raise OfflineError(_("记账失败：%(reason)s", reason=str(error))) from None
    return record


def validate_sale(sale: SaleInput) -> None:
    if not 1 <= sale.quantity <= MAX_QUANTITY:
        raise OfflineError(_("数量须为 1 到 %(max)s 的整数。", max=MAX_QUANTITY), "quantity")
    if not 0 < sale.unit_price_fen <= MAX_PRICE_FEN:
        raise OfflineError(_("单价须大于零且不超过 ¥100,000。"), "unit_price")
    if sale.payment_method not in payment_labels():
        raise OfflineError(_("请选择付款方式。"), "payment_method")
    if len(sale.organization) > 60:
        raise OfflineError(_("单位名称不能超过60个字。"), "organization")
    if sale.board_display == "nickname" and looks_like_a_full_name(sale.board_name):
        raise OfflineError(
            _(
                "“%(name)s”像是真实姓名，昵称会原样公开在爱心榜上。请换一个昵称，或选择姓氏加*。",
                name=sale.board_name,
            ),
            "buyer_name",
        )


# The most common Chinese surnames (about 85 % of people): a 2–3 character "nickname"
# starting with one of them is most likely somebody's real name typed in the wrong box.
COMMON_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜"
    "叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶"
    "黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤欧"
)


COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "慕容", "令狐", "皇甫", "公孙", "夏侯")


def looks_like_a_full_name(text: str) -> bool:
    """True for 2–3 Chinese characters starting with a common surname (``李四``,
    ``王小明``), or 3–4 starting with a compound one (``欧阳秀英``)."""
    text = (text or "").strip()
    if not text or not all("\u4e00" <= ch <= "\u9fff" for ch in text):
        return False
    if text[:2] in COMPOUND_SURNAMES:
        return 3 <= len(text) <= 4
    return 2 <= len(text) <= 3 and text[0] in COMMON_SURNAMES


def reverse_sale(sale_id: int, user_id: int | None = None, restock: bool = True) -> OfflineSale:
    """Reverse a recorded offline sale whole (a refund of the ledger transaction) and put
    the goods back in stock. Idempotent. Commits. Raises :class:`OfflineError`."""
    record = db.session.get(OfflineSale, sale_id)
    if record is None:
        raise OfflineError(_("没有这笔线下销售。"))
    if record.reversal_transaction_id is not None:
        return record
    try:
        with transaction(db.session):
            posted = post_refund(
                db.session,
                f"offline_refund:{record.id}",
                record.row_key,
                record.total_fen,
                memo=f"冲销线下销售 #{record.id} {record.product_name}×{record.quantity}",
            )
            note(
                db.session,
                "offline.reverse_sale",
                "offline_sale",
                record.id,
                before={
                    "total_fen": record.total_fen,
                    "product": record.product_name,
                    "quantity": record.quantity,
                },
                after={"reversed": True, "restock": restock},
                ledger_keys=[f"offline_refund:{record.id}"],
            )
            changed = db.session.execute(
                update(OfflineSale)
                .where(OfflineSale.id == record.id, OfflineSale.reversal_transaction_id.is_(None))
                .values(reversal_transaction_id=posted.id, reversed_at=utcnow())
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed == 1 and restock:
                db.session.execute(
                    update(Product)
                    .where(Product.id == record.product_id)
                    .values(stock=Product.stock + record.quantity)
                    .execution_options(synchronize_session=False)
                )
    except LedgerError as error:
        raise OfflineError(_("无法冲销：%(reason)s", reason=str(error))) from None
    db.session.refresh(record)
    return record


# --- reports ----------------------------------------------------------------------


@dataclass
class ReportRow:
    label: str
    count: int = 0
    units: int = 0
    amount_fen: int = 0
    beneficiary_fen: int = 0


REPORT_GROUPS = ("channel", "product", "day")
MAX_REPORT_DAYS = 3660


@dataclass(frozen=True)
class ReportInput:
    """The report form as given (any of it may be missing or invalid)."""

    group: str | None = None
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class ReportRange:
    group: str
    start: date
    end: date


def report_range(entry: ReportInput, today: date | None = None) -> ReportRange:
    """Decide what the report covers: up to ``end`` (default today, Asia/Shanghai) from
    ``start`` (default 1 January of that year), swapped if reversed, at most
    :data:`MAX_REPORT_DAYS` days; grouped by channel unless product or day is asked."""
    today = today or datetime.now(SHANGHAI).date()
    end = entry.end or today
    start = entry.start or date(end.year, 1, 1)
    if start > end:
        start, end = end, start
    if end - start > timedelta(days=MAX_REPORT_DAYS):
        start = end - timedelta(days=MAX_REPORT_DAYS)
    group = entry.group if entry.group in REPORT_GROUPS else "channel"
    return ReportRange(group, start, end)


def sales_report(group: str, start: date, end: date) -> list[ReportRow]:
    """Sales from ``start`` to ``end`` (Asia/Shanghai days, inclusive) by channel,
    product or day, online and offline together, from the ledger's sale lines.

    Amounts are gross sales; reversed offline sales and fully refunded online orders
    are left out. Sorted: channels in a fixed order, products by amount, days by date.
    """
    since = datetime.combine(start, time(0, 0), tzinfo=SHANGHAI).astimezone(UTC)
    until = datetime.combine(end, time(0, 0), tzinfo=SHANGHAI).astimezone(UTC)
    until = until + timedelta(days=1)
    names = dict(db.session.execute(select(Product.id, Product.name)).all())
    labels = channel_labels()
    rows: dict[str, ReportRow] = {}

    def add(key: str, label: str, units: int, amount: int, share: int) -> None:
        row = rows.setdefault(key, ReportRow(label))
        row.count += 1
        row.units += units
        row.amount_fen += amount
        row.beneficiary_fen += share

    def key_of(channel: str, product_id: int, day: date) -> tuple[str, str]:
        if group == "product":
            return str(product_id), names.get(product_id, f"#{product_id}")
        if group == "day":
            return day.isoformat(), day.isoformat()
        return channel, labels[channel]

    refunded = set(
        db.session.scalars(
            select(Order.trade_no).where(Order.status == "refunded", Order.trade_no.is_not(None))
        )
    )
    online = db.session.execute(
        select(Transaction.key, Transaction.created_at, SaleLineRecord)
        .join(SaleLineRecord, SaleLineRecord.transaction_id == Transaction.id)
        .where(Transaction.kind == "sale", Transaction.created_at >= since)
        .where(Transaction.created_at < until)
    )
    for key, created_at, line in online:
        if key.removeprefix("sale:") in refunded:
            continue
        day = created_at.astimezone(SHANGHAI).date()
        group_key, label = key_of("online", line.product_id, day)
        add(group_key, label, line.quantity, line.line_total_fen, line.share_fen)
    offline = db.session.scalars(
        select(OfflineSale).where(
            OfflineSale.sold_on >= start,
            OfflineSale.sold_on <= end,
            OfflineSale.reversal_transaction_id.is_(None),
        )
    )
    for sale in offline:
        group_key, label = key_of(sale.channel, sale.product_id, sale.sold_on)
        add(group_key, label, sale.quantity, sale.total_fen, sale.beneficiary_fen)
    if group == "channel":
        order = list(labels)
        return [rows[k] for k in sorted(rows, key=order.index)]
    if group == "day":
        return [rows[k] for k in sorted(rows)]
    return sorted(rows.values(), key=lambda r: (-r.amount_fen, r.label))


def report_csv(group: str, rows: list[ReportRow]) -> bytes:
    """The report as a CSV, through the shop's one writer (:func:`csv_bytes`): the
    labels (a product's name is staff-entered) are text and neutralised; counts are
    ``int`` and yuan ``Decimal`` (``158.00``, ``-12.00``), so they stay numbers."""
    heading = {"channel": _("渠道"), "product": _("商品"), "day": _("日期")}[group]
    header = [heading, _("笔数"), _("数量"), _("销售额(元)"), _("直达农户(元)")]
    return csv_bytes(
        header,
        [
            [
                row.label,
                row.count,
                row.units,
                Decimal(format_fen_plain(row.amount_fen)),
                Decimal(format_fen_plain(row.beneficiary_fen)),
            ]
            for row in rows
        ],
    )


def recent_sales(channel: str | None = None, limit: int = 100) -> list[OfflineSale]:
    stmt = select(OfflineSale).order_by(OfflineSale.id.desc()).limit(limit)
    if channel:
        stmt = stmt.where(OfflineSale.channel == channel)
    return list(db.session.scalars(stmt))


def sale_products() -> list[Product]:
    return list(
        db.session.scalars(select(Product).where(Product.status != "archived").order_by(Product.id))
    )
