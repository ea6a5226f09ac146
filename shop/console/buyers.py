"""The village team's view of its buyers: caring units by total, repeat buyers, and a
contact list for the team's own follow-up (staff only: names, phones and e-mails in
clear, which no public page ever shows).

A buyer is counted by the keyed digest of their phone (``shop_order.phone_digest``,
shop/orders/holds.py), so the same person's orders group together without the phone
being stored in clear; orders placed before those digests existed are left out. Only
orders whose money came in count (paid, shipped, completed, refunded); amounts are fen,
refunds subtracted.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from shop.extensions import db
from shop.formatting import format_fen_plain
from shop.orders.models import Order

PAID = ("paid", "shipped", "completed", "refunded")
_NET = Order.total_fen - Order.refunded_fen


@dataclass(frozen=True)
class Organisation:
    name: str
    orders: int
    buyers: int
    net_fen: int


@dataclass(frozen=True)
class Buyer:
    name: str
    phone: str
    email: str
    organization: str
    orders: int
    net_fen: int
    last_order_at: datetime


def organisations(limit: int = 50) -> list[Organisation]:
    rows = db.session.execute(
        select(
            Order.organization,
            func.count(),
            func.count(func.distinct(Order.phone_digest)),
            func.sum(_NET),
        )
        .where(Order.status.in_(PAID), Order.organization != "")
        .group_by(Order.organization)
        .order_by(func.sum(_NET).desc(), Order.organization)
        .limit(limit)
    )
    return [Organisation(name, int(n), int(b), int(fen)) for name, n, b, fen in rows]


def _buyers(min_orders: int, limit: int | None) -> Iterator[Buyer]:
    query = (
        select(Order.phone_digest, func.count(), func.sum(_NET), func.max(Order.id))
        .where(Order.status.in_(PAID), Order.phone_digest.is_not(None))
        .group_by(Order.phone_digest)
        .having(func.count() >= min_orders)
        .order_by(func.count().desc(), func.sum(_NET).desc(), Order.phone_digest)
    )
    if limit is not None:
        query = query.limit(limit)
    for _digest, count, fen, latest_id in db.session.execute(query).all():
        latest = db.session.get(Order, latest_id)  # their newest details
        yield Buyer(
            latest.buyer_name,
            latest.buyer_phone,
            latest.email or "",
            latest.organization,
            int(count),
            int(fen),
            latest.created_at,
        )


def repeat_buyers(limit: int = 50) -> list[Buyer]:
    """Buyers with two or more paid orders, most orders first."""
    return list(_buyers(2, limit))


CONTACTS_HEADER = ["姓名", "手机", "邮箱", "单位", "订单数", "实付（元，已扣退款）", "最近下单"]


def contact_rows() -> Iterator[list]:
    """Every buyer, for the CSV export (cells made formula-safe by ``csv_stream``)."""
    for buyer in _buyers(1, None):
        yield [
            buyer.name, buyer.phone, buyer.email, buyer.organization, buyer.orders,
            format_fen_plain(buyer.net_fen), buyer.last_order_at.date().isoformat(),
        ]  # fmt: skip
