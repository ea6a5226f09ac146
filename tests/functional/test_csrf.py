"""Every form POST needs the CSRF token; only machine endpoints are exempt."""

from werkzeug.routing import IntegerConverter

from shop.catalog.models import Product
from shop.extensions import db
from tests.builders import make_product

# Called by machines that cannot carry a session token: Alipay, the JSON API, and the
# sandbox gateway's Alipay-style API (which checks RSA signatures instead).
EXEMPT_PREFIXES = ("/api/", "/payments/alipay/notify", "/sandbox/alipay/gateway.do")


def dummy(rule):
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        values[name] = 1 if isinstance(converter, IntegerConverter) else "x"
    return rule.build(values)[1]


def test_every_form_post_without_token_is_refused(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    checked = 0
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.rule.startswith(EXEMPT_PREFIXES):
            continue
        response = client.post(dummy(rule), data={"anything": "1"})
        assert response.status_code == 400, rule.rule
        assert "页面已过期" in response.get_data(as_text=True)
        checked += 1
    assert checked >= 10


def test_a_real_form_with_its_token_works(app, staff_client):
    app.config["WTF_CSRF_ENABLED"] = True
    product = make_product(name="桑葚酒", status="draft")
    page = staff_client.get(f"/console/products/{product.id}").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = staff_client.post(
        f"/console/products/{product.id}",
        data={
            "csrf_token": token,
            "name": "桑葚果酒",
            "price": "98",
            "unit": "瓶",
            "stock": "5",
            "beneficiary": "10",
            "category_id": "0",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Product, product.id).name == "桑葚果酒"
