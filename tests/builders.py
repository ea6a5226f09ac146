"""Small builders for test data: ``make_product(**overrides)`` and friends.

Each commits what it builds, so the app under test sees it through its own session.
"""

import io
import itertools

from PIL import Image

from shop.auth.models import User
from shop.catalog.models import Category, Product
from shop.extensions import db
from shop.households.models import Household, Village

_counter = itertools.count(1)


def make_user(username=None, password="password-123", role="buyer", **overrides) -> User:
    user = User(username=username or f"user{next(_counter)}", role=role, **overrides)
    user.display_name = user.display_name or user.username
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


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
