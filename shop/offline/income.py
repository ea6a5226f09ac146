"""Household income beyond sales: land rent, park wages, dividends and co-op shares.

The shop's side of :mod:`ledger.income`: it turns households, periods and rates typed
by the village team into postings, one per household, with a :class:`HouseholdIncome`
row beside each. Keys come from the cause — channel, period, household — so the same
income cannot be booked twice (by hand or by re-uploading a file). After a reversal the
same income may be booked again, under the next revision of the key (``…#2``).

Public functions own their transaction (``shop.db.transaction``): commit on success,
roll back before raising :class:`~shop.offline.services.OfflineError`.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import select, update

from ledger import (
    PAYER_KINDS,
    Account,
    LedgerError,
    Overdrawn,
    dividend_parts,
    income_key,
    land_rent_fen,
    payer_account_kind,
    post_income,
    wages_fen,
)
from ledger import reverse_income as reverse_ledger_income
from shop.audit.log import note
from shop.benefits.services import PROGRAMME_COLLECTIVE
from shop.boards.reads import programme_totals
from shop.db import transaction, utcnow
from shop.extensions import db
from shop.households.models import Enterprise, Household
from shop.money import format_fen, format_fen_plain, parse_typed_hundredths
from shop.offline.models import HouseholdIncome
from shop.offline.services import OfflineError, parse_form_yuan

PERIOD = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])|-Q[1-4]|-H[12])?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # NUL: PostgreSQL refuses it, even in a query
MAX_AMOUNT_FEN = 100_000_000  # ¥1,000,000 to one household at once: surely a typo
DEFAULT_COOP = "coop:双井村树莓专业合作社"
COOP_SHARE_HUNDREDTHS = 100  # one co-op membership, as a quantity in hundredths


def channel_labels() -> dict[str, str]:
    return {
        "land": _("土地流转租金"),
        "wages": _("园区务工工资"),
        "dividend": _("产业分红"),
        "coop": _("合作社分红"),
    }


def quantity_labels() -> dict[str, str]:
    return {"land": _("亩"), "wages": _("天"), "dividend": _("权重"), "coop": _("份")}


def payer_choices() -> list[tuple[str, str]]:
    """Accounts that pay households: each enterprise, the village collective, the co-op."""
    choices = [
        (f"enterprise:{e.id}", e.name)
        for e in db.session.scalars(select(Enterprise).order_by(Enterprise.id))
    ]
    choices.append((PROGRAMME_COLLECTIVE, _("村集体（帮扶项目）")))
    coops = list(
        db.session.scalars(
            select(Account.code).where(Account.kind == "coop").order_by(Account.code)
        )
    )
    for code in [DEFAULT_COOP, *[c for c in coops if c != DEFAULT_COOP]]:
        choices.append((code, code.split(":", 1)[1]))
    return choices


def default_payer(channel: str) -> str:
    if channel in ("land", "wages"):
        enterprise_id = db.session.scalar(select(Enterprise.id).order_by(Enterprise.id))
        return f"enterprise:{enterprise_id}" if enterprise_id else PROGRAMME_COLLECTIVE
    if channel == "coop":
        return DEFAULT_COOP
    return PROGRAMME_COLLECTIVE


def parse_payer(text: str) -> str:
    """A payer typed in a form or file → an account code; raises OfflineError."""
    value = (text or "").strip()
    if not value:
        raise OfflineError(_("请填写付款方。"), "payer")
    if value.split(":", 1)[0] in PAYER_KINDS and ":" in value:
        code = value
    elif value in ("村集体", "集体", "collective"):
        code = PROGRAMME_COLLECTIVE
    elif value.endswith("合作社"):
        code = f"coop:{value}"
    else:
        enterprise_id = db.session.scalar(select(Enterprise.id).where(Enterprise.name == value))
        if enterprise_id is None:
            raise OfflineError(
                _("不认识的付款方“%(name)s”：请填企业全称、“村集体”或“××合作社”。", name=value),
                "payer",
            )
        code = f"enterprise:{enterprise_id}"
    if len(code) > 64:
        raise OfflineError(_("付款方名称太长。"), "payer")
    return code


def parse_period(text: str) -> str:
    value = (text or "").strip().upper().replace("/", "-")
    if not PERIOD.match(value):
        raise OfflineError(_("期间请写成 2026、2026-03、2026-Q1 或 2026-H1 这样的格式。"), "period")
    return value


def default_quantity(
    channel: str | None, quantity_hundredths: int | None, rate_fen: int | None
) -> int | None:
    """The quantity (hundredths) to book: as given, except that a co-op rate with no
    quantity means one membership share."""
    if channel == "coop" and quantity_hundredths is None and rate_fen is not None:
        return COOP_SHARE_HUNDREDTHS
    return quantity_hundredths


def parse_hundredths(text: str, field: str, label: str) -> int:
    """ "2.5" → 250: a non-negative number with at most two decimals, in hundredths."""
    try:
        return parse_typed_hundredths(text)
    except ValueError:
        raise OfflineError(_("“%(label)s”须是数字，最多两位小数。", label=label), field) from None


@dataclass(frozen=True)
class IncomeInput:
    """One household's income as typed: either quantity × rate, or the amount, or both
    (then they must agree). Money in fen; quantity in hundredths."""

    household_code: str
    channel: str
    period: str
    payer_account: str
    quantity_hundredths: int | None = None
    rate_fen: int | None = None
    amount_fen: int | None = None
    memo: str = ""
    paid_on: date | None = None


@dataclass(frozen=True)
class IncomeFormInput:
    """The income form as the person filled it in: quantity, rate and amount are text
    as typed (blank: not given; rate and amount in yuan)."""

    household_code: str
    channel: str
    period: str
    payer_account: str
    quantity: str = ""
    rate: str = ""
    amount: str = ""
    memo: str = ""


def income_input(entry: IncomeFormInput) -> IncomeInput:
    """Read the typed numbers (quantity in hundredths, money in fen) and decide what
    the form leaves open (:func:`default_quantity`). Raises OfflineError naming the field."""
    quantity = (
        parse_hundredths(entry.quantity, "quantity", _("数量"))
        if (entry.quantity or "").strip()
        else None
    )
    rate = parse_form_yuan(entry.rate, "rate")
    amount = parse_form_yuan(entry.amount, "amount")
    return IncomeInput(
        household_code=entry.household_code,
        channel=entry.channel,
        period=entry.period,
        payer_account=entry.payer_account,
        quantity_hundredths=default_quantity(entry.channel, quantity, rate),
        rate_fen=rate,
        amount_fen=amount,
        memo=entry.memo or "",
    )


@dataclass(frozen=True)
class CleanIncome:
    household_id: int
    household_code: str
    channel: str
    period: str
    payer_account: str
    quantity_hundredths: int
    rate_fen: int
    amount_fen: int
    memo: str
    paid_on: date | None
    key: str
    already_posted: bool  # the same income is in the ledger: posting it is a no-op


def computed_amount(channel: str, quantity_hundredths: int, rate_fen: int) -> int:
    if channel == "land":
        return land_rent_fen(quantity_hundredths, rate_fen)
    if channel == "wages":
        return wages_fen(quantity_hundredths, rate_fen)
    # co-op shares and dividends by weight: quantity × rate, half up
    return (quantity_hundredths * rate_fen * 2 + 100) // 200


Cause = tuple[str, str, str]  # (channel, period, household code)


def recorded_income(codes: list[str]) -> dict[Cause, list[HouseholdIncome]]:
    """Every income booked for these households (one query), by cause, oldest first."""
    found: dict[Cause, list[HouseholdIncome]] = {}
    if not codes:
        return found
    for record in db.session.scalars(
        select(HouseholdIncome)
        .where(HouseholdIncome.household_code.in_(sorted(set(codes))))
        .order_by(HouseholdIncome.id)
    ):
        cause = (record.channel, record.period, record.household_code)
        found.setdefault(cause, []).append(record)
    return found


def check_income(
    values: IncomeInput,
    households: dict[str, Household] | None = None,
    recorded: dict[Cause, list[HouseholdIncome]] | None = None,
):
    """Validate one income entry against the register and the ledger.

    ``households`` (by code) and ``recorded`` (:func:`recorded_income`), when given,
    are what a whole file refers to, loaded once; otherwise both are queried.
    Returns a :class:`CleanIncome`; raises :class:`OfflineError` naming the problem.
    """
    typed = {"household_code": _("户编码"), "period": _("期间"), "memo": _("备注")}
    for field, label in typed.items():  # a CSV's control characters are refused when decoded
        if CONTROL.search(getattr(values, field) or ""):
            raise OfflineError(_("%(label)s不能包含控制字符或无效字符。", label=label), field)
    labels = channel_labels()
    if values.channel not in labels:
        raise OfflineError(
            _("收入类别须是土地流转租金、园区务工工资、产业分红或合作社分红。"), "channel"
        )
    code = (values.household_code or "").strip().upper()
    if households is not None:
        household = households.get(code)
    else:
        household = db.session.scalar(select(Household).where(Household.code == code))
    if household is None:
        raise OfflineError(_("没有户编码为“%(code)s”的农户。", code=code), "household_code")
    period = parse_period(values.period)
    if len(values.memo) > 120:
        raise OfflineError(_("备注不能超过120个字。"), "memo")
    quantity, rate = values.quantity_hundredths, values.rate_fen
    amount = values.amount_fen
    if quantity is not None and rate is not None:
        computed = computed_amount(values.channel, quantity, rate)
        if amount is not None and amount != computed:
            raise OfflineError(
                _(
                    "金额 %(amount)s 与数量×单价 %(computed)s 不符。",
                    amount=format_fen(amount),
                    computed=format_fen(computed),
                ),
                "amount",
            )
        amount = computed
    elif amount is None:
        hint = {
            "land": _("请填写亩数和每亩租金，或直接填写金额。"),
            "wages": _("请填写天数和日工资，或直接填写金额。"),
            "dividend": _("请填写分红金额。"),
            "coop": _("请填写份数和每份金额，或直接填写金额。"),
        }[values.channel]
        raise OfflineError(hint, "amount")
    if not 0 < amount <= MAX_AMOUNT_FEN:
        raise OfflineError(_("金额须大于零且不超过 ¥1,000,000。"), "amount")
    payer_account_kind(values.payer_account)  # LedgerError if malformed

    key, already = _key_for(values.channel, period, code, amount, values.payer_account, recorded)
    return CleanIncome(
        household_id=household.id,
        household_code=code,
        channel=values.channel,
        period=period,
        payer_account=values.payer_account,
        quantity_hundredths=quantity or 0,
        rate_fen=rate or 0,
        amount_fen=amount,
        memo=values.memo.strip(),
        paid_on=values.paid_on,
        key=key,
        already_posted=already,
    )


def _key_for(
    channel: str,
    period: str,
    code: str,
    amount: int,
    payer: str,
    recorded: dict[Cause, list[HouseholdIncome]] | None = None,
) -> tuple[str, bool]:
    """The key to post under, and whether this very income is already posted.

    Raises OfflineError when the household already has a different amount booked for
    the period: that is a correction, made by reversing the first one."""
    if recorded is not None:
        records = recorded.get((channel, period, code), [])
    else:
        records = list(
            db.session.scalars(
                select(HouseholdIncome)
                .where(
                    HouseholdIncome.channel == channel,
                    HouseholdIncome.period == period,
                    HouseholdIncome.household_code == code,
                )
                .order_by(HouseholdIncome.id)
            )
        )
    active = [r for r in records if r.reversal_transaction_id is None]
    if active:
        record = active[0]
        if record.amount_fen == amount and record.payer_account == payer:
            return record.key, True
        raise OfflineError(
            _(
                "户 %(code)s 在 %(period)s 的%(kind)s已入账 %(amount)s；如需更正，请先冲销原记录。",
                code=code,
                period=period,
                kind=channel_labels()[channel],
                amount=format_fen(record.amount_fen),
            ),
            "amount",
        )
    return income_key(channel, period, code, len(records) + 1), False


def post_clean(
    clean: CleanIncome,
    batch_id: int | None = None,
    row_number: int | None = None,
    user_id: int | None = None,
    now: datetime | None = None,
) -> tuple[HouseholdIncome | None, bool]:
    """Post one checked income entry (flush, no commit). Returns (row, created)."""
    if clean.already_posted:
        return db.session.scalar(
            select(HouseholdIncome).where(HouseholdIncome.key == clean.key)
        ), False
    labels = channel_labels()
    payer_name = dict(payer_choices()).get(clean.payer_account, "")
    posted = post_income(
        db.session,
        clean.key,
        clean.channel,
        clean.payer_account,
        clean.household_code,
        clean.amount_fen,
        # The ledger's memo is public (the export): only what the channel and period
        # say. The staff's own note, which may name people, stays on the private record.
        memo=f"{labels[clean.channel]} {clean.period}",
        payer_name=payer_name[:120],
        now=now,
    )
    if not posted.created:
        raise OfflineError(_("这笔收入刚刚被别人同时入账了，请刷新页面查看。"))
    record = HouseholdIncome(
        key=clean.key,
        channel=clean.channel,
        household_id=clean.household_id,
        household_code=clean.household_code,
        period=clean.period,
        quantity_hundredths=clean.quantity_hundredths,
        rate_fen=clean.rate_fen,
        amount_fen=clean.amount_fen,
        payer_account=clean.payer_account,
        memo=clean.memo,
        paid_on=clean.paid_on,
        batch_id=batch_id,
        row_number=row_number,
        transaction_id=posted.id,
        created_by_id=user_id,
    )
    db.session.add(record)
    db.session.flush()
    return record, posted.created


def record_income(values: IncomeInput, user_id: int | None = None) -> tuple[HouseholdIncome, bool]:
    """Book one household's income; commits. Returns (row, created) — ``created`` is
    False when exactly this income was already booked. Raises :class:`OfflineError`."""
    try:
        with transaction(db.session):
            clean = check_income(values)
            record, created = post_clean(clean, user_id=user_id)
    except LedgerError as error:
        raise OfflineError(_("记账失败：%(reason)s", reason=str(error))) from None
    return record, created


def record_typed_income(
    entry: IncomeFormInput, user_id: int | None = None
) -> tuple[HouseholdIncome, bool]:
    """The income form's entry (:func:`income_input`, then :func:`record_income`)."""
    return record_income(income_input(entry), user_id)


