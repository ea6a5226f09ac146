"""Small builders for test data: ``make_product(**overrides)`` and friends.

Each commits what it builds, so the app under test sees it through its own session.
"""

import io
import itertools
import time
from datetime import UTC, datetime

import pyotp
from PIL import Image
from sqlalchemy import select

from shop.auth.models import User
from shop.catalog.models import Category, Product
from shop.extensions import db
from shop.households.models import Household, Village

_counter = itertools.count(1)


def make_user(
    username=None, password="password-123", role="buyer", two_factor=None, **overrides
) -> User:
    """A user; staff and admins come enrolled in two-factor login (as the console
    requires) unless ``two_factor=False`` — use :func:`totp_code` to log them in."""
    user = User(username=username or f"user{next(_counter)}", role=role, **overrides)
    user.display_name = user.display_name or user.username
    user.set_password(password)
    if two_factor if two_factor is not None else role in ("staff", "admin"):
        user.totp_secret = pyotp.random_base32()
        user.totp_enabled_at = datetime.now(UTC)
    db.session.add(user)
    db.session.commit()
    return user


def totp_code(username: str) -> str:
    """A code the server will accept for this user now: the current 30-second step, or
    the next one if the current step's code was used already (codes are single-use)."""
    db.session.expire_all()
    user = db.session.scalar(select(User).where(User.username == username))
    now = int(time.time()) // 30
    step = max(now, user.totp_last_step + 1)
    assert step <= now + 1, "two codes used in this step already: wait for the next"
    return pyotp.TOTP(user.totp_secret).at(step * 30)


def make_category(**overrides) -> Category:
    n = next(_counter)
    values = {"slug": f"cat-{n}", "name": f"分类{n}", "name_en": f"Category {n}"}
    values.update(overrides)
    category = Category(**values)
    db.session.add(category)
    db.session.commit()
    return category


def make_product(**overrides) -> Product:
    n = next(_counter)
    values = {
        "slug": f"product-{n}",
        "name": f"测试商品{n}",
        "price_fen": 15800,
        "stock": 100,
        "unit": "瓶",
        "beneficiary_fen_per_unit": 2000,
        "status": "published",
    }
    values.update(overrides)
    if values["status"] == "published" and "published_at" not in values:
        from shop.db import utcnow

        values["published_at"] = utcnow()
    product = Product(**values)
    db.session.add(product)
    db.session.commit()
    return product


def make_village(**overrides) -> Village:
    n = next(_counter)
    values = {"code": f"V{n}", "name": f"测试村{n}", "county": "城固县", "province": "陕西省"}
    values.update(overrides)
    village = Village(**values)
    db.session.add(village)
    db.session.commit()
    return village


def make_household(village=None, head_name="张三明", card="6217000012345678", **overrides):
    village = village or make_village()
    n = next(_counter)
    values = {"code": f"T-{n:03d}", "group_name": "一组", "members": 3}
    values.update(overrides)
    household = Household(village=village, **values)
    household.set_head_name(head_name)
    household.set_bank_card(card)
    db.session.add(household)
    db.session.commit()
    return household


def image_bytes(fmt="JPEG", size=(1200, 900), color=(200, 30, 40), **save_args) -> bytes:
    """A real image file of the given format, for upload tests."""
    mode = "RGBA" if fmt == "PNG" and save_args.pop("alpha", False) else "RGB"
    image = Image.new(mode, size, color)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def buyer(**overrides):
    """Checkout details of a fictional buyer."""
    from shop.orders.services import BuyerDetails

    values = {
        "name": "王小明",
        "phone": "13812345678",
        "address": "陕西省西安市雁塔区科技路1号",
        "board_display": "masked",
    }
    values.update(overrides)
    return BuyerDetails(**values)


def make_order(items, buyer_details=None, channel="pc", expiry_minutes=30, **kwargs):
    """Place an order through the real service; ``items`` is [(product, quantity), …]."""
    from shop.orders.services import RequestedLine, place_order

    lines = [RequestedLine(product.id, quantity) for product, quantity in items]
    return place_order(lines, buyer_details or buyer(), channel, expiry_minutes, **kwargs)


def in_app_thread(app, fn, *args):
    """Run ``fn(*args)`` in this thread with its own app context and session, as a
    separate web worker would; pass plain values in, never ORM objects."""
    with app.app_context():
        try:
            return fn(*args)
        finally:
            db.session.remove()


def approve_pending(approver_username: str = "checker") -> list:
    """Approve every pending proposal as a second admin (made if missing): what the
    second pair of eyes does, for tests about what happens after approval."""
    from shop.approvals import services as approvals

    approver = db.session.scalar(select(User).where(User.username == approver_username))
    if approver is None:
        approver = make_user(username=approver_username, role="admin")
    return [approvals.approve(p.id, approver) for p in approvals.pending()]


class SecondPairOfEyes:
    """An admin's test client whose proposals a second admin approves straight away:
    for tests about what a change does once approved, not about the approving."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def post(self, *args, **kwargs):
        response = self.client.post(*args, **kwargs)
        location = response.headers.get("Location", "") if response.status_code == 302 else ""
        if "/admin/proposals/" in location or (
            kwargs.get("follow_redirects") and "/admin/proposals/" in response.request.path
        ):
            approve_pending()
        return response
