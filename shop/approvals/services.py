"""Proposing, approving, rejecting and expiring changes (maker–checker).

Each kind of change registers a :class:`Kind` (:mod:`shop.approvals.kinds`): how to
apply an approved payload. Applying runs in the approver's transaction, after the
proposal's status has moved from ``pending`` by a conditional UPDATE — so two admins
approving at once apply it once, and the change, the status and the audit record commit
together or not at all. A change the database or the rules refuse at approval time
(a duplicate ID number registered meanwhile, say) leaves the proposal ``failed`` with
the reason; nothing of it is written.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from shop.approvals.models import ChangeProposal
from shop.audit.log import actor_for, note
from shop.auth.models import User
from shop.db import utcnow
from shop.errors import UserError
from shop.extensions import db
from shop.text import has_forbidden_characters

# What a typed reason may not hold: control characters (a reason is one line).


class ApprovalError(UserError):
    """A proposal that cannot be made, approved or rejected; the message says why."""


@dataclass(frozen=True)
class Kind:
    """A kind of change that needs a second admin.

    ``apply(payload, proposal)`` makes the change in the current transaction (the
    service it calls commits it with the approval) and returns what it did, in words;
    it raises :class:`UserError` when the change can no longer be made. It must make
    the whole change in one commit (the approval's). ``public``
    kinds appear in the public change log.
    """

    name: str
    label: object  # lazy text
    public: bool
    apply: Callable[[dict, ChangeProposal], object]
    # Work that moves money after the approval has committed (a payout batch calls
    # Alipay): ``run_after(payload, proposal)`` → what happened.
    run_after: Callable[[dict, ChangeProposal], str] | None = None


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def kind_label(name: str) -> str:
    kind = KINDS.get(name)
    return str(kind.label) if kind else name


def _require_staff(user: User) -> None:
    if user is None or not user.is_authenticated or not user.has_role("staff"):
        raise ApprovalError(_("只有工作人员可以提出变更。"))


def _require_admin(user: User) -> None:
    if user is None or not user.is_authenticated or user.role != "admin":
        raise ApprovalError(_("只有管理员可以提出或审批这类变更。"))


def propose(
    kind: str,
    payload: dict,
    *,
    by: User,
    title: str,
    before: dict,
    after: dict,
    object_type: str = "",
    object_id="",
    household_code: str | None = None,
) -> ChangeProposal:
    """Record a proposed change (commits, with its audit record). Nothing changes yet.

    One pending proposal per kind and object at a time, so an approver never has two
    versions of the same change in front of them.
    """
    _require_staff(by)
    expire_overdue()
    if object_id != "" and db.session.scalar(
        select(ChangeProposal.id).where(
            ChangeProposal.kind == kind,
            ChangeProposal.object_type == object_type,
            ChangeProposal.object_id == str(object_id),
            ChangeProposal.status == "pending",
        )
    ):
        raise ApprovalError(_("这一项已有待审批的变更：请先审批或驳回它。"))
    hours = current_app.config["PROPOSAL_EXPIRY_HOURS"]
    proposal = ChangeProposal(
        kind=kind,
        object_type=object_type,
        object_id=str(object_id),
        household_code=household_code,
        title=title[:200],
        payload=json.dumps(payload, ensure_ascii=False, default=str),
        before=json.dumps(before, ensure_ascii=False, default=str),
        after=json.dumps(after, ensure_ascii=False, default=str),
        public=KINDS[kind].public,
        proposed_by_id=by.id,
        proposed_by_name=by.display_name or by.username,
        expires_at=utcnow() + timedelta(hours=hours),
    )
    db.session.add(proposal)
    db.session.flush()
    note(
        db.session,
        "proposal.create",
        *_object_of(proposal),
        before=before,
        after={**after, "kind": kind, "proposal": proposal.id},
    )
    db.session.commit()
    return proposal


def _object_of(proposal: ChangeProposal) -> tuple[str, str]:
    """What an audit record about a proposal is filed under: the thing it changes (so a
    household's history shows its proposals), else the proposal itself."""
    if proposal.object_type and proposal.object_id:
        return proposal.object_type, proposal.object_id
    return "proposal", str(proposal.id)


def get(proposal_id: int) -> ChangeProposal:
    proposal = db.session.get(ChangeProposal, proposal_id)
    if proposal is None:
        raise ApprovalError(_("没有这项变更申请。"))
    return proposal


def _claim(proposal: ChangeProposal, status: str, user: User, reason: str = "") -> bool:
    """Move a pending proposal to ``status`` (no commit); False if it was not pending."""
    moved = db.session.execute(
        update(ChangeProposal)
        .where(ChangeProposal.id == proposal.id, ChangeProposal.status == "pending")
        .values(
            status=status,
            decided_by_id=user.id,
            decided_by_name=user.display_name or user.username,
            decided_at=utcnow(),
            reason=reason[:300],
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    return moved == 1


def _check_decidable(proposal: ChangeProposal, user: User) -> None:
    _require_admin(user)
    if proposal.status != "pending":
        raise ApprovalError(_("这项变更已经处理过了（%(status)s）。", status=proposal.status))
    if proposal.expires_at <= utcnow():
        expire_overdue()
        raise ApprovalError(_("这项变更已过期，请重新提出。"))
    if proposal.proposed_by_id == user.id:
        raise ApprovalError(_("不能审批自己提出的变更：需要另一位管理员。"))


def approve(proposal_id: int, user: User) -> ChangeProposal:
    """Apply a pending proposal as ``user`` (a different admin, enrolled in two-factor
    login). Commits the change, the status and the audit record together; raises
    :class:`ApprovalError` (nothing changed) or marks the proposal ``failed``."""
    proposal = get(proposal_id)
    _check_decidable(proposal, user)
    if not user.two_factor_enabled:
        raise ApprovalError(_("审批前请先开启两步验证（设置 → 两步验证）。"))
    kind = KINDS[proposal.kind]
    payload = json.loads(proposal.payload)
    summary = {"before": json.loads(proposal.before), "after": json.loads(proposal.after)}
    if not _claim(proposal, "approved", user):
        db.session.rollback()
        raise ApprovalError(_("这项变更已经处理过了。"))
    note(
        db.session,
        "proposal.approve",
        *_object_of(proposal),
        before=summary["before"],
        after={
            **summary["after"],
            "proposal": proposal.id,
            "kind": proposal.kind,
            "proposed_by": proposal.proposed_by_name,
        },
        actor=actor_for(user),
    )
    try:
        # The service applying it commits: the change, the status and both notes at once.
        kind.apply(payload, proposal)
        db.session.commit()
    except UserError as error:
        db.session.rollback()
        _fail(proposal.id, user, error.message)
        raise ApprovalError(_("无法执行：%(why)s", why=error.message)) from None
    except Exception:
        db.session.rollback()
        raise
    db.session.expire_all()
    proposal = get(proposal_id)
    if kind.run_after is not None:
        outcome = kind.run_after(payload, proposal)
        proposal.outcome = outcome[:2000]
        note(db.session, "proposal.released", *_object_of(proposal), after={"outcome": outcome})
        db.session.commit()
    return proposal


def _fail(proposal_id: int, user: User, why: str) -> None:
    proposal = get(proposal_id)
    if _claim(proposal, "failed", user, why):
        note(
            db.session,
            "proposal.fail",
            *_object_of(proposal),
            after={"reason": why, "proposal": proposal.id},
            actor=actor_for(user),
        )
        db.session.commit()


def reject(proposal_id: int, user: User, reason: str) -> ChangeProposal:
    """Turn a proposal down with a reason (the proposer may withdraw their own)."""
    proposal = get(proposal_id)
    reason = (reason or "").strip()
    if not reason:
        raise ApprovalError(_("请写明驳回理由。"), "reason")
    if has_forbidden_characters(reason):  # the shop's one rule (shop/text.py)
        raise ApprovalError(
            _("%(label)s不能包含控制字符或无效字符。", label=_("驳回理由")), "reason"
        )
    _require_admin(user)
    if proposal.status != "pending":
        raise ApprovalError(_("这项变更已经处理过了（%(status)s）。", status=proposal.status))
    if not _claim(proposal, "rejected", user, reason):
        db.session.rollback()
        raise ApprovalError(_("这项变更已经处理过了。"))
    note(
        db.session,
        "proposal.reject",
        *_object_of(proposal),
        after={"reason": reason[:300], "proposal": proposal.id},
        actor=actor_for(user),
    )
    db.session.commit()
    return get(proposal_id)


def expire_overdue() -> int:
    """Mark pending proposals past their time ``expired`` (commits); returns how many."""
    now = utcnow()
    overdue = list(
        db.session.scalars(
            select(ChangeProposal.id).where(
                ChangeProposal.status == "pending", ChangeProposal.expires_at <= now
            )
        )
    )
    if not overdue:
        return 0
    db.session.execute(
        update(ChangeProposal)
        .where(ChangeProposal.id.in_(overdue), ChangeProposal.status == "pending")
        .values(status="expired", decided_at=now)
        .execution_options(synchronize_session=False)
    )
    for proposal_id in overdue:
        note(db.session, "proposal.expire", "proposal", proposal_id)
    db.session.commit()
    return len(overdue)


def pending(limit: int = 200) -> list[ChangeProposal]:
    expire_overdue()
    return list(
        db.session.scalars(
            select(ChangeProposal)
            .where(ChangeProposal.status == "pending")
            .order_by(ChangeProposal.proposed_at)
            .limit(limit)
        )
    )


def recent(limit: int = 50) -> list[ChangeProposal]:
    return list(
        db.session.scalars(
            select(ChangeProposal)
            .where(ChangeProposal.status != "pending")
            .order_by(ChangeProposal.decided_at.desc(), ChangeProposal.id.desc())
            .limit(limit)
        )
    )


def for_household(code: str) -> list[ChangeProposal]:
    return list(
        db.session.scalars(
            select(ChangeProposal)
            .where(ChangeProposal.household_code == code)
            .order_by(ChangeProposal.proposed_at.desc())
        )
    )


def decoded(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
