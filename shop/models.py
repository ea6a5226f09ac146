"""Imports every model module of the shop so the metadata is complete (Alembic, tests).

The sandbox gateway's tables are not here: ``alipay_sandbox`` adds them to the metadata
when it is mounted, and creates them with its own migration branch."""

from ledger import (
    Account,
    BenefitRule,
    Entry,
    LedgerHead,
    Payout,
    RuleHousehold,
    SaleLineRecord,
    Transaction,
    TreeHead,
    TreeNode,
)
from shop.account.card import ImpactCard
from shop.account.profile import BuyerProfile
from shop.account.tokens import ApiToken
from shop.approvals.models import ChangeProposal
from shop.audit.models import AuditHead, AuditRecord
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
from shop.invoices.models import InvoiceRequest
from shop.jobs.models import JobRun, JobState
from shop.mail.models import OutboxMessage
from shop.offline.models import HouseholdIncome, ImportBatch, OfflineSale, SalesSession
from shop.orders.models import Order, OrderLine, Refund
from shop.organisations.models import (
    BulkRecipient,
    BulkUpload,
    Organisation,
    OrganisationMember,
)
from shop.payments.models import PaymentNotification

__all__ = [
    "Account",
    "ApiToken",
    "AuditHead",
    "AuditRecord",
    "BenefitRule",
    "BoardFeed",
    "BoardFeedHousehold",
    "BoardHousehold",
    "BoardHouseholdMonth",
    "BoardMonth",
    "BoardPeriod",
    "BoardRank",
    "BoardState",
    "BulkRecipient",
    "BulkUpload",
    "BuyerProfile",
    "CartItem",
    "Category",
    "ChangeProposal",
    "Enterprise",
    "Entry",
    "Household",
    "HouseholdIncome",
    "ImpactCard",
    "ImportBatch",
    "InvoiceRequest",
    "JobRun",
    "JobState",
    "LedgerHead",
    "OfflineSale",
    "Order",
    "OrderLine",
    "Organisation",
    "OrganisationMember",
    "OutboxMessage",
    "PaymentNotification",
    "Payout",
    "Product",
    "ProductPhoto",
    "Refund",
    "RuleHousehold",
    "SaleLineRecord",
    "SalesSession",
    "Transaction",
    "TreeHead",
    "TreeNode",
    "User",
    "Village",
]
