"""Checking the rows of an uploaded sales or income file, one column at a time.

Each ``check_*`` function reads one column of one row as the village team typed it and
returns its value, appending a sentence to ``errors`` for every problem it finds
(``None`` when the value cannot be read). :func:`check_sale_cells` runs them in the
order the preview lists problems. Nothing here queries the database row by row: what a
file refers to is loaded once, up front, by :meth:`SalesLookup.load` (products) and
:func:`posted_sales` (row keys already in the ledger). Money is integer fen.
"""

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from flask_babel import gettext as _
from sqlalchemy import select

from shop.catalog.models import Product
from shop.extensions import db
from shop.formatting import SHANGHAI, format_fen
from shop.money import parse_typed_yuan
from shop.offline import income as income_services
from shop.offline.models import OfflineSale
from shop.offline.services import MAX_QUANTITY, OfflineError, SaleInput

CHANNEL_WORDS = {
    "hall": {"扶贫馆", "展销馆", "展厅", "馆内", "门店", "hall"},
    "event": {"活动", "展销会", "展销活动", "年货节", "event"},
    "live": {"直播", "直播间", "直播带货", "live"},
}
PAYMENT_WORDS = {
    "cash": {"现金", "cash", ""},
    "wechat": {"微信", "微信支付", "wechat"},
    "alipay": {"支付宝", "alipay"},
    "card": {"银行卡", "刷卡", "pos", "card"},
    "transfer": {"转账", "对公转账", "transfer"},
    "other": {"其他", "other"},
}
DISPLAY_WORDS = {
    "masked": {"实名打码", "打码", "实名", "姓氏", "masked"},
    "nickname": {"昵称", "nickname"},
    "anonymous": {"匿名", "爱心人士", "不展示", "anonymous"},
}
INCOME_CHANNEL_WORDS = {
    "land": {"土地", "土地租金", "土地流转", "土地流转租金", "流转租金", "land"},
    "wages": {"工资", "务工", "务工工资", "园区务工工资", "wages"},
    "dividend": {"分红", "产业分红", "dividend", "dividends"},
    "coop": {"合作社", "合作社分红", "社员分红", "coop"},
}


def fold(text: str) -> str:
    """A cell folded for matching words: NFKC, stripped, lower case."""
    return unicodedata.normalize("NFKC", text or "").strip().lower()


def lookup_word(words: dict[str, set[str]], text: str) -> str | None:
    """The value whose words include ``text`` (folded), or None."""
    folded = fold(text)
    for value, options in words.items():
        if folded in options:
            return value
    return None


def parse_yuan(text: str, label: str) -> int:
    """Yuan as typed → fen; raises OfflineError naming the column ``label``."""
    try:
        return parse_typed_yuan(text)
    except ValueError:
        raise OfflineError(_("“%(label)s”须是金额，例如 158 或 158.50。", label=label)) from None


def parse_when(text: str) -> datetime:
    """A sale's date (or date and time) as people type it, in Asia/Shanghai → UTC.

    A date without a time means noon. Raises OfflineError."""
    raw = fold(text).replace("年", "-").replace("月", "-").replace("日", " ").replace("/", "-")
    raw = raw.replace(".", "-").strip()
    match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ t]+(\d{1,2}):(\d{2})(?::\d{2})?)?", raw)
    if not match:
        raise OfflineError(_("日期请写成 2026-01-20 或 2026-01-20 14:30。"))
    year, month, day, hour, minute = match.groups()
    try:
        day_value = date(int(year), int(month), int(day))
    except ValueError:
        raise OfflineError(_("没有这一天：%(text)s。", text=text.strip())) from None
    if hour is None:
        moment = time(12, 0)
    elif int(hour) < 24:
        moment = time(int(hour), int(minute))
    else:
        raise OfflineError(_("时间不对：%(text)s。", text=text.strip()))
    return datetime.combine(day_value, moment, tzinfo=SHANGHAI).astimezone(UTC)


def parse_day(text: str) -> date:
    """A date as people type it → the Asia/Shanghai day; raises OfflineError."""
    return parse_when(text).astimezone(SHANGHAI).date()


def _attempt(errors: list[str], fn, *args):
    try:
        return fn(*args)
    except OfflineError as error:
        errors.append(error.message)
        return None


# --- sales: what the file refers to, loaded once -------------------------------------


@dataclass
class SalesLookup:
    """The products a sales file may name: by id or slug (lower case), and by folded
    name (a name several products share is ambiguous). Archived products are left out."""

    by_key: dict[str, Product]
    by_name: dict[str, list[Product]]

    @classmethod
    def load(cls) -> "SalesLookup":
        by_key: dict[str, Product] = {}
        by_name: dict[str, list[Product]] = defaultdict(list)
        for product in db.session.scalars(select(Product).where(Product.status != "archived")):
            by_key[str(product.id)] = product
            by_key[product.slug.lower()] = product
            by_name[fold(product.name)].append(product)
        return cls(by_key, by_name)

    def products(self) -> dict[int, Product]:
        return {p.id: p for p in self.by_key.values()}


