"""The changes that need a second admin: how each is proposed, shown and applied.

Proposing checks everything the change would check (so a proposal that cannot be
applied is refused at once, with the same words) and computes the masked before →
after both admins see; approving re-runs the service with the stored payload, so the
rules in force at approval time apply.
"""

import base64
from dataclasses import asdict
from decimal import Decimal

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ledger import latest_rule
from shop.approvals.services import ApprovalError, Kind, propose, register
from shop.benefits import admin as benefits_admin
from shop.catalog.models import Product
from shop.extensions import db
from shop.faults import crash_point
from shop.households import importer
from shop.households import merge as merging
from shop.households import services as households
from shop.households.models import Household, Village
from shop.money import format_fen
from shop.offline.income import reverse_income
from shop.offline.models import HouseholdIncome, OfflineSale
from shop.offline.services import reverse_sale
from shop.orders.models import Order
from shop.orders.services import check_text
from shop.payments.refunds import check_refund, request_refund
from shop.payouts import services as payouts
from shop.pii import mask_card, mask_id_number, mask_name

# Household fields as shown in a diff: (field, label, mask for PII or None).
HOUSEHOLD_FIELDS = (
    ("head_name", _l("户主姓名"), mask_name),
    ("id_number", _l("身份证号"), mask_id_number),
    ("bank_card", _l("银行卡号"), mask_card),
    ("bank_name", _l("开户银行"), None),
    ("village", _l("村"), None),
    ("group_name", _l("村民小组"), None),
    ("members", _l("家庭人口"), None),
    ("land_mu", _l("流转土地（亩）"), None),
    ("employed", _l("基地务工"), None),
    ("dividend", _l("入股分红"), None),
    ("coop_member", _l("合作社社员"), None),
    ("active", _l("在册"), None),
)
FIELD_LABELS = {name: label for name, label, _mask in HOUSEHOLD_FIELDS}
FIELD_MASKS = {name: mask for name, _label, mask in HOUSEHOLD_FIELDS}
SENSITIVE = {"head_name", "id_number", "bank_card"}


def _shown(name: str, value):
    mask = FIELD_MASKS[name]
    if value is None or value == "":
        return ""
    if mask is not None:
        return mask(str(value))
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


def _household_values(household: Household | None, cleaned=None) -> dict:
    if cleaned is not None:
        village = db.session.get(Village, cleaned.village_id) if cleaned.village_id else None
        source = {
            "head_name": cleaned.head_name,
            "id_number": cleaned.id_number,
            "bank_card": cleaned.bank_card,
            "bank_name": cleaned.bank_name,
            "village": village.name if village else "",
            "group_name": cleaned.group_name,
            "members": cleaned.members,
            "land_mu": cleaned.land_mu,
            "employed": cleaned.employed,
            "dividend": cleaned.dividend,
            "coop_member": cleaned.coop_member,
            "active": cleaned.active,
        }
    elif household is not None:
        source = {
            "head_name": household.head_name,
            "id_number": household.id_number,
            "bank_card": household.bank_card,
            "bank_name": household.bank_name,
            "village": household.village.name,
            "group_name": household.group_name,
            "members": household.members,
            "land_mu": household.land_mu,
            "employed": household.employed,
            "dividend": household.dividend,
            "coop_member": household.coop_member,
            "active": household.active,
        }
    else:
        source = {}
    return source


def household_diff(household: Household | None, cleaned) -> tuple[dict, dict]:
    """Masked before → after of the fields that change (all fields for a new one)."""
    old = _household_values(household, None)
    new = _household_values(None, cleaned)
    before, after = {}, {}
    for name, _label, _mask in HOUSEHOLD_FIELDS:
        if household is not None and _comparable(old.get(name)) == _comparable(new.get(name)):
            continue
        if household is not None:
            before[name] = _shown(name, old.get(name))
        after[name] = _shown(name, new.get(name))
    return before, after


def _comparable(value):
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value if value not in (None, "") else ""


