"""Merging a household registered twice into the one that stays (a four-eyes change).

What the duplicate is still owed moves to the household that stays in one ledger
transaction (kind ``household_merge``, key ``household_merge:<dup>:<keep>``): the
duplicate's account goes to zero, the other's owed amount grows by the same fen. Its
history — sales, income, payouts — stays on its own statement, where it happened; the
duplicate is deactivated, so it is never paid out again. Benefit rules name households
by version: a rule that still names the duplicate keeps crediting it until a new version
is approved, so the check below refuses a merge while a rule in force names it.
"""

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select

from ledger import (
    Account,
    BenefitRule,
    LedgerError,
    Payout,
    ensure_account,
    household_account,
    latest_rule,
    post,
)
from shop.audit.log import note
from shop.households.models import Household
from shop.households.services import HouseholdError, get_household

MERGE_KIND = "household_merge"


@dataclass(frozen=True)
class MergePlan:
    keep: Household
    duplicate: Household
    owed_fen: int  # what moves from the duplicate to the household that stays

    @property
    def key(self) -> str:
        return f"{MERGE_KIND}:{self.duplicate.code}:{self.keep.code}"


def _owed(session, code: str) -> int:
    balance = session.scalar(
        select(Account.balance_fen).where(Account.code == household_account(code))
    )
    return -(balance or 0)


def _rules_naming(session, code: str) -> list[str]:
    """Rules in force (the latest version per product, and the default) naming ``code``."""
    products = set(session.scalars(select(BenefitRule.product_id).distinct()))
    named = []
    for product_id in products:
        rule = latest_rule(session, product_id)
        if rule is not None and any(link.household_code == code for link in rule.households):
            named.append(str(product_id) if product_id is not None else "default")
    return named


def check_merge(session, keep_id: int, duplicate_id: int) -> MergePlan:
    """Everything :func:`merge` checks, without writing. Raises :class:`HouseholdError`."""
    if keep_id == duplicate_id:
        raise HouseholdError(_("不能把一户合并到它自己。"), "duplicate")
    keep, duplicate = get_household(keep_id), get_household(duplicate_id)
    if not keep.active:
        raise HouseholdError(_("保留的户 %(code)s 已注销。", code=keep.code), "keep")
    if not duplicate.active:
        raise HouseholdError(_("户 %(code)s 已注销，无需合并。", code=duplicate.code), "duplicate")
    if session.scalar(select(Payout.id).where(Payout.open_household_code == duplicate.code)):
        raise HouseholdError(
            _("户 %(code)s 有一笔打款正在处理，请等它结束后再合并。", code=duplicate.code)
        )
    if _rules_naming(session, duplicate.code):
        raise HouseholdError(
            _(
                "现行帮扶规则仍关联户 %(code)s：请先提出不含该户的新规则版本，批准后再合并。",
                code=duplicate.code,
            )
        )
    return MergePlan(keep, duplicate, _owed(session, duplicate.code))


def merge(session, keep_id: int, duplicate_id: int) -> MergePlan:
    """Move what the duplicate is owed to the household that stays and deactivate the
    duplicate (flush, no commit: the approval commits it with its audit record)."""
    plan = check_merge(session, keep_id, duplicate_id)
    if plan.owed_fen > 0:
        ensure_account(session, household_account(plan.keep.code), "household")
        try:
            post(
                session,
                plan.key,
                MERGE_KIND,
                [
                    (household_account(plan.duplicate.code), plan.owed_fen),
                    (household_account(plan.keep.code), -plan.owed_fen),
                ],
                memo=f"合并重复登记：{plan.duplicate.code} 并入 {plan.keep.code}",
            )
        except LedgerError as error:
            raise HouseholdError(str(error)) from None
    plan.duplicate.active = False
    note(
        session,
        "household.merge",
        "household",
        plan.duplicate.id,
        before={
            "keep": plan.keep.code,
            "duplicate": plan.duplicate.code,
            "owed_fen": plan.owed_fen,
        },
        after={"active": False, "moved_fen": plan.owed_fen, "into": plan.keep.code},
        ledger_keys=[plan.key] if plan.owed_fen > 0 else [],
    )
    session.flush()
    return plan
