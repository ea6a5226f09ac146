"""Imports every model module so the metadata is complete (Alembic, tests)."""

from shop.auth.models import User
from shop.catalog.models import Category, Product, ProductPhoto
from shop.households.models import Enterprise, Household, Village

__all__ = ["Category", "Enterprise", "Household", "Product", "ProductPhoto", "User", "Village"]
