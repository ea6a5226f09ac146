"""Request ids and the one log line per request — and no personal data in any log line."""

import io
import logging
import re

from shop.request_log import RequestIdFilter
from tests.builders import make_product, make_village
from tests.functional.test_admin_households import fake_id


def test_every_response_names_its_request_id(client):
    first, second = client.get("/"), client.get("/")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_the_proxys_request_id_is_kept_and_a_strange_one_replaced(client):
    kept = client.get("/healthz", headers={"X-Request-ID": "nginx-7f3a9c1e2b"})
    assert kept.headers["X-Request-ID"] == "nginx-7f3a9c1e2b"
    for strange in ("short", "a b c d e f g h", "x" * 65, "<script>alert(1)</script>"):
        response = client.get("/healthz", headers={"X-Request-ID": strange})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_one_line_per_request_with_the_route_not_the_path(client, caplog):
    caplog.set_level(logging.INFO, logger="shop.access")
    response = client.get("/orders/a-secret-order-token-123456")
    lines = [r.getMessage() for r in caplog.records if r.name == "shop.access"]
    assert lines == [lines[0]] and lines[0].startswith("GET /orders/<token> 404 ")
    assert "a-secret-order-token" not in lines[0]
    assert response.headers["X-Request-ID"]


def test_an_error_is_logged_with_the_request_id(app, client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
    app.logger.addHandler(handler)

    @app.route("/_boom/<secret>")
    def boom(secret):
        raise RuntimeError("kaboom")

    try:
        response = client.get("/_boom/tok-SECRET-9", headers={"X-Request-ID": "req-abcdef12"})
    finally:
        app.logger.removeHandler(handler)
    assert response.status_code == 500
    text = stream.getvalue()
    assert "[req-abcdef12] unhandled error on GET /_boom/<secret>" in text
    assert "tok-SECRET-9" not in text


def test_no_log_line_carries_personal_data(app, client, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    wine = make_product(stock=5)
    client.post("/cart/add", data={"product_id": str(wine.id), "quantity": "1"})
    client.post(
        "/checkout",
        data={"name": "欧阳秀英", "phone": "13912345678", "address": "陕西省西安市幸福路88号",
              "board_display": "masked"},
    )  # fmt: skip
    village = make_village()
    admin_client.post(
        "/admin/households/new",
        data={"code": "", "head_name": "司马建国", "id_number": fake_id(7),
              "village_id": str(village.id), "group_name": "一组", "members": "3",
              "bank_name": "城固农商银行", "bank_card": "6228 4800 1234 5678 901",
              "land_mu": "2.5", "active": "y"},
    )  # fmt: skip
    client.post("/orders/lookup", data={"order_no": "LX000", "phone": "13912345678"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST /checkout 302" in logged and "POST /admin/households/new 302" in logged
    for personal in ("欧阳秀英", "13912345678", "幸福路", "司马建国", "6228", fake_id(7)):
        assert personal not in logged
