"""The order trace page: what the public may see of one paid order by its token.

What was bought, which households received how much (masked names), the ledger
transaction and its hash — and of the buyer only the name they chose to appear under.
"""

from dataclasses import dataclass

from shop.orders.ledger_view import OrderLedgerView, order_ledger_view
from shop.orders.models import Order
from shop.orders.services import order_by_token
from shop.public_identity import public_identity


@dataclass
class Trace:
    order: Order
    ledger: OrderLedgerView | None
    items: list[dict]


def trace_of(token: str) -> Trace | None:
    """What the public may see of an order by its token (no buyer details but the name
    they chose to appear under)."""
    order = order_by_token(token)
    if order is None or order.status in ("pending_payment", "cancelled"):
        return None
    items = [
        {
            "name": line.product_name,
            "slug": line.product_slug,
            "quantity": line.quantity,
            "unit": line.unit,
            "line_total_fen": line.line_total_fen,
        }
        for line in order.lines
    ]
    return Trace(order, order_ledger_view(order), items)


def public_buyer(order: Order) -> tuple[str, str]:
    """(name, organisation) as the buyer chose to appear."""
    shown = public_identity(
        order.board_display, organization=order.organization, label=order.board_name
    )
    return shown.label, shown.organization
