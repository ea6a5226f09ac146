"""Registering an organisation, joining it, and what its members see.

Every function that changes something owns its transaction and raises
:class:`OrganisationError` (a :class:`~shop.errors.UserError`, already in the user's
language) for anything the person can fix; nothing is written when it raises.
Membership is checked here, never only in a template: :func:`membership` is the one
question every page and every order for an organisation asks.
"""

import secrets
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from shop.account.services import Impact, impact_of
from shop.auth.models import User
from shop.db import transaction, utcnow
from shop.errors import UserError
from shop.extensions import db
from shop.invoices import credit_code
from shop.mail.outbox import is_email
from shop.orders.models import Order
from shop.orders.services import ForOrganisation, check_text, normalise_phone
from shop.organisations.models import Organisation, OrganisationMember

MAX_NAME = 60
MAX_CONTACT = 40
# A person may found a few organisations (a company and its union, say); more is a
# script making up units to get their larger unpaid-order limits.
MAX_FOUNDED_PER_USER = 3


class OrganisationError(UserError):
    pass


@dataclass(frozen=True)
class Membership:
    organisation: Organisation
    role: str  # "admin" | "member"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def register(
    user_id: int, name: str, code: str, contact_name: str, contact_phone: str, email: str = ""
) -> Organisation:
    """Register an organisation with ``user_id`` as its first administrator; commit.

    The name is 1–60 characters; the code must pass its check character and be the
    only registration of that code (the unique key decides, so two people registering
    one code at once cannot both succeed)."""
    for value, field, label in (
        (name, "name", _("单位名称")),
        (contact_name, "contact_name", _("联系人")),
        (email, "email", _("电子邮箱")),
    ):
        check_text(value or "", field, label)
    name, contact_name = (name or "").strip(), (contact_name or "").strip()
    email = (email or "").strip()
    code = credit_code.normalise(code)
    if not 1 <= len(name) <= MAX_NAME:
        raise OrganisationError(_("请填写单位名称（不超过60个字）。"), field="name")
    if not credit_code.is_valid(code):
        raise OrganisationError(
            _("统一社会信用代码应为18位，且校验位正确，请对照营业执照核对。"), field="credit_code"
        )
    if not 1 <= len(contact_name) <= MAX_CONTACT:
        raise OrganisationError(_("请填写联系人姓名（不超过40个字）。"), field="contact_name")
    try:
        phone = normalise_phone(contact_phone)
    except UserError as error:
        raise OrganisationError(error.message, field="contact_phone") from None
    if email and not is_email(email):
        raise OrganisationError(_("请填写有效的电子邮箱，或留空。"), field="email")
    founded = db.session.scalar(
        select(func.count()).select_from(Organisation).where(Organisation.created_by == user_id)
    )
    if founded >= MAX_FOUNDED_PER_USER:
        raise OrganisationError(
            _("一个账户最多登记 %(n)d 个单位。", n=MAX_FOUNDED_PER_USER), field="name"
        )
    organisation = Organisation(
        name=name,
        credit_code=code,
        contact_name=contact_name,
        contact_phone=phone,
        contact_email=email or None,
        invite_code=secrets.token_urlsafe(18),
        created_by=user_id,
    )
    try:
        with transaction(db.session):
            db.session.add(organisation)
            db.session.flush()
            db.session.add(
                OrganisationMember(organisation_id=organisation.id, user_id=user_id, role="admin")
            )
    except IntegrityError:
        raise OrganisationError(
            _("这个统一社会信用代码已经登记过了。请向本单位的管理员要邀请链接加入。"),
            field="credit_code",
        ) from None
    return organisation


def membership(user_id: int | None, organisation_id: int) -> Membership | None:
    """The signed-in person's place in the organisation, or ``None`` (not a member)."""
    if user_id is None:
        return None
    row = db.session.get(OrganisationMember, (organisation_id, user_id))
    return Membership(row.organisation, row.role) if row is not None else None


def my_organisations(user_id: int) -> list[Membership]:
    rows = db.session.scalars(
        select(OrganisationMember)
        .where(OrganisationMember.user_id == user_id)
        .order_by(OrganisationMember.joined_at, OrganisationMember.organisation_id)
    )
    return [Membership(row.organisation, row.role) for row in rows]


