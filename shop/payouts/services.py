"""Paying households what they are owed, to their bank cards, through Alipay.

Each payout is started in the ledger and committed *before* Alipay is asked to
transfer (see :mod:`ledger.payouts`), and the transfer carries the payout's
``out_biz_no``, which Alipay treats as idempotent. So a run that stops at any point
and is started again never pays twice and never loses a payout: it first asks Alipay
again about every payout still in flight, then starts new ones.

A payout asked for before (the run died, or lost Alipay's answer) is *looked up*
(``transfer_query``) before it is asked for again: Alipay may have paid it to the card
and name of that first request, and answers a repeat with a card or name corrected
since as inconsistent, which must never be read as "the money did not move" (the
household would be owed again and paid twice). Only a transfer Alipay never saw is
asked for again.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from ledger import (
    Payout,
    PayoutBusy,
    households_due,
    in_flight,
    latest_refusals,
    settle_payout,
    start_payout,
)
from shop.audit.log import note, outside_answer
from shop.db import transaction, utcnow
from shop.extensions import db
from shop.faults import crash_point
from shop.formatting import SHANGHAI
from shop.households.models import Household
from shop.payments.provider import ProviderError, get_provider
from shop.pii import cipher

log = logging.getLogger("shop.payouts")


@dataclass
class PayoutRunReport:
    started: int = 0
    paid: int = 0
    failed: int = 0
    pending: int = 0
    skipped: list[str] = field(default_factory=list)  # household codes without a card
    # Household codes whose last payout the bank refused (card or name) and whose
    # record has not been corrected since that payout started.
    held: list[str] = field(default_factory=list)
    # Household codes left out of an approved batch: the card changed after approval.
    card_changed: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Nothing failed, nothing is left waiting for Alipay's answer and no household
        is held: every household due was paid."""
        return not self.failed and not self.pending and not self.held

    def summary(self) -> str:
        text = (
            f"payouts: {self.started} started, {self.paid} paid, {self.failed} failed, "
            f"{self.pending} still in flight, {len(self.skipped)} skipped (no bank card), "
            f"{len(self.held)} held (card or name refused)"
        )
        if self.pending:
            # Usually the gateway could not be reached: with the built-in sandbox it is
            # the shop's own web server, found at PUBLIC_BASE_URL.
            text += (
                "\nAlipay has not confirmed every transfer: run again later (nothing is paid "
                "twice). Check that ALIPAY_GATEWAY_URL answers — with the built-in sandbox, "
                "that the shop is running at PUBLIC_BASE_URL."
            )
        if self.failed or self.held:
            text += (
                "\nFailed transfers went back to the households' balances (see /admin/payouts). "
                "A household whose card or name the bank refused is held until its record "
                "is corrected in /admin/households."
            )
        return text


def _new_out_biz_no(household_code: str) -> str:
    count = db.session.scalar(
        select(func.count())
        .select_from(Payout)
        .where(Payout.household_code == household_code)
    )
    day = utcnow().astimezone(SHANGHAI).strftime("%Y%m%d")
    return f"PO{day}{household_code.replace('-', '')}{count + 1:03d}"


def _transfer_and_settle(out_biz_no: str, report: PayoutRunReport) -> None:
    payout = db.session.scalar(
        select(Payout).where(Payout.out_biz_no == out_biz_no)
    )
    household = db.session.scalar(select(Household).where(Household.code == payout.household_code))
    payout.attempts += 1
    asked_before = payout.attempts > 1
    outside_answer(db.session)  # a retry counter: the payout's start has its record
    db.session.commit()
    crash_point("payout.before_transfer")
    try:
        # Asked for before: what Alipay did with that request, not a new one (see above).
        result = get_provider().transfer_query(out_biz_no) if asked_before else None
        if result is None:
            result = get_provider().transfer(
                out_biz_no=out_biz_no,
                amount_fen=payout.amount_fen,
                card_number=household.bank_card or "",
                payee_name=household.head_name,
                remark="连心集市消费帮扶收益",
            )
    except ProviderError as error:
        if getattr(error, "retryable", False):
            log.warning("payout %s not confirmed, will ask again: %s", out_biz_no, error)
            report.pending += 1
            return
        # The shop's own trouble (its balance, keys, permissions): the money did not
        # move; nothing is wrong with the household's card.
        status, order_id, failure, payee_refused = "FAIL", "", str(error), False
    else:
        crash_point("payout.transfer_sent")
        status, order_id, failure = result.status, result.order_id or "", result.fail_reason or ""
        payee_refused = True  # a FAIL answer: the bank or Alipay refused the payee
    if status not in ("SUCCESS", "FAIL"):
        report.pending += 1
        return
    with transaction(db.session):
        outside_answer(db.session)  # Alipay's answer, applied
        settled = settle_payout(
            db.session,
            out_biz_no,
            status == "SUCCESS",
            order_id,
            failure,
            payee_refused=payee_refused,
        )
        crash_point("payout.posting_uncommitted")
    if settled == "paid":
        report.paid += 1
    else:
        report.failed += 1
        log.warning("payout %s failed: %s", out_biz_no, failure)


