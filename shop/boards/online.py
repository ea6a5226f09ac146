"""Online orders on the love board: the purchase behind a ``sale:<trade_no>`` posting.

Registered with the projection in ``create_app`` (``register_source("sale", …)``). The
buyer is told apart by their phone number (or the order number when there is none),
only ever as a keyed digest; they appear as they chose when ordering. An order placed for
a registered organisation is told apart by the organisation instead.
"""

from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.boards.projection import PostedTransaction, Purchase
from shop.orders.ledger_view import SALE_KEY_PREFIX
from shop.orders.models import Order
from shop.public_identity import public_identity


def online_purchase(session: Session, tx: PostedTransaction) -> Purchase | None:
    """The order paid by the trade in ``tx.key``, as the love board shows it."""
    if not tx.key.startswith(SALE_KEY_PREFIX):
        return None
    trade_no = tx.key[len(SALE_KEY_PREFIX) :]
    order = session.scalar(select(Order).where(Order.trade_no == trade_no))
    if order is None:
        return None
    identity = public_identity(
        order.board_display, organization=order.organization, label=order.board_name
    )
    phone = order.buyer_phone or order.order_no
    # An organisation's orders, whichever member placed them, are one buyer: counted
    # once among the buyers and ranked as the organisation with its total.
    organisation = order.organisation_id
    buyer_key = f"organisation:{organisation}" if organisation else f"phone:{phone}"
    items = [
        {
            "slug": line.product_slug,
            "name": line.product_name,
            "quantity": line.quantity,
            "unit": line.unit,
        }
        for line in order.lines
    ]
    return Purchase(
        "online",
        order.id,
        identity,
        items,
        order.total_fen,
        buyer_key=buyer_key,
        rank_identity=buyer_key if organisation else f"{phone}|{identity.label}",
        organisation_id=organisation,
    )
