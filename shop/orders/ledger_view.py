"""An order's sale in the ledger, as its buyer and the public may see it.

The sale an order's payment posts is keyed ``sale:<trade_no>`` (Alipay's trade number:
one payment, one posting). The view names the households it reached by masked name only,
with the fen each received and how much of that refunds took back.
"""

from dataclasses import dataclass

from sqlalchemy import select

from ledger import HOUSEHOLD_PREFIX, Transaction, find, sale_allocations
from shop.extensions import db
from shop.households.models import Household
from shop.orders.models import Order

SALE_KEY_PREFIX = "sale:"


def sale_key(trade_no: str) -> str:
    """The ledger key of the sale paid by Alipay trade ``trade_no``."""
    return SALE_KEY_PREFIX + trade_no


@dataclass(frozen=True)
class OrderLedgerView:
    """What a buyer and the public may see of an order's posting: masked names only."""

    transaction_id: int
    hash: str
    allocations: list[dict]  # {"household": masked name, "code": …, "amount_fen": …}
    refunded_back_fen: int  # ≤ 0: what refunds took back from households


def order_ledger_view(order: Order) -> OrderLedgerView | None:
    """The order's sale transaction and its allocations; None until it is paid."""
    if not order.trade_no:
        return None
    sale = find(db.session, sale_key(order.trade_no))
    if sale is None:
        return None
    parts = sale_allocations(db.session, sale)
    names = dict(
        db.session.execute(
            select(Household.code, Household.name_masked).where(Household.code.in_(list(parts)))
        ).all()
    )
    reversed_fen = 0
    for reversal in db.session.scalars(
        select(Transaction).where(Transaction.reverses_id == sale.id)
    ):
        reversed_fen += sum(
            e.amount_fen for e in reversal.entries if e.account.code.startswith(HOUSEHOLD_PREFIX)
        )
    allocations = [
        {"household": names.get(code, code), "code": code, "amount_fen": fen}
        for code, fen in sorted(parts.items())
    ]
    return OrderLedgerView(sale.id, sale.hash, allocations, reversed_fen)
