"""The public boards as pages and the API read them: love board, results board, households.

Everything here reads the aggregates the projection (:mod:`shop.boards.projection`)
keeps, so a page costs a handful of indexed reads whatever the length of the history.
Amounts are integer fen; households appear by code and masked name only; buyers as
they chose to appear.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ledger import CHANNELS, household_account, latest_lines
from shop.boards.models import (
    BoardFeed,
    BoardFeedHousehold,
    BoardHousehold,
    BoardHouseholdMonth,
    BoardMonth,
    BoardPeriod,
    BoardRank,
    BoardState,
)
from shop.db import escape_like, utcnow
from shop.extensions import db
from shop.formatting import SHANGHAI
from shop.households.models import Household, Village

_STATE = BoardState.__table__
_RANK = BoardRank.__table__
_HOUSEHOLD = BoardHousehold.__table__
_HOUSEHOLD_MONTH = BoardHouseholdMonth.__table__
_MONTH = BoardMonth.__table__
_FEED_HOUSEHOLD = BoardFeedHousehold.__table__


def board_version() -> int:
    """The last ledger transaction on the boards: every change to them moves it."""
    return (
        db.session.execute(select(_STATE.c.last_transaction_id).where(_STATE.c.id == 1)).scalar()
        or 0
    )


def love_board_version(now: datetime | None = None) -> tuple:
    """What the love board shows depends on, in one query (for the page cache): the last
    folded ledger transaction, the households' last change (their masked names in the
    feed) — and the day in Asia/Shanghai, when "today" starts over with no write."""
    row = db.session.execute(_LOVE_BOARD_VERSION).one()
    return (*row, period_keys(now)["today"])


# Built once: it runs on every anonymous view of the love board.
_LOVE_BOARD_VERSION = select(
    select(_STATE.c.last_transaction_id).where(_STATE.c.id == 1).scalar_subquery(),
    select(func.max(Household.updated_at)).scalar_subquery(),
)


def period_keys(now: datetime | None = None) -> dict[str, str]:
    local = (now or utcnow()).astimezone(SHANGHAI)
    return {"today": f"d:{local:%Y-%m-%d}", "month": f"m:{local:%Y-%m}", "all": "all"}


PERIODS = ("today", "month", "all")


def totals(period: str = "all") -> dict:
    """A period's totals and the households reached by sales so far."""
    reached = db.session.scalar(
        select(func.count()).select_from(_HOUSEHOLD).where(_HOUSEHOLD.c.sales_fen > 0)
    )
    return {**period_totals(period), "households_reached": int(reached or 0)}


def period_totals(period: str) -> dict:
    row = db.session.get(BoardPeriod, period)
    names = ("orders", "units", "amount_fen", "beneficiary_fen", "buyers")
    return {name: int(getattr(row, name)) if row else 0 for name in names}


def ranking(period: str, kind: str, limit: int = 10) -> list[dict]:
    """Top buyers (``buyer``) or organisations (``org``) of a period key, by net amount."""
    rows = db.session.execute(
        select(
            _RANK.c.label,
            _RANK.c.orders,
            _RANK.c.units,
            _RANK.c.amount_fen,
            _RANK.c.beneficiary_fen,
        )
        .where(_RANK.c.period == period, _RANK.c.kind == kind, _RANK.c.amount_fen > 0)
        # Ties by key (a digest): arbitrary but stable, and the index gives the order
        # without sorting a large tie (many buyers of one bottle each).
        .order_by(_RANK.c.amount_fen.desc(), _RANK.c.key.desc())
        .limit(limit)
    )
    return [
        {
            "rank": index,
            "name": r.label,
            "orders": int(r.orders),
            "units": int(r.units),
            "amount_fen": int(r.amount_fen),
            "beneficiary_fen": int(r.beneficiary_fen),
        }
        for index, r in enumerate(rows, start=1)
    ]


def household_names(codes) -> dict[str, str]:
    codes = sorted(set(codes))
    if not codes:
        return {}
    return dict(
        db.session.execute(
            select(Household.code, Household.name_masked).where(Household.code.in_(codes))
        ).all()
    )


