"""Registering and maintaining households (建档立卡户): validation, create, update, list.

Functions take plain values (strings as a person typed them, ids) and own their
transaction: they commit on success and roll back before raising
:class:`HouseholdError`, whose ``message`` is for the user and whose ``field`` names the
input it is about (``None`` for the form as a whole).

Invariants kept here, beyond those the database enforces:

* a household's ``code`` is chosen once (typed, or generated as ``<village code>-001``)
  and never changes afterwards, because accounts and statements refer to it;
* a resident ID number belongs to at most one household; duplicates are found through
  the keyed blind index ``id_number_digest``, so the check never decrypts anything;
* the head's name, ID number and bank card are stored only encrypted; the masked name
  and the card's last four digits are derived from them on every write.

The ``parse_*`` helpers are shared with the CSV importer so a form and a spreadsheet
get the same rules and the same words.
"""

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from shop.db import escape_like
from shop.errors import UserError
from shop.extensions import db
from shop.households.models import Household, Village
from shop.pii import cipher, mask_name

NAME_MAX = 20
MEMBERS_MIN, MEMBERS_MAX = 1, 20
LAND_MAX = Decimal("9999.99")
CARD_MIN, CARD_MAX = 12, 19
CODE_MAX = 16
GROUP_MAX = 40
BANK_MAX = 80
PER_PAGE = 50

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]*$")
# Excel turns a long number typed into a General cell into 6.10722E+17 and keeps only
# 15 significant digits, so such a value cannot be repaired, only re-entered.
SCIENTIFIC = re.compile(r"^\d+(\.\d+)?E\+?\d+$", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class HouseholdError(UserError):
    """A household record the admin can fix; ``field`` names the input (``None``: the
    whole form); ``errors`` lists every problem found when a whole form was checked."""


@dataclass
class HouseholdInput:
    """A household as typed: text fields untouched, to be parsed by :func:`clean`.

    ``code`` may be blank on create (one is generated). Blank ``id_number`` is refused;
    blank ``bank_card`` means "no card yet".
    """

    head_name: str
    id_number: str
    members: str | int
    village_id: int | None
    code: str = ""
    group_name: str = ""
    bank_name: str = ""
    bank_card: str = ""
    land_mu: str | Decimal = "0"
    employed: bool = False
    dividend: bool = False
    coop_member: bool = False
    active: bool = True


@dataclass
class CleanHousehold:
    """Validated, normalised values ready to be written."""

    head_name: str
    id_number: str
    members: int
    village_id: int
    code: str = ""
    group_name: str = ""
    bank_name: str = ""
    bank_card: str | None = None
    land_mu: Decimal = Decimal("0")
    employed: bool = False
    dividend: bool = False
    coop_member: bool = False
    active: bool = True
    errors: list[HouseholdError] = field(default_factory=list, repr=False)


def _text(value) -> str:
    # NFKC folds full-width digits, letters and brackets (１２３, Ｘ, （）) typed with a
    # Chinese input method into their ASCII forms.
    return unicodedata.normalize("NFKC", str(value if value is not None else "")).strip()


def _unexcel(value: str) -> str:
    """Undo the ways people keep Excel from mangling long numbers: ="123", '123."""
    if value.startswith('="') and value.endswith('"'):
        value = value[2:-1]
    return value.lstrip("'").strip()


def parse_name(value) -> str:
    name = _text(value)
    if not name:
        raise HouseholdError(_("请填写户主姓名。"), "head_name")
    if len(name) > NAME_MAX:
        raise HouseholdError(_("户主姓名最多 %(n)s 个字。", n=NAME_MAX), "head_name")
    if CONTROL.search(name) or any(ch.isdigit() for ch in name):
        raise HouseholdError(_("户主姓名里不能有数字或特殊字符。"), "head_name")
    return name


def id_check_char(body17: str) -> str:
    """The GB 11643 (ISO 7064 MOD 11-2) check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(body17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def parse_id_number(value) -> str:
    """An 18-character resident ID: 17 digits, then a digit or X, with a valid birth date
    and check character. Returned upper-case without spaces."""
    raw = _unexcel(_text(value)).replace(" ", "").upper()
    if not raw:
        raise HouseholdError(_("请填写身份证号。"), "id_number")
    if SCIENTIFIC.match(raw):
        raise HouseholdError(
            _("身份证号被 Excel 改成了科学计数法（如 6.1E+17），请把该列设为“文本”后重新填写。"),
            "id_number",
        )
    if len(raw) == 15 and raw.isdigit():
        raise HouseholdError(_("请填写 18 位的新身份证号。"), "id_number")
    if len(raw) != 18 or not raw[:17].isdigit() or not (raw[17].isdigit() or raw[17] == "X"):
        raise HouseholdError(_("身份证号应为 18 位：17 位数字加 1 位数字或 X。"), "id_number")
    try:
        birth = date(int(raw[6:10]), int(raw[10:12]), int(raw[12:14]))
    except ValueError:
        birth = None
    if birth is None or birth.year < 1900 or birth > date.today():
        raise HouseholdError(_("身份证号里的出生日期不对，请核对。"), "id_number")
    if id_check_char(raw[:17]) != raw[17]:
        raise HouseholdError(_("身份证号校验位不对，请逐位核对。"), "id_number")
    return raw


def parse_bank_card(value) -> str | None:
    """12–19 digits; spaces and dashes between groups are allowed. Blank: no card."""
    raw = _unexcel(_text(value))
    if not raw:
        return None
    if SCIENTIFIC.match(raw.replace(" ", "")):
        raise HouseholdError(
            _("银行卡号被 Excel 改成了科学计数法，请把该列设为“文本”后重新填写。"), "bank_card"
        )
    digits = re.sub(r"[\s-]", "", raw)
    if not digits.isdigit() or not CARD_MIN <= len(digits) <= CARD_MAX:
        raise HouseholdError(
            _("银行卡号应为 %(a)s 到 %(b)s 位数字。", a=CARD_MIN, b=CARD_MAX), "bank_card"
        )
    return digits


def parse_members(value) -> int:
    raw = _text(value)
    if re.fullmatch(r"\d{1,3}(\.0+)?", raw):  # Excel may write 3 as 3.0
        number = int(raw.split(".")[0])
        if MEMBERS_MIN <= number <= MEMBERS_MAX:
            return number
    raise HouseholdError(
        _("家庭人口应为 %(a)s 到 %(b)s 之间的整数。", a=MEMBERS_MIN, b=MEMBERS_MAX), "members"
    )


def parse_land_mu(value) -> Decimal:
    """Land transferred, in mu: 0–9999.99 with at most two decimals. Blank means 0."""
    raw = _text(value)
    if not raw:
        return Decimal("0")
    message = _("流转土地应为 0 到 9999.99 之间的亩数，最多两位小数。")
    if not re.fullmatch(r"\d{1,4}(\.\d{1,2})?", raw):
        raise HouseholdError(message, "land_mu")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise HouseholdError(message, "land_mu") from None
    if amount > LAND_MAX:
        raise HouseholdError(message, "land_mu")
    return amount.quantize(Decimal("0.01"))


def parse_code(value) -> str:
    """Optional household code: letters, digits and '-', upper-cased. Blank: generate."""
    code = _text(value).upper()
    if not code:
        return ""
    if len(code) > CODE_MAX or not CODE_PATTERN.fullmatch(code):
        raise HouseholdError(
            _("户编码只能用字母、数字和连字符，最多 %(n)s 位，例如 SJ-001。", n=CODE_MAX), "code"
        )
    return code


def parse_short_text(value, field_name: str, limit: int, label: str) -> str:
    text = _text(value)
    if len(text) > limit or CONTROL.search(text):
        raise HouseholdError(_("%(label)s最多 %(n)s 个字。", label=label, n=limit), field_name)
    return text


def clean(values: HouseholdInput) -> CleanHousehold:
    """Parse every field; returns the cleaned values with ``errors`` listing every problem
    (one per field). Touches the database only to check the village exists."""
    errors: list[HouseholdError] = []

    def attempt(parser, *args, default=None):
        try:
            return parser(*args)
        except HouseholdError as error:
            errors.append(error)
            return default

    village_id = values.village_id
    if not village_id or db.session.get(Village, village_id) is None:
        errors.append(HouseholdError(_("请选择村。"), "village_id"))
        village_id = 0
    result = CleanHousehold(
        code=attempt(parse_code, values.code, default=""),
        head_name=attempt(parse_name, values.head_name, default=""),
        id_number=attempt(parse_id_number, values.id_number, default=""),
        members=attempt(parse_members, values.members, default=1),
        village_id=village_id,
        group_name=attempt(
            parse_short_text, values.group_name, "group_name", GROUP_MAX, _("村民小组"), default=""
        ),
        bank_name=attempt(
            parse_short_text, values.bank_name, "bank_name", BANK_MAX, _("开户银行"), default=""
        ),
        bank_card=attempt(parse_bank_card, values.bank_card),
        land_mu=attempt(parse_land_mu, values.land_mu, default=Decimal("0")),
        employed=bool(values.employed),
        dividend=bool(values.dividend),
        coop_member=bool(values.coop_member),
        active=bool(values.active),
    )
    result.errors = errors
    return result


def id_digest(id_number: str) -> str:
    return cipher().blind_index(id_number)


def holder_of_id(id_number: str) -> Household | None:
    """The household registered with this ID number, found by blind index."""
    return db.session.scalar(
        select(Household).where(Household.id_number_digest == id_digest(id_number))
    )


def duplicate_id_error(other: Household) -> HouseholdError:
    return HouseholdError(
        _(
            "这个身份证号已登记在户 %(code)s（%(name)s）名下，同一人不能重复登记。",
            code=other.code,
            name=other.name_masked,
        ),
        "id_number",
    )


def next_codes(village: Village, count: int = 1, taken: set[str] | None = None) -> list[str]:
    """The next ``count`` free codes ``<village code>-NNN`` after the highest in use.

    Numbers are never filled in below the highest, so a retired code is not handed out
    again. ``taken`` adds codes reserved elsewhere (e.g. other rows of one import).
    """
    prefix = f"{village.code}-"
    used = set(db.session.scalars(select(Household.code).where(Household.code.like(prefix + "%"))))
    used |= {c for c in (taken or set()) if c.startswith(prefix)}
    highest = 0
    for code in used:
        suffix = code[len(prefix) :]
        if suffix.isdigit():
            highest = max(highest, int(suffix))
    codes = []
    number = highest
    while len(codes) < count:
        number += 1
        candidate = f"{prefix}{number:03d}"
        if candidate not in used and len(candidate) <= CODE_MAX:
            codes.append(candidate)
        elif len(candidate) > CODE_MAX:
            raise HouseholdError(_("村编码太长，无法自动生成户编码，请手动填写。"), "code")
    return codes


def apply(household: Household, values: CleanHousehold) -> None:
    """Copy cleaned values onto a household (code excepted: it is set once, on create)."""
    household.village_id = values.village_id
    household.set_head_name(values.head_name)
    household.id_number = values.id_number
    household.id_number_digest = id_digest(values.id_number)
    household.set_bank_card(values.bank_card)
    household.bank_name = values.bank_name
    household.group_name = values.group_name
    household.members = values.members
    household.land_mu = values.land_mu
    household.employed = values.employed
    household.dividend = values.dividend
    household.coop_member = values.coop_member
    household.active = values.active


def _raise_first(errors: list[HouseholdError]) -> None:
    if errors:
        first = errors[0]
        error = HouseholdError(first.message, first.field)
        error.errors = errors
        raise error


def check_create(values: HouseholdInput) -> CleanHousehold:
    """Everything :func:`create_household` checks, without writing: the cleaned values.

    Raises :class:`HouseholdError` as :func:`create_household` does.
    """
    cleaned = clean(values)
    _raise_first(cleaned.errors)
    other = holder_of_id(cleaned.id_number)
    if other is not None:
        raise duplicate_id_error(other)
    if cleaned.code and db.session.scalar(
        select(Household.id).where(Household.code == cleaned.code)
    ):
        raise HouseholdError(_("户编码 %(code)s 已被使用。", code=cleaned.code), "code")
    return cleaned


def create_household(values: HouseholdInput) -> Household:
    """Register a household and commit.

    Raises :class:`HouseholdError` when a field is invalid (``error.errors`` lists all
    of them), the code is taken, or the ID number is already registered.
    """
    cleaned = check_create(values)
    village = db.session.get(Village, cleaned.village_id)
    # A generated code can collide with a concurrent registration; try the next one.
    for _attempt in range(3):
        code = cleaned.code or next_codes(village)[0]
        household = Household(code=code)
        apply(household, cleaned)
        db.session.add(household)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            _explain_conflict(cleaned)
            if cleaned.code:
                raise HouseholdError(
                    _("户编码 %(code)s 已被使用。", code=cleaned.code), "code"
                ) from None
            continue
        return household
    raise HouseholdError(_("保存时有其他人同时登记，请再试一次。"))


def _explain_conflict(cleaned: CleanHousehold, own_id: int | None = None) -> None:
    other = holder_of_id(cleaned.id_number)
    if other is not None and other.id != own_id:
        raise duplicate_id_error(other)


def current_input(household: Household) -> HouseholdInput:
    """A household's values as the form would carry them (decrypted: admin eyes only)."""
    return HouseholdInput(
        code=household.code,
        head_name=household.head_name,
        id_number=household.id_number or "",
        members=household.members,
        village_id=household.village_id,
        group_name=household.group_name,
        bank_name=household.bank_name,
        bank_card=household.bank_card or "",
        land_mu=f"{household.land_mu:.2f}",
        employed=household.employed,
        dividend=household.dividend,
        coop_member=household.coop_member,
        active=household.active,
    )


def changed_fields(household: Household, cleaned: CleanHousehold) -> list[str]:
    """The input fields whose cleaned value differs from what the household has."""
    now = clean(current_input(household))
    return [
        name
        for name in (
            "head_name",
            "id_number",
            "members",
            "village_id",
            "group_name",
            "bank_name",
            "bank_card",
            "land_mu",
            "employed",
            "dividend",
            "coop_member",
            "active",
        )
        if getattr(now, name) != getattr(cleaned, name)
    ]


def check_update(household_id: int, values: HouseholdInput) -> tuple[Household, CleanHousehold]:
    """Everything :func:`update_household` checks, without writing."""
    household = get_household(household_id)
    cleaned = clean(values)
    _raise_first(cleaned.errors)
    if cleaned.code and cleaned.code != household.code:
        raise HouseholdError(_("户编码登记后不能修改。"), "code")
    other = holder_of_id(cleaned.id_number)
    if other is not None and other.id != household.id:
        raise duplicate_id_error(other)
    return household, cleaned


def update_household(household_id: int, values: HouseholdInput) -> Household:
    """Change a household's details and commit. The code cannot be changed.

    Raises :class:`HouseholdError` as :func:`create_household` does, and when the
    household does not exist.
    """
    household, cleaned = check_update(household_id, values)
    apply(household, cleaned)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        _explain_conflict(cleaned, household_id)
        raise HouseholdError(_("保存失败，请刷新后重试。")) from None
    return household


def get_household(household_id: int) -> Household:
    household = db.session.get(Household, household_id)
    if household is None:
        raise HouseholdError(_("农户不存在。"))
    return household


def villages() -> list[Village]:
    return list(db.session.scalars(select(Village).order_by(Village.code)))


def household_query(
    village_id: int | None = None, q: str | None = None, active: bool | None = None
) -> Select:
    """The households matching the filters, ordered by village and code.

    ``q`` matches the code or the masked name (substring), a full name (through its
    masked form, so the name itself is never searched in clear), a whole ID number
    (through its blind index) or a card's last four digits.
    """
    query = select(Household).join(Household.village).options(contains_eager(Household.village))
    if village_id:
        query = query.where(Household.village_id == village_id)
    if active is not None:
        query = query.where(Household.active.is_(active))
    term = _text(q)[:60]
    if term:
        pattern = f"%{escape_like(term)}%"
        conditions = [
            Household.code.ilike(pattern, escape="\\"),
            Household.name_masked.like(pattern, escape="\\"),
        ]
        if len(term) >= 2 and not term.isascii():
            conditions.append(Household.name_masked == mask_name(term))
        try:
            conditions.append(Household.id_number_digest == id_digest(parse_id_number(term)))
        except HouseholdError:
            pass
        if re.fullmatch(r"\d{4}", term):
            conditions.append(Household.card_last4 == term)
        query = query.where(or_(*conditions))
    return query.order_by(Village.code, Household.code)


def list_households(
    village_id: int | None = None,
    q: str | None = None,
    page: int = 1,
    active: bool | None = None,
    per_page: int = PER_PAGE,
):
    """One page (Flask-SQLAlchemy ``Pagination``) of :func:`household_query`."""
    return db.paginate(
        household_query(village_id, q, active),
        page=max(1, page or 1),
        per_page=per_page,
        error_out=False,
        count=True,
    )
