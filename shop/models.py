"""Imports every model module so the metadata is complete (Alembic, tests)."""

from shop.auth.models import User
from shop.cart.models import CartItem
from shop.catalog.models import Category, Product, ProductPhoto
from shop.households.models import Enterprise, Household, Village
from shop.orders.models import Order, OrderLine, Refund
from shop.payments.models import PaymentNotification
from shop.payments.sandbox.models import SandboxRefund, SandboxTrade, SandboxTransfer

__all__ = [
    "CartItem",
    "Category",
    "Enterprise",
    "Household",
    "Order",
    "OrderLine",
    "PaymentNotification",
    "Product",
    "ProductPhoto",
    "Refund",
    "SandboxRefund",
    "SandboxTrade",
    "SandboxTransfer",
    "User",
    "Village",
]
