"""Payouts of what households are owed to their bank cards, in three ledger steps.

1. :func:`start_payout` — one new payout per household at a time: a ``payout`` row
   (``in_flight``) and the transaction ``payout:<out_biz_no>`` moving the amount from
   the household's account to ``payout:in-flight``. Committed *before* the bank
   transfer is asked for, so a crash afterwards can never lose track of the money.
2. The caller asks Alipay to transfer with the same ``out_biz_no``; Alipay treats a
   repeated ``out_biz_no`` as the same transfer, so asking again after a crash never
   pays twice.
3. :func:`settle_payout` — ``paid``: ``payout_paid:<out_biz_no>`` moves the amount from
   in-flight to ``bank:paid-out``; ``failed``: ``payout_failed:<out_biz_no>`` reverses
   step 1, giving the household its balance back. The status moves with a
   conditional UPDATE, and both postings are keyed, so settling twice changes nothing.

A household has at most one payout in flight: ``open_household_code`` is set while in
flight and cleared on settling, under a unique constraint.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CheckConstraint, String, false, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger.accounts import IN_FLIGHT, PAID_OUT, ensure_account, household_account
from ledger.base import Base, UTCDateTime, utcnow
from ledger.errors import LedgerError
from ledger.models import Account
from ledger.posting import find, post, reverse

PAYOUT_STATUSES = ("in_flight", "paid", "failed")


class Payout(Base):
    __tablename__ = "ledger_payout"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("status IN ('in_flight', 'paid', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    out_biz_no: Mapped[str] = mapped_column(String(64), unique=True)
    household_code: Mapped[str] = mapped_column(String(16), index=True)
    # Equal to household_code while in flight, NULL after: one open payout per household.
    open_household_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    amount_fen: Mapped[int]
    status: Mapped[str] = mapped_column(String(10), default="in_flight", index=True)
    card_last4: Mapped[str] = mapped_column(String(4), default="")
    alipay_order_id: Mapped[str] = mapped_column(String(64), default="")
    failure: Mapped[str] = mapped_column(String(200), default="")
    # The failure was the payee's (card or name refused), not the shop's own.
    payee_refused: Mapped[bool] = mapped_column(default=False, server_default=false())
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass(frozen=True)
class PayoutRef:
    id: int
    out_biz_no: str
    household_code: str
    amount_fen: int


class PayoutBusy(LedgerError):
    """The household already has a payout in flight."""


def owed_fen(session: Session, household_code: str) -> int:
    balance = session.scalar(
        select(Account.balance_fen).where(Account.code == household_account(household_code))
    )
    return -(balance or 0)


def households_due(session: Session, threshold_fen: int) -> list[tuple[str, int]]:
    """(household code, owed fen) for every household owed at least ``threshold_fen``
    and without a payout in flight, by code."""
    open_codes = select(Payout.open_household_code).where(Payout.open_household_code.is_not(None))
    rows = session.execute(
        select(Account.code, Account.balance_fen)
        .where(Account.kind == "household", Account.balance_fen <= -threshold_fen)
        .order_by(Account.code)
    )
    busy = set(session.scalars(open_codes))
    prefix = len(household_account(""))
    return [(code[prefix:], -balance) for code, balance in rows if code[prefix:] not in busy]


def latest_refusals(session: Session) -> dict[str, datetime]:
    """household code → when its refused payout was started, for every household whose
    latest payout (by id) the bank refused as to the payee. Its card or name is wrong:
    retrying before someone corrects it (after that moment) would fail again, one failed
    transfer per run. Failures on the shop's side hold no one."""
    latest = (
        select(Payout.household_code, func.max(Payout.id).label("last_id"))
        .group_by(Payout.household_code)
        .subquery()
    )
    rows = session.execute(
        select(Payout.household_code, Payout.created_at)
        .join(latest, Payout.id == latest.c.last_id)
        .where(Payout.status == "failed", Payout.payee_refused.is_(True))
    )
    return {code: started_at for code, started_at in rows}


def start_payout(
    session: Session,
    out_biz_no: str,
    household_code: str,
    amount_fen: int,
    card_last4: str = "",
    now: datetime | None = None,
) -> PayoutRef:
    """Record a payout in flight and post it (flush, no commit; the caller commits
    before calling the bank). Raises :class:`PayoutBusy`, :class:`LedgerError`,
    :class:`ledger.errors.Overdrawn` when the household is owed less."""
    ensure_account(session, IN_FLIGHT, "payout", "在途打款")
    payout = Payout(
        out_biz_no=out_biz_no,
        household_code=household_code,
        open_household_code=household_code,
        amount_fen=amount_fen,
        card_last4=card_last4,
        created_at=now or utcnow(),
    )
    busy = session.scalar(select(Payout.id).where(Payout.open_household_code == household_code))
    if busy is not None:
        raise PayoutBusy(f"household {household_code} already has a payout in flight")
    session.add(payout)
    # A racing twin that passed the check above fails here on the unique constraint
    # (IntegrityError); the caller rolls back and nothing is posted.
    session.flush()
    post(
        session,
        f"payout:{out_biz_no}",
        "payout",
        [(household_account(household_code), amount_fen), (IN_FLIGHT, -amount_fen)],
        memo=f"打款 {out_biz_no}",
        now=now,
    )
    return PayoutRef(payout.id, out_biz_no, household_code, amount_fen)


def settle_payout(
    session: Session,
    out_biz_no: str,
    succeeded: bool,
    alipay_order_id: str = "",
    failure: str = "",
    now: datetime | None = None,
    payee_refused: bool = False,
) -> str:
    """Apply the bank's final answer (flush, no commit); return the payout's status.

    Only an ``in_flight`` payout moves; settling again returns the status it has.
    ``payee_refused``: a failure because of the payee's card or name (see
    :func:`latest_refusals`).
    """
    moment = now or utcnow()
    status = "paid" if succeeded else "failed"
    moved = session.execute(
        update(Payout)
        .where(Payout.out_biz_no == out_biz_no, Payout.status == "in_flight")
        .values(
            status=status,
            open_household_code=None,
            alipay_order_id=alipay_order_id[:64],
            failure=failure[:200],
            payee_refused=payee_refused and not succeeded,
            settled_at=moment,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    payout = session.scalar(
        select(Payout)
        .where(Payout.out_biz_no == out_biz_no)
        .execution_options(populate_existing=True)
    )
    if payout is None:
        raise LedgerError(f"no payout {out_biz_no}")
    if moved != 1:
        return payout.status
    if succeeded:
        ensure_account(session, PAID_OUT, "bank", "已打款到银行卡")
        post(
            session,
            f"payout_paid:{out_biz_no}",
            "payout_paid",
            [(IN_FLIGHT, payout.amount_fen), (PAID_OUT, -payout.amount_fen)],
            memo=f"打款成功 {out_biz_no}",
            now=moment,
        )
    else:
        started = find(session, f"payout:{out_biz_no}")
        reverse(
            session,
            f"payout_failed:{out_biz_no}",
            started.id,
            "payout_failed",
            memo=f"打款失败退回 {out_biz_no}",
            now=moment,
        )
    return status


def in_flight(session: Session) -> list[Payout]:
    return list(
        session.scalars(select(Payout).where(Payout.status == "in_flight").order_by(Payout.id))
    )
