"""Who may reach every route, decided once per route: a new route without a decision
fails ``test_every_route_has_a_decision``.

Levels: ``public`` (anyone), ``token`` (anyone holding an order's secret token — checked
by the order tests), ``login`` (any signed-in person), ``staff`` (the village team and
admins), ``admin``; ``machine`` routes answer machines, not people (Alipay's notification,
the sandbox gateway playing Alipay), and check signatures instead of sessions.
"""

import pytest
from werkzeug.routing import IntegerConverter

from tests.builders import make_user
from tests.conftest import ADMIN_PASSWORD, STAFF_PASSWORD, login

ACCESS = {
    # the shop and the public boards
    "catalog.home": "public", "catalog.category": "public", "catalog.product": "public",
    "catalog.product_qr": "public", "catalog.search": "public",
    "catalog.set_language": "public", "cart.show": "public", "cart.add": "public",
    "cart.update": "public", "cart.remove": "public", "cart.accept_prices": "public",
    "checkout.checkout": "public", "orders.lookup": "public", "static": "public",
    "media.photo": "public", "health.healthz": "public", "health.readyz": "public",
    "boards.love_board": "public", "boards.results_board": "public",
    "boards.household": "public", "boards.open_data": "public",
    "boards.households_csv": "public", "boards.ledger_csv": "public",
    "boards.purchases_csv": "public", "boards.verifier_source": "public",
    "changes.change_log": "public",
    "api.products": "public", "api.board": "public", "api.households": "public",
    "api.changes": "public", "api.ledger_head": "public",
    "api.ledger_export_jsonl": "public", "api.openapi": "public",
    "api.ledger_tree_head": "public", "api.ledger_public_key": "public",
    "api.ledger_inclusion_proof": "public", "api.ledger_consistency_proof": "public",
    "api.create_order": "public",
    # a buyer's order by its secret token
    "orders.show": "token", "invoices.request_invoice": "token", "invoices.download": "token",
    "payments.payment_return": "token",
    "payments.pay_again": "token", "api.get_order": "token", "boards.trace": "token",
    "boards.trace_qr": "token",
    # accounts
    "auth.login": "public", "auth.login_code": "public", "auth.register": "public",
    "auth.logout": "login", "auth.change_password": "login",
    "auth.two_factor_setup": "login", "account.orders": "login",
    "account.buyer_profile": "login", "account.forget_profile": "login",
    "account.share_impact": "login", "account.unshare_impact": "login",
    "account.public_impact": "public", "account.api_tokens": "login",
    "account.revoke_api_token": "login",
    "account.impact": "login", "account.reorder": "login", "account.claim": "login",
    # an organisation's pages: signed in, then members only (404 for anyone else,
    # tests/functional/test_organisations.py)
    "organisations.mine": "login", "organisations.register": "login",
    "organisations.show": "login", "organisations.impact": "login",
    "organisations.new_invite": "login", "organisations.remove_member": "login",
    "organisations.join": "login", "organisations.bulk_order": "login",
    "organisations.bulk_template": "public",
    # the village team's console
    "console.dashboard": "staff", "console.products": "staff",
    "console.new_product": "staff", "console.edit_product": "staff",
    "console.change_status": "staff", "console.upload_photos": "staff",
    "console.photo_cover": "staff", "console.photo_move": "staff",
    "console.photo_delete": "staff", "console.orders": "staff",
    "console.order_detail": "staff", "console.ship_order": "staff",
    "console.complete_order": "staff", "console.label_sheet": "staff",
    "offline.sales": "staff", "offline.upload_sales": "staff",
    "offline.sales_template": "staff", "offline.batch": "staff",
    "offline.confirm_batch": "staff", "offline.income_page": "staff",
    "offline.upload_income": "staff", "offline.income_roster": "staff",
    "offline.income_template": "staff", "offline.reports": "staff",
    "buyers.index": "staff", "buyers.export": "staff", "buyers.parcels": "staff",
    "buyers.verify_organisation": "staff",
    "invoices.queue": "staff",
    "invoices.issue": "staff", "invoices.staff_pdf": "staff",
    "approvals.index": "staff", "approvals.detail": "staff",
    # money and the register: admins only
    "console.refund_order": "admin", "offline.reverse_sale": "admin",
    "offline.reverse_income": "admin", "admin.index": "admin", "admin.households": "admin",
    "admin.new_household": "admin", "admin.edit_household": "admin",
    "admin.merge_household": "admin", "admin.import_households": "admin",
    "admin.household_template": "admin", "admin.household_statement": "admin",
    "admin.rules": "admin", "admin.new_rule": "admin", "admin.payouts": "admin",
    "admin.run_payouts_now": "admin", "admin.propose_household_payout": "admin",
    "admin.ledger_overview": "admin", "approvals.approve": "admin",
    "approvals.reject": "admin", "approvals.propose_sale_reversal": "admin",
    "approvals.propose_income_reversal": "admin", "audit.index": "admin",
    "audit.export": "admin",
    # machines
    "payments.alipay_notify": "machine", "sandbox.gateway": "machine",
    "api.my_orders": "machine", "api.my_impact": "machine",  # a personal API token
    "sandbox.pay": "machine", "sandbox.cancel": "machine",
}  # fmt: skip
RANK = {"anonymous": 0, "buyer": 1, "staff": 2, "admin": 3}
NEEDED = {"login": 1, "staff": 2, "admin": 3}
# Signing out ends the session the walk goes on with; it is checked on its own below.
NOT_WALKED = {"auth.logout"}


