"""CSV batches: an event's or live session's sales, or a batch of household income.

Upload → a pending :class:`ImportBatch` holding the decoded text → a preview that checks
every row and lists each problem with its row number (the header is row 1, as in
Excel) → confirm, which checks every row again and posts all of them in one database
transaction, or none. Rows already in the ledger (same key) are shown as such and
skipped, so confirming the same file, or a file repeating some rows, posts nothing
twice. Decoding (UTF-8 with or without BOM, GB18030/GBK), delimiters and the
Excel-style header matching are :mod:`shop.csv_input`'s, shared with the household
importer.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ledger import LedgerError
from shop.catalog.models import Product
from shop.csv_input import (
    Columns,
    ImportFailed,
    column_labels,
    csv_bytes,
    data_rows,
    decode,
    match_header,
    read_records,
    require_header,
    template_header,
)
from shop.db import transaction, utcnow
from shop.extensions import db
from shop.faults import crash_point
from shop.formatting import SHANGHAI, format_fen_plain
from shop.households.models import Household
from shop.offline import import_checks as checks
from shop.offline import income as income_services
from shop.offline.models import ImportBatch
from shop.offline.services import (
    OfflineError,
    RowError,
    SaleInput,
    SaleRow,
    channel_labels,
    get_session,
    post_sale_rows,
    sale_row_key,
    validate_sale,
)
from shop.public_identity import public_identity

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000

SALES_COLUMNS: Columns = [
    ("date", "日期", ("销售日期", "时间", "date")),
    ("product", "商品", ("商品名称", "品名", "商品编号", "product")),
    ("quantity", "数量", ("件数", "quantity", "qty")),
    ("unit_price", "单价(元)", ("单价", "价格", "售价", "unit_price", "price")),
    ("amount", "金额(元)", ("金额", "小计", "amount")),
    ("channel", "渠道", ("销售渠道", "channel")),
    ("session", "活动/场次", ("活动", "活动名称", "场次", "直播场次", "session")),
    ("payment", "付款方式", ("支付方式", "payment")),
    ("buyer", "购买人", ("买家", "顾客", "buyer")),
    ("display", "爱心榜展示", ("展示方式", "display")),
    ("organization", "单位", ("爱心企业", "organization")),
    ("receipt_no", "单号", ("小票号", "票号", "receipt")),
]
SALES_REQUIRED = ("date", "product", "quantity")

INCOME_COLUMNS: Columns = [
    ("household_code", "户编码", ("户号", "编码", "code", "household_code")),
    ("channel", "类别", ("收入类别", "收入类型", "类型", "channel")),
    ("period", "期间", ("所属期间", "年度", "月份", "period")),
    ("quantity", "数量", ("亩数", "天数", "份数", "权重", "quantity")),
    ("rate", "单价(元)", ("单价", "每亩租金", "日工资", "每份金额", "rate")),
    ("amount", "金额(元)", ("金额", "amount")),
    ("payer", "付款方", ("付款单位", "payer")),
    ("paid_on", "发放日期", ("日期", "paid_on")),
    ("memo", "备注", ("说明", "memo")),
]
INCOME_REQUIRED = ("household_code", "channel", "period")


@dataclass
class RowResult:
    """One data row in the preview: its Excel row number, what it says, and its fate."""

    number: int
    cells: dict[str, str]
    status: str = "new"  # new | posted (already in the ledger) | error
    errors: list[str] = field(default_factory=list)
    amount_fen: int = 0
    share_note: str = ""
    value: object = None  # the checked row: a CheckedSale, or a CleanIncome


@dataclass
class Preview:
    batch: ImportBatch
    rows: list[RowResult]
    file_errors: list[str]
    earlier_batch: ImportBatch | None = None

    @property
    def errors(self) -> list[str]:
        listed = list(self.file_errors)
        for row in self.rows:
            listed.extend(_("第 %(row)s 行：%(msg)s", row=row.number, msg=m) for m in row.errors)
        return listed

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def new_rows(self) -> list[RowResult]:
        return [r for r in self.rows if r.status == "new"]

    @property
    def posted_rows(self) -> list[RowResult]:
        return [r for r in self.rows if r.status == "posted"]

    @property
    def new_total_fen(self) -> int:
        return sum(r.amount_fen for r in self.new_rows)


# --- reading files -------------------------------------------------------------------


def create_batch(
    purpose: str,
    data: bytes,
    filename: str = "",
    channel: str = "",
    session_name: str = "",
    starts_on: date | None = None,
    ends_on: date | None = None,
    user_id: int | None = None,
) -> ImportBatch:
    """Store an uploaded file as a pending batch (commit) for its preview.

    Raises :class:`ImportFailed` for a file that is too big, empty, a spreadsheet or
    not text; rows are checked by :func:`preview`, not here."""
    if len(data) > MAX_BYTES:
        raise ImportFailed([_("文件太大（超过 2 MB），请分成几个文件上传。")])
    text = decode(data)
    batch = ImportBatch(
        purpose=purpose,
        filename=(filename or "")[:200],
        content_sha256=hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest(),
        content=text,
        channel=channel,
        session_name=(session_name or "").strip()[:80],
        starts_on=starts_on,
        ends_on=ends_on,
        created_by_id=user_id,
    )
    with transaction(db.session):
        db.session.add(batch)
    return batch


def _records(text: str, columns, required) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    records = read_records(text)
    match = match_header(require_header(records), columns)
    labels = column_labels(columns)
    problems = [
        _("不认识的列“%(col)s”。", col=text)
        if kind == "unknown"
        else _("“%(name)s”这一列出现了两次。", name=labels[text])
        for kind, text in match.problems
    ]
    missing = [labels[f] for f in required if f not in match.positions]
    if missing:
        problems.append(_("缺少必填的列：%(cols)s。", cols="、".join(missing)))
    if problems:
        header = template_header(columns)
        problems.append(_("第一行应是表头：%(header)s（可下载模板对照）。", header=header))
        raise ImportFailed([_("第 1 行：%(msg)s", msg=p) for p in problems])
    body = data_rows(records)
    if not body:
        raise ImportFailed([_("文件里只有表头，没有数据行。")])
    if len(body) > MAX_ROWS:
        raise ImportFailed([_("一次最多 %(n)s 行，请分成几个文件。", n=MAX_ROWS)])
    return match.positions, body


def _cells(positions: dict[str, int], cells: list[str]) -> dict[str, str]:
    return {
        name: (cells[index].strip() if index < len(cells) else "")
        for name, index in positions.items()
    }


# --- sales -------------------------------------------------------------------------


def _check_sales(batch: ImportBatch) -> Preview:
    """Check every row of a sales batch: each column (:mod:`.import_checks`), then
    the whole sale, duplicates inside the file, rows already recorded and, for all
    new rows together, the stock. Products are loaded once, recorded rows in one query."""
    positions, body = _records(batch.content, SALES_COLUMNS, SALES_REQUIRED)
    lookup = checks.SalesLookup.load()
    defaults = checks.BatchDefaults(
        batch.channel, batch.session_name, batch.starts_on, batch.ends_on
    )
    today = datetime.now(SHANGHAI).date()
    rows: list[RowResult] = []
    occurrences: Counter = Counter()
    receipts: dict[tuple, int] = {}
    for number, raw in body:
        row = RowResult(number, _cells(positions, raw))
        rows.append(row)
        row.value = _checked_sale(row, defaults, lookup, today, receipts, occurrences)
        if row.value is None:
            row.status = "error"
    _match_recorded(rows)
    _check_stock(rows, lookup.products())
    return Preview(batch, rows, [])


def _checked_sale(row: RowResult, defaults, lookup, today, receipts, occurrences):
    """The row as a :class:`~.import_checks.CheckedSale`, or None (errors on the row).

    ``receipts`` (receipt → first row) and ``occurrences`` (identical rows so far)
    carry what the earlier rows of the file said."""
    values = checks.check_sale_cells(row.cells, defaults, lookup, today, row.errors)
    if row.errors:
        return None
    sale = SaleInput(
        product_id=values.product.id,
        quantity=values.quantity,
        unit_price_fen=values.unit_price_fen,
        payment_method=values.payment,
        board_display=values.display,
        board_name=public_identity(values.display, values.buyer, values.buyer).label,
        organization=values.organization[:120],
        sold_at=values.sold_at,
        receipt_no=values.receipt_no,
    )
    try:
        validate_sale(sale)
    except OfflineError as error:
        row.errors.append(error.message)
        return None
    channel = values.channel
    name_for_key = "" if channel == "hall" else values.session_name
    if sale.receipt_no:
        earlier = receipts.get((channel, name_for_key, sale.receipt_no))
        if earlier:
            row.errors.append(
                _("单号 %(no)s 与第 %(row)s 行重复。", no=sale.receipt_no, row=earlier)
            )
            return None
        receipts[(channel, name_for_key, sale.receipt_no)] = row.number
        occurrence = 1
    else:
        content = (channel, name_for_key, sale)
        occurrences[content] += 1
        occurrence = occurrences[content]
    row.amount_fen = sale.unit_price_fen * sale.quantity
    key = sale_row_key(channel, name_for_key, sale, occurrence)
    return checks.CheckedSale((channel, values.session_name), sale, key)


def _match_recorded(rows: list[RowResult]) -> None:
    """Rows whose key is recorded already: ``posted`` if the record says the same,
    an error if it differs (one query for the whole file)."""
    checked = [r for r in rows if r.status == "new"]
    recorded = checks.posted_sales([r.value.key for r in checked])
    for row in checked:
        existing = recorded.get(row.value.key)
        if existing is None:
            continue
        sale = row.value.sale
        same = (existing.product_id, existing.quantity, existing.unit_price_fen) == (
            sale.product_id,
            sale.quantity,
            sale.unit_price_fen,
        )
        if same:
            row.status = "posted"
        else:
            row.errors.append(_("单号 %(no)s 已入账，但内容不同。", no=sale.receipt_no))
            row.status = "error"


def _check_stock(rows: list[RowResult], products: dict[int, Product]) -> None:
    """Stock for all new rows together, named on the first row of each product short of it."""
    wanted: Counter = Counter()
    for row in rows:
        if row.status == "new":
            wanted[row.value.sale.product_id] += row.value.sale.quantity
    for product_id, quantity in wanted.items():
        product = products[product_id]
        if quantity > product.stock:
            first = next(
                r for r in rows if r.status == "new" and r.value.sale.product_id == product_id
            )
            first.errors.append(
                _(
                    "“%(name)s”库存不足：本文件共 %(want)s %(unit)s，现有 %(stock)s %(unit)s。",
                    name=product.name,
                    want=quantity,
                    stock=product.stock,
                    unit=product.unit,
                )
            )
            first.status = "error"


# --- income ------------------------------------------------------------------------


def _check_income(batch: ImportBatch) -> Preview:
    positions, body = _records(batch.content, INCOME_COLUMNS, INCOME_REQUIRED)
    codes = [
        cells[positions["household_code"]].strip().upper()
        for _n, cells in body
        if positions["household_code"] < len(cells)
    ]
    households = {
        h.code: h for h in db.session.scalars(select(Household).where(Household.code.in_(codes)))
    }
    recorded = income_services.recorded_income(codes)
    seen: dict[tuple, int] = {}
    rows: list[RowResult] = []
    for number, raw in body:
        cells = _cells(positions, raw)
        row = RowResult(number, cells)
        rows.append(row)
        channel = checks.check_income_channel(cells.get("channel", ""), row.errors)
        try:
            values = checks.check_income_cells(cells, channel, batch.session_name)
        except OfflineError as error:
            row.errors.append(error.message)
        if row.errors:
            row.status = "error"
            continue
        try:
            clean = income_services.check_income(
                income_services.IncomeInput(
                    household_code=cells.get("household_code", ""),
                    channel=channel,
                    period=cells.get("period", ""),
                    payer_account=values.payer_account,
                    quantity_hundredths=values.quantity_hundredths,
                    rate_fen=values.rate_fen,
                    amount_fen=values.amount_fen,
                    memo=cells.get("memo", ""),
                    paid_on=values.paid_on,
                ),
                households,
                recorded,
            )
        except (OfflineError, LedgerError) as error:
            row.errors.append(getattr(error, "message", str(error)))
            row.status = "error"
            continue
        cause = (clean.channel, clean.period, clean.household_code)
        if cause in seen:
            row.errors.append(
                _("与第 %(row)s 行重复（同一户、同一类别、同一期间）。", row=seen[cause])
            )
            row.status = "error"
            continue
        seen[cause] = number
        row.amount_fen = clean.amount_fen
        row.value = clean
        row.status = "posted" if clean.already_posted else "new"
    return Preview(batch, rows, [])


# --- preview and confirm -----------------------------------------------------------


def preview(batch: ImportBatch) -> Preview:
    """Check every row of a batch; writes nothing."""
    try:
        result = _check_sales(batch) if batch.purpose == "sales" else _check_income(batch)
    except ImportFailed as failed:
        result = Preview(batch, [], failed.errors)
    result.earlier_batch = db.session.scalar(
        select(ImportBatch)
        .where(
            ImportBatch.content_sha256 == batch.content_sha256,
            ImportBatch.purpose == batch.purpose,
            ImportBatch.status == "posted",
            ImportBatch.id != batch.id,
        )
        .order_by(ImportBatch.id)
    )
    earlier = result.earlier_batch
    if (
        earlier is not None
        and batch.purpose == "sales"
        and (earlier.channel, earlier.session_name) != (batch.channel, batch.session_name)
    ):
        # Row keys include the session, so the same sales filed under another event
        # would post again: almost always the same file chosen twice by mistake.
        result.file_errors.append(
            _(
                "同样内容的文件已在批次 #%(id)s 记入「%(name)s」。"
                "同一批销售不能记在两个活动或场次下；如果确实是另一场的销售，请核对文件内容。",
                id=earlier.id,
                name=earlier.session_name or channel_labels().get(earlier.channel, earlier.channel),
            )
        )
    return result


def confirm(batch_id: int, user_id: int | None = None) -> Preview:
    """Check every row again and post the new ones, all in one commit.

    Returns the preview as posted. Raises :class:`ImportFailed` (nothing written)
    listing every problem, including stock taken by someone else since the preview.
    """
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None:
        raise ImportFailed([_("没有这个导入批次。")])
    if batch.status == "posted":
        return preview(batch)
    result = preview(batch)
    if not result.ok:
        raise ImportFailed(result.errors)
    try:
        with transaction(db.session):
            if batch.purpose == "sales":
                posted = _post_sales(batch, result.new_rows, user_id)
            else:
                posted = _post_income(batch, result.new_rows, user_id)
            batch.status = "posted"
            batch.posted_at = utcnow()
            batch.row_count = len(result.rows)
            batch.total_fen = result.new_total_fen
            batch.posted_rows = posted
            batch.skipped_rows = len(result.rows) - posted
    except LedgerError as error:
        raise ImportFailed([_("记账失败，什么都没有写入：%(reason)s", reason=str(error))]) from None
    except OfflineError as error:
        raise ImportFailed([error.message]) from None
    except IntegrityError:
        raise ImportFailed(
            [_("这批数据刚刚被别人同时确认了，什么都没有重复写入。请刷新查看。")]
        ) from None
    return result


def _post_sales(batch: ImportBatch, rows: list[RowResult], user_id: int | None) -> int:
    """Post the new sales rows in one append to the ledger (flush, no commit); returns
    how many were created. Raises ImportFailed naming a row short of stock."""
    sale_rows = []
    for row in rows:
        (channel, session_name), sale, key = row.value
        starts_on = ends_on = None
        if channel == batch.channel and session_name == batch.session_name:
            starts_on, ends_on = batch.starts_on, batch.ends_on
        day = sale.sold_at.astimezone(SHANGHAI).date()
        sales_session = get_session(channel, session_name, starts_on or day, ends_on or day)
        sale_rows.append(SaleRow(sales_session, sale, key, batch.id, row.number))
    try:
        outcomes = post_sale_rows(sale_rows, user_id)
    except RowError as error:
        raise ImportFailed(
            [_("第 %(row)s 行：%(msg)s", row=error.row_number, msg=error.message)]
        ) from None
    return sum(int(created) for _record, created in outcomes)


def _post_income(batch: ImportBatch, rows: list[RowResult], user_id: int | None) -> int:
    """Post the new income rows (flush, no commit); returns how many were created."""
    posted = 0
    for row in rows:
        _record, created = income_services.post_clean(row.value, batch.id, row.number, user_id)
        posted += int(created)
        crash_point("offline.income_halfway", when=2 * posted >= len(rows))
    return posted


def recent_batches(purpose: str, limit: int = 20) -> list[ImportBatch]:
    return list(
        db.session.scalars(
            select(ImportBatch)
            .where(ImportBatch.purpose == purpose)
            .order_by(ImportBatch.id.desc())
            .limit(limit)
        )
    )


# --- templates and roster batches --------------------------------------------------


def sales_template_csv() -> bytes:
    """The sales upload template with two example rows (the first published product's
    name, which staff typed, neutralised by :func:`~shop.csv_input.csv_bytes`)."""
    product = db.session.scalar(
        select(Product).where(Product.status == "published").order_by(Product.id)
    )
    name = product.name if product else "树莓果酒"
    price = format_fen_plain(product.price_fen) if product else "158.00"
    today = datetime.now(SHANGHAI).date().isoformat()
    return csv_bytes(
        [label for _f, label, _a in SALES_COLUMNS],
        [
            [today, name, "2", price, "", "", "", "微信", "王小明", "实名打码", "", "0001"],
            [today, name, "1", price, "", "", "", "现金", "", "匿名", "", "0002"],
        ],
    )


def income_template_csv() -> bytes:
    codes = list(db.session.scalars(select(Household.code).order_by(Household.code).limit(2)))
    codes += ["SJ-001", "SJ-002"][len(codes) :]
    year = str(datetime.now(SHANGHAI).year)
    return csv_bytes(
        [label for _f, label, _a in INCOME_COLUMNS],
        [
            [codes[0], "土地租金", year, "2.5", "340", "", "", "", ""],
            [codes[1], "务工工资", f"{year}-03", "22", "120", "", "", "", ""],
        ],
    )


def roster_csv(
    channel: str,
    period: str,
    rate_fen: int = 0,
    pool_fen: int = 0,
    basis: str = "equal",
    payer: str = "",
    days: dict[str, int] | None = None,
) -> bytes:
    """The register's households for one channel as an income CSV, ready to preview
    (the rows are :func:`~shop.offline.income.roster_rows`'). Every cell goes through
    :func:`~shop.csv_input.csv_bytes`, so a payer or memo that starts like a formula is
    text. Raises OfflineError."""
    rows = income_services.roster_rows(channel, period, rate_fen, pool_fen, basis, payer, days)
    return csv_bytes([lbl for _f, lbl, _a in INCOME_COLUMNS], rows)


def roster_file(roster: income_services.Roster) -> bytes:
    """The CSV for a checked roster form (:func:`~shop.offline.income.check_roster`)."""
    return roster_csv(
        roster.channel, roster.period, roster.rate_fen, roster.pool_fen, roster.basis,
        roster.payer,
    )  # fmt: skip