def _input(payload: dict) -> households.HouseholdInput:
    fields = {k: v for k, v in payload.items() if k not in ("household_id", "changed")}
    return households.HouseholdInput(**fields)


# --- households -------------------------------------------------------------------


def propose_household_update(household_id: int, values: households.HouseholdInput, by):
    """Propose changing a registered household (card, name, ID, register fields)."""
    household, cleaned = households.check_update(household_id, values)
    before, after = household_diff(household, cleaned)
    if not after:
        raise households.HouseholdError(_("没有任何改动。"))
    fields = "、".join(str(FIELD_LABELS[name]) for name in after)
    if after.get("active") is False:
        title = _("注销农户 %(code)s", code=household.code)
    else:
        title = _("修改农户 %(code)s：%(fields)s", code=household.code, fields=fields)
    payload = {"household_id": household.id, **asdict(values)}
    payload["code"] = household.code
    # Only these are applied on approval, onto the household as it is then: a change
    # approved meanwhile (an import, say) to other fields is not undone.
    payload["changed"] = households.changed_fields(household, cleaned)
    return propose(
        "household.update",
        payload,
        by=by,
        title=title,
        before=before,
        after=after,
        object_type="household",
        object_id=household.id,
        household_code=household.code,
    )


def _apply_household_update(payload: dict, _proposal) -> None:
    household = households.get_household(int(payload["household_id"]))
    values = households.current_input(household)
    for name in payload["changed"]:
        setattr(values, name, payload[name])
    households.update_household(household.id, values)


def propose_household_create(values: households.HouseholdInput, by):
    """Propose registering a household. Its code is fixed now (typed or the next free
    one), so the public change log can name it before and after approval."""
    cleaned = households.check_create(values)
    if not cleaned.code:
        village = db.session.get(Village, cleaned.village_id)
        cleaned.code = households.next_codes(village)[0]
    payload = {**asdict(values), "code": cleaned.code}
    _before, after = household_diff(None, cleaned)
    return propose(
        "household.create",
        payload,
        by=by,
        title=_("登记新农户 %(code)s", code=cleaned.code),
        before={},
        after=after,
        object_type="household",
        object_id=cleaned.code,
        household_code=cleaned.code,
    )


def _apply_household_create(payload: dict, _proposal) -> None:
    households.create_household(_input(payload))


def propose_household_import(data: bytes, by):
    """Propose a whole household CSV (checked now, written only on approval)."""
    preview = importer.import_households(data, dry_run=True)
    after = {
        "created": preview.created,
        "updated": preview.updated,
        "updated_codes": preview.updated_codes[:100],
    }
    return propose(
        "household.import",
        {"csv": base64.b64encode(data).decode()},
        by=by,
        title=_(
            "导入农户名册：新登记 %(created)s 户，更新 %(updated)s 户",
            created=preview.created,
            updated=preview.updated,
        ),
        before={},
        after=after,
        object_type="household_import",
    )


def _apply_household_import(payload: dict, _proposal) -> None:
    importer.import_households(base64.b64decode(payload["csv"]))


def propose_household_merge(duplicate_id: int, keep_code: str, by):
    """Propose merging a household registered twice into the one that stays."""
    keep = db.session.scalar(
        select(Household).where(Household.code == (keep_code or "").strip().upper())
    )
    if keep is None:
        raise households.HouseholdError(_("没有户编码为 %(code)s 的农户。", code=keep_code), "keep")
    plan = merging.check_merge(db.session, keep.id, duplicate_id)
    return propose(
        "household.merge",
        {"keep_id": keep.id, "duplicate_id": duplicate_id},
        by=by,
        title=_("合并重复登记：%(dup)s 并入 %(keep)s", dup=plan.duplicate.code, keep=keep.code),
        before={"active": True, "owed_fen": plan.owed_fen},
        after={"active": False, "into": keep.code, "moved_fen": plan.owed_fen},
        object_type="household",
        object_id=plan.duplicate.id,
        household_code=plan.duplicate.code,
    )


