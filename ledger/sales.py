"""Posting sales and their refunds.

A sale (one paid order) is one transaction, keyed by the payment (``sale:<trade_no>``):

    debit  alipay:clearing          the order total
    credit household:<code> …       each household's allocation (by the benefit rules)
    credit fees:alipay              the payment fee (rate × total, rounded half up)
    credit <remainder account> …    the rest of each line (the enterprise's share),
                                    less the fee, charged to the first line's account

A refund is one transaction reversing part of the sale (``refund:<out_request_no>``,
``reverses`` = the sale). Cumulative refunds R of a sale of total T reverse
⌊pro rata⌋ shares of every credit by the largest-remainder method computed on the
cumulative R, so any sequence of partial refunds adding up to T reverses the sale
exactly, fen for fen. A household already paid out may be owed less than its
portion: its reversal is capped at what it is owed and the rest is charged to the
sale's remainder account (the enterprise bears it, the household never goes
negative); a later refund of the same sale catches up if the household is owed again.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger import posting
from ledger.allocation import split_by_weight
from ledger.base import Base
from ledger.models import Account, Transaction
from ledger.posting import LedgerError, Posted, _lock_head, ensure_accounts, find, post
from ledger.rules import LineAllocation, allocate_line, rule_in_force

_ACCOUNT = Account.__table__

CLEARING = "alipay:clearing"
FEES = "fees:alipay"
HOUSEHOLD_PREFIX = "household:"
# Online orders are "sale"; sales at the exhibition hall, events and live streams are
# "offline_sale" (their money arrives in a cash/bank account instead of Alipay clearing).
SALE_KINDS = posting.SALE_KINDS


class SaleLineRecord(Base):
    """How one line of a posted sale was allocated: which rule, how much to households.

    Written with the sale and never changed (append-only, like the transaction), so
    totals by product and by rule come from the ledger itself.
    """

    __tablename__ = "ledger_sale_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transaction.id"), index=True)
    product_id: Mapped[int] = mapped_column(index=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_benefit_rule.id"), index=True)
    quantity: Mapped[int]
    line_total_fen: Mapped[int]
    share_fen: Mapped[int]
    remainder_account: Mapped[str] = mapped_column(String(64))


def household_account(code: str) -> str:
    return HOUSEHOLD_PREFIX + code


@dataclass(frozen=True)
class SaleLine:
    """One sold line: ``remainder_account`` takes what households do not (an
    ``enterprise:…`` or ``collective:…`` account code)."""

    product_id: int
    unit_price_fen: int
    quantity: int
    remainder_account: str


@dataclass
class SaleResult:
    posted: Posted
    allocations: list[LineAllocation] = field(default_factory=list)

    @property
    def households(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for allocation in self.allocations:
            for code, fen in allocation.parts.items():
                totals[code] += fen
        return dict(totals)


def fee_for(total_fen: int, fee_basis_points: int) -> int:
    """Payment fee in fen: total × rate, rounded half up (0.6% of ¥158.00 = 95 fen)."""
    return (total_fen * fee_basis_points + 5_000) // 10_000


def _received_from_sales(session: Session, codes: Sequence[str]) -> dict[str, int]:
    """Fen each household has been credited by sales so far (before refunds/payouts),
    from the accounts' ``sales_received_fen``: one indexed read, whatever the history."""
    accounts = [household_account(c) for c in codes]
    rows = session.execute(
        select(Account.code, Account.sales_received_fen).where(Account.code.in_(accounts))
    )
    received = dict.fromkeys(codes, 0)
    for code, fen in rows:
        received[code[len(HOUSEHOLD_PREFIX) :]] = int(fen)
    return received


def sale_allocations(session: Session, sale: Transaction) -> dict[str, int]:
    """Household code → fen credited by a posted sale (public: codes, not names)."""
    return {
        e.account.code[len(HOUSEHOLD_PREFIX) :]: -e.amount_fen
        for e in sale.entries
        if e.account.code.startswith(HOUSEHOLD_PREFIX)
    }


