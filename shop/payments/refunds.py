"""Refunds through Alipay: full or partial, optionally putting units back on the shelf.

A refund is first written as ``pending`` with its ``out_request_no`` and committed,
then sent to Alipay. Alipay treats a repeated ``out_request_no`` as the same refund,
so a crash or a network error after the call is healed by sending it again
(:func:`retry_pending_refunds`, run by ``payments reconcile``) — money moves once.
Success is applied with a conditional UPDATE (pending → succeeded), so the order's
``refunded_fen`` and the stock change once even if two workers finish the same refund.
"""

import json
import logging
from collections.abc import Callable

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from shop.audit.log import note, outside_answer
from shop.catalog.models import Product
from shop.db import transaction, utcnow
from shop.extensions import db
from shop.money import format_fen
from shop.orders.models import Order, OrderLine, Refund
from shop.orders.services import OrderError, check_text
from shop.payments.provider import ProviderError, get_provider

log = logging.getLogger("shop.refunds")

REFUNDABLE_STATUSES = ("paid", "shipped", "completed")


def _pending_total(order_id: int) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.order_id == order_id, Refund.status == "pending"
        )
    )


def check_refund(
    order_id: int, amount_fen: int, restock: dict | None = None, lock: bool = False
) -> tuple[Order, dict[int, int]]:
    """Everything :func:`request_refund` checks, without writing: the order and the
    restock quantities. Raises :class:`OrderError` (after a rollback) as it does."""
    restock = {int(k): int(v) for k, v in (restock or {}).items() if int(v) > 0}
    query = select(Order).where(Order.id == order_id)
    order = db.session.scalar(query.with_for_update() if lock else query)
    if order is None or order.status not in REFUNDABLE_STATUSES:
        db.session.rollback()
        raise OrderError(_("只有已支付的订单可以退款。"))
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen < 1:
        db.session.rollback()
        raise OrderError(_("退款金额必须大于零。"), field="amount")
    available = order.total_fen - order.refunded_fen - _pending_total(order.id)
    if amount_fen > available:
        db.session.rollback()
        raise OrderError(
            _("退款金额不能超过可退金额 %(amount)s。", amount=format_fen(available)), field="amount"
        )
    lines = {line.id: line for line in order.lines}
    for line_id, units in restock.items():
        line = lines.get(line_id)
        if line is None or units > line.quantity - line.restocked:
            db.session.rollback()
            raise OrderError(_("退回库存的数量不能超过已售出的数量。"), field="restock")
    return order, restock


def request_refund(
    order_id: int,
    amount_fen: int,
    reason: str,
    restock: dict[int, int] | None = None,
    created_by: int | None = None,
) -> Refund:
    """Record a refund of ``amount_fen`` (fen) and send it to Alipay; return it.

    Raises :class:`OrderError` when the order is not paid, the amount is not a positive
    integer within what is left to refund (pending refunds counted), or a restock
    quantity exceeds the units not yet restocked. The returned refund is
    ``succeeded``, ``failed`` (Alipay said no; ``failure`` says why) or still
    ``pending`` (Alipay unreachable; reconcile retries it).
    """
    check_text(reason or "", "reason", _("退款原因"))  # NUL: stored, or a 500 on PostgreSQL
    order, restock = check_refund(order_id, amount_fen, restock, lock=True)
    sequence = len(order.refunds) + 1
    refund = Refund(
        order_id=order.id,
        out_request_no=f"{order.order_no}R{sequence:02d}",
        amount_fen=amount_fen,
        reason=(reason or "")[:200],
        restock_items=json.dumps({str(k): v for k, v in sorted(restock.items())}),
        created_by=created_by,
    )
    db.session.add(refund)
    db.session.flush()
    # The ledger's refund posting (when Alipay confirms, maybe tomorrow) has this key:
    # `flask audit verify` finds who asked for it here.
    note(
        db.session,
        "order.refund",
        "order",
        order.order_no,
        after={
            "amount_fen": amount_fen,
            "reason": refund.reason,
            "out_request_no": refund.out_request_no,
            "restock": restock or {},
        },
        ledger_keys=[f"refund:{refund.out_request_no}"],
    )
    db.session.commit()
    send_refund(refund.id)
    db.session.refresh(refund)
    return refund


def send_refund(refund_id: int) -> str:
    """Send a pending refund to Alipay and apply the answer; return its new status."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != "pending":
        return refund.status if refund else "missing"
    order = refund.order
    try:
        get_provider().refund(
            order.order_no, refund.amount_fen, refund.out_request_no, refund.reason or "退款"
        )
    except ProviderError as error:
        if getattr(error, "retryable", False):
            log.warning("refund %s not sent, will retry: %s", refund.out_request_no, error)
            return "pending"
        db.session.execute(
            update(Refund)
            .where(Refund.id == refund.id, Refund.status == "pending")
            .values(status="failed", failure=str(error)[:200], completed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        outside_answer(db.session)
        db.session.commit()
        log.warning("refund %s refused by Alipay: %s", refund.out_request_no, error)
        return "failed"
    return _apply_refund_success(refund.id)


# Refund hooks run in the transaction that applies a successful refund: the ledger
# posts the reversal there.
RefundHook = Callable[[Refund], None]


def register_refund_hook(app, hook: RefundHook) -> None:
    app.extensions.setdefault("order_refund_hooks", []).append(hook)


def _apply_refund_success(refund_id: int) -> str:
    with transaction(db.session):
        outside_answer(db.session)
        moved = db.session.execute(
            update(Refund)
            .where(Refund.id == refund_id, Refund.status == "pending")
            .values(status="succeeded", completed_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            db.session.rollback()
            return db.session.get(Refund, refund_id).status
        refund = db.session.get(Refund, refund_id)
        order_id = refund.order_id
        db.session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(refunded_fen=Order.refunded_fen + refund.amount_fen)
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(Order)
            .where(Order.id == order_id, Order.refunded_fen == Order.total_fen)
            .values(status="refunded")
            .execution_options(synchronize_session=False)
        )
        for line_id, units in json.loads(refund.restock_items or "{}").items():
            line = db.session.get(OrderLine, int(line_id))
            db.session.execute(
                update(OrderLine)
                .where(OrderLine.id == line.id, OrderLine.restocked + units <= OrderLine.quantity)
                .values(restocked=OrderLine.restocked + units)
                .execution_options(synchronize_session=False)
            )
            db.session.execute(
                update(Product)
                .where(Product.id == line.product_id)
                .values(stock=Product.stock + units)
                .execution_options(synchronize_session=False)
            )
        db.session.expire_all()
        refund = db.session.get(Refund, refund_id)
        for hook in current_app.extensions.get("order_refund_hooks", []):
            hook(refund)
    log.info("refund %s succeeded", refund.out_request_no)
    return "succeeded"


def retry_pending_refunds() -> dict[str, int]:
    """Send every pending refund again (same out_request_no); return counts by outcome."""
    counts: dict[str, int] = {}
    for refund_id in db.session.scalars(select(Refund.id).where(Refund.status == "pending")):
        status = send_refund(refund_id)
        counts[status] = counts.get(status, 0) + 1
    return counts
