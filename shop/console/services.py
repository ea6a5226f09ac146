"""The village team's catalogue work: products, their status, and their photos.

Every function owns its transaction: it commits on success and rolls back before
raising :class:`ConsoleError` (a message for the user, optionally naming a field).
Photo files are written before the row; if the row cannot be written the files this
upload created are removed, and a deleted photo's files are removed only when no
other row still uses the same content key.
"""

import re
import secrets
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from shop.benefits.services import change_share_per_unit
from shop.catalog.models import PRODUCT_STATUSES, Category, Product, ProductPhoto
from shop.db import utcnow
from shop.errors import UserError
from shop.extensions import db
from shop.media.services import PhotoRejected, remove_files, remove_photo_files, store_photo
from shop.money import parse_typed_yuan
from shop.orders.models import ORDER_STATUSES, Order
from shop.text import has_forbidden_characters

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
MAX_PRICE_FEN = 10_000_000  # ¥100,000 a unit: anything above is a typing mistake
MAX_STOCK = 1_000_000


class ConsoleError(UserError):
    """A product or photo change the village team can fix (``field`` names the input)."""


def yuan_to_fen(text: str | None, field: str) -> int:
    """Parse a yuan amount typed by a person ("158", "158.5", "¥158.50") into fen, by
    :func:`shop.money.parse_typed_yuan`'s rule. Raises ConsoleError naming ``field``."""
    try:
        return parse_typed_yuan(text)
    except ValueError:
        raise ConsoleError(_("请输入金额，例如 158 或 158.50（最多两位小数）。"), field) from None


@dataclass
class ProductInput:
    """Plain values for a product; money in fen."""

    name: str
    price_fen: int
    stock: int
    unit: str
    beneficiary_fen_per_unit: int
    slug: str = ""
    subtitle: str = ""
    category_id: int | None = None
    origin: str = ""
    producer: str = ""
    story: str = ""
    featured: bool = False


def _validate(values: ProductInput) -> None:
    for field, label in (
        ("name", _("商品名称")),
        ("subtitle", _("一句话介绍")),
        ("unit", _("单位")),
        ("origin", _("产地")),
        ("producer", _("生产者")),
        ("story", _("商品故事")),
    ):
        if has_forbidden_characters(getattr(values, field)):
            raise ConsoleError(_("%(label)s不能包含控制字符或无效字符。", label=label), field)
    if not values.name.strip():
        raise ConsoleError(_("请填写商品名称。"), "name")
    if values.slug and not SLUG_PATTERN.fullmatch(values.slug):
        raise ConsoleError(_("网址名只能用小写字母、数字和连字符。"), "slug")
    if not 0 < values.price_fen <= MAX_PRICE_FEN:
        raise ConsoleError(_("价格必须大于零且不超过 ¥100,000。"), "price")
    if not 0 <= values.stock <= MAX_STOCK:
        raise ConsoleError(_("库存必须在 0 到 1,000,000 之间。"), "stock")
    if not 0 <= values.beneficiary_fen_per_unit <= values.price_fen:
        raise ConsoleError(_("直达农户的金额不能超过售价。"), "beneficiary")
    if not values.unit.strip():
        raise ConsoleError(_("请填写单位，例如 瓶、斤、箱。"), "unit")
    if values.category_id is not None and db.session.get(Category, values.category_id) is None:
        raise ConsoleError(_("分类不存在。"), "category_id")


def _new_slug() -> str:
    return f"p-{secrets.token_hex(4)}"


def _apply(product: Product, values: ProductInput) -> None:
    product.name = values.name.strip()
    product.slug = values.slug or product.slug or _new_slug()
    product.subtitle = values.subtitle.strip()
    product.category_id = values.category_id
    product.price_fen = values.price_fen
    product.stock = values.stock
    product.unit = values.unit.strip()
    product.beneficiary_fen_per_unit = values.beneficiary_fen_per_unit
    product.origin = values.origin.strip()
    product.producer = values.producer.strip()
    product.story = values.story.strip()
    product.featured = values.featured


def _commit_product(product: Product) -> Product:
    _write_product(commit=True)
    return product


def _write_product(commit: bool) -> None:
    """Flush or commit the product; a slug another product has (the only unique column
    the form sets) rolls back and raises ConsoleError naming the slug."""
    try:
        db.session.commit() if commit else db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ConsoleError(_("这个网址名已被其他商品使用。"), "slug") from None


def create_product(values: ProductInput) -> Product:
    """Create a draft product (not public until published)."""
    _validate(values)
    product = Product(status="draft")
    _apply(product, values)
    db.session.add(product)
    return _commit_product(product)


def update_product(product_id: int, values: ProductInput) -> Product:
    """Change a product. Orders already placed keep their own frozen copy of the line."""
    product = _get(product_id)
    _validate(values)
    share_changed = values.beneficiary_fen_per_unit != product.beneficiary_fen_per_unit
    _apply(product, values)
    if share_changed:
        # A slug another product has fails here, as a message, not in the rule's
        # autoflush below, where it was a 500.
        _write_product(commit=False)
        # The displayed share and the ledger's rule must not disagree: a new version.
        change_share_per_unit(product, values.beneficiary_fen_per_unit)
    return _commit_product(product)


def _get(product_id: int) -> Product:
    product = db.session.get(Product, product_id)
    if product is None:
        raise ConsoleError(_("商品不存在。"))
    return product


def set_status(product_id: int, status: str) -> Product:
    """Publish, unpublish (back to draft) or archive a product.

    Publishing needs a price and a unit (guaranteed by validation) and at least one
    photo, because a product page without a picture does not sell.
    """
    if status not in PRODUCT_STATUSES:
        raise ConsoleError(_("未知的状态。"))
    product = _get(product_id)
    if status == "published" and not product.photos:
        raise ConsoleError(_("请先上传至少一张照片再上架。"))
    product.status = status
    if status == "published":
        product.published_at = utcnow()
    db.session.commit()
    return product