def ordering_for(user_id: int | None, organisation_id: int | None) -> ForOrganisation | None:
    """What :func:`shop.orders.services.place_order` needs to order for the organisation;
    ``None`` for no organisation; OrganisationError if the person is not a member."""
    if not organisation_id:
        return None
    member = membership(user_id, organisation_id)
    if member is None:
        raise OrganisationError(_("您不是这个单位的成员，不能为它下单。"), field="buy_for")
    organisation = member.organisation
    return ForOrganisation(
        organisation.id, organisation.name, verified=organisation.verified_at is not None
    )


def verify(staff_id: int, organisation_id: int, now=None) -> bool:
    """The village team has checked the unit is real; commit. False if it was already
    verified (or does not exist)."""
    with transaction(db.session):
        changed = db.session.execute(
            update(Organisation)
            .where(Organisation.id == organisation_id, Organisation.verified_at.is_(None))
            .values(verified_at=now or utcnow(), verified_by=staff_id)
        ).rowcount
    return changed == 1


def registered(limit: int = 200) -> list[Organisation]:
    """Every registered organisation, those waiting for verification first, newest first."""
    return list(
        db.session.scalars(
            select(Organisation)
            .order_by(Organisation.verified_at.is_not(None), Organisation.created_at.desc())
            .limit(limit)
        )
    )


def join(user_id: int, invite_code: str) -> Organisation:
    """Join the organisation whose current invite is ``invite_code``; commit. Joining
    twice changes nothing. A wrong or replaced code joins nothing."""
    code = (invite_code or "").strip()
    organisation = (
        db.session.scalar(select(Organisation).where(Organisation.invite_code == code))
        if 16 <= len(code) <= 48 and code.isascii() and "\x00" not in code
        else None
    )
    if organisation is None:
        raise OrganisationError(_("邀请链接无效或已更换，请向单位管理员要新的链接。"))
    if db.session.get(OrganisationMember, (organisation.id, user_id)) is None:
        try:
            with transaction(db.session):
                db.session.add(OrganisationMember(organisation_id=organisation.id, user_id=user_id))
        except IntegrityError:  # the same person's second tab joined first
            pass
    return organisation


def _admin(user_id: int, organisation_id: int) -> Membership:
    member = membership(user_id, organisation_id)
    if member is None or not member.is_admin:
        raise OrganisationError(_("只有单位管理员可以这样做。"))
    return member


def new_invite(admin_id: int, organisation_id: int) -> None:
    """Replace the invite code: the old link joins nobody any more. Commit."""
    _admin(admin_id, organisation_id)
    with transaction(db.session):
        db.session.execute(
            update(Organisation)
            .where(Organisation.id == organisation_id)
            .values(invite_code=secrets.token_urlsafe(18))
        )


def remove_member(admin_id: int, organisation_id: int, user_id: int) -> None:
    """An administrator removes a member (not the last administrator). Their past
    orders for the organisation stay the organisation's. Commit."""
    _admin(admin_id, organisation_id)
    with transaction(db.session):
        target = db.session.get(OrganisationMember, (organisation_id, user_id))
        if target is None:
            return
        if target.role == "admin":
            # Locked: two administrators removing each other at once cannot leave none.
            admins = db.session.scalars(
                select(OrganisationMember.user_id)
                .where(
                    OrganisationMember.organisation_id == organisation_id,
                    OrganisationMember.role == "admin",
                )
                .with_for_update()
            ).all()
            if len(admins) <= 1:
                raise OrganisationError(_("单位至少要有一位管理员。"))
        db.session.execute(
            delete(OrganisationMember).where(
                OrganisationMember.organisation_id == organisation_id,
                OrganisationMember.user_id == user_id,
            )
        )


def members(organisation_id: int) -> list[tuple[OrganisationMember, str]]:
    """(membership, username) of every member, administrators first."""
    rows = db.session.execute(
        select(OrganisationMember, User.username)
        .join(User, User.id == OrganisationMember.user_id)
        .where(OrganisationMember.organisation_id == organisation_id)
        .order_by(OrganisationMember.role, OrganisationMember.joined_at, User.username)
    )
    return [(row[0], row[1]) for row in rows]


def orders_of(organisation_id: int, limit: int = 100) -> list[Order]:
    """The organisation's orders (every member's), newest first."""
    return list(
        db.session.scalars(
            select(Order)
            .where(Order.organisation_id == organisation_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(limit)
        )
    )


def impact(organisation_id: int) -> Impact:
    """What all the organisation's paid orders gave each household, from the ledger."""
    return impact_of(Order.organisation_id == organisation_id)
