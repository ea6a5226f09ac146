from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from shop.cart import services
from shop.orders.services import OrderError

bp = Blueprint("cart", __name__)


def cart_owner() -> tuple[int | None, dict]:
    """The logged-in user's id (or None) and the session cart dict to pass to services."""
    user_id = current_user.id if current_user.is_authenticated else None
    return user_id, session.setdefault("cart", {})


@bp.route("/cart")
def show():
    user_id, session_cart = cart_owner()
    return render_template("cart/cart.html", cart=services.view_cart(user_id, session_cart))


@bp.route("/cart/add", methods=["POST"])
def add():
    user_id, session_cart = cart_owner()
    try:
        product = services.add_item(
            user_id, session_cart, request.form.get("product_id"), request.form.get("quantity", "1")
        )
    except OrderError as error:
        flash(error.message, "error")
        return redirect(request.referrer or url_for("cart.show"))
    session.modified = True
    if request.form.get("buy_now"):
        return redirect(url_for("checkout.checkout"))
    flash(_("已加入购物车：%(name)s", name=product.name), "success")
    return redirect(url_for("cart.show"))


@bp.route("/cart/update", methods=["POST"])
def update():
    user_id, session_cart = cart_owner()
    try:
        services.set_quantity(
            user_id, session_cart, request.form.get("product_id"), request.form.get("quantity")
        )
    except OrderError as error:
        flash(error.message, "error")
    session.modified = True
    return redirect(url_for("cart.show"))


@bp.route("/cart/remove", methods=["POST"])
def remove():
    user_id, session_cart = cart_owner()
    services.remove_item(user_id, session_cart, request.form.get("product_id"))
    session.modified = True
    return redirect(url_for("cart.show"))


@bp.route("/cart/accept-prices", methods=["POST"])
def accept_prices():
    user_id, session_cart = cart_owner()
    services.accept_current_prices(user_id, session_cart)
    session.modified = True
    flash(_("已按最新价格更新购物车。"), "success")
    return redirect(url_for("cart.show"))