def run_payouts(threshold_fen: int | None = None) -> PayoutRunReport:
    """Finish payouts in flight, then pay every household owed at least the threshold
    (fen, at least 1; None: ``PAYOUT_THRESHOLD_FEN``)."""
    if threshold_fen is None:
        threshold = current_app.config["PAYOUT_THRESHOLD_FEN"]
    elif threshold_fen < 1:
        raise ValueError("the payout threshold is at least 1 fen")
    else:
        threshold = threshold_fen
    report = PayoutRunReport()
    for payout in in_flight(db.session):
        _transfer_and_settle(payout.out_biz_no, report)
    refused_at = latest_refusals(db.session)
    for code, owed in households_due(db.session, threshold):
        household = db.session.scalar(select(Household).where(Household.code == code))
        if household is None or not household.active or not household.bank_card:
            report.skipped.append(code)
            continue
        refused = refused_at.get(code)
        if refused is not None and household.updated_at <= refused:
            # Not corrected since that payout started: the same card and name would be
            # refused again. (A correction while it was in flight counts.)
            report.held.append(code)
            continue
        _start_and_transfer(household, owed, report)
    return report


def _start_and_transfer(household: Household, amount_fen: int, report: PayoutRunReport) -> None:
    out_biz_no = _new_out_biz_no(household.code)
    try:
        start_payout(
            db.session, out_biz_no, household.code, amount_fen, card_last4=household.card_last4
        )
        note(
            db.session, "payout.start", "household", household.code,
            after={"amount_fen": amount_fen, "bank_card": household.card_masked,
                   "out_biz_no": out_biz_no},
            ledger_keys=[f"payout:{out_biz_no}"],
        )
        db.session.commit()
    except PayoutBusy:
        db.session.rollback()
        return
    except Exception:
        db.session.rollback()
        raise
    report.started += 1
    _transfer_and_settle(out_biz_no, report)


def finish_in_flight() -> PayoutRunReport:
    """Ask Alipay again about every payout in flight and settle it; start nothing new.

    What the jobs worker and ``flask payouts run`` do: a new batch is released only by
    two admins (:func:`plan_batch` proposed, :func:`release_batch` on approval).
    """
    report = PayoutRunReport()
    for payout in in_flight(db.session):
        _transfer_and_settle(payout.out_biz_no, report)
    return report


def card_digest(card_number: str | None) -> str:
    """A keyed digest of a card number: compares cards without storing them again."""
    return cipher().blind_index(card_number or "")


@dataclass(frozen=True)
class BatchLine:
    """One household of a payout batch as proposed: the amount (fen) and the card it goes
    to (masked for the approver, and as a digest to check it is still the same card)."""

    code: str
    name_masked: str
    amount_fen: int
    card_masked: str
    card_digest: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BatchPlan:
    lines: list[BatchLine] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no card, inactive
    held: list[str] = field(default_factory=list)  # the bank refused the card or name
    # Card changed within PAYOUT_CARD_HOLD_DAYS: each needs its own approval.
    recent_card: list[str] = field(default_factory=list)

    @property
    def total_fen(self) -> int:
        return sum(line.amount_fen for line in self.lines)


def batch_line(household: Household, amount_fen: int) -> BatchLine:
    return BatchLine(
        household.code, household.name_masked, amount_fen, household.card_masked,
        card_digest(household.bank_card),
    )


def plan_batch(threshold_fen: int | None = None) -> BatchPlan:
    """Who would be paid now, and how much: what an admin proposes as a payout batch.

    Households whose card changed in the last ``PAYOUT_CARD_HOLD_DAYS`` are left out
    (``recent_card``): a payout to a new card is approved one household at a time.
    """
    threshold = threshold_fen or current_app.config["PAYOUT_THRESHOLD_FEN"]
    hold = timedelta(days=current_app.config["PAYOUT_CARD_HOLD_DAYS"])
    plan = BatchPlan()
    refused_at = latest_refusals(db.session)
    for code, owed in households_due(db.session, threshold):
        household = db.session.scalar(select(Household).where(Household.code == code))
        if household is None or not household.active or not household.bank_card:
            plan.skipped.append(code)
        elif refused_at.get(code) is not None and household.updated_at <= refused_at[code]:
            plan.held.append(code)
        elif household.card_changed_at is not None and utcnow() - household.card_changed_at < hold:
            plan.recent_card.append(code)
        else:
            plan.lines.append(batch_line(household, owed))
    return plan


def owed_to(code: str) -> int:
    """What the household is owed now (fen, 0 if nothing)."""
    return dict(households_due(db.session, 1)).get(code, 0)


def release_batch(lines: list[BatchLine]) -> PayoutRunReport:
    """Pay an approved batch: each household at most the approved amount and only to the
    approved card (a household whose card changed since is left out, ``card_changed``).
    Payouts in flight are finished first."""
    report = finish_in_flight()
    owed = dict(households_due(db.session, 1))
    for line in lines:
        household = db.session.scalar(select(Household).where(Household.code == line.code))
        if household is None or not household.active or not household.bank_card:
            report.skipped.append(line.code)
            continue
        if card_digest(household.bank_card) != line.card_digest:
            report.card_changed.append(line.code)
            continue
        amount = min(line.amount_fen, owed.get(line.code, 0))
        if amount >= 1:
            _start_and_transfer(household, amount, report)
    return report
