"""Schemathesis fuzzes the whole JSON API from its own OpenAPI document.

Every operation of ``/api/v1/openapi.json`` gets generated requests, valid and
invalid, and every answer goes through all of Schemathesis' checks: no server error,
a status the document lists, its content type, its body's schema and its headers,
invalid input refused and valid input accepted, a 405 with ``Allow`` for methods the
path has not. A stateful run follows the document's links: list the products, order
the first, read the order back by its token.

How hard it tries: ``API_FUZZ_EXAMPLES`` examples per operation (default 25, the short
run of ``make test``; CI sets more), Hypothesis derandomized so a run is reproducible
and a failure seen in CI is seen again locally with the same value. The data it meets
is seeded first (products, a paid order posted to the ledger, households, an approved
change), so the answers have something in them to conform or not.

Rate limits are off in these apps (the testing config), so the fuzzer is never
throttled; the read limit itself is proven in ``test_the_read_limit_*`` below.
"""

import os

import hypothesis
import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shop import create_app
from shop.api.openapi import openapi_document
from shop.approvals import kinds
from shop.approvals import services as approvals
from shop.benefits.services import set_product_rule
from shop.extensions import db, limiter
from shop.households.services import HouseholdInput, id_check_char
from shop.orders.services import apply_payment
from tests.builders import buyer, make_household, make_order, make_product, make_user

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES") or 25)


def fuzz_settings(max_examples: int, **extra) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,  # the same examples every run: a CI failure replays locally
        database=None,  # nothing carried between runs or machines
        deadline=None,  # speed is for bench/, not for assertions
        suppress_health_check=list(hypothesis.HealthCheck),
        **extra,
    )


# Refusals that hang on the state of the shop, not on the request's form, so no
# schema can foresee them: a product id that is not (or no longer) on sale, one
# product's lines that add up past what one order may buy (a rule across items), and a
# consistency proof asked from a larger tree to a smaller one (a rule across parameters).
STATE_REFUSALS = {"unknown_product", "quantity_limit", "invalid_range"}


def valid_data_is_accepted(ctx, response, case):
    """Schemathesis' positive_data_acceptance, but for the refusals above."""
    if response.status_code == 422 and response.json()["error"]["code"] in STATE_REFUSALS:
        return None
    return positive_data_acceptance(ctx, response, case)


CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CHECKS = {
    "excluded_checks": [positive_data_acceptance],
    "additional_checks": [valid_data_is_accepted],
}


# The document as the app serves it; test_the_fuzzed_document_is_the_served_one checks
# that this is the same document.
schema = schemathesis.openapi.from_dict(openapi_document())


def seed_shop():
    """What a running shop has: products on sale, one sold out, a draft; a paid order
    whose sale reached two households; an approved change in the public log."""
    id_number = "61072219500101123" + id_check_char("61072219500101123")
    zhang = make_household(head_name="张三明", card="6217000012345678", id_number=id_number)
    li = make_household(village=zhang.village, head_name="李四光", card="6217000087654321")
    wine = make_product(name="树莓果酒", stock=5000)
    make_product(name="香菇", price_fen=3990, stock=5000, beneficiary_fen_per_unit=500)
    make_product(name="木耳", stock=0)
    make_product(name="未上架", status="draft")
    set_product_rule(wine.id, [zhang, li], "weighted", "equal", share_fen_per_unit=2000)
    order = make_order([(wine, 2)], buyer(board_display="nickname", nickname="小明"))
    apply_payment(order.order_no, f"T{order.order_no}", order.total_fen, paid=True)
    maker = make_user(username="proposer", role="admin")
    checker = make_user(username="approver", role="admin")
    values = HouseholdInput(
        head_name="张三丰",
        id_number=id_number,
        members=4,
        village_id=zhang.village_id,
        code=zhang.code,
        bank_card="6217000012345678",
    )
    approvals.approve(kinds.propose_household_update(zhang.id, values, maker).id, checker)
    db.session.remove()
    return order


@pytest.fixture
def shop(app):
    seed_shop()
    return app


def test_the_fuzzed_document_is_the_served_one(client, app):
    assert client.get("/api/v1/openapi.json").get_json() == openapi_document()


@schema.parametrize()
@fuzz_settings(EXAMPLES)
def test_every_operation_conforms(case, shop):
    case.call_and_validate(app=shop, **CHECKS)