def test_every_route_has_a_decision(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(endpoints - ACCESS.keys())
    assert not missing, f"decide who may reach {missing} and add it to ACCESS"
    assert not ACCESS.keys() - endpoints, sorted(ACCESS.keys() - endpoints)
    assert set(ACCESS.values()) <= {"public", "token", "login", "staff", "admin", "machine"}


def _url(rule) -> str:
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        values[name] = 1 if isinstance(converter, IntegerConverter) else "x"
    if rule.endpoint == "boards.verifier_source":
        values["name"] = "verify"
    return rule.build(values)[1]


def _clients(app):
    make_user(username="buyer1", password="buyer-password-1", role="buyer")
    make_user(username="staff1", password=STAFF_PASSWORD, role="staff")
    make_user(username="admin1", password=ADMIN_PASSWORD, role="admin")
    clients = {"anonymous": app.test_client()}
    for role, (name, password) in {
        "buyer": ("buyer1", "buyer-password-1"),
        "staff": ("staff1", STAFF_PASSWORD),
        "admin": ("admin1", ADMIN_PASSWORD),
    }.items():
        clients[role] = app.test_client()
        assert login(clients[role], name, password).status_code == 302, role
    return clients


def _refused(response) -> str | None:
    """How a request was turned away: sent to log in, or forbidden; None if it got in."""
    if response.status_code == 403:
        return "forbidden"
    if response.status_code in (301, 302, 303) and "/login" in response.headers["Location"]:
        return "login"
    return None


@pytest.mark.parametrize("level", ["login", "staff", "admin"])
def test_protected_routes_turn_away_everyone_below_their_level(app, level):
    clients = _clients(app)
    checked = 0
    for rule in app.url_map.iter_rules():
        if ACCESS[rule.endpoint] != level or rule.endpoint in NOT_WALKED:
            continue
        method = "GET" if "GET" in rule.methods else "POST"
        url = _url(rule)
        for role, client in clients.items():
            response = client.open(url, method=method)
            refused = _refused(response)
            assert response.status_code < 500, (role, method, url)
            if RANK[role] >= NEEDED[level]:
                assert refused is None, f"{role} was turned away from {method} {url}"
            elif role == "anonymous":
                assert refused == "login", f"anonymous reached {method} {url}"
            else:
                assert refused == "forbidden", f"{role} reached {method} {url}"
        checked += 1
    assert checked >= {"login": 2, "staff": 20, "admin": 20}[level]


def test_public_routes_need_no_login(app):
    anonymous = app.test_client()
    for rule in app.url_map.iter_rules():
        if ACCESS[rule.endpoint] != "public" or "GET" not in rule.methods:
            continue
        if rule.endpoint == "auth.login_code":
            continue  # the second step of a login: without the first it sends you to it
        response = anonymous.get(_url(rule))
        response.get_data()  # read streamed CSVs to their end, inside this request
        assert _refused(response) is None, rule.rule
        assert response.status_code < 500, rule.rule


def test_signing_out_needs_a_session_and_ends_it(app):
    assert _refused(app.test_client().post("/logout")) == "login"
    clients = _clients(app)
    assert clients["staff"].post("/logout").status_code == 302
    assert _refused(clients["staff"].get("/console/")) == "login"


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_login_sends_you_back_only_to_this_site(app, target):
    make_user(username="buyer1", password="buyer-password-1", role="buyer")
    client = app.test_client()
    response = client.post(
        "/login",
        query_string={"next": target},
        data={"username": "buyer1", "password": "buyer-password-1"},
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "evil.example" not in location and not location.startswith("javascript")
