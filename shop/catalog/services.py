"""Read-side queries for the storefront. Only published products are ever public."""

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import selectinload

from ledger import BenefitRule
from shop.boards.models import BoardState
from shop.catalog.models import Category, Product
from shop.db import escape_like, utcnow
from shop.extensions import db
from shop.households.models import Household

MAX_QUERY_LENGTH = 60


def _published():
    return (
        select(Product)
        .where(Product.status == "published")
        .options(selectinload(Product.photos), selectinload(Product.category))
    )


def featured_products(limit: int = 8) -> list[Product]:
    stmt = _published().order_by(Product.featured.desc(), Product.published_at.desc()).limit(limit)
    return list(db.session.scalars(stmt))


def categories() -> list[Category]:
    return list(db.session.scalars(select(Category).order_by(Category.position, Category.id)))


def category_by_slug(slug: str) -> Category | None:
    return db.session.scalar(select(Category).where(Category.slug == slug))


def products_in_category(category: Category) -> list[Product]:
    stmt = _published().where(Product.category_id == category.id).order_by(Product.name)
    return list(db.session.scalars(stmt))


def published_products() -> list[Product]:
    """Every published product, oldest first (the API's list, the label sheet's choice)."""
    return list(db.session.scalars(_published().order_by(Product.id)))


def published_product(slug: str) -> Product | None:
    return db.session.scalar(_published().where(Product.slug == slug))


def _rule_version(owner):
    return (
        select(func.max(BenefitRule.version))
        .where(owner, BenefitRule.effective_from <= bindparam("now"))
        .scalar_subquery()
    )


# Built once: this runs on every anonymous view of a product page, and building the
# statement costs more than the database takes to answer it.
_PAGE_VERSION = select(
    Product.id,
    Product.updated_at,
    _rule_version(BenefitRule.product_id == Product.id),
    _rule_version(BenefitRule.product_id.is_(None)),
    select(BoardState.last_transaction_id).where(BoardState.id == 1).scalar_subquery(),
    select(func.max(Household.updated_at)).scalar_subquery(),
).where(Product.slug == bindparam("slug"), Product.status == "published")


def product_page_version(slug: str) -> tuple | None:
    """What a published product's page shows depends on, in one query (for the page
    cache, shop/page_cache.py): the product row's ``updated_at`` (moved by any change
    of price, stock, text, status or photos), the benefit rule in force for it now
    (its own, else the default — a rule taking effect later changes this when its time
    comes, with no write), the boards' last folded transaction (what its households
    received) and the households' last change (their masked names). None when there is
    no such published product."""
    row = db.session.execute(_PAGE_VERSION, {"slug": slug, "now": utcnow()}).first()
    return None if row is None else tuple(row)


def search_products(query: str) -> list[Product]:
    """Published products whose name, subtitle or producer contains ``query``.

    The term is trimmed to ``MAX_QUERY_LENGTH`` and LIKE wildcards in it are literal.
    """
    term = (query or "").strip()[:MAX_QUERY_LENGTH]
    if not term:
        return []
    pattern = f"%{escape_like(term)}%"
    stmt = (
        _published()
        .where(
            or_(
                Product.name.ilike(pattern, escape="\\"),
                Product.subtitle.ilike(pattern, escape="\\"),
                Product.producer.ilike(pattern, escape="\\"),
            )
        )
        .order_by(Product.featured.desc(), Product.name)
        .limit(100)
    )
    return list(db.session.scalars(stmt))
