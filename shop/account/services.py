"""A signed-in buyer's own side: their orders, and the households those orders reached.

Everything here is keyed by the buyer's user id and nothing else: an order appears
only if it was placed while signed in as that buyer (``shop_order.user_id``), so no
guessed order number or id ever shows another buyer's order.

"My impact" is read from the ledger, not from the orders: for every sale transaction
paid by one of the buyer's orders (``sale:<trade_no>``) and every refund reversing one,
the entries on household accounts, summed per household. A household's figure is what
it received from this buyer, in fen, refunds already taken back — the same fen the
public ledger shows, so anyone can check it against the export.
"""

from dataclasses import dataclass
from itertools import pairwise

from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update

from ledger import HOUSEHOLD_PREFIX, Account, Entry, Transaction
from shop.cart import services as cart_services
from shop.errors import UserError
from shop.extensions import db
from shop.households.models import Household, Village
from shop.orders.ledger_view import sale_key
from shop.orders.models import Order, OrderLine
from shop.orders.services import is_order_token

MY_ORDERS_PAGE = 50
# Orders whose money was received (a refunded one still reached households until refunded).
PAID_STATUSES = ("paid", "shipped", "completed", "refunded")


@dataclass(frozen=True)
class HouseholdReached:
    code: str
    name_masked: str
    village: str
    amount_fen: int  # received from this buyer's orders, refunds subtracted


@dataclass(frozen=True)
class Impact:
    households: list[HouseholdReached]  # largest amount first
    paid_orders: int
    units: int
    to_households_fen: int


def my_orders(user_id: int, limit: int = MY_ORDERS_PAGE) -> list[Order]:
    """The buyer's orders, newest first (every status)."""
    return list(
        db.session.scalars(
            select(Order)
            .where(Order.user_id == user_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(limit)
        )
    )


def my_impact(user_id: int) -> Impact:
    """What the buyer's paid orders gave each household, from the ledger (see above)."""
    return impact_of(Order.user_id == user_id)


def impact_of(whose) -> Impact:
    """What the paid orders matching ``whose`` (an SQL condition on :class:`Order`: one
    buyer's, one organisation's) gave each household, from the ledger's allocations,
    refunds subtracted; units are those not restocked by a refund."""
    paid_where = (whose, Order.status.in_(PAID_STATUSES), Order.trade_no.is_not(None))
    trade_nos = list(db.session.scalars(select(Order.trade_no).where(*paid_where)))
    units = db.session.scalar(
        select(func.coalesce(func.sum(OrderLine.quantity - OrderLine.restocked), 0))
        .join(Order, Order.id == OrderLine.order_id)
        .where(*paid_where)
    )
    keys = [sale_key(trade_no) for trade_no in trade_nos]
    amounts: dict[str, int] = {}
    if keys:
        sales = select(Transaction.id).where(Transaction.key.in_(keys))
        rows = db.session.execute(
            select(Account.code, func.sum(Entry.amount_fen))
            .join(Entry, Entry.account_id == Account.id)
            .join(Transaction, Transaction.id == Entry.transaction_id)
            .where(Account.kind == "household")
            .where(or_(Transaction.id.in_(sales), Transaction.reverses_id.in_(sales)))
            .group_by(Account.code)
        )
        # Credits to a household are negative entries; a refund's reversal is positive.
        amounts = {code[len(HOUSEHOLD_PREFIX) :]: -int(total) for code, total in rows}
    amounts = {code: fen for code, fen in amounts.items() if fen}
    names = {
        code: (masked, village or "")
        for code, masked, village in db.session.execute(
            select(Household.code, Household.name_masked, Village.name)
            .outerjoin(Village, Village.id == Household.village_id)
            .where(Household.code.in_(list(amounts)))
        )
    }
    households = sorted(
        (
            HouseholdReached(code, *names.get(code, (code, "")), amount_fen=fen)
            for code, fen in amounts.items()
        ),
        key=lambda h: (-h.amount_fen, h.code),
    )
    return Impact(
        households=households,
        paid_orders=len(trade_nos),
        units=int(units or 0),
        to_households_fen=sum(amounts.values()),
    )


def _token_in(token_or_link: str) -> str:
    """The order token in what a buyer pasted: the token itself, or any link the shop
    gave them (``…/orders/T``, ``…/orders/T/return``, ``…/trace/T``, with or without a
    query string)."""
    segments = token_or_link.strip().split("?")[0].split("#")[0].strip("/").split("/")
    for before, after in pairwise(segments):
        if before in ("orders", "trace"):
            return after
    return segments[-1]


def claim_order(user_id: int, token_or_link: str) -> bool:
    """Add an order placed without an account (as a guest) to the buyer's account; commit.

    Holding the order's secret token is the proof: the link the buyer was given at
    checkout (``/orders/<token>``), pasted whole or as the token. True when the order
    is (now or already) the buyer's. An unknown token and another account's order give
    the same False, so nothing is learnt by trying. The claim is one conditional UPDATE
    (``user_id IS NULL``), so two accounts racing for one order cannot both get it.
    """
    token = _token_in(token_or_link or "")
    if not is_order_token(token):
        return False
    claimed = db.session.execute(
        update(Order)
        .where(Order.token == token, Order.user_id.is_(None))
        .values(user_id=user_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if claimed == 1:
        return True
    mine = select(Order.id).where(Order.token == token, Order.user_id == user_id)
    return db.session.scalar(mine) is not None


def reorder(user_id: int, order_no: str) -> tuple[int, list[str]]:
    """Put the lines of one of the buyer's orders back in their cart, at today's prices.

    Returns (lines added, names of products that could not be added: no longer on sale,
    or the cart would go over a limit). Raises
    :class:`UserError` for an order that is not this buyer's (or does not exist).
    """
    order = db.session.scalar(
        select(Order).where(Order.order_no == (order_no or "")[:32], Order.user_id == user_id)
    )
    if order is None:
        raise UserError(_("没有找到这个订单。"), code="not_found")
    added, unavailable = 0, []
    for line in order.lines:
        try:
            cart_services.add_item(user_id, {}, line.product_id, line.quantity)
        except UserError:
            unavailable.append(line.product_name)
        else:
            added += 1
    return added, unavailable
