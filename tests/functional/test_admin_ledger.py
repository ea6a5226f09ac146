"""The admin's view of the money: rules, trial balance, household statements."""

import pytest
from sqlalchemy import select

from ledger import BenefitRule
from shop.extensions import db
from shop.orders.models import Refund
from shop.orders.services import apply_payment
from shop.payments.refunds import _apply_refund_success
from tests.builders import (
    SecondPairOfEyes,
    make_household,
    make_order,
    make_product,
    make_village,
)


@pytest.fixture
def admin_client(admin_client):
    # A new rule version is four-eyes: a second admin approves each proposal at once here.
    return SecondPairOfEyes(admin_client)


def test_admin_sets_a_new_rule_version_and_history_stays(admin_client, app):
    village = make_village()
    make_household(village, code="SJ-001", land_mu=2)
    make_household(village, head_name="李四", code="SJ-002", land_mu=0)
    wine = make_product(name="树莓果酒", price_fen=15800, beneficiary_fen_per_unit=0)

    response = admin_client.post(
        "/admin/rules/new",
        data={
            "product_id": wine.id,
            "share_kind": "fixed",
            "share_amount": "20",
            "split": "weighted",
            "weight_basis": "land",
            "households": "all",
        },
    )
    assert response.status_code == 302
    rule = db.session.scalar(select(BenefitRule).where(BenefitRule.product_id == wine.id))
    assert (rule.version, rule.share_fen_per_unit) == (1, 2000)
    assert [h.household_code for h in rule.households] == ["SJ-001"]  # land > 0 only
    db.session.refresh(wine)
    assert wine.beneficiary_fen_per_unit == 2000  # the shop shows "每瓶 ¥20 直达农户"

    bad = admin_client.post(
        "/admin/rules/new",
        data={
            "product_id": wine.id,
            "share_kind": "fixed",
            "share_amount": "999",
            "split": "matched",
            "weight_basis": "equal",
            "households": "all",
        },
    )
    assert bad.status_code == 422 and "不能超过售价" in bad.get_data(as_text=True)

    order = make_order([(wine, 1)])
    apply_payment(order.order_no, "T-RULE-1", order.total_fen, paid=True)
    admin_client.post(
        "/admin/rules/new",
        data={
            "product_id": wine.id,
            "share_kind": "percent",
            "share_amount": "12.5",
            "split": "matched",
            "weight_basis": "equal",
            "households": "all",
        },
    )
    page = admin_client.get("/admin/rules").get_data(as_text=True)
    assert "v2" in page and "12.50%" in page
    ledger_page = admin_client.get("/admin/ledger").get_data(as_text=True)
    assert "树莓果酒" in ledger_page and "¥20.00" in ledger_page
    assert "household:SJ-001" in ledger_page


def test_trial_balance_sums_to_zero_and_statement_follows_refunds(admin_client, app):
    village = make_village()
    household = make_household(village, head_name="张三明", code="SJ-001")
    wine = make_product(price_fen=15800)
    from shop.benefits.services import set_product_rule

    set_product_rule(wine.id, [household], "weighted", "equal", share_fen_per_unit=2000)
    order = make_order([(wine, 2)])
    apply_payment(order.order_no, "T-TB-1", order.total_fen, paid=True)
    refund = Refund(order_id=order.id, out_request_no=f"{order.order_no}R01", amount_fen=15800)
    db.session.add(refund)
    db.session.commit()
    _apply_refund_success(refund.id)

    page = admin_client.get("/admin/ledger").get_data(as_text=True)
    assert "所有账户余额之和必须为零" in page and "<strong>¥0.00</strong>" in page
    statement = admin_client.get(f"/admin/households/{household.id}/statement")
    body = statement.get_data(as_text=True)
    assert statement.status_code == 200
    assert "张三明" in body and "¥40.00" in body and "¥20.00" in body
    assert "refund" in body
    assert admin_client.get("/admin/households/9999/statement").status_code == 404


def test_money_pages_are_for_admins(staff_client, app):
    for url in ("/admin/rules", "/admin/rules/new", "/admin/payouts", "/admin/ledger"):
        assert staff_client.get(url).status_code == 403


def test_console_share_change_is_a_new_rule_version(staff_client, app):
    from shop.benefits.services import set_product_rule

    village = make_village()
    households = [make_household(village, code="SJ-001"), make_household(village, code="SJ-002")]
    wine = make_product(name="树莓果酒", price_fen=15800, status="draft")
    set_product_rule(wine.id, households, "matched", share_fen_per_unit=2000)
    staff_client.post(
        f"/console/products/{wine.id}",
        data={
            "name": "树莓果酒",
            "price": "158",
            "unit": "瓶",
            "stock": "10",
            "beneficiary": "25",
            "category_id": "0",
        },
    )
    versions = list(
        db.session.scalars(
            select(BenefitRule)
            .where(BenefitRule.product_id == wine.id)
            .order_by(BenefitRule.version)
        )
    )
    assert [(r.version, r.share_fen_per_unit, r.split) for r in versions] == [
        (1, 2000, "matched"),
        (2, 2500, "matched"),
    ]
    assert [h.household_code for h in versions[1].households] == ["SJ-001", "SJ-002"]
