"""The shop's side of payments: start a payment, take notifications, ask Alipay.

Alipay's asynchronous notification is the only thing that marks an order paid on its
own; a query answer (signed by Alipay and verified by the SDK) is the same evidence
and goes through the same :func:`shop.orders.services.apply_payment`.
"""

import json
import logging
import re
from datetime import timedelta

from flask import current_app, url_for

from shop.db import utcnow
from shop.db_retry import run_with_retry
from shop.extensions import db
from shop.faults import crash_point
from shop.orders.models import Order
from shop.orders.services import PaymentOutcome, apply_payment, cancel_order
from shop.payments import provider
from shop.payments.models import PaymentNotification

log = logging.getLogger("shop.payments")

NOTIFY_PATH = "/payments/alipay/notify"

_MOBILE = re.compile(r"Mobile|Android|iPhone|iPad|MicroMessenger|AlipayClient", re.I)


def channel_for(user_agent: str) -> str:
    """Phones get Alipay's wap pay (opens the Alipay app); computers get page pay (QR code)."""
    return "wap" if _MOBILE.search(user_agent or "") else "pc"


def _absolute(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"] + path


def order_subject(order: Order) -> str:
    first = order.lines[0].product_name
    if len(order.lines) == 1:
        return f"连心集市 {first} ×{order.lines[0].quantity}"
    return f"连心集市 {first} 等{order.units}件"


def payment_url(order: Order) -> str:
    """Where to send the buyer to pay this pending order (signed by the merchant key)."""
    return provider.get_provider().pay_url(
        order_no=order.order_no,
        total_fen=order.total_fen,
        subject=order_subject(order),
        channel="wap" if order.channel == "wap" else "pc",
        return_url=_absolute(url_for("payments.payment_return", token=order.token)),
        notify_url=_absolute(NOTIFY_PATH),
        expires_at=order.expires_at,
    )


def _record(params: dict, verdict: str, reason: str) -> None:
    safe = {k: v for k, v in params.items() if k != "sign"}
    db.session.add(
        PaymentNotification(
            notify_id=str(params.get("notify_id", ""))[:128],
            out_trade_no=str(params.get("out_trade_no", ""))[:64],
            trade_no=str(params.get("trade_no", ""))[:64],
            trade_status=str(params.get("trade_status", ""))[:32],
            total_amount=str(params.get("total_amount", ""))[:20],
            verdict=verdict,
            reason=reason[:200],
            params=json.dumps(safe, ensure_ascii=False, sort_keys=True)[:8000],
        )
    )
    db.session.commit()


def apply_trade_status(
    out_trade_no: str, trade_no: str, trade_status: str, total_fen: int
) -> PaymentOutcome:
    """Apply what Alipay says of a trade (a verified notification or query answer) to
    its order; commit. Only ``TRADE_SUCCESS`` and ``TRADE_FINISHED`` are money received:
    orders are told ``paid`` and never see Alipay's words. A transaction lost to a
    deadlock or lock timeout is run again (at most 3 attempts); a lost connection is
    raised (``sqlalchemy.exc.DBAPIError``) for the caller to retry, which is a repeat
    if the commit did go through."""
    # A deadlock or lock timeout rolled the whole attempt back; applying a trade is
    # idempotent by its trade_no, so running it again is safe (shop/db_retry.py).
    outcome = run_with_retry(
        db.session,
        lambda: apply_payment(
            out_trade_no, trade_no, total_fen, paid=trade_status in provider.PAID_STATUSES
        ),
        f"apply trade {trade_no} to {out_trade_no}",
    )
    if outcome.verdict == "ignored":
        outcome.reason = f"trade status {trade_status}"
    return outcome


def handle_notification(params: dict) -> str:
    """Verify and apply one asynchronous notification; return Alipay's answer body.

    ``success`` when applied or already applied (a repeat), ``fail`` when refused: a
    bad or SHA-1 signature, another app_id or seller, an unknown order, a wrong amount.
    One that fails verification (not from Alipay, or not for us) is refused before the
    database is touched — logged, never stored, nothing locked — so a flood of forged
    ones costs a signature check each and holds up no genuine one. Every verified
    notification is recorded with its verdict; refusals are logged with why.
    """
    try:
        notification = provider.get_provider().verify_notification(params)
    except provider.NotificationRejected as rejected:
        log.warning(
            "alipay notification refused unread: %s (out_trade_no=%s)",
            rejected.reason,
            str(params.get("out_trade_no", ""))[:64],
        )
        return "fail"
    outcome = apply_trade_status(
        notification.out_trade_no,
        notification.trade_no,
        notification.trade_status,
        notification.total_fen,
    )
    if not outcome.accepted:
        log.warning(
            "alipay notification refused: %s (out_trade_no=%s)",
            outcome.reason,
            notification.out_trade_no,
        )
    _record(params, outcome.verdict, outcome.reason)
    crash_point("notify.before_answer")
    return "success" if outcome.accepted else "fail"


def confirm_by_query(order: Order) -> Order:
    """Ask Alipay about a pending order and apply a paid answer; return the fresh order.

    Used by the return page (a late notification must not leave the buyer guessing) and
    by reconcile. Provider errors are logged and leave the order as it was.
    """
    if order.status != "pending_payment":
        return order
    try:
        result = provider.get_provider().query(order.order_no)
    except provider.ProviderError as error:
        log.warning("trade query for %s failed: %s", order.order_no, error)
        return order
    if result is not None and result.trade_status in provider.PAID_STATUSES:
        apply_trade_status(order.order_no, result.trade_no, result.trade_status, result.total_fen)
        db.session.refresh(order)
    return order


def reconcile(older_than_minutes: int = 5, now=None) -> dict[str, int]:
    """Bring pending orders in line with Alipay; return counts of what was done.

    For every order pending longer than ``older_than_minutes``: a paid trade is applied
    (a missed notification recovered); a closed trade, or an expired order whose trade
    Alipay closes for us (or never saw), is cancelled and its stock returned.
    """
    now = now or utcnow()
    cutoff = now - timedelta(minutes=older_than_minutes)
    return _settle_pending(Order.created_at <= cutoff, now)


def expire_unpaid(now=None) -> dict[str, int]:
    """Cancel every unpaid order past its ``expires_at`` and put its stock back, after
    asking Alipay: a trade paid at the last moment is applied instead, a trade still
    open is closed first so the buyer cannot pay a cancelled order. Returns counts."""
    now = now or utcnow()
    return _settle_pending(Order.expires_at <= now, now)


def _settle_pending(which, now) -> dict[str, int]:
    counts = {"checked": 0, "paid": 0, "cancelled": 0, "errors": 0}
    gateway = provider.get_provider()
    pending = list(
        db.session.scalars(
            db.select(Order)
            .where(Order.status == "pending_payment", which)
            .order_by(Order.created_at)
        )
    )
    for order in pending:
        counts["checked"] += 1
        try:
            result = gateway.query(order.order_no)
            if result is not None and result.trade_status in provider.PAID_STATUSES:
                outcome = apply_trade_status(
                    order.order_no, result.trade_no, result.trade_status, result.total_fen
                )
                counts["paid"] += outcome.verdict == "paid"
                continue
            if result is not None and result.trade_status == "TRADE_CLOSED":
                counts["cancelled"] += cancel_order(order.id, "trade_closed", now)
                continue
            if order.expires_at <= now:
                # Close at Alipay first so the buyer cannot pay a cancelled order.
                if result is not None and result.trade_status == "WAIT_BUYER_PAY":
                    gateway.close(order.order_no)
                counts["cancelled"] += cancel_order(order.id, "expired", now)
        except provider.ProviderError as error:
            counts["errors"] += 1
            log.warning("reconcile %s failed: %s", order.order_no, error)
    return counts
