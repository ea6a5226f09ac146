"""Offline sales and household income on the public boards.

Registered with the boards' projection in ``create_app``: an ``offline_sale`` posting
is a purchase on the love board, dated by the day the village team recorded
(``sold_at``); an income posting is dated by its payday, or the end of its period
(income for a period is earned by its end) — never later than it was posted.
"""

from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import INCOME_KINDS
from shop.boards.projection import PostedTransaction, Purchase, register_source
from shop.catalog.models import Product
from shop.formatting import SHANGHAI
from shop.offline.models import HouseholdIncome, OfflineSale
from shop.public_identity import public_identity


def register(app) -> None:
    register_source(app, "offline_sale", purchase=offline_purchase, earned_at=sale_day)
    for kind in INCOME_KINDS.values():
        register_source(app, kind, earned_at=income_day)


def offline_purchase(session: Session, tx: PostedTransaction) -> Purchase | None:
    """The offline sale record posted as ``tx``, as the love board shows it.

    Offline buyers leave no phone number: a receipt number names one buyer within its
    session, otherwise each sale is its own buyer. Only a chosen nickname groups sales
    in the ranking; a masked "王*" at the hall is not one person.
    """
    record = session.scalar(select(OfflineSale).where(OfflineSale.transaction_id == tx.id))
    if record is None:
        return None
    identity = public_identity(
        record.board_display, organization=record.organization, label=record.board_name
    )
    slug = session.scalar(select(Product.slug).where(Product.id == record.product_id))
    items = [
        {
            "slug": slug or "",
            "name": record.product_name,
            "quantity": record.quantity,
            "unit": record.unit,
        }
    ]
    buyer = f"{record.session_id}:{record.receipt_no}" if record.receipt_no else record.row_key
    grouping = f"nick|{identity.label}" if identity.display == "nickname" else f"sale|{buyer}"
    return Purchase(
        "offline",
        None,
        identity,
        items,
        record.total_fen,
        buyer_key=f"offline:{buyer}",
        rank_identity=f"offline|{grouping}",
    )


def sale_day(session: Session, tx: PostedTransaction) -> datetime | None:
    return session.scalar(select(OfflineSale.sold_at).where(OfflineSale.transaction_id == tx.id))


def income_day(session: Session, tx: PostedTransaction) -> datetime | None:
    found = session.execute(
        select(HouseholdIncome.paid_on, HouseholdIncome.period).where(
            HouseholdIncome.transaction_id == tx.id
        )
    ).first()
    if found is None:
        return None
    day = found.paid_on or period_end(found.period)
    if day is None:
        return None
    return min(datetime.combine(day, time(12), tzinfo=SHANGHAI), tx.created_at)


def period_end(period: str) -> date | None:
    """The last day of an income period: ``2025`` → 2025-12-31, ``2025-03`` → 2025-03-31,
    ``2025-Q1`` → 2025-03-31, ``2025-H2`` → 2025-12-31. None for anything else."""
    try:
        year = int(period[:4])
        rest = period[5:]
        if len(period) == 4:
            month = 12
        elif rest.startswith("Q"):
            month = 3 * int(rest[1:])
        elif rest.startswith("H"):
            month = 6 * int(rest[1:])
        else:
            month = int(rest)
        if not 1 <= month <= 12:
            return None
        following = date(year + (month == 12), month % 12 + 1, 1)
    except ValueError:
        return None
    return following - timedelta(days=1)
