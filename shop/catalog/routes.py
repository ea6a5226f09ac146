from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from shop.boards.products import product_household_count, product_households
from shop.boards.qr import qr_svg, svg_response
from shop.catalog import services
from shop.extensions import db
from shop.households.models import Village
from shop.page_cache import cached_page
from shop.urls import public_url

bp = Blueprint("catalog", __name__)


@bp.route("/")
def home():
    village = db.session.scalar(select(Village).order_by(Village.id).limit(1))
    return render_template(
        "catalog/home.html",
        products=services.featured_products(),
        categories=services.categories(),
        village=village,
    )


@bp.route("/c/<slug>")
def category(slug: str):
    found = services.category_by_slug(slug)
    if found is None:
        abort(404)
    return render_template(
        "catalog/category.html",
        category=found,
        products=services.products_in_category(found),
        categories=services.categories(),
    )


@bp.route("/p/<slug>")
@cached_page(version=services.product_page_version)
def product(slug: str):
    found = services.published_product(slug)
    if found is None:
        abort(404)
    return render_template(
        "catalog/product.html",
        product=found,
        helped=product_households(found.id),
        helped_count=product_household_count(found.id),
    )


@bp.route("/qr/products/<slug>.svg")
def product_qr(slug: str):
    if services.published_product(slug[:80]) is None:
        abort(404)
    return svg_response(qr_svg(public_url("catalog.product", slug=slug)))


@bp.route("/search")
def search():
    query = request.args.get("q", "")
    return render_template(
        "catalog/search.html", query=query, products=services.search_products(query)
    )


@bp.route("/lang/<code>")
def set_language(code: str):
    if code in current_app.config["LANGUAGES"]:
        session["lang"] = code
    target = request.referrer or url_for("catalog.home")
    # Only go back to our own pages.
    if not target.startswith(request.host_url):
        target = url_for("catalog.home")
    return redirect(target)
