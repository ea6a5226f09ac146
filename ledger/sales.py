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

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.accounts import (
    CLEARING,
    FEES,
    HOUSEHOLD_PREFIX,
    account_refs,
    ensure_accounts,
    household_account,
)
from ledger.allocation import split_by_weight
from ledger.append import NewTransaction
from ledger.chain import lock_head, lock_head_and_find
from ledger.errors import LedgerError
from ledger.kinds import SALE_KINDS
from ledger.models import Account, SaleLineRecord, Transaction
from ledger.posting import Posted, find, post, post_many
from ledger.rules import LineAllocation, RuleBook, allocate_line

_ACCOUNT = Account.__table__


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


@dataclass(frozen=True)
class SaleRequest:
    """One paid order (or offline sale) to post; see :func:`post_sale` for the fields."""

    key: str
    lines: Sequence[SaleLine]
    paid_at: datetime
    fee_basis_points: int = 0
    memo: str = ""
    kind: str = "sale"
    debit_account: str = CLEARING


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
    request = SaleRequest(key, lines, paid_at, fee_basis_points, memo, kind, debit_account)
    return post_sales(session, [request])[0]


def post_sales(session: Session, requests: Sequence[SaleRequest]) -> list[SaleResult]:
    """Post many sales in order, all or nothing (flush, no commit): what an import does.

    Each sale is its own transaction on the chain, exactly as :func:`post_sale` would
    post it one by one (a ``matched`` rule sees the earlier sales of the batch), but
    the rules, accounts and keys are read once for the batch and the rows are written
    in a few statements under one hold of the head's lock. Results come in the order
    of ``requests``; a key posted before is a repeat (``created=False``, nothing
    written). Raises :class:`LedgerError` (nothing written) for an empty order, a
    wrong kind, or a key given twice.
    """
    keys = [request.key for request in requests]
    if len(set(keys)) != len(keys):
        raise LedgerError("a batch of sales names the same key twice")
    for request in requests:
        if not request.lines:
            raise LedgerError("a sale needs at least one line")
        if request.kind not in SALE_KINDS:
            raise LedgerError(f"a sale's kind is one of {SALE_KINDS}")
    if not requests:
        return []

    # Everything that does not depend on the chain's state is read before taking the
    # head's lock, so the lock is held for as few round trips as possible. (A rule
    # version committed after this read is not seen: the sale was paid before it
    # existed.) Keys are looked up only under the lock, in the same call that takes it:
    # one round trip fewer per sale. Repeats are rare here; Alipay's re-sent
    # notifications are answered from the order row before the ledger is reached.
    book = RuleBook(session, {line.product_id for r in requests for line in r.lines})
    wanted = _accounts_wanted(requests, book)
    # The accounts that took the money (a till, a bank) must exist already.
    to_read = set(wanted) | {request.debit_account for request in requests}
    refs = account_refs(session, to_read)
    for code, ref in refs.items():
        if code in wanted and ref.kind != wanted[code][0]:
            raise LedgerError(f"account {code} is a {ref.kind} account, not {wanted[code][0]}")
    locked_head, existing = lock_head_and_find(session, keys)
    fresh = [request for request in requests if request.key not in existing]

    results: dict[str, SaleResult] = {}
    for key, transaction in existing.items():
        parts = sale_allocations(session, transaction)
        posted = Posted(transaction.id, key, transaction.hash, created=False)
        results[key] = SaleResult(posted, [LineAllocation(0, None, sum(parts.values()), parts)])
    if fresh:
        allocations = _allocate(session, fresh, book)
        items = [
            NewTransaction(
                request.key,
                request.kind,
                _sale_entries(request, line_allocations),
                request.memo,
                None,
                request.paid_at,
            )
            for request, line_allocations in zip(fresh, allocations, strict=True)
        ]
        missing = {
            code: wanted[code]
            for item in items
            for code, _ in item.entries
            if code not in refs and code in wanted
        }
        if missing:
            # Only the accounts these sales credit, created under the lock, so two first
            # sales to a new household cannot race.
            ensure_accounts(session, missing)
            refs = account_refs(session, to_read)
        line_rows = [
            {
                "key": request.key,
                "product_id": line.product_id,
                "rule_id": allocation.rule_id,
                "quantity": line.quantity,
                "line_total_fen": line.unit_price_fen * line.quantity,
                "share_fen": allocation.share_fen,
                "remainder_account": line.remainder_account,
            }
            for request, line_allocations in zip(fresh, allocations, strict=True)
            for line, allocation in zip(request.lines, line_allocations, strict=True)
        ]
        posted_list = post_many(
            session, items, locked_head=locked_head, accounts=refs, sale_lines=line_rows
        )
        for request, line_allocations, posted in zip(fresh, allocations, posted_list, strict=True):
            results[request.key] = SaleResult(posted, line_allocations)
    return [results[key] for key in keys]