def _apply_household_merge(payload: dict, _proposal) -> None:
    merging.merge(db.session, int(payload["keep_id"]), int(payload["duplicate_id"]))


# --- benefit rules -----------------------------------------------------------------


def _rule_summary(rule) -> dict:
    if rule is None:
        return {}
    share = (
        format_fen(rule.share_fen_per_unit) + "/件"
        if rule.share_kind == "fixed"
        else f"{rule.share_basis_points / 100:g}%"
    )
    return {
        "version": rule.version,
        "share": share,
        "split": rule.split,
        "weight_basis": rule.weight_basis,
        "households": len(rule.households),
    }


def propose_rule(args: dict, by):
    """Propose the next version of a benefit rule (``args`` as new_rule_version takes)."""
    fen, basis_points, linked = benefits_admin.check_rule_version(
        args["product_id"],
        args["share_kind"],
        args["share_amount"],
        args["split"],
        args["weight_basis"],
        args["household_group"],
    )
    product = db.session.get(Product, args["product_id"]) if args["product_id"] else None
    target = product.name if product else _("全部商品的默认规则")
    after = {
        "share": format_fen(fen) + "/件" if fen is not None else f"{basis_points / 100:g}%",
        "split": args["split"],
        "weight_basis": args["weight_basis"],
        "households": len(linked),
        "household_group": args["household_group"],
        "note": args.get("note", ""),
    }
    return propose(
        "rule.new",
        args,
        by=by,
        title=_("修改帮扶规则：%(target)s", target=target),
        before=_rule_summary(latest_rule(db.session, args["product_id"])),
        after=after,
        object_type="rule",
        object_id=args["product_id"] or 0,
    )


def _apply_rule(payload: dict, _proposal) -> None:
    benefits_admin.new_rule_version(**payload)


# --- payouts -----------------------------------------------------------------------


def _lines(payload: dict) -> list[payouts.BatchLine]:
    return [payouts.BatchLine(**line) for line in payload["lines"]]


def propose_payout_batch(by, plan: payouts.BatchPlan | None = None):
    """Propose paying every household due now (``plan``), to the cards they have now."""
    plan = plan or payouts.plan_batch()
    if not plan.lines:
        raise ApprovalError(_("现在没有可以打款的农户。"))
    after = {
        "households": len(plan.lines),
        "total_fen": plan.total_fen,
        "lines": [
            {
                "code": line.code,
                "name": line.name_masked,
                "amount_fen": line.amount_fen,
                "bank_card": line.card_masked,
            }
            for line in plan.lines[:300]
        ],
        "left_out_card_changed": plan.recent_card,
    }
    return propose(
        "payout.release",
        {"lines": [line.to_dict() for line in plan.lines]},
        by=by,
        title=_(
            "打款批次：%(n)s 户，共 %(total)s", n=len(plan.lines), total=format_fen(plan.total_fen)
        ),
        before={},
        after=after,
        object_type="payout_batch",
        object_id="next",
    )


def propose_household_payout(code: str, by):
    """Propose paying one household (one whose card changed recently) on its own."""
    household = db.session.scalar(select(Household).where(Household.code == code))
    if household is None or not household.active or not household.bank_card:
        raise ApprovalError(_("这户没有可用的银行卡，不能打款。"))
    owed = payouts.owed_to(code)
    if owed < 1:
        raise ApprovalError(_("这户目前没有待打款的余额。"))
    line = payouts.batch_line(household, owed)
    changed = household.card_changed_at.isoformat() if household.card_changed_at else ""
    return propose(
        "payout.household",
        {"lines": [line.to_dict()]},
        by=by,
        title=_(
            "单独打款给 %(code)s（银行卡近期变更）：%(amount)s", code=code, amount=format_fen(owed)
        ),
        before={},
        after={"amount_fen": owed, "bank_card": line.card_masked, "card_changed_at": changed},
        object_type="household_payout",
        object_id=code,
        household_code=code,
    )


