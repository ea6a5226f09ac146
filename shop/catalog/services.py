"""Read-side queries for the storefront. Only published products are ever public."""

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from shop.catalog.models import Category, Product
from shop.db import escape_like
from shop.extensions import db

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
