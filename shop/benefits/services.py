"""The shop's bridge to the ledger for sales: benefit rules, sale postings, refunds.

The ledger works with plain values (product ids, household codes, fen); this module
turns orders, products and households into those values. The posting functions run
as hooks inside the transaction that marks an order paid or a refund succeeded
(``create_app`` registers them), so the order and its ledger transaction commit
together or not at all.
"""

from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from ledger import (
    BenefitRule,
    SaleLine,
    SaleResult,
    create_rule,
    latest_rule,
    post_refund,
    post_sale,
)
from shop.catalog.models import Product
from shop.db import transaction
from shop.extensions import db
from shop.households.models import Household
from shop.orders.ledger_view import sale_key
from shop.orders.models import Order, Refund

PROGRAMME_COLLECTIVE = "collective:programme"


def refund_key(refund: Refund) -> str:
    return f"refund:{refund.out_request_no}"


def remainder_account(product_id: int) -> str:
    """The enterprise that makes the product keeps what households do not get."""
    enterprise_id = db.session.scalar(select(Product.enterprise_id).where(Product.id == product_id))
    return f"enterprise:{enterprise_id}" if enterprise_id else PROGRAMME_COLLECTIVE


def post_order_sale(order: Order) -> SaleResult:
    """Paid hook: post the order's sale to the ledger (same transaction, no commit)."""
    lines = [
        SaleLine(
            product_id=line.product_id,
            unit_price_fen=line.unit_price_fen,
            quantity=line.quantity,
            remainder_account=remainder_account(line.product_id),
        )
        for line in order.lines
    ]
    return post_sale(
        db.session,
        sale_key(order.trade_no),
        lines,
        paid_at=order.paid_at,
        fee_basis_points=current_app.config["ALIPAY_FEE_BASIS_POINTS"],
        memo=f"订单 {order.order_no}",
    )


def post_refund_reversal(refund: Refund) -> None:
    """Refund hook: reverse the refunded part of the sale (same transaction, no commit)."""
    order = refund.order
    post_refund(
        db.session,
        refund_key(refund),
        sale_key(order.trade_no),
        refund.amount_fen,
        memo=f"订单 {order.order_no} 退款 {refund.out_request_no}",
    )


WEIGHT_BASES = {
    "land": lambda h: int((h.land_mu or Decimal(0)) * 100),  # 0.01 mu
    "members": lambda h: h.members,
    "equal": lambda h: 1,
}


def household_weights(households: list[Household], weight_basis: str) -> dict[str, int]:
    """Integer weights for a rule; households with no weight on the basis are left out."""
    measure = WEIGHT_BASES[weight_basis]
    return {h.code: measure(h) for h in households if measure(h) > 0}


def set_product_rule(
    product_id: int | None,
    households: list[Household],
    split: str,
    weight_basis: str = "equal",
    share_fen_per_unit: int | None = None,
    share_basis_points: int | None = None,
    note: str = "",
) -> BenefitRule:
    """Add the next rule version for a product (None: the programme default); commit.

    Exactly one of ``share_fen_per_unit`` / ``share_basis_points`` is given. A fixed
    share also becomes the product's displayed "每瓶 ¥20 直达农户" amount.
    Raises :class:`ledger.rules.RuleError`.
    """
    weights = household_weights(households, "equal" if split == "matched" else weight_basis)
    with transaction(db.session):
        rule = create_rule(
            db.session,
            product_id,
            "fixed" if share_fen_per_unit is not None else "percent",
            split,
            weights,
            share_fen_per_unit=share_fen_per_unit or 0,
            share_basis_points=share_basis_points or 0,
            weight_basis=weight_basis,
            note=note,
        )
        if product_id is not None:
            product = db.session.get(Product, product_id)
            product.beneficiary_fen_per_unit = rule.share_for(product.price_fen, 1)
    return rule


def change_share_per_unit(product: Product, share_fen_per_unit: int) -> None:
    """The console changed a product's "每瓶 ¥20 直达农户" amount: if the product has its
    own rule, add a new version with the same households and split and this fixed share
    (no commit — the console's product update commits it with the product)."""
    current = latest_rule(db.session, product.id)
    if current is None:
        return
    if current.share_kind == "fixed" and current.share_fen_per_unit == share_fen_per_unit:
        return
    create_rule(
        db.session,
        product.id,
        "fixed",
        current.split,
        current.weights(),
        share_fen_per_unit=share_fen_per_unit,
        weight_basis=current.weight_basis,
        note="村务后台修改每单位帮扶金额",
    )
