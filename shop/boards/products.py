"""Whom a product helps, and the QR labels that lead there.

The product page and a scanned bottle label show the households the product's current
benefit rule credits, with what each has received from sales so far (fen); the label
sheet prints QR codes for product pages (bottles at the hall) and for order trace pages
(slipped into parcels). URLs are built by the caller (a route), so nothing here needs a
request.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select

from ledger import latest_rule, rule_in_force
from shop.boards.models import BoardHousehold
from shop.boards.qr import qr_svg
from shop.boards.reads import household_names
from shop.db import utcnow
from shop.extensions import db
from shop.orders.models import Order

_HOUSEHOLD = BoardHousehold.__table__

def product_households(product_id: int, limit: int = 60) -> list[dict]:
    """The first ``limit`` households (by code) the product's current benefit rule
    credits — code, masked name, and all its income from sales of every product so far —
    for "whom does this bottle help" on the product page and a scanned label. The
    caller tells how many there are in all with :func:`product_household_count`."""
    rule = rule_in_force(db.session, product_id, utcnow()) or latest_rule(db.session, product_id)
    if rule is None:
        return []
    codes = [link.household_code for link in rule.households][:limit]
    names = household_names(codes)
    sales = (
        dict(
            db.session.execute(
                select(_HOUSEHOLD.c.household_code, _HOUSEHOLD.c.sales_fen).where(
                    _HOUSEHOLD.c.household_code.in_(codes)
                )
            ).all()
        )
        if codes
        else {}
    )
    return [
        {"code": code, "name_masked": names.get(code, ""), "sales_fen": int(sales.get(code, 0))}
        for code in codes
    ]


MAX_LABEL_ORDERS = 40


@dataclass
class LabelSheet:
    labels: list[dict]  # title, subtitle, url, qr (inline SVG), share_fen, unit
    skipped: list[str]  # order numbers with no trace page (unknown or unpaid)


def label_sheet(
    published: Sequence,
    chosen_slugs: set[str],
    copies: int,
    orders_text: str,
    product_url: Callable[[str], str],
    trace_url: Callable[[str], str],
) -> LabelSheet:
    """QR labels: ``copies`` of each chosen product among ``published`` (all when none
    is chosen), then one for the trace page of each paid order named in
    ``orders_text``. ``product_url(slug)`` and ``trace_url(token)`` give the absolute
    addresses the codes lead to."""

    def label(title: str, subtitle: str, url: str, share_fen: int = 0, unit: str = "") -> dict:
        qr = qr_svg(url, scale=3, inline=True)
        return {"title": title, "subtitle": subtitle, "url": url, "qr": qr,
                "share_fen": share_fen, "unit": unit}  # fmt: skip

    labels = []
    for product in published:
        if chosen_slugs and product.slug not in chosen_slugs:
            continue
        url = product_url(product.slug)
        one = label(product.name, _("扫码看看它帮到了谁"), url, product.beneficiary_fen_per_unit,
                    product.unit)  # fmt: skip
        labels += [one] * copies
    orders, skipped = traceable_orders(orders_text)
    for order in orders:
        url = trace_url(order.token)
        labels.append(label(order.order_no, _("扫码查看帮到的农户"), url))
    return LabelSheet(labels, skipped)


def traceable_orders(numbers_text: str) -> tuple[list[Order], list[str]]:
    """Paid (or later) orders named by number in ``numbers_text`` (separated by spaces,
    commas or new lines), in the order given, and the numbers that are unknown or not
    paid (no trace page to print)."""
    numbers = list(dict.fromkeys(re.findall(r"[A-Za-z0-9-]{6,40}", numbers_text or "")))
    numbers = numbers[:MAX_LABEL_ORDERS]
    if not numbers:
        return [], []
    found = {
        order.order_no: order
        for order in db.session.scalars(select(Order).where(Order.order_no.in_(numbers)))
        if order.status not in ("pending_payment", "cancelled")
    }
    return [found[n] for n in numbers if n in found], [n for n in numbers if n not in found]


def product_household_count(product_id: int) -> int:
    rule = rule_in_force(db.session, product_id, utcnow()) or latest_rule(db.session, product_id)
    return len(rule.households) if rule is not None else 0
