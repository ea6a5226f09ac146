from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _

from shop.account import profile
from shop.cart import services as cart_services
from shop.cart.routes import cart_owner
from shop.checkout.forms import CheckoutForm
from shop.errors import UserError, show_on_form
from shop.orders.holds import Requester
from shop.orders.services import BuyerDetails, PriceChanged, place_order
from shop.organisations import services as organisations
from shop.payments.services import channel_for, payment_url

bp = Blueprint("checkout", __name__)

@bp.route("/checkout", methods=["GET", "POST"])
def checkout():
    user_id, session_cart = cart_owner()
    cart = cart_services.view_cart(user_id, session_cart)
    if not cart.lines:
        flash(_("购物车是空的。"), "error")
        return redirect(url_for("cart.show"))
    saved = profile.load(user_id) if user_id is not None else None
    form = CheckoutForm(data=None if saved is None or request.method == "POST" else vars(saved))
    if user_id is not None:
        form.buy_for.choices += [
            (m.organisation.id, m.organisation.name)
            for m in organisations.my_organisations(user_id)
        ]
    if form.validate_on_submit():
        buyer = BuyerDetails(
            name=form.name.data,
            phone=form.phone.data,
            address=form.address.data,
            board_display=form.board_display.data,
            nickname=form.nickname.data or "",
            organization=form.organization.data or "",
            email=form.email.data or "",
        )
        try:
            for_organisation = organisations.ordering_for(user_id, form.buy_for.data)
            order = place_order(
                cart_services.requested_lines(user_id, session_cart),
                buyer,
                channel=channel_for(request.headers.get("User-Agent", "")),
                expiry_minutes=current_app.config["ORDER_EXPIRY_MINUTES"],
                user_id=user_id,
                requester=Requester(request.remote_addr),
                locale=str(get_locale()),
                for_organisation=for_organisation,
            )
        except PriceChanged as error:
            flash(error.message, "error")
            return redirect(url_for("cart.show"))
        except UserError as error:
            if not (error.field and error.field in form):  # not the buyer's details: the cart's
                flash(error.message, "error")
                return redirect(url_for("cart.show"))
            show_on_form(form, error)
        else:
            if user_id is not None:  # the next checkout starts from these details
                profile.save(user_id, buyer)
            cart_services.clear(user_id, session_cart)
            # The cart is a dict inside the session: emptying it is not a change the
            # session sees, and without this the cookie keeps the cart — each repeated
            # POST would place (and reserve the stock of) another order.
            session.modified = True
            return redirect(payment_url(order))
    return render_template("checkout/checkout.html", form=form, cart=cart)
