"""The e-mails an order's life sends its buyer, each recorded with the change itself.

Called inside the transaction that makes the change (placing, the paid hook, shipping,
the refund hook); each is one :func:`shop.mail.outbox.enqueue` keyed by the event, so
a change recorded once sends one e-mail. Orders without an address send nothing.
"""

from flask import current_app

from shop.mail.outbox import enqueue
from shop.money import format_fen


def _links(order) -> dict:
    base = current_app.config["PUBLIC_BASE_URL"]
    return {
        "order_url": f"{base}/orders/{order.token}",
        "trace_url": f"{base}/trace/{order.token}",
    }


def _context(order) -> dict:
    return {
        "order": order,
        "total": format_fen(order.total_fen),
        "lines": [
            {"name": line.product_name, "quantity": line.quantity, "unit": line.unit}
            for line in order.lines
        ],
        **_links(order),
    }


def order_placed(order) -> None:
    enqueue(
        f"order.placed:{order.order_no}",
        "order_placed",
        order.email or "",
        order.locale,
        minutes=current_app.config["ORDER_EXPIRY_MINUTES"],
        **_context(order),
    )


def order_paid(order) -> None:
    enqueue(
        f"order.paid:{order.order_no}",
        "order_paid",
        order.email or "",
        order.locale,
        **_context(order),
    )


def order_shipped(order) -> None:
    enqueue(
        f"order.shipped:{order.order_no}",
        "order_shipped",
        order.email or "",
        order.locale,
        **_context(order),
    )


def refund_succeeded(refund) -> None:
    order = refund.order
    enqueue(
        f"refund.succeeded:{refund.out_request_no}",
        "order_refunded",
        order.email or "",
        order.locale,
        amount=format_fen(refund.amount_fen),
        refunded_total=format_fen(order.refunded_fen),
        **_context(order),
    )