def _release(payload: dict, _proposal) -> str:
    crash_point("payout.batch_approved")
    report = payouts.release_batch(_lines(payload))
    text = report.summary()
    if report.card_changed:
        text += "\n" + _(
            "银行卡在审批后又变更，未打款：%(codes)s", codes="、".join(report.card_changed)
        )
    return text


# --- refunds and reversals above the threshold ----------------------------------------


def needs_approval(amount_fen: int) -> bool:
    return amount_fen > current_app.config["APPROVAL_THRESHOLD_FEN"]


def propose_refund(order: Order, amount_fen: int, reason: str, restock, by):
    check_text(reason, "reason", _("退款原因"))  # what the refund would refuse, now
    check_refund(order.id, amount_fen, restock)
    return propose(
        "order.refund",
        {
            "order_id": order.id,
            "amount_fen": amount_fen,
            "reason": reason,
            "restock": {str(k): v for k, v in (restock or {}).items()},
        },
        by=by,
        title=_("退款 %(order)s：%(amount)s", order=order.order_no, amount=format_fen(amount_fen)),
        before={"total_fen": order.total_fen, "refunded_fen": order.refunded_fen},
        after={"refund_fen": amount_fen, "reason": reason[:200]},
        object_type="order",
        object_id=order.order_no,
    )


def _apply_refund(payload: dict, proposal) -> None:
    restock = {int(k): int(v) for k, v in payload["restock"].items()}
    request_refund(
        payload["order_id"],
        payload["amount_fen"],
        payload["reason"],
        restock,
        created_by=proposal.proposed_by_id,
    )


def propose_sale_reversal(sale: OfflineSale, by):
    return propose(
        "offline.reverse_sale",
        {"sale_id": sale.id},
        by=by,
        title=_("冲销线下销售 #%(id)s：%(amount)s", id=sale.id, amount=format_fen(sale.total_fen)),
        before={
            "total_fen": sale.total_fen,
            "product": sale.product_name,
            "quantity": sale.quantity,
        },
        after={"reversed": True},
        object_type="offline_sale",
        object_id=sale.id,
    )


def _apply_sale_reversal(payload: dict, _proposal) -> None:
    reverse_sale(payload["sale_id"])


def propose_income_reversal(income: HouseholdIncome, by):
    return propose(
        "offline.reverse_income",
        {"income_id": income.id},
        by=by,
        title=_(
            "冲销 %(code)s 的收入：%(amount)s",
            code=income.household_code,
            amount=format_fen(income.amount_fen),
        ),
        before={"amount_fen": income.amount_fen, "period": income.period},
        after={"reversed": True},
        object_type="household_income",
        object_id=income.id,
        household_code=income.household_code,
    )


def _apply_income_reversal(payload: dict, _proposal) -> None:
    reverse_income(payload["income_id"])


def _nothing(_payload, _proposal) -> None:
    """Releasing a batch changes nothing by itself: the payouts follow the approval."""


register(Kind("household.update", _l("修改农户信息"), True, _apply_household_update))
register(Kind("household.create", _l("登记新农户"), True, _apply_household_create))
register(Kind("household.merge", _l("合并重复登记的农户"), True, _apply_household_merge))
register(Kind("household.import", _l("导入农户名册"), True, _apply_household_import))
register(Kind("rule.new", _l("帮扶规则新版本"), True, _apply_rule))
register(Kind("payout.release", _l("打款批次"), False, _nothing, run_after=_release))
register(
    Kind("payout.household", _l("单户打款（银行卡近期变更）"), True, _nothing, run_after=_release)
)
register(Kind("order.refund", _l("大额退款"), False, _apply_refund))
register(Kind("offline.reverse_sale", _l("冲销线下销售"), False, _apply_sale_reversal))
register(Kind("offline.reverse_income", _l("冲销农户收入"), True, _apply_income_reversal))
