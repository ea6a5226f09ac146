"""Imports every model module so the metadata is complete (Alembic, tests)."""

from ledger import (
    Account,
    BenefitRule,
    Entry,
    LedgerHead,
    Payout,
    RuleHousehold,
    SaleLineRecord,
    Transaction,
)
from shop.auth.models import User
from shop.boards.models import (
    BoardFeed,
    BoardFeedHousehold,
    BoardHousehold,
    BoardHouseholdMonth,
    BoardMonth,
    BoardPeriod,
    BoardRank,
    BoardState,
)
from shop.cart.models import CartItem
from shop.catalog.models import Category, Product, ProductPhoto
from shop.households.models import Enterprise, Household, Village
from shop.jobs.models import JobRun, JobState
from shop.offline.models import HouseholdIncome, ImportBatch, OfflineSale, SalesSession
from shop.orders.models import Order, OrderLine, Refund
from shop.payments.models import PaymentNotification
from shop.payments.sandbox.models import SandboxRefund, SandboxTrade, SandboxTransfer

__all__ = [
    "Account",
    "BenefitRule",
    "BoardFeed",
    "BoardFeedHousehold",
    "BoardHousehold",
    "BoardHouseholdMonth",
    "BoardMonth",
    "BoardPeriod",
    "BoardRank",
    "BoardState",
    "CartItem",
    "Category",
    "Enterprise",
    "Entry",
    "Household",
    "HouseholdIncome",
    "ImportBatch",
    "JobRun",
    "JobState",
    "LedgerHead",
    "OfflineSale",
    "Order",
    "OrderLine",
    "PaymentNotification",
    "Payout",
    "Product",
    "ProductPhoto",
    "Refund",
    "RuleHousehold",
    "SaleLineRecord",
    "SalesSession",
    "SandboxRefund",
    "SandboxTrade",
    "SandboxTransfer",
    "Transaction",
    "User",
    "Village",
]