def posted_sales(keys: list[str]) -> dict[str, OfflineSale]:
    """The sales already recorded under any of ``keys`` (one query), by row key."""
    if not keys:
        return {}
    return {
        sale.row_key: sale
        for sale in db.session.scalars(select(OfflineSale).where(OfflineSale.row_key.in_(keys)))
    }


@dataclass(frozen=True)
class BatchDefaults:
    """What the upload form said for rows that leave channel or session blank, and the
    dates the named session ran (rows under it must fall inside them)."""

    channel: str
    session_name: str
    starts_on: date | None = None
    ends_on: date | None = None


class CheckedSale(NamedTuple):
    """A sales row that passed: where it was sold, the sale, and its ledger row key."""

    where: tuple[str, str]  # (channel, session name as written)
    sale: SaleInput
    key: str


# --- sales: one check per column ----------------------------------------------------


def check_date(text: str, errors: list[str]) -> datetime | None:
    return _attempt(errors, parse_when, text)


def check_product(text: str, lookup: SalesLookup, errors: list[str]) -> Product | None:
    def find() -> Product:
        folded = fold(text)
        if not folded:
            raise OfflineError(_("请填写商品。"))
        if folded in lookup.by_key:
            return lookup.by_key[folded]
        matches = lookup.by_name.get(folded, [])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise OfflineError(_("有多个商品叫“%(name)s”，请改填商品编号。", name=text.strip()))
        raise OfflineError(_("系统里没有商品“%(name)s”（或已归档）。", name=text.strip()))

    return _attempt(errors, find)


def check_quantity(text: str, errors: list[str]) -> int | None:
    quantity = int(text) if text.isdigit() else None
    if quantity is None or not 1 <= quantity <= MAX_QUANTITY:
        errors.append(_("数量须为 1 到 9999 的整数。"))
    return quantity


def check_unit_price(text: str, product: Product | None, errors: list[str]) -> int | None:
    """The unit price in fen: the cell's, or the product's price when the cell is blank."""
    price = None
    if text:
        price = _attempt(errors, parse_yuan, text, _("单价"))
    elif product is not None:
        price = product.price_fen
    if price is not None and price <= 0:
        errors.append(_("单价须大于零。"))
    return price


def check_amount(text: str, price: int | None, quantity: int | None, errors: list[str]) -> None:
    """An amount, when given, must equal unit price × quantity."""
    if not (text and price and quantity):
        return
    amount = _attempt(errors, parse_yuan, text, _("金额"))
    if amount is not None and amount != price * quantity:
        errors.append(
            _(
                "金额 %(amount)s 与 单价×数量 %(computed)s 不符。",
                amount=format_fen(amount),
                computed=format_fen(price * quantity),
            )
        )


def check_channel(text: str, defaults: BatchDefaults, errors: list[str]) -> str:
    """hall | event | live; the batch's channel (else ``event``) when blank."""
    if not text:
        return defaults.channel or "event"
    channel = lookup_word(CHANNEL_WORDS, text) or ""
    if not channel:
        errors.append(_("渠道须是扶贫馆、活动或直播。"))
    return channel


def check_session(text: str, channel: str, defaults: BatchDefaults, errors: list[str]) -> str:
    """The event or live session's name; the batch's when blank. Required for both."""
    session_name = text or defaults.session_name
    if channel in ("event", "live") and not session_name:
        errors.append(_("请填写活动或直播场次的名称。"))
    if len(session_name) > 80:
        errors.append(_("活动/场次名称不能超过80个字。"))
    return session_name


def check_payment(text: str, errors: list[str]) -> str | None:
    payment = lookup_word(PAYMENT_WORDS, text)
    if payment is None:
        errors.append(_("付款方式须是现金、微信、支付宝、银行卡、转账或其他。"))
    return payment


def check_buyer(buyer: str, display_text: str, errors: list[str]) -> tuple[str, str]:
    """(buyer, board display): masked when a buyer is named, anonymous when not,
    unless the display column says otherwise; masked and nickname need a buyer."""
    display = "masked" if buyer else "anonymous"
    if display_text:
        display = lookup_word(DISPLAY_WORDS, display_text) or ""
        if not display:
            errors.append(_("爱心榜展示须是实名打码、昵称或匿名。"))
    if display in ("masked", "nickname") and not buyer:
        errors.append(_("选择实名打码或昵称时，请填写购买人。"))
    if len(buyer) > 40:
        errors.append(_("购买人不能超过40个字。"))
    return buyer, display