def feed_json(feeds: list[BoardFeed]) -> list[dict]:
    parts: dict[int, list[tuple[str, int]]] = defaultdict(list)
    if feeds:
        for feed_id, code, fen in db.session.execute(
            select(
                _FEED_HOUSEHOLD.c.feed_id,
                _FEED_HOUSEHOLD.c.household_code,
                _FEED_HOUSEHOLD.c.amount_fen,
            )
            .where(_FEED_HOUSEHOLD.c.feed_id.in_([f.id for f in feeds]))
            .order_by(_FEED_HOUSEHOLD.c.feed_id, _FEED_HOUSEHOLD.c.household_code)
        ):
            parts[feed_id].append((code, int(fen)))
    names = household_names(code for rows in parts.values() for code, _fen in rows)
    return [
        {
            "id": feed.id,
            "at": feed.at.astimezone(SHANGHAI).isoformat(timespec="seconds"),
            "channel": feed.source,
            "buyer": feed.board_name,
            "anonymous": feed.board_display == "anonymous",
            "organization": feed.organization,
            "items": [
                {
                    "product": item["name"],
                    "slug": item.get("slug", ""),
                    "quantity": item["quantity"],
                    "unit": item["unit"],
                }
                for item in json.loads(feed.items or "[]")
            ],
            "units": feed.units,
            "amount_fen": int(feed.amount_fen),
            "beneficiary_fen": int(feed.beneficiary_fen),
            "refunded_fen": int(feed.refunded_fen),
            "households": [
                {"code": code, "name_masked": names.get(code, ""), "amount_fen": fen}
                for code, fen in parts[feed.id]
            ],
        }
        for feed in feeds
    ]


def recent(limit: int = 20) -> list[dict]:
    feeds = list(
        db.session.scalars(
            select(BoardFeed).order_by(BoardFeed.at.desc(), BoardFeed.id.desc()).limit(limit)
        )
    )
    return feed_json(feeds)


def board_json(
    period: str = "all", limit: int = 10, recent_limit: int = 20, now: datetime | None = None
) -> dict:
    """The love board as ``/api/v1/board`` answers it (rankings for ``period``)."""
    key = period_keys(now)[period]
    return {
        # "totals" are all-time (design.md); the period's own counts sit beside them.
        "totals": totals("all"),
        "period": period,
        "period_totals": period_totals(key),
        "top_buyers": ranking(key, "buyer", limit),
        "top_organizations": ranking(key, "org", limit),
        "recent": recent(recent_limit),
    }


def love_board(now: datetime | None = None) -> dict:
    """Everything the love board page shows: totals, rankings for each period, feed."""
    keys = period_keys(now)
    return {
        "version": board_version(),
        "totals": totals("all"),
        "periods": {
            name: {
                "totals": period_totals(keys[name]),
                "buyers": ranking(keys[name], "buyer"),
                "organizations": ranking(keys[name], "org"),
            }
            for name in PERIODS
        },
        "recent": recent(),
    }


@dataclass
class HouseholdRow:
    code: str
    name_masked: str
    village: str
    group_name: str
    members: int
    income: dict  # channel → fen, plus "total"
    purchases: int


def _income(row) -> dict:
    income = {c: int(getattr(row, f"{c}_fen") or 0) if row else 0 for c in CHANNELS}
    income["total"] = sum(income.values())
    return income


def household_rows(query: str = "", exact_code: str | None = None) -> list[HouseholdRow]:
    """Every household (active, or with income) with its income by channel, by code;
    ``query`` filters by part of the code, ``exact_code`` picks one household."""
    statement = (
        select(Household, Village.name, BoardHousehold)
        .join(Village, Village.id == Household.village_id)
        .outerjoin(BoardHousehold, BoardHousehold.household_code == Household.code)
        .where(Household.active.is_(True) | BoardHousehold.household_code.is_not(None))
        .order_by(Household.code)
    )
    if exact_code is not None:
        statement = statement.where(Household.code == exact_code)
    query = (query or "").strip()
    if query:
        statement = statement.where(Household.code.ilike(f"%{escape_like(query)}%", escape="\\"))
    return [
        HouseholdRow(
            h.code,
            h.name_masked,
            village,
            h.group_name,
            h.members,
            _income(b),
            int(b.purchases) if b else 0,
        )
        for h, village, b in db.session.execute(statement)
    ]


