from flask_babel import lazy_gettext as _l
from wtforms import SelectField

from shop.orders.forms import BuyerDetailsForm


class CheckoutForm(BuyerDetailsForm):
    """The buyer's details at checkout (see :class:`shop.orders.forms.BuyerDetailsForm`),
    and whom the order is for: the buyer (0) or one of their organisations (its id; the
    route fills the choices from the buyer's memberships)."""

    buy_for = SelectField(_l("为谁下单"), coerce=int, default=0, choices=[(0, _l("我自己"))])
