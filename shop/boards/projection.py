"""Keeping the public boards in step with the ledger: the one folding path.

:func:`follow_ledger` folds every ledger transaction after the watermark
(``board_state.last_transaction_id``) into the aggregates, in posting order, and
advances the watermark — in the caller's database transaction, without committing. It
runs just before the commit of any session that appended to the ledger (a SQLAlchemy
``before_commit`` listener on the ledger's ``APPENDED`` mark), so every kind of posting
— online sales and refunds in the transaction that marks the order paid or refunded,
offline sales, land rent, wages, dividends, co-op shares, their reversals, payouts —
reaches the boards in the transaction that posted it. (Until the clean-up of issue 14
online sales were also folded by paid and refund hooks, which always found nothing
left to fold; the suite passes with the hooks gone and fails with the listener gone.)

Postings are serialised by the ledger head's lock, which the posting transaction still
holds when it folds, so each transaction is folded exactly once and in order, across
any number of workers. What is folded (amounts in fen):

- a credit to ``household:<code>`` by a transaction of kind ``sale`` / ``offline_sale``
  (channel *sales*), ``income_land`` (*land*), ``income_wages`` (*wages*),
  ``income_dividend`` (*dividends*) or ``income_coop`` (*coop*) adds to that household's
  column and month; a reversal (any transaction whose ``reverses`` names one of those)
  takes its household debits off the same column, in the month of the original. Payouts
  move money out of household accounts but are not income, so they are not folded;
- a sale whose :class:`PurchaseSource` describes it (an online order, an offline sale
  record) becomes a purchase on the love board (feed, totals, rankings for the day,
  month and all time of the sale in Asia/Shanghai); its refunds lower amount and
  households' share, and a purchase refunded in full no longer counts as an order, its
  units, or its buyer.

The projection knows nothing of orders or offline sales: each package that posts sales
or income registers, per transaction kind, how to describe the purchase and when the
money was earned (:func:`register_source`; wired in ``create_app``). Buyers who chose
to be anonymous are counted in totals, shown as 爱心人士, never ranked, and their
organisation is never shown.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import event, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ledger import (
    APPENDED,
    CHANNEL_OF_KIND,
    SALE_KINDS,
    Account,
    Entry,
    Transaction,
    household_code,
    lock_head,
)
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
from shop.extensions import db
from shop.formatting import SHANGHAI
from shop.pii import cipher
from shop.public_identity import PublicIdentity

BATCH = 500
_SOURCES = "board_sources"

_STATE = BoardState.__table__
_PERIOD = BoardPeriod.__table__
_RANK = BoardRank.__table__
_HOUSEHOLD = BoardHousehold.__table__
_HOUSEHOLD_MONTH = BoardHouseholdMonth.__table__
_MONTH = BoardMonth.__table__
_FEED_HOUSEHOLD = BoardFeedHousehold.__table__


@dataclass(frozen=True)
class PostedTransaction:
    """What the projection reads of a ledger transaction (no entries)."""

    id: int
    key: str
    kind: str
    created_at: datetime
    reverses_id: int | None


@dataclass
class Purchase:
    """The public facts of a sale, as its source describes them.

    ``buyer_key`` tells buyers apart (``phone:<number>``, ``offline:<receipt>``) and
    ``rank_identity`` groups a buyer's purchases in the rankings; both are turned into
    keyed digests here and never published. ``items`` are ``{"slug", "name", "quantity",
    "unit"}``; ``amount_fen`` is what the buyer paid.
    """

    source: str  # "online" | "offline"
    order_id: int | None
    identity: PublicIdentity
    items: list[dict]
    amount_fen: int
    buyer_key: str
    rank_identity: str
    # A registered organisation's id (shop/organisations): its ranking among the
    # organisations is keyed by it, so a buyer typing the same name is not counted in.
    organisation_id: int | None = None
    units: int = field(init=False)

    def __post_init__(self):
        self.units = sum(item["quantity"] for item in self.items)


# How a package describes what its postings mean on the boards (both get the session
# and the posted transaction; both may return None: "nothing to add").
PurchaseSource = Callable[[Session, PostedTransaction], Purchase | None]
EarnedAt = Callable[[Session, PostedTransaction], datetime | None]


@dataclass
class _Source:
    purchase: PurchaseSource | None = None
    earned_at: EarnedAt | None = None


def register_source(
    app, kind: str, purchase: PurchaseSource | None = None, earned_at: EarnedAt | None = None
) -> None:
    """Tell the boards how to read postings of ``kind``: ``purchase`` describes a sale
    for the love board, ``earned_at`` says when its money was earned (the boards date
    by it; default: the posting time)."""
    sources = app.extensions.setdefault(_SOURCES, {})
    source = sources.setdefault(kind, _Source())
    if purchase is not None:
        source.purchase = purchase
    if earned_at is not None:
        source.earned_at = earned_at


def _source(kind: str) -> _Source:
    return current_app.extensions.get(_SOURCES, {}).get(kind) or _Source()


# --- following the ledger ---------------------------------------------------------------

_listening = False


def start_following() -> None:
    """Fold before every commit of a session that appended to the ledger (once per
    process; the listeners sit on Flask-SQLAlchemy's scoped session, not on plain
    sessions, which the ledger's own tests use)."""
    global _listening
    if _listening:
        return
    _listening = True
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
        rows = [
            PostedTransaction(*row)
            for row in session.execute(
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
            )
        ]
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
                row[0]: PostedTransaction(*row)
                for row in session.execute(
                    select(
                        Transaction.id,
                        Transaction.key,
                        Transaction.kind,
                        Transaction.created_at,
                        Transaction.reverses_id,
                    ).where(Transaction.id.in_(sorted(wanted)))
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


def _fold(
    session: Session,
    tx: PostedTransaction,
    entries: list[tuple[str, int]],
    original: PostedTransaction | None,
) -> None:
    # Income to each household: credits are negative entries on its payable account.
    reached: dict[str, int] = defaultdict(int)
    for account, amount in entries:
        code = household_code(account)
        if code is not None:
            reached[code] -= amount
    reached = {code: fen for code, fen in reached.items() if fen}

    if tx.kind in CHANNEL_OF_KIND:
        channel, moment = CHANNEL_OF_KIND[tx.kind], _earned_at(session, tx)
    elif original is not None and original.kind in CHANNEL_OF_KIND:
        channel, moment = CHANNEL_OF_KIND[original.kind], _earned_at(session, original)
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
        describe = _source(tx.kind).purchase
        purchase = describe(session, tx) if describe is not None else None
        if purchase is not None:
            _add_purchase(session, tx, moment, purchase, reached)
    elif original is not None and original.kind in SALE_KINDS:
        refunded = -sum(amount for _code, amount in entries if amount < 0)
        _refund_purchase(session, original.id, refunded, reached)


def _earned_at(session: Session, tx: PostedTransaction) -> datetime:
    """When the money was earned, which is what the boards date by: the posting time
    unless the kind's source knows better (an offline sale's day, an income's payday)."""
    earned_at = _source(tx.kind).earned_at
    moment = earned_at(session, tx) if earned_at is not None else None
    return moment or tx.created_at


def _month(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m")


def _periods(moment: datetime) -> list[str]:
    local = moment.astimezone(SHANGHAI)
    return ["all", f"m:{local:%Y-%m}", f"d:{local:%Y-%m-%d}"]


def _digest(value: str) -> str:
    """A keyed digest (never published) that tells buyers apart without naming them."""
    return cipher().blind_index(value)


def _org_key(organization: str, organisation_id: int | None = None) -> str | None:
    if not organization:
        return None
    if organisation_id is not None:
        return hashlib.sha256(f"org-id:{organisation_id}".encode()).hexdigest()
    return hashlib.sha256(f"org:{organization}".encode()).hexdigest()


def _add_purchase(
    session: Session,
    tx: PostedTransaction,
    moment: datetime,
    p: Purchase,
    reached: dict[str, int],
) -> None:
    shown = p.identity
    who = _digest(f"board-buyer:{p.buyer_key}")
    rank_key = None if shown.display == "anonymous" else _digest(f"board-rank:{p.rank_identity}")
    org_key = _org_key(shown.organization, p.organisation_id)
    share = sum(reached.values())
    adds = {"orders": 1, "units": p.units, "amount_fen": p.amount_fen, "beneficiary_fen": share}
    for period in _periods(moment):
        seen = _upsert(
            session,
            _RANK,
            {"period": period, "kind": "who", "key": who},
            dict(adds),
            returning="orders",
        )
        _upsert(session, _PERIOD, {"period": period}, {**adds, "buyers": 1 if seen == 1 else 0})
        if rank_key:
            _upsert(
                session,
                _RANK,
                {"period": period, "kind": "buyer", "key": rank_key},
                dict(adds),
                sets={"label": shown.label},
            )
        if org_key:
            _upsert(
                session,
                _RANK,
                {"period": period, "kind": "org", "key": org_key},
                dict(adds),
                sets={"label": shown.organization},
            )
    feed = BoardFeed(
        transaction_id=tx.id,
        source=p.source,
        order_id=p.order_id,
        at=moment,
        board_display=shown.display,
        board_name=shown.label,
        organization=shown.organization,
        items=json.dumps(p.items, ensure_ascii=False),
        units=p.units,
        amount_fen=p.amount_fen,
        beneficiary_fen=share,
        refunded_fen=0,
        who_key=who,
        rank_key=rank_key,
        org_key=org_key,
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
    session = session or db.session
    lock_head(session)
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