def test_placing_then_reading_orders_conforms(shop):
    """The stateful run: chains of calls along the document's links."""
    # Room for many unpaid orders from the one test address and the few phones the
    # fuzzer makes up, so chains go on past the first few orders (the unpaid-order
    # limits have their own tests; the stateless run above meets them as 429s).
    shop.config.update(
        UNPAID_ORDERS_PER_BUYER=10**6,
        UNPAID_UNITS_PER_BUYER=10**9,
        UNPAID_ORDERS_PER_CLIENT=10**6,
        UNPAID_UNITS_PER_CLIENT=10**9,
    )
    loaded = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", shop).as_state_machine()

    class Machine(loaded):
        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response, transport_kwargs=kwargs or None, recorder=self.recorder, **CHECKS
            )

    machine = Machine
    links = {
        transition.name
        for transitions in machine._transitions.operations.values()
        for transition in transitions.incoming
    }
    assert {"OrderFirstProduct", "GetOrderByToken"} <= links
    machine.run(settings=fuzz_settings(max(EXAMPLES // 2, 5), stateful_step_count=6))


def test_the_fuzzer_notices_a_broken_answer(shop, monkeypatch):
    """Guard against a fuzz that cannot fail: an answer that breaks its schema (the
    ledger head's hash cut short) fails the run."""
    from shop.api import routes

    monkeypatch.setattr(routes, "head", lambda session: (1, "abc"))
    operation = schema["/ledger/head"]["GET"]

    @fuzz_settings(5)
    @hypothesis.given(case=operation.as_strategy())
    def fuzz(case):
        case.call_and_validate(app=shop)

    with pytest.raises(FailureGroup) as failure:
        fuzz()
    assert "schema" in str(failure.value).lower()


def test_the_fuzzer_notices_a_server_error(shop, monkeypatch):
    from shop.api import routes

    def crash():
        raise RuntimeError("boom")

    monkeypatch.setattr(routes.boards, "households_json", crash)
    operation = schema["/households"]["GET"]

    @fuzz_settings(5)
    @hypothesis.given(case=operation.as_strategy())
    def fuzz(case):
        case.call_and_validate(app=shop)

    with pytest.raises(FailureGroup) as failure:
        fuzz()
    assert "500" in str(failure.value)


# The read limit: per client address, shared by every read, 429 JSON with Retry-After.


@pytest.fixture
def limited_app(database_url, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
            "RATELIMIT_ENABLED": True,
            "API_READ_RATE_LIMIT": "5 per minute",
        }
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    limiter.enabled = False  # the limiter is one object: leave it as tests expect it


def test_the_read_limit_holds_and_answers_a_conforming_429(limited_app):
    client = limited_app.test_client()
    reads = ["/api/v1/products", "/api/v1/board", "/api/v1/ledger/head"]
    statuses = [client.get(reads[i % 3]).status_code for i in range(5)]
    assert statuses == [200] * 5
    refused = client.get("/api/v1/households")  # a sixth read, of another kind
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_requests"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # The refusal is what the document says a 429 is: body, content type, headers.
    case = schema["/households"]["GET"].Case()
    case.validate_response(refused)

    # Another client address has its own count.
    other = client.get("/api/v1/products", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert other.status_code == 200


def test_orders_do_not_count_as_reads(limited_app):
    client = limited_app.test_client()
    for _ in range(5):
        assert client.get("/api/v1/ledger/head").status_code == 200
    # Reads used up, an order is still heard (a 422 for this empty one, not a 429).
    assert client.post("/api/v1/orders", json={}).status_code == 422


def test_an_oversized_order_body_is_a_conforming_413(shop):
    client = shop.test_client()
    body = b'{"items": [], "padding": "' + b"x" * (1024 * 1024) + b'"}'
    refused = client.post("/api/v1/orders", data=body, content_type="application/json")
    assert refused.status_code == 413
    assert refused.get_json()["error"]["code"] == "request_entity_too_large"
    schema["/orders"]["POST"].Case(body={}).validate_response(refused)


def test_the_open_data_downloads_are_limited_too(limited_app):
    client = limited_app.test_client()
    downloads = ["/open-data/love-board.csv", "/open-data/households.csv", "/open-data/ledger.csv"]
    assert [client.get(downloads[i % 3]).status_code for i in range(5)] == [200] * 5
    refused = client.get("/open-data/verify.py")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # A separate count from the API's reads: the API still answers.
    assert client.get("/api/v1/ledger/head").status_code == 200


def test_a_database_fault_is_a_conforming_503(shop, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from shop.api import routes

    def gone(session):
        raise OperationalError(
            "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
        )

    monkeypatch.setattr(routes, "head", gone)
    refused = shop.test_client().get("/api/v1/ledger/head")
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "database_unavailable"
    # A 503 is a server error to the fuzzer (none may happen while it runs); here only
    # whether it is the 503 the document describes.
    schema["/ledger/head"]["GET"].Case().validate_response(refused, checks=CONFORMANCE)