def check_receipt(text: str, errors: list[str]) -> str:
    if len(text) > 40:
        errors.append(_("单号不能超过40个字。"))
    return text


def check_sold_day(
    sold_at: datetime | None,
    channel: str,
    session_name: str,
    defaults: BatchDefaults,
    today: date,
    errors: list[str],
) -> None:
    """Not after tomorrow (Asia/Shanghai), and within the batch session's dates."""
    if sold_at is None:
        return
    day = sold_at.astimezone(SHANGHAI).date()
    if day > today + timedelta(days=1):
        errors.append(_("日期在未来：%(day)s。", day=day.isoformat()))
    elif (
        channel == defaults.channel
        and session_name == defaults.session_name
        and (
            (defaults.starts_on and day < defaults.starts_on)
            or (defaults.ends_on and day > defaults.ends_on)
        )
    ):
        errors.append(_("日期 %(day)s 不在本场活动的起止日期内。", day=day.isoformat()))


@dataclass(frozen=True)
class SaleCells:
    """One sales row's values once every column is checked (None: unreadable)."""

    channel: str
    session_name: str
    sold_at: datetime | None
    product: Product | None
    quantity: int | None
    unit_price_fen: int | None
    payment: str | None
    buyer: str
    display: str
    organization: str
    receipt_no: str


def check_sale_cells(
    cells: dict[str, str],
    defaults: BatchDefaults,
    lookup: SalesLookup,
    today: date,
    errors: list[str],
) -> SaleCells:
    """Check every column of one sales row, in the order problems are listed."""
    sold_at = check_date(cells.get("date", ""), errors)
    product = check_product(cells.get("product", ""), lookup, errors)
    quantity = check_quantity(cells.get("quantity", ""), errors)
    price = check_unit_price(cells.get("unit_price", ""), product, errors)
    check_amount(cells.get("amount", ""), price, quantity, errors)
    channel = check_channel(cells.get("channel", ""), defaults, errors)
    session_name = check_session(cells.get("session", ""), channel, defaults, errors)
    payment = check_payment(cells.get("payment", ""), errors)
    buyer, display = check_buyer(cells.get("buyer", ""), cells.get("display", ""), errors)
    organization = cells.get("organization", "")
    receipt = check_receipt(cells.get("receipt_no", ""), errors)
    check_sold_day(sold_at, channel, session_name, defaults, today, errors)
    return SaleCells(
        channel, session_name, sold_at, product, quantity, price, payment, buyer, display,
        organization, receipt,
    )  # fmt: skip


# --- income: one check per column ---------------------------------------------------


def check_income_channel(text: str, errors: list[str]) -> str | None:
    channel = lookup_word(INCOME_CHANNEL_WORDS, text)
    if channel is None:
        errors.append(_("类别须是土地租金、务工工资、分红或合作社。"))
    return channel


@dataclass(frozen=True)
class IncomeCells:
    """One income row's numbers (quantity in hundredths, money in fen), payer and day."""

    quantity_hundredths: int | None
    rate_fen: int | None
    amount_fen: int | None
    payer_account: str
    paid_on: date | None


def check_income_quantity(text: str) -> int | None:
    """Mu, days, weight or shares, in hundredths; None when blank."""
    return income_services.parse_hundredths(text, "quantity", _("数量")) if text else None


def check_income_money(text: str, label: str) -> int | None:
    """A rate or amount in fen; None when blank."""
    return parse_yuan(text, label) if text else None


def check_payer(text: str, channel: str | None, default_payer: str) -> str:
    """The payer's account; blank: the upload's default payer, else the channel's usual."""
    if text:
        return income_services.parse_payer(text)
    return default_payer or income_services.default_payer(channel or "dividend")


def check_paid_on(text: str) -> date | None:
    return parse_day(text) if text else None


def check_income_cells(
    cells: dict[str, str], channel: str | None, default_payer: str
) -> IncomeCells:
    """Quantity, rate, amount, payer and payday of one income row; raises OfflineError
    at the first that cannot be read. A co-op rate without a quantity is one share
    (:func:`~shop.offline.income.default_quantity`)."""
    quantity = check_income_quantity(cells.get("quantity", ""))
    rate = check_income_money(cells.get("rate", ""), _("单价"))
    amount = check_income_money(cells.get("amount", ""), _("金额"))
    return IncomeCells(
        quantity_hundredths=income_services.default_quantity(channel, quantity, rate),
        rate_fen=rate,
        amount_fen=amount,
        payer_account=check_payer(cells.get("payer", ""), channel, default_payer),
        paid_on=check_paid_on(cells.get("paid_on", "")),
    )
