"""Driving the sandbox cashier from tests, the way a buyer's browser would."""

import re

from shop.extensions import db
from shop.orders.models import Order
from shop.payments.services import payment_url


def pay_url_for(app, order) -> str:
    with app.test_request_context():
        return payment_url(order)


def open_cashier(client, url: str) -> tuple[str, str]:
    """GET a pay URL from the sandbox; return (pay form action, ticket)."""
    response = client.get(url)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    action = re.search(r'action="([^"]*/pay)"', html).group(1)
    ticket = re.search(r'name="ticket" value="([^"]+)"', html).group(1)
    return action, ticket


def pay_in_sandbox(app, client, order):
    """Open the order's pay URL and press Pay; return the Pay response (a redirect)."""
    action, ticket = open_cashier(client, pay_url_for(app, order))
    return client.post(action, data={"ticket": ticket})


def fresh(order) -> Order:
    db.session.expire_all()
    return db.session.get(Order, order.id)