def reverse_income(income_id: int, user_id: int | None = None) -> HouseholdIncome:
    """Reverse a booked income whole (kind ``income_reversal``); idempotent; commits.

    Raises :class:`OfflineError` — e.g. when the household has already been paid out
    and is owed less than the amount to take back."""
    record = db.session.get(HouseholdIncome, income_id)
    if record is None:
        raise OfflineError(_("没有这条收入记录。"))
    if record.reversal_transaction_id is not None:
        return record
    try:
        with transaction(db.session):
            posted = reverse_ledger_income(
                db.session, record.key, memo=f"冲销 {record.household_code} {record.period}"
            )
            note(
                db.session, "offline.reverse_income", "household_income", record.id,
                before={"household": record.household_code, "amount_fen": record.amount_fen,
                        "period": record.period},
                after={"reversed": True},
                ledger_keys=[f"income_reversal:{record.key}"],
            )
            db.session.execute(
                update(HouseholdIncome)
                .where(
                    HouseholdIncome.id == record.id,
                    HouseholdIncome.reversal_transaction_id.is_(None),
                )
                .values(reversal_transaction_id=posted.id, reversed_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    except Overdrawn:
        raise OfflineError(
            _("该户的这笔收入已打款到银行卡，账上余额不足以冲销。请与农户协商后另行处理。")
        ) from None
    except LedgerError as error:
        raise OfflineError(_("无法冲销：%(reason)s", reason=str(error))) from None
    db.session.refresh(record)
    return record


# --- roster batches: the whole register at once, reviewed as a CSV before posting ----


def roster_households(channel: str) -> list[Household]:
    """Active households linked to a channel: land rented out, park workers, dividend
    holders, co-op members."""
    flag = {
        "land": Household.land_mu > 0,
        "wages": Household.employed.is_(True),
        "dividend": Household.dividend.is_(True),
        "coop": Household.coop_member.is_(True),
    }[channel]
    return list(
        db.session.scalars(
            select(Household).where(Household.active.is_(True), flag).order_by(Household.code)
        )
    )


@dataclass(frozen=True)
class RosterInput:
    """The roster form as the person filled it in: rate and pool are yuan as typed."""

    channel: str
    period: str
    rate: str = ""
    pool: str = ""
    basis: str = "equal"
    payer: str = ""


@dataclass(frozen=True)
class Roster:
    """A checked roster request (money in fen; 0 where the channel needs none)."""

    channel: str
    period: str
    rate_fen: int
    pool_fen: int
    basis: str
    payer: str

    @property
    def to_fill_in(self) -> bool:
        """Wages: days differ per worker, so the sheet goes back to the team to fill in
        and upload; the other channels become a batch to preview at once."""
        return self.channel == "wages"

    @property
    def batch_name(self) -> str:
        return f"名册·{channel_labels()[self.channel]}·{self.period}"


def check_roster(entry: RosterInput) -> Roster:
    """Land rent and co-op shares need a rate, dividends a pool; raises OfflineError."""
    period = parse_period(entry.period)
    rate = parse_form_yuan(entry.rate, "rate") or 0
    pool = parse_form_yuan(entry.pool, "pool") or 0
    if entry.channel in ("land", "coop") and not rate:
        raise OfflineError(_("请填写单价。"), "rate")
    if entry.channel == "dividend" and not pool:
        raise OfflineError(_("请填写分红池总额。"), "pool")
    return Roster(entry.channel, period, rate, pool, entry.basis, entry.payer)


def roster_rows(
    channel: str,
    period: str,
    rate_fen: int = 0,
    pool_fen: int = 0,
    basis: str = "equal",
    payer: str = "",
    days: dict[str, int] | None = None,
) -> list[list[str]]:
    """The register's households for one channel as income file rows (the columns of
    ``importer.INCOME_COLUMNS``): land (each household's mu × rent per mu), wages
    (days, when given, × daily rate — otherwise a sheet to fill in), dividends (a pool
    split by weight with the largest-remainder method) or co-op (one share each ×
    amount per share). Raises OfflineError when no household qualifies."""
    households = roster_households(channel)
    label = {"land": "土地租金", "wages": "务工工资", "dividend": "分红", "coop": "合作社"}[channel]
    payer = payer or default_payer(channel)
    rows = []
    if channel == "dividend":
        weights = dividend_weights(households, basis)
        if not weights:
            raise OfflineError(_("名册里没有符合条件的农户。"))
        parts = dividend_parts(pool_fen, weights)
        memo = f"分红池 {format_fen_plain(pool_fen)} 元按权重分配"
        for code in sorted(parts):
            if parts[code]:
                share = format_fen_plain(parts[code])
                rows.append([code, label, period, str(weights[code]), "", share, payer, "", memo])
    else:
        for household in households:
            if channel == "land":
                quantity = f"{household.land_mu:.2f}"
            elif channel == "wages":
                quantity = (
                    format_fen_plain(days[household.code])
                    if days and household.code in days
                    else ""
                )
            else:
                quantity = "1"
            rate = format_fen_plain(rate_fen)
            rows.append([household.code, label, period, quantity, rate, "", payer, "", ""])
    if not rows:
        raise OfflineError(_("名册里没有符合条件的农户。"))
    return rows


def dividend_weights(households: list[Household], basis: str) -> dict[str, int]:
    measures = {
        "equal": lambda h: 1,
        "members": lambda h: h.members,
        "land": lambda h: int((h.land_mu or Decimal(0)) * 100),
    }
    measure = measures[basis]
    return {h.code: measure(h) for h in households if measure(h) > 0}


def income_totals_by_channel() -> dict[str, int]:
    """Programme totals per income channel and ``total`` (fen): the results board's
    aggregates, kept in step with the ledger, so this page does not sum the ledger."""
    return programme_totals()["income"]


def recent_income(channel: str | None = None, query: str = "", limit: int = 200):
    stmt = select(HouseholdIncome).order_by(HouseholdIncome.id.desc()).limit(limit)
    if channel:
        stmt = stmt.where(HouseholdIncome.channel == channel)
    if query:
        stmt = stmt.where(HouseholdIncome.household_code == query.strip().upper())
    return list(db.session.scalars(stmt))