def post_sale(
    session: Session,
    key: str,
    lines: Sequence[SaleLine],
    paid_at: datetime,
    fee_basis_points: int = 0,
    memo: str = "",
    kind: str = "sale",
    debit_account: str = CLEARING,
) -> SaleResult:
    """Post a paid order (flush, no commit) and return the transaction and its split.

    Allocation is computed under the chain lock, so ``matched`` rules see every
    earlier sale even with concurrent payments. A repeated ``key`` returns the first
    posting (its allocations read back from the ledger) and writes nothing.
    ``kind`` is ``sale`` (online: ``debit_account`` is Alipay clearing) or
    ``offline_sale`` with ``debit_account`` the existing account that took the money
    (e.g. ``cash:hall``). Raises :class:`LedgerError` for an empty order.
    """
    if not lines:
        raise LedgerError("a sale needs at least one line")
    existing = find(session, key)
    locked_head = None
    if existing is None:
        locked_head = _lock_head(session)
        existing = find(session, key)
    if existing is not None:
        parts = sale_allocations(session, existing)
        posted = Posted(existing.id, existing.key, existing.hash, created=False)
        return SaleResult(posted, [LineAllocation(0, None, sum(parts.values()), parts)])

    total = sum(line.unit_price_fen * line.quantity for line in lines)
    credits: dict[str, int] = defaultdict(int)
    allocations: list[LineAllocation] = []
    # What each household received from sales before this order, read only for matched
    # rules (weighted splits need no history); earlier lines of this order are added
    # through ``credits``.
    before: dict[str, int] = {}
    for line in lines:
        rule = rule_in_force(session, line.product_id, paid_at)
        line_total = line.unit_price_fen * line.quantity
        if rule is None:
            allocation = LineAllocation(line.product_id, None, 0, {})
        elif rule.split == "weighted":
            allocation = allocate_line(
                rule, line.product_id, line.unit_price_fen, line.quantity, {}
            )
        else:
            missing = sorted(set(rule.weights()) - set(before))
            if missing:
                before.update(_received_from_sales(session, missing))
            received = {
                code: before[code] + credits.get(household_account(code), 0)
                for code in rule.weights()
            }
            allocation = allocate_line(
                rule, line.product_id, line.unit_price_fen, line.quantity, received
            )
        allocations.append(allocation)
        for code, fen in allocation.parts.items():
            credits[household_account(code)] += fen
        credits[line.remainder_account] += line_total - allocation.share_fen

    fee = min(fee_for(total, fee_basis_points), total - sum(a.share_fen for a in allocations))
    if fee:
        credits[FEES] += fee
        credits[lines[0].remainder_account] -= fee

    if kind not in SALE_KINDS:
        raise LedgerError(f"a sale's kind is one of {SALE_KINDS}")
    wanted = {FEES: ("fees", "支付宝手续费")}
    if debit_account == CLEARING:
        wanted[CLEARING] = ("clearing", "支付宝待结算")
    for code in credits:
        if code.startswith(HOUSEHOLD_PREFIX):
            wanted[code] = ("household", code[len(HOUSEHOLD_PREFIX) :])
        elif code != FEES:
            prefix = code.split(":", 1)[0]
            wanted[code] = (prefix if prefix in ("enterprise", "collective") else "enterprise", "")
    ensure_accounts(session, wanted)
    # Households first (by code), then fees, then the remainder accounts: a stable order.
    ordered = sorted(
        ((code, -fen) for code, fen in credits.items() if fen),
        key=lambda item: (not item[0].startswith(HOUSEHOLD_PREFIX), item[0] != FEES, item[0]),
    )
    posted = post(
        session,
        key,
        kind,
        [(debit_account, total), *ordered],
        memo=memo,
        now=paid_at,
        locked_head=locked_head,
    )
    for line, allocation in zip(lines, allocations, strict=True):
        session.add(
            SaleLineRecord(
                transaction_id=posted.id,
                product_id=line.product_id,
                rule_id=allocation.rule_id,
                quantity=line.quantity,
                line_total_fen=line.unit_price_fen * line.quantity,
                share_fen=allocation.share_fen,
                remainder_account=line.remainder_account,
            )
        )
    session.flush()
    return SaleResult(posted, allocations)


