"""Keeping the public boards in step with the ledger, and reading them.

**Following the ledger.** :func:`follow_ledger` folds every ledger transaction after
the watermark (``board_state.last_transaction_id``) into the aggregates, in posting
order, and advances the watermark — in the caller's database transaction, without
committing. It runs

- as a paid hook and a refund hook, registered after the ledger's own hooks, so an
  order's sale (or reversal) is on the boards in the transaction that marks it paid
  (or refunded);
- just before any commit of a session that posted to the ledger (a SQLAlchemy
  ``before_commit`` listener), so postings made elsewhere — offline sales, land rent,
  wages, dividends, co-op shares, their reversals — land on the boards the same way.

Postings are serialised by the ledger head's lock, which the posting transaction still
holds when it folds, so each transaction is folded exactly once and in order, across
any number of workers. What is folded (amounts in fen):

- a credit to ``household:<code>`` by a transaction of kind ``sale`` / ``offline_sale``
  (channel *sales*), ``income_land`` (*land*), ``income_wages`` (*wages*),
  ``income_dividend`` (*dividends*) or ``income_coop`` (*coop*) adds to that household's
  column and month; a reversal (any transaction whose ``reverses`` names one of those)
  takes its household debits off the same column, in the month of the original. Payouts
  move money out of household accounts but are not income, so they are not folded;
- a sale with an order (online) or an offline sale record becomes a purchase on the
  love board (feed, totals, rankings for the day, month and all time of the sale in
  Asia/Shanghai); its refunds lower amount and households' share, and a purchase
  refunded in full no longer counts as an order, its units, or its buyer.

Buyers who chose to be anonymous are counted in totals, shown as 爱心人士, never ranked,
and their organisation is never shown.
"""

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import event, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ledger.income import CHANNEL_OF_KIND
from ledger.models import Account, Entry, Transaction
from ledger.posting import APPENDED, SALE_KINDS
from shop.boards.models import (
    CHANNELS,
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
from shop.public_identity import public_identity

HOUSEHOLD_PREFIX = "household:"
BATCH = 500

_STATE = BoardState.__table__
_PERIOD = BoardPeriod.__table__
_RANK = BoardRank.__table__
_HOUSEHOLD = BoardHousehold.__table__
_HOUSEHOLD_MONTH = BoardHouseholdMonth.__table__
_MONTH = BoardMonth.__table__
_FEED_HOUSEHOLD = BoardFeedHousehold.__table__


# --- following the ledger ---------------------------------------------------------------


def register(app) -> None:
    """Paid and refund hooks (after the ledger's), and the commit listener (once)."""
    from shop.orders.refunds import register_refund_hook
    from shop.orders.services import register_paid_hook

    register_paid_hook(app, lambda order: follow_ledger())
    register_refund_hook(app, lambda refund: follow_ledger())
    _listen_once()


_listening = False


def _listen_once() -> None:
    global _listening
    if _listening:
        return
    _listening = True
    # On the scoped session: the listeners attach to Flask-SQLAlchemy's Session class,
    # not to plain sessions (the ledger's own tests use those).
    event.listen(db.session, "before_commit", _fold_before_commit)
    event.listen(db.session, "after_rollback", _forget_posting)


def _fold_before_commit(session: Session) -> None:
    # The ledger marks a session that appended to the chain (however the rows went in).
    if session.info.pop(APPENDED, False):
        follow_ledger(session)


def _forget_posting(session: Session) -> None:
    session.info.pop(APPENDED, None)


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _upsert(
    session: Session,
    table,
    keys: dict,
    adds: dict,
    sets: dict | None = None,
    returning: str | None = None,
):
    """INSERT the row, or add ``adds`` to (and set ``sets`` on) the existing one."""
    sets = sets or {}
    statement = _insert(session)(table).values(**keys, **adds, **sets)
    changes = {name: table.c[name] + statement.excluded[name] for name in adds}
    changes.update({name: statement.excluded[name] for name in sets})
    statement = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    if returning:
        return session.execute(statement.returning(table.c[returning])).scalar_one()
    session.execute(statement)
    return None


def _upsert_rows(session: Session, table, key_names: list[str], rows: list[dict]) -> None:
    """One multi-row INSERT of ``rows`` (distinct keys, same columns); on a conflict add
    every non-key column to the existing row. A posting that reaches 148 households
    costs one statement, not 148."""
    if not rows:
        return
    # One cached statement executed with many parameter sets ("executemany"; SQLAlchemy
    # batches it into multi-row INSERTs): no per-call SQL compilation.
    statement = _insert(session)(table)
    adds = [name for name in rows[0] if name not in key_names]
    changes = {name: table.c[name] + statement.excluded[name] for name in adds}
    session.execute(statement.on_conflict_do_update(index_elements=key_names, set_=changes), rows)


def follow_ledger(session: Session | None = None, batch: int = BATCH) -> int:
    """Fold every ledger transaction after the watermark into the boards (no commit);
    return how many were folded. Call it inside the transaction that posted them."""
    session = session or db.session
    last = session.execute(
        select(_STATE.c.last_transaction_id).where(_STATE.c.id == 1).with_for_update()
    ).scalar()
    if last is None:
        session.execute(_insert(session)(_STATE).values(id=1, last_transaction_id=0))
        last = 0
    folded = 0
    # Transaction ids can have gaps (a PostgreSQL sequence does not roll back), so
    # follow the ids themselves, not the head's count: the PK range scan is cheap.
    while True:
        rows = session.execute(
            select(
                Transaction.id,
                Transaction.key,
                Transaction.kind,
                Transaction.created_at,
                Transaction.reverses_id,
            )
            .where(Transaction.id > last)
            .order_by(Transaction.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        ids = [row.id for row in rows]
        entries: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for tx_id, code, amount in session.execute(
            select(Entry.transaction_id, Account.code, Entry.amount_fen)
            .join(Account, Account.id == Entry.account_id)
            .where(Entry.transaction_id.in_(ids))
            .order_by(Entry.transaction_id, Entry.position)
        ):
            entries[tx_id].append((code, int(amount)))
        wanted = {row.reverses_id for row in rows if row.reverses_id}
        originals = (
            {
                row.id: row
                for row in session.execute(
                    select(Transaction.id, Transaction.kind, Transaction.created_at).where(
                        Transaction.id.in_(sorted(wanted))
                    )
                )
            }
            if wanted
            else {}
        )
        for row in rows:
            _fold(session, row, entries[row.id], originals.get(row.reverses_id))
        last = ids[-1]
        folded += len(rows)
    if folded:
        session.execute(update(_STATE).where(_STATE.c.id == 1).values(last_transaction_id=last))
    return folded


def _fold(session: Session, tx, entries: list[tuple[str, int]], original) -> None:
    # Income to each household: credits are negative entries on its payable account.
    reached: dict[str, int] = defaultdict(int)
    for code, amount in entries:
        if code.startswith(HOUSEHOLD_PREFIX):
            reached[code[len(HOUSEHOLD_PREFIX) :]] -= amount
    reached = {code: fen for code, fen in reached.items() if fen}

    if tx.kind in CHANNEL_OF_KIND:
        channel, moment = CHANNEL_OF_KIND[tx.kind], _occurred_at(session, tx)
    elif original is not None and original.kind in CHANNEL_OF_KIND:
        channel, moment = CHANNEL_OF_KIND[original.kind], _occurred_at(session, original)
    else:
        return  # payouts and anything else that is not household income
    month = _month(moment)
    column = f"{channel}_fen"
    _upsert_rows(
        session,
        _HOUSEHOLD,
        ["household_code"],
        [{"household_code": c, column: f, "total_fen": f} for c, f in sorted(reached.items())],
    )
    _upsert_rows(
        session,
        _HOUSEHOLD_MONTH,
        ["household_code", "month", "channel"],
        [
            {"household_code": c, "month": month, "channel": channel, "amount_fen": f}
            for c, f in sorted(reached.items())
        ],
    )
    if reached:
        _upsert(
            session,
            _MONTH,
            {"month": month, "channel": channel},
            {"amount_fen": sum(reached.values())},
        )

    if tx.kind in SALE_KINDS:
        purchase = _purchase_of(session, tx)
        if purchase is not None:
            _add_purchase(session, tx, moment, purchase, reached)
    elif original is not None and original.kind in SALE_KINDS:
        refunded = -sum(amount for _code, amount in entries if amount < 0)
        _refund_purchase(session, original.id, refunded, reached)


def _occurred_at(session: Session, tx) -> datetime:
    """When the money was earned, which is what the boards date by: the posting time
    for an online sale (paid then), the day of an offline sale or of an income payment
    as the village team recorded it (often entered later, in a batch)."""
    from shop.offline.models import HouseholdIncome, OfflineSale

    if tx.kind == "offline_sale":
        sold_at = session.scalar(
            select(OfflineSale.sold_at).where(OfflineSale.transaction_id == tx.id)
        )
        return sold_at or tx.created_at
    if tx.kind.startswith("income_"):
        found = session.execute(
            select(HouseholdIncome.paid_on, HouseholdIncome.period).where(
                HouseholdIncome.transaction_id == tx.id
            )
        ).first()
        if found is not None:
            day = found.paid_on or period_end(found.period)
            if day is not None:
                return min(datetime.combine(day, time(12), tzinfo=SHANGHAI), tx.created_at)
    return tx.created_at


def period_end(period: str) -> date | None:
    """The last day of an income period: ``2025`` → 2025-12-31, ``2025-03`` → 2025-03-31,
    ``2025-Q1`` → 2025-03-31, ``2025-H2`` → 2025-12-31 (income for a period is earned by
    its end). None for anything else."""
    try:
        year = int(period[:4])
        rest = period[5:]
        if len(period) == 4:
            month = 12
        elif rest.startswith("Q"):
            month = 3 * int(rest[1:])
        elif rest.startswith("H"):
            month = 6 * int(rest[1:])
        else:
            month = int(rest)
        if not 1 <= month <= 12:
            return None
        following = date(year + (month == 12), month % 12 + 1, 1)
    except ValueError:
        return None
    return following - timedelta(days=1)


def _month(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m")


def _periods(moment: datetime) -> list[str]:
    local = moment.astimezone(SHANGHAI)
    return ["all", f"m:{local:%Y-%m}", f"d:{local:%Y-%m-%d}"]


def _digest(value: str) -> str:
    """A keyed digest (never published) that tells buyers apart without naming them."""
    from shop.pii import cipher

    return cipher().blind_index(value)


@dataclass
class _Purchase:
    source: str
    order_id: int | None
    display: str
    label: str
    organization: str
    items: list[dict]
    amount_fen: int
    who: str
    rank_key: str | None = None
    org_key: str | None = None
    units: int = field(init=False)

    def __post_init__(self):
        self.units = sum(item["quantity"] for item in self.items)


def _public_identity(display: str, name: str, organization: str) -> tuple[str, str, str]:
    shown = public_identity(display, organization=organization, label=name)
    return shown.display, shown.label, shown.organization


def _purchase_of(session: Session, tx) -> _Purchase | None:
    """The public facts of a posted sale: an online order or an offline sale record."""
    from shop.orders.models import Order

    if tx.kind == "sale" and tx.key.startswith("sale:"):
        order = session.scalar(select(Order).where(Order.trade_no == tx.key[len("sale:") :]))
        if order is None:
            return None
        display, label, organization = _public_identity(
            order.board_display, order.board_name, order.organization
        )
        phone = order.buyer_phone or order.order_no
        items = [
            {
                "slug": line.product_slug,
                "name": line.product_name,
                "quantity": line.quantity,
                "unit": line.unit,
            }
            for line in order.lines
        ]
        return _Purchase(
            "online",
            order.id,
            display,
            label,
            organization,
            items,
            order.total_fen,
            who=_digest(f"board-buyer:phone:{phone}"),
            rank_key=None if display == "anonymous" else _digest(f"board-rank:{phone}|{label}"),
            org_key=_org_key(organization),
        )
    if tx.kind == "offline_sale":
        try:
            from shop.offline.models import OfflineSale
        except ImportError:  # pragma: no cover - offline sales not installed
            return None
        from shop.catalog.models import Product

        record = session.scalar(select(OfflineSale).where(OfflineSale.transaction_id == tx.id))
        if record is None:
            return None
        display, label, organization = _public_identity(
            record.board_display, record.board_name, record.organization
        )
        slug = session.scalar(select(Product.slug).where(Product.id == record.product_id))
        items = [
            {
                "slug": slug or "",
                "name": record.product_name,
                "quantity": record.quantity,
                "unit": record.unit,
            }
        ]
        # Offline buyers leave no phone number: a receipt number names one buyer within
        # its session, otherwise each sale is its own buyer. Only a chosen nickname
        # groups sales in the ranking; a masked "王*" at the hall is not one person.
        buyer = f"{record.session_id}:{record.receipt_no}" if record.receipt_no else record.row_key
        rank_identity = f"nick|{label}" if display == "nickname" else f"sale|{buyer}"
        return _Purchase(
            "offline",
            None,
            display,
            label,
            organization,
            items,
            record.total_fen,
            who=_digest(f"board-buyer:offline:{buyer}"),
            rank_key=None
            if display == "anonymous"
            else _digest(f"board-rank:offline|{rank_identity}"),
            org_key=_org_key(organization),
        )
    return None


def _org_key(organization: str) -> str | None:
    if not organization:
        return None
    return hashlib.sha256(f"org:{organization}".encode()).hexdigest()


def _add_purchase(
    session: Session, tx, moment: datetime, p: _Purchase, reached: dict[str, int]
) -> None:
    share = sum(reached.values())
    adds = {"orders": 1, "units": p.units, "amount_fen": p.amount_fen, "beneficiary_fen": share}
    for period in _periods(moment):
        seen = _upsert(
            session,
            _RANK,
            {"period": period, "kind": "who", "key": p.who},
            dict(adds),
            returning="orders",
        )
        _upsert(session, _PERIOD, {"period": period}, {**adds, "buyers": 1 if seen == 1 else 0})
        if p.rank_key:
            _upsert(
                session,
                _RANK,
                {"period": period, "kind": "buyer", "key": p.rank_key},
                dict(adds),
                sets={"label": p.label},
            )
        if p.org_key:
            _upsert(
                session,
                _RANK,
                {"period": period, "kind": "org", "key": p.org_key},
                dict(adds),
                sets={"label": p.organization},
            )
    feed = BoardFeed(
        transaction_id=tx.id,
        source=p.source,
        order_id=p.order_id,
        at=moment,
        board_display=p.display,
        board_name=p.label,
        organization=p.organization,
        items=json.dumps(p.items, ensure_ascii=False),
        units=p.units,
        amount_fen=p.amount_fen,
        beneficiary_fen=share,
        refunded_fen=0,
        who_key=p.who,
        rank_key=p.rank_key,
        org_key=p.org_key,
    )
    session.add(feed)
    session.flush()
    if reached:
        session.execute(
            _insert(session)(_FEED_HOUSEHOLD),
            [
                {"feed_id": feed.id, "household_code": c, "amount_fen": f}
                for c, f in sorted(reached.items())
            ],
        )
        _upsert_rows(
            session,
            _HOUSEHOLD,
            ["household_code"],
            [{"household_code": code, "purchases": 1} for code in sorted(reached)],
        )


def _refund_purchase(session: Session, sale_id: int, refunded: int, reached: dict[str, int]):
    feed = session.scalar(select(BoardFeed).where(BoardFeed.transaction_id == sale_id))
    if feed is None:
        return
    in_full = feed.refunded_fen + refunded >= feed.amount_fen
    share = sum(reached.values())  # negative: taken back from households
    changes = {
        "orders": -1 if in_full else 0,
        "units": -feed.units if in_full else 0,
        "amount_fen": -refunded,
        "beneficiary_fen": share,
    }
    for period in _periods(feed.at):
        left = session.execute(
            update(_RANK)
            .where(_RANK.c.period == period, _RANK.c.kind == "who", _RANK.c.key == feed.who_key)
            .values({name: _RANK.c[name] + change for name, change in changes.items()})
            .returning(_RANK.c.orders)
        ).scalar()
        gone = 1 if in_full and left == 0 else 0
        session.execute(
            update(_PERIOD)
            .where(_PERIOD.c.period == period)
            .values(
                {
                    **{name: _PERIOD.c[name] + change for name, change in changes.items()},
                    "buyers": _PERIOD.c.buyers - gone,
                }
            )
        )
        for kind, key in (("buyer", feed.rank_key), ("org", feed.org_key)):
            if key:
                session.execute(
                    update(_RANK)
                    .where(_RANK.c.period == period, _RANK.c.kind == kind, _RANK.c.key == key)
                    .values({name: _RANK.c[name] + change for name, change in changes.items()})
                )
    feed.refunded_fen += refunded
    feed.beneficiary_fen += share
    for code, fen in reached.items():
        session.execute(
            update(_FEED_HOUSEHOLD)
            .where(_FEED_HOUSEHOLD.c.feed_id == feed.id, _FEED_HOUSEHOLD.c.household_code == code)
            .values(amount_fen=_FEED_HOUSEHOLD.c.amount_fen + fen)
        )
    session.flush()


def rebuild(session: Session | None = None) -> int:
    """Empty the aggregates and fold the whole ledger again (no commit). Takes the
    ledger head's lock first, as a posting does, so nothing is posted meanwhile."""
    from ledger.posting import _lock_head

    session = session or db.session
    _lock_head(session)
    for model in (
        BoardFeedHousehold,
        BoardFeed,
        BoardRank,
        BoardPeriod,
        BoardHouseholdMonth,
        BoardMonth,
        BoardHousehold,
        BoardState,
    ):
        session.execute(model.__table__.delete())
    return follow_ledger(session, batch=2000)


# --- reading ----------------------------------------------------------------------------


def board_version() -> int:
    """The last ledger transaction on the boards: every change to them moves it."""
    return (
        db.session.execute(select(_STATE.c.last_transaction_id).where(_STATE.c.id == 1)).scalar()
        or 0
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


def _household_names(codes) -> dict[str, str]:
    codes = sorted(set(codes))
    if not codes:
        return {}
    return dict(
        db.session.execute(
            select(Household.code, Household.name_masked).where(Household.code.in_(codes))
        ).all()
    )


def _feed_json(feeds: list[BoardFeed]) -> list[dict]:
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
    names = _household_names(code for rows in parts.values() for code, _fen in rows)
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
    return _feed_json(feeds)


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
    purchases = _feed_json(feeds)
    for purchase in purchases:  # this household's part of each purchase
        purchase["to_household_fen"] = next(
            (h["amount_fen"] for h in purchase["households"] if h["code"] == code), 0
        )
    from ledger.statements import latest_lines

    statement = latest_lines(
        db.session, HOUSEHOLD_PREFIX + code, STATEMENT_LINES, before_id=statement_before
    )
    return HouseholdPage(found[0], monthly_income(code), purchases, statement)


def find_household_code(query: str) -> str | None:
    query = (query or "").strip()
    if not query:
        return None
    return db.session.scalar(
        select(Household.code).where(func.upper(Household.code) == query.upper())
    )


# --- the order trace page ---------------------------------------------------------------


@dataclass
class Trace:
    order: object
    ledger: object  # shop.benefits.services.OrderLedgerView or None
    items: list[dict]


def trace(token: str) -> Trace | None:
    """What the public may see of an order by its token (no buyer details but the name
    they chose to appear under)."""
    from shop.benefits.services import order_ledger_view
    from shop.orders.services import order_by_token

    order = order_by_token(token) if token and len(token) <= 64 else None
    if order is None or order.status in ("pending_payment", "cancelled"):
        return None
    items = [
        {
            "name": line.product_name,
            "slug": line.product_slug,
            "quantity": line.quantity,
            "unit": line.unit,
            "line_total_fen": line.line_total_fen,
        }
        for line in order.lines
    ]
    return Trace(order, order_ledger_view(order), items)


def public_buyer(order) -> tuple[str, str]:
    """(name, organisation) as the buyer chose to appear."""
    _display, label, organization = _public_identity(
        order.board_display, order.board_name, order.organization
    )
    return label, organization


# --- open data --------------------------------------------------------------------------


def iter_purchases(batch: int = 1000):
    """Every purchase on the love board, oldest first, in batches (keyset paging)."""
    last = 0
    while True:
        feeds = list(
            db.session.scalars(
                select(BoardFeed).where(BoardFeed.id > last).order_by(BoardFeed.id).limit(batch)
            )
        )
        if not feeds:
            return
        yield from _feed_json(feeds)
        last = feeds[-1].id
        db.session.expunge_all()


def iter_ledger_entries():
    """Every ledger entry with its transaction, in posting order, from the public export:
    (id, key, kind, created_at, reverses, position, account, amount_fen, hash)."""
    from ledger.export import iter_export

    for tx in iter_export(db.session):
        for position, entry in enumerate(tx["entries"]):
            yield (
                tx["id"], tx["key"], tx["kind"], tx["created_at"], tx["reverses"] or "",
                position, entry["account"], entry["amount_fen"], tx["hash"],
            )  # fmt: skip


def public_base_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/")


def today_label(now: datetime | None = None) -> str:
    return (now or utcnow()).astimezone(SHANGHAI).strftime("%Y-%m-%d")


# --- product pages: whom a product helps ------------------------------------------------


def product_households(product_id: int, limit: int = 60) -> list[dict]:
    """The first ``limit`` households (by code) the product's current benefit rule
    credits — code, masked name, and all its income from sales of every product so far —
    for "whom does this bottle help" on the product page and a scanned label. The
    caller tells how many there are in all with :func:`product_household_count`."""
    from ledger.rules import latest_rule, rule_in_force

    rule = rule_in_force(db.session, product_id, utcnow()) or latest_rule(db.session, product_id)
    if rule is None:
        return []
    codes = [link.household_code for link in rule.households][:limit]
    names = _household_names(codes)
    sales = (
        dict(
            db.session.execute(
                select(_HOUSEHOLD.c.household_code, _HOUSEHOLD.c.sales_fen).where(
                    _HOUSEHOLD.c.household_code.in_(codes)
                )
            ).all()
        )
        if codes
        else {}
    )
    return [
        {"code": code, "name_masked": names.get(code, ""), "sales_fen": int(sales.get(code, 0))}
        for code in codes
    ]


MAX_LABEL_ORDERS = 40


@dataclass
class LabelSheet:
    labels: list[dict]  # title, subtitle, url, qr (inline SVG), share_fen, unit
    products: list  # every published product, to choose from
    skipped: list[str]  # order numbers with no trace page (unknown or unpaid)


def label_sheet(chosen_slugs: set[str], copies: int, orders_text: str) -> LabelSheet:
    """QR labels: ``copies`` of each chosen published product (all when none is chosen),
    then one for the trace page of each paid order named in ``orders_text``. Call it
    within a request (URLs are built with ``url_for``)."""
    from flask import url_for

    from shop.boards.qr import qr_svg
    from shop.catalog.models import Product

    base = public_base_url()
    published = list(
        db.session.scalars(
            select(Product).where(Product.status == "published").order_by(Product.id)
        )
    )

    def label(title: str, subtitle: str, url: str, share_fen: int = 0, unit: str = "") -> dict:
        qr = qr_svg(url, scale=3, inline=True)
        return {"title": title, "subtitle": subtitle, "url": url, "qr": qr,
                "share_fen": share_fen, "unit": unit}  # fmt: skip

    labels = []
    for product in published:
        if chosen_slugs and product.slug not in chosen_slugs:
            continue
        url = base + url_for("catalog.product", slug=product.slug)
        one = label(product.name, _("扫码看看它帮到了谁"), url, product.beneficiary_fen_per_unit,
                    product.unit)  # fmt: skip
        labels += [one] * copies
    orders, skipped = traceable_orders(orders_text)
    for order in orders:
        url = base + url_for("boards.trace", token=order.token)
        labels.append(label(order.order_no, _("扫码查看帮到的农户"), url))
    return LabelSheet(labels, published, skipped)


def traceable_orders(numbers_text: str) -> tuple[list, list[str]]:
    """Paid (or later) orders named by number in ``numbers_text`` (separated by spaces,
    commas or new lines), in the order given, and the numbers that are unknown or not
    paid (no trace page to print)."""
    import re

    from shop.orders.models import Order

    numbers = list(dict.fromkeys(re.findall(r"[A-Za-z0-9-]{6,40}", numbers_text or "")))
    numbers = numbers[:MAX_LABEL_ORDERS]
    if not numbers:
        return [], []
    found = {
        order.order_no: order
        for order in db.session.scalars(select(Order).where(Order.order_no.in_(numbers)))
        if order.status not in ("pending_payment", "cancelled")
    }
    return [found[n] for n in numbers if n in found], [n for n in numbers if n not in found]


def product_household_count(product_id: int) -> int:
    from ledger.rules import latest_rule, rule_in_force

    rule = rule_in_force(db.session, product_id, utcnow()) or latest_rule(db.session, product_id)
    return len(rule.households) if rule is not None else 0