def _accounts_wanted(requests: Sequence[SaleRequest], book: RuleBook) -> dict[str, tuple[str, str]]:
    """code → (kind, name) of the accounts the sales may credit (those credited are
    created if missing): Alipay clearing, fees, remainder accounts and every household
    of the rules in force (a matched rule may credit any of them)."""
    wanted: dict[str, tuple[str, str]] = {FEES: ("fees", "支付宝手续费")}
    for request in requests:
        if request.debit_account == CLEARING:
            wanted[CLEARING] = ("clearing", "支付宝待结算")
        for line in request.lines:
            prefix = line.remainder_account.split(":", 1)[0]
            kind = prefix if prefix in ("enterprise", "collective") else "enterprise"
            wanted[line.remainder_account] = (kind, "")
            rule = book.in_force(line.product_id, request.paid_at)
            for code in rule.weights() if rule is not None else ():
                wanted[household_account(code)] = ("household", code)
    return wanted


def _allocate(
    session: Session, requests: Sequence[SaleRequest], book: RuleBook
) -> list[list[LineAllocation]]:
    """Each sale's line allocations, in order. Matched rules compare what households
    have received from sales (read once, under the head's lock) plus the credits of the
    batch's earlier sales and lines."""
    matched_codes = sorted(
        {
            code
            for request in requests
            for line in request.lines
            if (rule := book.in_force(line.product_id, request.paid_at)) is not None
            and rule.split == "matched"
            for code in rule.weights()
        }
    )
    received = _received_from_sales(session, matched_codes) if matched_codes else {}
    allocations: list[list[LineAllocation]] = []
    for request in requests:
        mine: list[LineAllocation] = []
        for line in request.lines:
            rule = book.in_force(line.product_id, request.paid_at)
            if rule is None:
                allocation = LineAllocation(line.product_id, None, 0, {})
            else:
                allocation = allocate_line(
                    rule,
                    line.product_id,
                    line.unit_price_fen,
                    line.quantity,
                    received if rule.split == "matched" else {},
                )
            for code, fen in allocation.parts.items():
                if code in received:
                    received[code] += fen
            mine.append(allocation)
        allocations.append(mine)
    return allocations


def _sale_entries(
    request: SaleRequest, allocations: Sequence[LineAllocation]
) -> list[tuple[str, int]]:
    """Debit the total; credit households (by code), the fee, then remainder accounts."""
    total = sum(line.unit_price_fen * line.quantity for line in request.lines)
    credits: dict[str, int] = defaultdict(int)
    for line, allocation in zip(request.lines, allocations, strict=True):
        for code, fen in allocation.parts.items():
            credits[household_account(code)] += fen
        line_total = line.unit_price_fen * line.quantity
        credits[line.remainder_account] += line_total - allocation.share_fen
    fee = min(
        fee_for(total, request.fee_basis_points), total - sum(a.share_fen for a in allocations)
    )
    if fee:
        credits[FEES] += fee
        credits[request.lines[0].remainder_account] -= fee
    # Households first (by code), then fees, then the remainder accounts: a stable order.
    ordered = sorted(
        ((code, -fen) for code, fen in credits.items() if fen),
        key=lambda item: (not item[0].startswith(HOUSEHOLD_PREFIX), item[0] != FEES, item[0]),
    )
    return [(request.debit_account, total), *ordered]


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
    lock_head(session)

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