def totals_by_product(session: Session) -> list[tuple[int, int, int, int]]:
    """(product id, units, sales fen, households' share fen) over all posted sales,
    before refunds (refunds are separate reversing transactions)."""
    rows = session.execute(
        select(
            SaleLineRecord.product_id,
            func.sum(SaleLineRecord.quantity),
            func.sum(SaleLineRecord.line_total_fen),
            func.sum(SaleLineRecord.share_fen),
        )
        .group_by(SaleLineRecord.product_id)
        .order_by(SaleLineRecord.product_id)
    )
    return [(p, int(u), int(t), int(s)) for p, u, t, s in rows]


def totals_by_rule(session: Session) -> list[tuple[int | None, int, int, int]]:
    """(rule id or None, units, sales fen, households' share fen) over posted sales."""
    rows = session.execute(
        select(
            SaleLineRecord.rule_id,
            func.sum(SaleLineRecord.quantity),
            func.sum(SaleLineRecord.line_total_fen),
            func.sum(SaleLineRecord.share_fen),
        )
        .group_by(SaleLineRecord.rule_id)
        .order_by(SaleLineRecord.rule_id)
    )
    return [(r, int(u), int(t), int(s)) for r, u, t, s in rows]


def post_refund(
    session: Session,
    key: str,
    sale_key: str,
    refund_fen: int,
    memo: str = "",
    now: datetime | None = None,
) -> Posted:
    """Reverse ``refund_fen`` of the sale posted under ``sale_key`` (flush, no commit).

    Raises :class:`LedgerError` when the sale is unknown or the refunds would exceed
    its total. A repeated ``key`` returns the first reversal.
    """
    existing = find(session, key)
    if existing is not None:
        return Posted(existing.id, existing.key, existing.hash, created=False)
    sale = find(session, sale_key)
    if sale is None:
        raise LedgerError(f"no sale posted under {sale_key}")
    if not isinstance(refund_fen, int) or refund_fen <= 0:
        raise LedgerError("refund_fen must be a positive integer")
    _lock_head(session)

    sale_credits = {e.account.code: -e.amount_fen for e in sale.entries if e.amount_fen < 0}
    # The account the buyer's money went into (Alipay clearing, or the hall's till).
    debit_code = next(e.account.code for e in sale.entries if e.amount_fen > 0)
    sale_total = sum(sale_credits.values())
    reversed_so_far: dict[str, int] = defaultdict(int)
    refunded_before = 0
    prior = session.scalars(
        select(Transaction).where(Transaction.reverses_id == sale.id).order_by(Transaction.id)
    )
    for reversal in prior:
        for entry in reversal.entries:
            if entry.account.code == debit_code:
                refunded_before += -entry.amount_fen
            else:
                reversed_so_far[entry.account.code] += entry.amount_fen
    cumulative = refunded_before + refund_fen
    if cumulative > sale_total:
        raise LedgerError(f"refunds of {cumulative} fen would exceed the sale's {sale_total} fen")
    target = split_by_weight(cumulative, sale_credits)
    portion = {code: target[code] - reversed_so_far[code] for code in sale_credits}

    remainder_accounts = [
        code for code in sale_credits if not code.startswith(HOUSEHOLD_PREFIX) and code != FEES
    ]
    absorber = remainder_accounts[0] if remainder_accounts else debit_code
    balances = {
        a.code: a.balance_fen
        for a in session.scalars(select(Account).where(Account.code.in_(list(portion))))
    }
    for code in list(portion):
        if code.startswith(HOUSEHOLD_PREFIX) and portion[code] > -balances[code]:
            owed = -balances[code]
            excess = portion[code] - owed
            portion[code] = owed
            portion[absorber] = portion.get(absorber, 0) + excess
    portion[debit_code] = portion.get(debit_code, 0) - refund_fen
    entries = [(code, fen) for code, fen in portion.items() if fen]
    return post(session, key, "refund", entries, memo=memo, reverses_id=sale.id, now=now)
