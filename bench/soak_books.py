"""The soak's view of the shop from inside (``bench/soak.py``): it seeds what the soak
needs into the demo programme, signs notifications as the sandbox does, and checks the
books at the end. Runs in the soak's own process, on the same database and instance
folder as the gunicorn workers; every database use holds one lock (the clients' threads
share it)."""

import os
import threading
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime

import pyotp
import sqlalchemy as sa

from alipay_sandbox.models import SandboxTrade
from alipay_sandbox.notifications import notification_params
from alipay_sandbox.protocol import sign_params
from ledger import (
    HOUSEHOLD_PREFIX,
    INCOME_KINDS,
    Account,
    Entry,
    Payout,
    SaleLineRecord,
    Transaction,
)
from shop import create_app
from shop.approvals.models import ChangeProposal
from shop.auth.models import User
from shop.catalog.models import Category, Product
from shop.extensions import db
from shop.households.models import Household
from shop.offline.models import HouseholdIncome, ImportBatch, OfflineSale
from shop.orders.models import Order, OrderLine, Refund

SMALL_STOCK_SLUG = "mountain-honey"  # runs out on purpose: 409s and races for the last unit
SMALL_STOCK, LARGE_STOCK = 40, 100_000
PASSWORDS = {
    "village": "lianxin-village-2026",
    "admin": "lianxin-admin-2026",
    "checker": "lianxin-checker-2026",
}  # the demo's logins


class World:
    """The app in this process, on the same database and instance folder as the workers:
    it seeds what the soak needs, signs notifications as the sandbox does, and checks
    the books at the end."""

    def __init__(self, env: dict):
        os.environ.update(env)  # read by create_app's Config
        self.app = create_app()
        self.lock = threading.Lock()

    @contextmanager
    def context(self):
        with self.lock, self.app.app_context():
            try:
                yield db.session
            finally:
                db.session.remove()

    def prepare(self) -> dict:
        """Two-factor secrets for the demo staff, stock set (one product small), the
        sandbox's keys made; returns what the clients need to know."""
        with self.context() as session:
            secrets = {}
            for user in session.scalars(sa.select(User).where(User.username.in_(PASSWORDS))):
                user.totp_secret = pyotp.random_base32()
                user.totp_enabled_at = datetime.now(UTC)
                secrets[user.username] = user.totp_secret
            products = list(
                session.scalars(sa.select(Product).where(Product.status == "published"))
            )
            for product in products:
                product.stock = SMALL_STOCK if product.slug == SMALL_STOCK_SLUG else LARGE_STOCK
            session.commit()
            sign_params({"warm": "keys"})  # makes the sandbox's key files once, here
            return {
                "secrets": secrets,
                "products": [(p.id, p.slug, p.name, p.price_fen) for p in products],
                "categories": list(session.scalars(sa.select(Category.slug))),
                "households": list(session.scalars(sa.select(Household.code))),
                "held": self.held_by_product(),
            }

    def held_by_product(self) -> dict[int, int]:
        """Per product: stock + units in orders not cancelled − units restocked by
        refunds + units of offline sales not reversed. Selling, releasing and
        refunding move units between these terms; none may change the sum."""
        session = db.session
        held = {pid: stock for pid, stock in session.execute(sa.select(Product.id, Product.stock))}
        online = session.execute(
            sa.select(OrderLine.product_id, sa.func.sum(OrderLine.quantity - OrderLine.restocked))
            .join(Order)
            .where(Order.status != "cancelled")
            .group_by(OrderLine.product_id)
        )
        offline = session.execute(
            sa.select(OfflineSale.product_id, sa.func.sum(OfflineSale.quantity))
            .where(OfflineSale.reversal_transaction_id.is_(None))
            .group_by(OfflineSale.product_id)
        )
        for rows in (online, offline):
            for pid, units in rows:
                held[pid] = held.get(pid, 0) + int(units or 0)
        return held

    def notification(self, order_no: str, status: str | None = None) -> dict | None:
        """The sandbox's signed notification for the order's trade, optionally claiming
        another ``trade_status`` (signed all the same: Alipay's own out-of-order words)."""
        with self.context() as session:
            trade = session.scalar(
                sa.select(SandboxTrade).where(SandboxTrade.out_trade_no == order_no)
            )
            if trade is None:
                return None
            params = notification_params(trade)
            if status:
                params = sign_params({**params, "trade_status": status})
            return params

    def checks(self, before: dict[int, int]) -> tuple[dict, dict]:
        """(checks: name → list of problems, counts from the database)."""
        with self.context():
            return books(before, self.held_by_product())


