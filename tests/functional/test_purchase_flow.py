"""The whole purchase, as buyer, Alipay, village team, admin and auditor see it.

cart → checkout → signed pay request → sandbox Pay → signed notification over HTTP →
paid order posted to the ledger → households shown on the order → admin refund through
the SDK → reversal in the ledger → the public export verifies with the standalone script.
"""

import subprocess
import sys

from click.testing import CliRunner
from sqlalchemy import select

from ledger import Account, Transaction
from shop.extensions import db
from shop.orders.models import Order
from tests.alipay_helpers import fresh, open_cashier
from tests.builders import make_household, make_product, make_village
from tests.conftest import ADMIN_PASSWORD, login
from tests.live_server import live_server


def household_balances():
    db.session.expire_all()
    return {
        code: -balance
        for code, balance in db.session.execute(
            select(Account.code, Account.balance_fen).where(Account.kind == "household")
        )
    }


def test_buy_pay_refund_and_verify(app, client, admin_user, tmp_path):
    from shop.benefits.services import set_product_rule

    village = make_village(code="SJ", name="双井村")
    zhang = make_household(village, head_name="张三明", code="SJ-001", land_mu=3)
    li = make_household(village, head_name="李四", code="SJ-002", land_mu=1)
    wine = make_product(name="树莓果酒", price_fen=15800, stock=10)
    set_product_rule(wine.id, [zhang, li], "weighted", "land", share_fen_per_unit=2000)

    with live_server(app):
        client.post("/cart/add", data={"product_id": wine.id, "quantity": 2})
        response = client.post(
            "/checkout",
            data={
                "name": "王小明",
                "phone": "13812345678",
                "address": "陕西省西安市雁塔区科技路1号",
                "board_display": "masked",
            },
        )
        assert response.status_code == 302
        pay_url = response.headers["Location"]
        assert "/sandbox/alipay/gateway.do?" in pay_url and "sign=" in pay_url
        order = db.session.scalar(select(Order))
        assert order.status == "pending_payment" and order.total_fen == 31600

        action, ticket = open_cashier(client, pay_url)
        paid = client.post(action, data={"ticket": ticket})
        assert paid.status_code == 302
        assert f"/orders/{order.token}/return" in paid.headers["Location"]

        order = fresh(order)
        assert order.status == "paid"
        # 2 × ¥20 to households, split 3:1 by transferred land.
        assert household_balances() == {"household:SJ-001": 3000, "household:SJ-002": 1000}

        page = client.get(f"/orders/{order.token}").get_data(as_text=True)
        assert "张*明" in page and "¥30.00" in page and "李*" in page
        assert "张三明" not in page
        api = client.get(f"/api/v1/orders/{order.token}").get_json()
        assert {a["household"]: a["amount_fen"] for a in api["allocations"]} == {
            "张*明": 3000,
            "李*": 1000,
        }
        sale = db.session.get(Transaction, api["ledger"]["transaction_id"])
        assert sale.hash == api["ledger"]["hash"] and sale.kind == "sale"

        # The admin refunds one bottle's worth; Alipay (sandbox) says yes.
        client.post("/logout")
        login(client, "admin1", ADMIN_PASSWORD)
        refunded = client.post(
            f"/console/orders/{order.order_no}/refund",
            data={"amount": "158.00", "reason": "一瓶破损"},
            follow_redirects=True,
        ).get_data(as_text=True)
        assert "退款成功" in refunded

    order = fresh(order)
    assert order.refunded_fen == 15800 and order.status == "paid"
    assert household_balances() == {"household:SJ-001": 1500, "household:SJ-002": 500}
    reversal = db.session.scalar(select(Transaction).where(Transaction.kind == "refund"))
    assert reversal.reverses_id == sale.id

    head = client.get("/api/v1/ledger/head").get_json()
    assert head["count"] == 2 and head["hash"] == reversal.hash
    export = tmp_path / "export.jsonl"
    export.write_bytes(client.get("/api/v1/ledger/export.jsonl").data)
    checked = subprocess.run(
        [sys.executable, "-m", "ledger.verify", str(export)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"OK 2 transactions, head {head['hash']}" in checked.stdout
    assert "household:SJ-001\t-1500" in checked.stdout

    cli = CliRunner().invoke(app.cli, ["ledger", "verify"], catch_exceptions=False)
    assert cli.exit_code == 0 and f"OK 2 transactions, head {head['hash']}" in cli.output