def households_json() -> dict:
    return {
        "households": [
            {
                "code": r.code,
                "name_masked": r.name_masked,
                "village": r.village,
                "members": r.members,
                "income_fen": r.income,
            }
            for r in household_rows()
        ]
    }


def programme_totals() -> dict:
    sums = db.session.execute(
        select(*[func.coalesce(func.sum(_HOUSEHOLD.c[f"{c}_fen"]), 0) for c in CHANNELS])
    ).one()
    income = {c: int(v) for c, v in zip(CHANNELS, sums, strict=True)}
    income["total"] = sum(income.values())
    households, members = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Household.members), 0)).where(
            Household.active.is_(True)
        )
    ).one()
    reached = db.session.scalar(
        select(func.count()).select_from(_HOUSEHOLD).where(_HOUSEHOLD.c.total_fen > 0)
    )
    return {
        "income": income,
        "households": int(households),
        "members": int(members),
        "households_with_income": int(reached or 0),
    }


MAX_CHART_MONTHS = 24


def monthly_income(household_code: str | None = None, now: datetime | None = None) -> list[dict]:
    """Income by month and channel, from the first month with income to this month
    (at most the last 24): ``[{"month": "2026-11", "sales": fen, …, "total": fen}]``."""
    if household_code is None:
        rows = db.session.execute(select(_MONTH.c.month, _MONTH.c.channel, _MONTH.c.amount_fen))
    else:
        rows = db.session.execute(
            select(
                _HOUSEHOLD_MONTH.c.month, _HOUSEHOLD_MONTH.c.channel, _HOUSEHOLD_MONTH.c.amount_fen
            ).where(_HOUSEHOLD_MONTH.c.household_code == household_code)
        )
    data: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CHANNELS, 0))
    for month, channel, fen in rows:
        if channel in CHANNELS:
            data[month][channel] += int(fen)
    current = (now or utcnow()).astimezone(SHANGHAI).strftime("%Y-%m")
    if not data:
        return []
    months = _month_range(min(min(data), current), max(max(data), current))[-MAX_CHART_MONTHS:]
    result = []
    for month in months:
        values = dict(data.get(month) or dict.fromkeys(CHANNELS, 0))
        values["total"] = sum(values.values())
        result.append({"month": month, **values})
    return result


def _month_range(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


@dataclass
class HouseholdPage:
    row: HouseholdRow
    months: list[dict]
    purchases: list[dict]
    statement: object  # ledger.statements.StatementPage, signs as the household sees them


STATEMENT_LINES = 30


def household_page(
    code: str, limit: int = 50, statement_before: int | None = None
) -> HouseholdPage | None:
    """A household's public page: income, monthly history, purchases that reached it."""
    found = household_rows(exact_code=code) if code else []
    if not found:
        return None
    feeds = list(
        db.session.scalars(
            select(BoardFeed)
            .join(_FEED_HOUSEHOLD, _FEED_HOUSEHOLD.c.feed_id == BoardFeed.id)
            .where(_FEED_HOUSEHOLD.c.household_code == code)
            .order_by(BoardFeed.at.desc(), BoardFeed.id.desc())
            .limit(limit)
        )
    )
    purchases = feed_json(feeds)
    for purchase in purchases:  # this household's part of each purchase
        purchase["to_household_fen"] = next(
            (h["amount_fen"] for h in purchase["households"] if h["code"] == code), 0
        )
    statement = latest_lines(
        db.session, household_account(code), STATEMENT_LINES, before_id=statement_before
    )
    return HouseholdPage(found[0], monthly_income(code), purchases, statement)


def today_label(now: datetime | None = None) -> str:
    """Today in Asia/Shanghai (``2026-11-25``): the boards' "today" changes with it."""
    return (now or utcnow()).astimezone(SHANGHAI).strftime("%Y-%m-%d")


def find_household_code(query: str) -> str | None:
    query = (query or "").strip()
    if not query:
        return None
    return db.session.scalar(
        select(Household.code).where(func.upper(Household.code) == query.upper())
    )
