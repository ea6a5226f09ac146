"""Read models and input handling for the admin's rule and payout pages."""

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import func, select

from ledger import (
    BenefitRule,
    Payout,
    RuleError,
    account_statement,
    head,
    household_account,
    latest_rule,
    totals_by_kind,
    totals_by_product,
    totals_by_rule,
    trial_balance,
)
from shop.benefits.services import set_product_rule
from shop.catalog.models import Product
from shop.errors import UserError
from shop.extensions import db
from shop.households.models import Household
from shop.money import parse_typed_yuan

HOUSEHOLD_GROUPS = {
    "all": lambda: True,
    "land": lambda: Household.land_mu > 0,
    "employed": lambda: Household.employed.is_(True),
    "dividend": lambda: Household.dividend.is_(True),
    "coop": lambda: Household.coop_member.is_(True),
}


class RuleInputError(UserError):
    """A benefit rule as typed in the admin that cannot be made (``field`` names the input)."""


@dataclass
class RuleRow:
    product: Product | None
    rule: BenefitRule | None


def rule_overview() -> list[RuleRow]:
    products = db.session.scalars(
        select(Product).where(Product.status != "archived").order_by(Product.id)
    )
    rows = [RuleRow(None, latest_rule(db.session, None))]
    rows += [RuleRow(p, latest_rule(db.session, p.id)) for p in products]
    return rows


def product_choices(default_label: str) -> list[tuple[int, str]]:
    products = db.session.scalars(
        select(Product).where(Product.status != "archived").order_by(Product.id)
    )
    return [(0, default_label)] + [(p.id, p.name) for p in products]


def _parse_share(share_kind: str, text: str) -> tuple[int | None, int | None]:
    raw = (text or "").strip().removesuffix("%").removesuffix("％")
    try:
        # Yuan → fen, or a percentage → basis points: both are hundredths.
        hundredths = parse_typed_yuan(raw)
    except ValueError:
        raise RuleInputError(_("请输入数字，最多两位小数。"), "share_amount") from None
    if share_kind == "fixed":
        return hundredths, None
    if hundredths > 100 * 100:
        raise RuleInputError(_("百分比不能超过 100。"), "share_amount")
    return None, hundredths


def new_rule_version(
    product_id: int | None,
    share_kind: str,
    share_amount: str,
    split: str,
    weight_basis: str,
    household_group: str,
    note: str,
) -> BenefitRule:
    """Validate the admin's input and add the next rule version (commits)."""
    fen, basis_points, households = check_rule_version(
        product_id, share_kind, share_amount, split, weight_basis, household_group
    )
    try:
        return set_product_rule(
            product_id,
            households,
            split,
            weight_basis,
            share_fen_per_unit=fen,
            share_basis_points=basis_points,
            note=note,
        )
    except RuleError as error:
        raise RuleInputError(str(error), "share_amount") from None


def check_rule_version(
    product_id: int | None,
    share_kind: str,
    share_amount: str,
    split: str,
    weight_basis: str,
    household_group: str,
) -> tuple[int | None, int | None, list[Household]]:
    """Everything :func:`new_rule_version` checks, without writing: the share (fen or
    basis points) and the households the rule would link."""
    fen, basis_points = _parse_share(share_kind, share_amount)
    if product_id is not None:
        product = db.session.get(Product, product_id)
        if product is None:
            raise RuleInputError(_("商品不存在。"), "product_id")
        if fen is not None and fen > product.price_fen:
            raise RuleInputError(_("每单位帮扶金额不能超过售价。"), "share_amount")
    condition = HOUSEHOLD_GROUPS.get(household_group)
    if condition is None:
        raise RuleInputError(_("请选择关联农户。"), "households")
    households = list(
        db.session.scalars(
            select(Household)
            .where(Household.active.is_(True), condition())
            .order_by(Household.code)
        )
    )
    if weight_basis == "land" and split == "weighted":
        households = [h for h in households if h.land_mu > 0]
    if not households:
        raise RuleInputError(_("所选范围内没有在册农户。"), "households")
    return fen, basis_points, households


@dataclass
class PayoutOverview:
    recent: list[Payout]
    names: dict[str, str]
    in_flight_fen: int
    paid_fen: int
    failed_count: int


def payout_overview(limit: int = 100) -> PayoutOverview:
    recent = list(db.session.scalars(select(Payout).order_by(Payout.id.desc()).limit(limit)))
    codes = {p.household_code for p in recent}
    names = dict(
        db.session.execute(
            select(Household.code, Household.name_masked).where(Household.code.in_(codes))
        ).all()
    )

    def total(status: str) -> int:
        return db.session.scalar(
            select(func.coalesce(func.sum(Payout.amount_fen), 0)).where(Payout.status == status)
        )

    failed = db.session.scalar(
        select(func.count()).select_from(Payout).where(Payout.status == "failed")
    )
    return PayoutOverview(recent, names, total("in_flight"), total("paid"), failed)


def ledger_overview() -> dict:
    """Trial balance, chain head and totals by product and by rule, for the admin."""

    rows = trial_balance(db.session)
    products = {p.id: p.name for p in db.session.scalars(select(Product))}
    rule_labels = {
        r.id: (
            products.get(r.product_id, _("默认规则")) if r.product_id else _("默认规则"),
            r.version,
        )
        for r in db.session.scalars(select(BenefitRule))
    }
    count, head_hash = head(db.session)
    return {
        "rows": rows,
        "by_kind": totals_by_kind(rows),
        "total_fen": sum(r.balance_fen for r in rows),
        "count": count,
        "head_hash": head_hash,
        "by_product": [
            (products.get(pid, f"#{pid}"), units, sold, share)
            for pid, units, sold, share in totals_by_product(db.session)
        ],
        "by_rule": [
            (rule_labels.get(rid, (_("无规则"), None)), units, sold, share)
            for rid, units, sold, share in totals_by_rule(db.session)
        ],
    }


def household_statement(household_id: int) -> dict | None:
    """The admin's full statement of one household's account (names decrypted)."""

    household = db.session.get(Household, household_id)
    if household is None:
        return None
    statement = account_statement(db.session, household_account(household.code))
    payouts = list(
        db.session.scalars(
            select(Payout).where(Payout.household_code == household.code).order_by(Payout.id)
        )
    )
    return {"household": household, "statement": statement, "payouts": payouts}
