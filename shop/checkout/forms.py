from shop.orders.forms import BuyerDetailsForm


class CheckoutForm(BuyerDetailsForm):
    """The buyer's details at checkout (see :class:`shop.orders.forms.BuyerDetailsForm`)."""