def books(before: dict[int, int], after: dict[int, int]) -> tuple[dict, dict]:
    s = db.session
    checks: dict[str, list[str]] = {}
    paid = dict(
        s.execute(
            sa.select(Order.order_no, Order.trade_no).where(Order.trade_no.is_not(None))
        ).all()
    )
    sale_keys = Counter(s.scalars(sa.select(Transaction.key).where(Transaction.kind == "sale")))
    problems = [
        f"{no}: posted {sale_keys['sale:' + t]} times"
        for no, t in paid.items()
        if sale_keys["sale:" + t] != 1
    ]
    expected = {"sale:" + t for t in paid.values()}
    problems += [f"{key}: posted without a paid order" for key in sale_keys if key not in expected]
    sandbox_paid = dict(
        s.execute(
            sa.select(SandboxTrade.out_trade_no, SandboxTrade.trade_no).where(
                SandboxTrade.paid_at.is_not(None)
            )
        ).all()
    )
    problems += [
        f"{no}: paid at the sandbox (trade {t}) but not in the shop ({paid.get(no)})"
        for no, t in sandbox_paid.items()
        if paid.get(no) != t
    ]
    unpaid = s.scalar(
        sa.select(sa.func.count())
        .select_from(Order)
        .where(Order.status.in_(("paid", "shipped", "completed")), Order.trade_no.is_(None))
    )
    if unpaid:
        problems.append(f"{unpaid} orders marked paid without a trade")
    checks["one posting per paid trade"] = problems

    checks["stock = start - sold + refunded/released"] = [
        f"product {pid}: held {before.get(pid)} at the start, {after.get(pid)} at the end"
        for pid in sorted(set(before) | set(after))
        if before.get(pid) != after.get(pid)
    ]

    sums = dict(
        s.execute(
            sa.select(Entry.account_id, sa.func.sum(Entry.amount_fen)).group_by(Entry.account_id)
        ).all()
    )
    accounts = list(s.scalars(sa.select(Account)))
    problems = [
        f"{a.code}: balance {a.balance_fen} != entries {int(sums.get(a.id) or 0)}"
        for a in accounts
        if a.balance_fen != int(sums.get(a.id) or 0)
    ]
    if sum(a.balance_fen for a in accounts) != 0:
        problems.append("the balances of all accounts do not add up to 0")
    by_kind = defaultdict(int)  # what households were credited (+) or debited (−), by kind
    for kind, fen in s.execute(
        sa.select(Transaction.kind, sa.func.sum(Entry.amount_fen))
        .join(Entry, Entry.transaction_id == Transaction.id)
        .join(Account, Account.id == Entry.account_id)
        .where(Account.code.startswith(HOUSEHOLD_PREFIX))
        .group_by(Transaction.kind)
    ):
        by_kind[kind] = -int(fen)
    owed = -sum(a.balance_fen for a in accounts if a.code.startswith(HOUSEHOLD_PREFIX))
    sales = by_kind["sale"] + by_kind["offline_sale"]
    income = sum(by_kind[k] for k in INCOME_KINDS.values()) + by_kind["income_reversal"]
    paid_out = -sum(fen for kind, fen in by_kind.items() if kind.startswith("payout"))
    allocations = sales + income + by_kind["refund"]
    if owed != allocations - paid_out:
        problems.append(f"households owed {owed} != allocations {allocations} - payouts {paid_out}")
    shares = int(s.scalar(sa.select(sa.func.sum(SaleLineRecord.share_fen))) or 0)
    if sales != shares:
        problems.append(f"sales credited households {sales} != the sale lines' shares {shares}")
    recorded = int(
        s.scalar(
            sa.select(sa.func.sum(HouseholdIncome.amount_fen)).where(
                HouseholdIncome.reversal_transaction_id.is_(None)
            )
        )
        or 0
    )
    if income != recorded:
        problems.append(f"income credited {income} != income records {recorded}")
    moved = int(
        s.scalar(sa.select(sa.func.sum(Payout.amount_fen)).where(Payout.status != "failed")) or 0
    )
    if paid_out != moved:
        problems.append(f"payouts debited {paid_out} != payouts sent {moved}")
    checks["household balances = allocations - payouts"] = problems

    approved = s.execute(
        sa.select(ChangeProposal.kind, sa.func.count())
        .where(ChangeProposal.status == "approved")
        .group_by(ChangeProposal.kind)
    ).all()
    counts = {
        "approved": dict(approved),
        "offline_sales": s.scalar(sa.select(sa.func.count()).select_from(OfflineSale)),
        "income_records": s.scalar(sa.select(sa.func.count()).select_from(HouseholdIncome)),
        "orders": s.scalar(sa.select(sa.func.count()).select_from(Order)),
        "orders_paid": len(paid),
        "orders_pending": s.scalar(
            sa.select(sa.func.count()).select_from(Order).where(Order.status == "pending_payment")
        ),
        "refunds_succeeded": s.scalar(
            sa.select(sa.func.count()).select_from(Refund).where(Refund.status == "succeeded")
        ),
        "refunded_fen": int(
            s.scalar(sa.select(sa.func.sum(Refund.amount_fen)).where(Refund.status == "succeeded"))
            or 0
        ),
        "batches_posted": dict(
            Counter(s.scalars(sa.select(ImportBatch.purpose).where(ImportBatch.status == "posted")))
        ),
        "payouts": s.scalar(sa.select(sa.func.count()).select_from(Payout)),
        "ledger_transactions": s.scalar(sa.select(sa.func.count()).select_from(Transaction)),
        "households_owed_fen": owed,
        "household_allocations_fen": allocations,
        "household_payouts_fen": paid_out,
    }
    return checks, counts
