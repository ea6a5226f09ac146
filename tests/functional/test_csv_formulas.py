"""Open-data CSVs never hand a spreadsheet a formula (OWASP "CSV injection")."""

import csv
import io

from sqlalchemy import select

from shop.catalog.models import Product
from shop.extensions import db
from shop.orders.services import apply_payment
from tests.builders import buyer, make_order, make_product

PAYLOADS = ["=2+5+cmd|'/C calc'!A", "@SUM(1+1)", "+1+1", "-2+3"]  # nicknames: ≤ 20


def rows_of(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_a_buyers_formula_board_name_is_published_as_text(app, client):
    wine = make_product(price_fen=15800, stock=20)
    for n, payload in enumerate(PAYLOADS):
        order = make_order(
            [(wine, 1)],
            buyer(board_display="nickname", nickname=payload, organization=payload),
        )
        apply_payment(order.order_no, f"2026120322001400000000{n:04d}", order.total_fen, paid=True)
    rows = rows_of(client.get("/open-data/love-board.csv"))
    header, body = rows[0], rows[1:]
    buyers = {row[header.index("buyer")] for row in body}
    organizations = {row[header.index("organization")] for row in body}
    assert buyers == {"'" + p for p in PAYLOADS}, buyers
    assert organizations == {"'" + p for p in PAYLOADS}, organizations
    # Numbers stay numbers.
    assert {row[header.index("amount_fen")] for row in body} == {"15800"}


def test_staff_entered_text_is_neutralised_too(app, client):
    wine = make_product(price_fen=15800, stock=20)
    product = db.session.scalar(select(Product).where(Product.id == wine.id))
    product.name = '=HYPERLINK("http://evil.example","点我")'
    db.session.commit()
    order = make_order([(wine, 1)])
    apply_payment(order.order_no, "2026120322001400000000999", order.total_fen, paid=True)
    items = rows_of(client.get("/open-data/love-board.csv"))[1][4]
    assert items.startswith("'=HYPERLINK"), items