def list_products(status: str | None = None, query: str | None = None) -> list[Product]:
    stmt = select(Product).order_by(Product.updated_at.desc(), Product.id.desc())
    if status in PRODUCT_STATUSES:
        stmt = stmt.where(Product.status == status)
    if query:
        stmt = stmt.where(Product.name.contains(query.strip()[:60], autoescape=True))
    return list(db.session.scalars(stmt))


def _photo_settings() -> dict:
    config = current_app.config
    return {
        "folder": config["UPLOAD_FOLDER"],
        "widths": tuple(config["PHOTO_WIDTHS"]),
        "max_bytes": config["MAX_PHOTO_BYTES"],
        "max_pixels": config["MAX_PHOTO_PIXELS"],
    }


def add_product_photo(product_id: int, data: bytes) -> ProductPhoto:
    """Store an uploaded photo for a product and append it to the gallery.

    The first photo becomes the cover. Raises :class:`ConsoleError` (with the
    pipeline's message when the file is refused) and leaves no file and no row.
    """
    _get(product_id)
    limit = current_app.config["MAX_PHOTOS_PER_PRODUCT"]
    try:
        stored, created = store_photo(data, **_photo_settings())
    except PhotoRejected as rejected:
        raise ConsoleError(rejected.message, "photos") from None
    # Decode first (slow), then lock the product row so two uploads at once cannot
    # both take the eighth place.
    product = db.session.scalar(select(Product).where(Product.id == product_id).with_for_update())
    problem = None
    if len(product.photos) >= limit:
        problem = ConsoleError(_("每个商品最多 %(n)s 张照片。", n=limit), "photos")
    elif any(photo.key == stored.key for photo in product.photos):
        problem = ConsoleError(_("这张照片已经上传过了。"), "photos")
    if problem is not None:
        db.session.rollback()
        remove_files(created)
        raise problem
    photo = ProductPhoto(
        product_id=product.id,
        key=stored.key,
        widths=",".join(str(w) for w in stored.widths),
        width=stored.width,
        height=stored.height,
        position=max((p.position for p in product.photos), default=-1) + 1,
        is_cover=not product.photos,
    )
    db.session.add(photo)
    _photos_changed(product)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        remove_files(created)
        raise
    return photo


def _photos_changed(product: Product) -> None:
    """A product changes when its photos do: its ``updated_at`` is what the public page
    cache (shop/page_cache.py) and the console's "recently changed" order go by."""
    product.updated_at = utcnow()


def _photo(photo_id: int) -> ProductPhoto:
    photo = db.session.get(ProductPhoto, photo_id)
    if photo is None:
        raise ConsoleError(_("照片不存在。"))
    return photo


def set_cover(photo_id: int) -> ProductPhoto:
    photo = _photo(photo_id)
    for other in photo.product.photos:
        other.is_cover = other.id == photo.id
    _photos_changed(photo.product)
    db.session.commit()
    return photo


def move_photo(photo_id: int, offset: int) -> ProductPhoto:
    """Move a photo ``offset`` places in its gallery (−1 earlier, +1 later)."""
    photo = _photo(photo_id)
    gallery = list(photo.product.photos)
    index = gallery.index(photo)
    target = max(0, min(len(gallery) - 1, index + offset))
    gallery.insert(target, gallery.pop(index))
    for position, item in enumerate(gallery):
        item.position = position
    _photos_changed(photo.product)
    db.session.commit()
    return photo


def delete_photo(photo_id: int) -> int:
    """Remove a photo from its gallery; return the product id.

    If it was the cover the next photo becomes the cover. Its files go when no other
    product uses the same picture. A published product keeps at least one photo.
    """
    photo = _photo(photo_id)
    product = photo.product
    if product.status == "published" and len(product.photos) == 1:
        raise ConsoleError(_("已上架的商品至少要有一张照片，请先下架或上传新照片。"))
    key, widths, was_cover = photo.key, tuple(photo.width_list), photo.is_cover
    product.photos.remove(photo)
    for position, item in enumerate(product.photos):
        item.position = position
    if was_cover and product.photos:
        product.photos[0].is_cover = True
    _photos_changed(product)
    db.session.commit()
    still_used = db.session.scalar(
        select(func.count()).select_from(ProductPhoto).where(ProductPhoto.key == key)
    )
    if not still_used:
        remove_photo_files(current_app.config["UPLOAD_FOLDER"], key, widths)
    return product.id


def categories() -> list[Category]:
    return list(db.session.scalars(select(Category).order_by(Category.position, Category.id)))


ORDER_PAGE_SIZE = 30


def order_page(status: str | None = None, query: str | None = None, page: int = 1):
    """Orders newest first, filtered by status and by order number or phone's last
    four digits; returns a Flask-SQLAlchemy pagination."""
    stmt = select(Order).order_by(Order.created_at.desc(), Order.id.desc())
    if status in ORDER_STATUSES:
        stmt = stmt.where(Order.status == status)
    term = (query or "").strip()[:32]
    if term:
        if term.isdigit() and len(term) == 4:
            stmt = stmt.where(Order.phone_last4 == term)
        else:
            stmt = stmt.where(Order.order_no.contains(term, autoescape=True))
    return db.paginate(stmt, page=max(1, page), per_page=ORDER_PAGE_SIZE, error_out=False)


def order_by_number(order_no: str):
    return db.session.scalar(select(Order).where(Order.order_no == order_no))
