"""Limits on what unpaid orders may hold, so nobody can empty the shop without paying.

An unpaid order reserves its stock until it is paid or expires
(``ORDER_EXPIRY_MINUTES``). Without a limit a script placing unpaid orders — from the
checkout page or the JSON API — takes every unit off the shelf for half an hour, again
and again. So an order placed through a public door (a :class:`Requester` is given)
is refused while the same **phone**, the same **buyer account** or the same **client
address** already holds too many unexpired unpaid orders or units:

=====================  =========================  =============================
who                    orders (config key)        units (config key)
=====================  =========================  =============================
a phone, an account    ``UNPAID_ORDERS_PER_BUYER``  ``UNPAID_UNITS_PER_BUYER``
a client address       ``UNPAID_ORDERS_PER_CLIENT`` ``UNPAID_UNITS_PER_CLIENT``
=====================  =========================  =============================

An order placed *for an organisation the village team has verified*
(shop/organisations) is counted against that organisation instead — all its members'
unpaid orders for it together — with ``UNPAID_ORDERS_PER_ORGANISATION`` and
``UNPAID_UNITS_PER_ORGANISATION``: a festival order of hundreds of boxes is normal there
and must not trip a person's limit. An organisation not yet verified gets no more room
than the person ordering (its own limit applies as well): anyone can make up a code with
a right check character, so registering one must not be a way around the limits.

A client address gets more room than a buyer because many real buyers share one (an
office, a village service centre, a mobile carrier's NAT). Paying, or the order
expiring, frees the room at once: only ``pending_payment`` orders whose ``expires_at``
is still ahead are counted, so a late expiry job never locks a buyer out.

Phones and addresses are never stored in clear for this: the order keeps keyed
digests (the PII key's blind index), which compare equal without revealing anything.

The count and the insert that follows must not race (two checkouts from one script at
the same moment would both see room). On PostgreSQL each key is taken with a
transaction-level advisory lock before counting, so checkouts of one key queue up
across processes and hosts while checkouts of different keys never wait for each
other; keys are locked in sorted order, before any product row, so two checkouts
cannot wait on each other in a cycle. SQLite has one writer at a time.

Callers inside the shop (tests, benchmarks, staff tools) that pass no requester are
not limited: the limits guard the doors the public uses.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, text

from shop.extensions import db
from shop.orders.models import Order, OrderLine
from shop.pii import cipher


@dataclass(frozen=True)
class Refusal:
    """Why an order does not fit: a message for people, facts for the API."""

    message: str
    details: dict


@dataclass(frozen=True)
class Requester:
    """Who is at the door: the client's address as the app sees it (after ProxyFix)."""

    client_address: str | None


@dataclass(frozen=True)
class HoldKeys:
    """The digests an order is counted under (``None``: not known for this order)."""

    phone_digest: str
    client_digest: str | None
    user_id: int | None
    organisation_id: int | None = None
    organisation_verified: bool = False


def keys_for(
    phone: str,
    user_id: int | None,
    requester: Requester | None,
    organisation_id: int | None = None,
    organisation_verified: bool = False,
) -> HoldKeys:
    """Digest the phone (normalised already) and the client address of ``requester``."""
    index = cipher().blind_index
    address = requester.client_address if requester else None
    return HoldKeys(
        phone_digest=index("phone:" + phone),
        client_digest=index("client:" + address) if address else None,
        user_id=user_id,
        organisation_id=organisation_id,
        organisation_verified=organisation_verified,
    )


def _advisory_lock(name: str) -> None:
    key = int.from_bytes(hashlib.sha256(b"order-hold:" + name.encode()).digest()[:8], "big")
    key -= 1 << 63  # pg_advisory_xact_lock takes a signed 64-bit integer
    db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _held(condition, now: datetime) -> tuple[int, int]:
    """(unpaid orders, units in them) of the orders matching ``condition``."""
    orders = (
        select(Order.id)
        .where(condition, Order.status == "pending_payment", Order.expires_at > now)
        .subquery()
    )
    count = db.session.scalar(select(func.count()).select_from(orders))
    units = db.session.scalar(
        select(func.coalesce(func.sum(OrderLine.quantity), 0)).where(
            OrderLine.order_id.in_(select(orders.c.id))
        )
    )
    return int(count or 0), int(units or 0)


def check_room(keys: HoldKeys, units: int, now: datetime) -> Refusal | None:
    """``None`` if an order of ``units`` more fits every limit, else why it does not.

    Call inside the transaction that then inserts the order (the advisory locks are
    held until it ends).
    """
    config = current_app.config
    organisation_check = (
        Order.organisation_id == keys.organisation_id,
        config["UNPAID_ORDERS_PER_ORGANISATION"],
        config["UNPAID_UNITS_PER_ORGANISATION"],
        f"organisation:{keys.organisation_id}",
    )
    if keys.organisation_id is not None and keys.organisation_verified:
        # A verified organisation's festival order is one buyer's hundreds of boxes:
        # counted against the organisation (all its members together), not the person
        # or the office network that places it.
        return _first_refusal([organisation_check], units, now)
    checks = [
        (
            Order.phone_digest == keys.phone_digest,
            config["UNPAID_ORDERS_PER_BUYER"],
            config["UNPAID_UNITS_PER_BUYER"],
            "phone:" + keys.phone_digest,
        )
    ]
    if keys.user_id is not None:
        checks.append(
            (
                Order.user_id == keys.user_id,
                config["UNPAID_ORDERS_PER_BUYER"],
                config["UNPAID_UNITS_PER_BUYER"],
                f"user:{keys.user_id}",
            )
        )
    if keys.client_digest is not None:
        checks.append(
            (
                Order.client_digest == keys.client_digest,
                config["UNPAID_ORDERS_PER_CLIENT"],
                config["UNPAID_UNITS_PER_CLIENT"],
                "client:" + keys.client_digest,
            )
        )
    if keys.organisation_id is not None:  # not verified: the person's limits, and its own
        checks.append(organisation_check)
    return _first_refusal(checks, units, now)


def _first_refusal(checks: list, units: int, now: datetime) -> Refusal | None:
    """Lock each check's key (PostgreSQL), then the first limit an order of ``units``
    more would break, or ``None``."""
    config = current_app.config
    if db.session.get_bind().dialect.name == "postgresql":
        for name in sorted(check[3] for check in checks):
            _advisory_lock(name)
    minutes = config["ORDER_EXPIRY_MINUTES"]
    for condition, max_orders, max_units, _name in checks:
        held_orders, held_units = _held(condition, now)
        if held_orders + 1 > max_orders:
            return Refusal(
                _(
                    "已有 %(count)d 个未付款的订单。请先支付它们；未付款的订单 %(minutes)d "
                    "分钟后自动取消，之后可以再下单。",
                    count=held_orders,
                    minutes=minutes,
                ),
                {"unpaid_orders": held_orders, "max_unpaid_orders": max_orders},
            )
        if held_units + units > max_units:
            return Refusal(
                _(
                    "未付款的订单最多保留 %(max)d 件商品（已保留 %(held)d 件）。请先支付；"
                    "未付款的订单 %(minutes)d 分钟后自动取消。",
                    max=max_units,
                    held=held_units,
                    minutes=minutes,
                ),
                {"unpaid_units": held_units, "max_unpaid_units": max_units},
            )
    return None
