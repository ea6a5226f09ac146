"""Two hosts, one database: two gunicorn instances (two workers each) behind no shared
memory at all — only PostgreSQL. Stock and payments must still be right: the row locks
and unique keys that make them safe are the database's, not a process's."""

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar

import pytest
from sqlalchemy import func, select

from alipay_sandbox.models import SandboxTrade
from alipay_sandbox.notifications import notification_params
from ledger import Transaction, verify_database
from shop.catalog.models import Product
from shop.extensions import db
from shop.orders.models import Order
from tests.builders import make_household, make_product
from tests.gunicorn_server import app_environment, gunicorn

BUYERS = 200
STOCK = 10
DELIVERIES_PER_HOST = 3


def _post(url: str, data: bytes, content_type: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def _order(base_url: str, product_id: int, number: int) -> tuple[int, dict]:
    body = {
        "items": [{"product_id": product_id, "quantity": 1}],
        "buyer": {"name": f"买家{number}", "phone": f"138{number:08d}", "anonymous": True},
        "shipping": {"address": f"西安市雁塔区科技路{number}号"},
        "channel": "pc",
    }
    status, text = _post(base_url + "/api/v1/orders", json.dumps(body).encode(), "application/json")
    return status, json.loads(text)


def _pay(pay_url: str) -> None:
    """Open the cashier and press Pay, as the buyer's browser does (its cookie and the
    form's hidden fields, CSRF token included, go back with the press)."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect
    )
    with opener.open(pay_url, timeout=60) as cashier:
        html = cashier.read().decode()
    form_html = re.search(r'<form[^>]*action="[^"]*/pay"[^>]*>.*?</form>', html, re.S).group(0)
    action = re.search(r'action="([^"]*/pay)"', form_html).group(1)
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form_html))
    assert "ticket" in fields, form_html
    gateway = urllib.parse.urljoin(pay_url, action)
    try:
        opener.open(
            urllib.request.Request(gateway, data=urllib.parse.urlencode(fields).encode()),
            timeout=60,
        )
    except urllib.error.HTTPError as redirect:
        assert redirect.code in (302, 303), redirect.read().decode()[:500]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.postgres_only
def test_two_hosts_sell_no_more_than_the_stock_and_post_each_trade_once(app, tmp_path):
    for n in range(3):
        make_household(head_name=f"户主{n}")
    product = make_product(price_fen=6800, beneficiary_fen_per_unit=900, stock=STOCK)
    db.session.commit()
    product_id = product.id  # threads below have no app context to load it in
    # Every buyer here comes from 127.0.0.1: lift the per-address limits (rates and
    # unpaid orders), which would otherwise refuse most of them before the stock does.
    env = app_environment(
        app,
        RATELIMIT_ENABLED="0",
        UNPAID_ORDERS_PER_CLIENT=str(BUYERS),
        UNPAID_UNITS_PER_CLIENT=str(BUYERS * 10),
    )
    with gunicorn(env) as first, gunicorn(env) as second:
        hosts = [first.url, second.url]
        with ThreadPoolExecutor(max_workers=24) as pool:
            answers = list(pool.map(lambda n: _order(hosts[n % 2], product_id, n), range(BUYERS)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [201] * STOCK + [409] * (BUYERS - STOCK), statuses
        placed = [body for status, body in answers if status == 201]
        assert all(
            body["error"]["code"] == "out_of_stock" for status, body in answers if status == 409
        )

        with ThreadPoolExecutor(max_workers=STOCK) as pool:
            list(pool.map(lambda body: _pay(body["pay_url"]), placed))

        # Alipay retries, and behind a load balancer each retry may reach another host.
        db.session.expire_all()
        trades = list(
            db.session.scalars(select(SandboxTrade).where(SandboxTrade.paid_at.is_not(None)))
        )
        assert len(trades) == STOCK
        deliveries = [
            (host + "/payments/alipay/notify", notification_params(trade))
            for trade in trades
            for host in hosts
            for _ in range(DELIVERIES_PER_HOST)
        ]
        with ThreadPoolExecutor(max_workers=16) as pool:
            replies = list(
                pool.map(
                    lambda d: _post(
                        d[0], urllib.parse.urlencode(d[1]).encode(),
                        "application/x-www-form-urlencoded",
                    ),
                    deliveries,
                )
            )  # fmt: skip
        logs = first.log() + second.log()

    assert replies == [(200, "success")] * len(deliveries), logs[-3000:]
    db.session.expire_all()
    assert db.session.get(Product, product_id).stock == 0
    paid = db.session.scalars(select(Order).where(Order.status == "paid")).all()
    assert sorted(o.order_no for o in paid) == sorted(b["order_no"] for b in placed)
    sales = db.session.scalars(select(Transaction).where(Transaction.kind == "sale")).all()
    assert len(sales) == STOCK
    assert len({sale.key for sale in sales}) == STOCK
    assert db.session.scalar(select(func.count()).select_from(Order)) == STOCK
    result = verify_database(db.session)
    assert result.ok, result.problems
    assert "Traceback" not in logs
