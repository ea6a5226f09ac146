"""The public change log: every approved change to a household, a rule or the register.

What it shows is what both admins were shown — masked (a card as ``**** 1234``, a name
as ``张*明``) — with who proposed and who approved it by display name, so a resident can
see that their card was changed and by whom without anyone seeing the card.
"""

from sqlalchemy import select

from shop.approvals.models import ChangeProposal
from shop.approvals.services import decoded, kind_label
from shop.extensions import db

PAGE_SIZE = 50


def approved_changes(
    household_code: str | None = None, before_id: int | None = None, limit: int = PAGE_SIZE
) -> list[ChangeProposal]:
    """Approved public changes, newest first; ``before_id`` pages back."""
    query = select(ChangeProposal).where(
        ChangeProposal.status == "approved", ChangeProposal.public.is_(True)
    )
    if household_code:
        query = query.where(ChangeProposal.household_code == household_code)
    if before_id:
        query = query.where(ChangeProposal.id < before_id)
    return list(
        db.session.scalars(query.order_by(ChangeProposal.id.desc()).limit(max(1, min(limit, 200))))
    )


def change_json(proposal: ChangeProposal) -> dict:
    """One change as ``GET /api/v1/changes`` lists it (masked, no internal ids of people)."""
    return {
        "id": proposal.id,
        "approved_at": proposal.decided_at.isoformat() if proposal.decided_at else None,
        "proposed_at": proposal.proposed_at.isoformat(),
        "kind": proposal.kind,
        "kind_label": kind_label(proposal.kind),
        "title": proposal.title,
        "household_code": proposal.household_code,
        "proposed_by": proposal.proposed_by_name,
        "approved_by": proposal.decided_by_name,
        "before": decoded(proposal.before),
        "after": decoded(proposal.after),
    }
