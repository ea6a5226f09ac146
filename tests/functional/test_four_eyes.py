"""No one person can redirect a household's money: card changes, payouts and rules wait
for a second admin, and what was approved is in the audit log and the public change log.

Payouts go through the sandbox gateway over real HTTP (a live server), as in production.
"""

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from shop.approvals import services as approvals
from shop.approvals.models import ChangeProposal
from shop.audit.models import AuditRecord
from shop.audit.verify import verify_audit
from shop.benefits.services import set_product_rule
from shop.db import utcnow
from shop.extensions import db
from shop.households.models import Household
from shop.households.services import id_check_char, id_digest
from shop.orders.services import apply_payment
from tests.builders import make_household, make_order, make_product, make_user, make_village
from tests.conftest import ADMIN_PASSWORD, login
from tests.live_server import live_server

OLD_CARD = "6217000011112222"
NEW_CARD = "6230000099998888"


def fake_id(n: int) -> str:
    body = f"610722198001010{n:02d}"
    return body + id_check_char(body)


@pytest.fixture
def live(app):
    with live_server(app) as base_url:
        yield base_url


@pytest.fixture
def household(app):
    """A household owed ¥40 from a paid order, with card …2222 (payouts from ¥10)."""
    app.config["PAYOUT_THRESHOLD_FEN"] = 1000
    village = make_village(code="SJ", name="双井村")
    zhang = make_household(village, head_name="张三明", code="SJ-001", card=OLD_CARD, land_mu=3)
    zhang.id_number = fake_id(1)
    zhang.id_number_digest = id_digest(zhang.id_number)
    zhang.bank_name = "城固农商银行"
    db.session.commit()
    wine = make_product(price_fen=15800)
    set_product_rule(wine.id, [zhang], "weighted", "land", share_fen_per_unit=2000)
    order = make_order([(wine, 2)])
    apply_payment(order.order_no, "TFOUREYES1", order.total_fen, paid=True)
    return zhang


@pytest.fixture
def second_admin(app):
    return make_user(
        username="admin2", password=ADMIN_PASSWORD, role="admin", display_name="李会计"
    )


@pytest.fixture
def admin_b(app, second_admin):
    client = app.test_client()
    assert login(client, "admin2", ADMIN_PASSWORD).status_code == 302
    return client


def edit_form(household, **changes):
    data = {
        "code": household.code,
        "head_name": "张三明",
        "id_number": fake_id(1),
        "members": "3",
        "village_id": household.village_id,
        "group_name": "一组",
        "bank_name": "城固农商银行",
        "bank_card": OLD_CARD,
        "land_mu": "3.00",
        "active": "y",
    }
    data.update(changes)
    return data


def fresh(household) -> Household:
    db.session.expire_all()
    return db.session.get(Household, household.id)


def only_pending() -> ChangeProposal:
    waiting = approvals.pending()
    assert len(waiting) == 1, [p.title for p in waiting]
    return waiting[0]


def test_one_admin_alone_cannot_change_a_card_and_pay_to_it(admin_client, household, live):
    response = admin_client.post(
        f"/admin/households/{household.id}/edit", data=edit_form(household, bank_card=NEW_CARD)
    )
    assert response.status_code == 302 and "/admin/proposals/" in response.headers["Location"]
    assert fresh(household).bank_card == OLD_CARD, "the card changed without a second admin"
    card_change = only_pending()
    detail = admin_client.get(f"/admin/proposals/{card_change.id}").get_data(as_text=True)
    assert "**** 2222" in detail and "**** 8888" in detail
    assert OLD_CARD not in detail and NEW_CARD not in detail

    # The same admin proposes a payout batch: it goes to the card on record, not the new one.
    assert admin_client.post("/admin/payouts/run").status_code == 302
    batch = db.session.scalar(select(ChangeProposal).where(ChangeProposal.kind == "payout.release"))
    lines = json.loads(batch.after)["lines"]
    assert [(line["code"], line["bank_card"]) for line in lines] == [("SJ-001", "**** 2222")]

    # …and cannot approve either of their own proposals.
    for proposal in (card_change, batch):
        page = admin_client.post(
            f"/admin/proposals/{proposal.id}/approve", follow_redirects=True
        ).get_data(as_text=True)
        assert "不能审批自己提出的变更" in page
    db.session.expire_all()
    assert {p.status for p in db.session.scalars(select(ChangeProposal))} == {"pending"}
    assert fresh(household).bank_card == OLD_CARD
    from shop.payouts.services import owed_to

    assert owed_to("SJ-001") == 4000, "money left the household's account"


def test_a_second_admin_approves_then_the_next_payout_waits_for_its_own_approval(
    admin_client, admin_b, household, live
):
    admin_client.post(
        f"/admin/households/{household.id}/edit", data=edit_form(household, bank_card=NEW_CARD)
    )
    proposal = only_pending()
    page = admin_b.get(f"/admin/proposals/{proposal.id}").get_data(as_text=True)
    assert "**** 2222" in page and "**** 8888" in page and "admin1" in page
    response = admin_b.post(f"/admin/proposals/{proposal.id}/approve", follow_redirects=True)
    assert "已批准并生效" in response.get_data(as_text=True)
    changed = fresh(household)
    assert changed.bank_card == NEW_CARD and changed.card_last4 == "8888"
    assert changed.card_changed_at is not None

    # The audit log names both people, and the approval carries the change itself.
    records = list(db.session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
    made = [r for r in records if r.action == "proposal.create"]
    approved = [r for r in records if r.action == "proposal.approve"]
    assert [r.actor_name for r in made] == ["admin1"]
    assert [r.actor_name for r in approved] == ["李会计"]
    summary = json.loads(approved[0].summary)
    assert summary["after"]["bank_card"] == "**** 8888"
    assert summary["after"]["proposed_by"] == "admin1"
    assert any(row["table"] == "household" for row in summary["rows"])
    assert NEW_CARD not in approved[0].summary and OLD_CARD not in approved[0].summary
    assert verify_audit(db.session).ok

    # The public change log shows the change, masked, with who proposed and approved it.
    public = admin_b.get("/changes?household=SJ-001").get_data(as_text=True)
    assert "**** 2222" in public and "**** 8888" in public
    assert "admin1" in public and "李会计" in public
    assert NEW_CARD not in public and OLD_CARD not in public
    api = admin_b.get("/api/v1/changes").get_json()["changes"]
    assert api[0]["household_code"] == "SJ-001"
    assert api[0]["before"]["bank_card"] == "**** 2222"
    assert api[0]["after"]["bank_card"] == "**** 8888"
    assert (api[0]["proposed_by"], api[0]["approved_by"]) == ("admin1", "李会计")
    assert "/changes?household=SJ-001" in admin_b.get("/households/SJ-001").get_data(as_text=True)

    # The next batch leaves the household out: a payout to a new card is approved alone.
    admin_client.post("/admin/payouts/run")
    assert (
        db.session.scalar(select(ChangeProposal).where(ChangeProposal.kind == "payout.release"))
        is None
    ), "a batch with nobody in it was proposed"
    payouts_page = admin_client.get("/admin/payouts").get_data(as_text=True)
    assert "SJ-001" in payouts_page and "提出单独打款" in payouts_page
    admin_client.post("/admin/payouts/households/SJ-001")
    single = only_pending()
    assert single.kind == "payout.household"
    from shop.payouts.services import owed_to

    assert owed_to("SJ-001") == 4000, "paid before the second approval"
    admin_b.post(f"/admin/proposals/{single.id}/approve")
    assert owed_to("SJ-001") == 0
    from ledger import Payout

    payout = db.session.scalar(select(Payout))
    assert (payout.status, payout.card_last4, payout.amount_fen) == ("paid", "8888", 4000)
    result = verify_audit(db.session)
    assert result.ok, result.problems
    starts = db.session.scalars(select(AuditRecord).where(AuditRecord.action == "payout.start"))
    assert [r.ledger_keys for r in starts] == [json.dumps([f"payout:{payout.out_biz_no}"])]


def test_a_card_changed_after_the_batch_was_approved_is_not_paid(
    admin_client, admin_b, household, live, second_admin
):
    admin_client.post("/admin/payouts/run")
    batch = only_pending()
    # Meanwhile the card changes (through its own approved proposal).
    admin_b.post(
        f"/admin/households/{household.id}/edit", data=edit_form(household, bank_card=NEW_CARD)
    )
    card = next(p for p in approvals.pending() if p.kind == "household.update")
    admin_client.post(f"/admin/proposals/{card.id}/approve")
    admin_b.post(f"/admin/proposals/{batch.id}/approve")
    db.session.expire_all()
    batch = db.session.get(ChangeProposal, batch.id)
    assert batch.status == "approved" and "SJ-001" in batch.outcome
    from shop.payouts.services import owed_to

    assert owed_to("SJ-001") == 4000


def test_rejected_and_expired_proposals_change_nothing(admin_client, admin_b, household):
    admin_client.post(
        f"/admin/households/{household.id}/edit", data=edit_form(household, head_name="王小二")
    )
    proposal = only_pending()
    page = admin_b.post(
        f"/admin/proposals/{proposal.id}/reject", data={"reason": ""}, follow_redirects=True
    ).get_data(as_text=True)
    assert "请写明驳回理由" in page
    admin_b.post(f"/admin/proposals/{proposal.id}/reject", data={"reason": "户主\x00未变更"})
    assert only_pending().id == proposal.id  # a NUL is refused, with a message
    # A reason may run over two lines, as any text people type may.
    admin_b.post(f"/admin/proposals/{proposal.id}/reject", data={"reason": "户主未变更\r\n见档案"})
    db.session.expire_all()
    rejected = db.session.get(ChangeProposal, proposal.id)
    assert (rejected.status, rejected.reason, rejected.decided_by_name) == (
        "rejected",
        "户主未变更\r\n见档案",
        "李会计",
    )
    assert fresh(household).head_name == "张三明"
    assert "王" not in admin_b.get("/api/v1/changes").get_data(as_text=True)

    admin_client.post(
        f"/admin/households/{household.id}/edit", data=edit_form(household, members="5")
    )
    late = only_pending()
    late.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    page = admin_b.post(f"/admin/proposals/{late.id}/approve", follow_redirects=True)
    assert "已过期" in page.get_data(as_text=True)
    assert fresh(household).members == 3
    db.session.expire_all()
    assert db.session.get(ChangeProposal, late.id).status == "expired"


def test_an_approval_that_can_no_longer_apply_fails_whole(admin_client, admin_b, household):
    village = household.village
    admin_client.post(
        "/admin/households/new",
        data={
            "head_name": "赵六",
            "id_number": fake_id(7),
            "members": "2",
            "village_id": village.id,
            "bank_card": "6217000033334444",
            "land_mu": "0",
            "active": "y",
        },
    )
    proposal = only_pending()
    assert proposal.household_code == "SJ-002"
    # Meanwhile the same person is registered on another household.
    household.id_number = fake_id(7)
    household.id_number_digest = id_digest(fake_id(7))
    db.session.commit()
    page = admin_b.post(f"/admin/proposals/{proposal.id}/approve", follow_redirects=True)
    assert "无法执行" in page.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ChangeProposal, proposal.id).status == "failed"
    assert db.session.scalar(select(Household).where(Household.code == "SJ-002")) is None


def test_an_admin_must_enrol_in_two_factor_login_before_approving(app, admin_client, household):
    admin_client.post(
        f"/admin/households/{household.id}/edit", data=edit_form(household, members="4")
    )
    proposal = only_pending()
    unenrolled = make_user(
        username="admin3", password=ADMIN_PASSWORD, role="admin", two_factor=False
    )
    with pytest.raises(approvals.ApprovalError, match="两步验证"):
        approvals.approve(proposal.id, unenrolled)
    staff = make_user(username="staff9", role="staff")
    with pytest.raises(approvals.ApprovalError):
        approvals.approve(proposal.id, staff)
    assert fresh(household).members == 3


def test_rules_and_large_refunds_wait_for_a_second_admin(app, admin_client, admin_b, household):
    wine = make_product(price_fen=9900)
    response = admin_client.post(
        "/admin/rules/new",
        data={
            "product_id": wine.id,
            "share_kind": "fixed",
            "share_amount": "10",
            "split": "weighted",
            "weight_basis": "land",
            "households": "all",
            "note": "",
        },
    )
    assert response.status_code == 302
    from ledger import latest_rule

    assert latest_rule(db.session, wine.id) is None
    rule = only_pending()
    admin_b.post(f"/admin/proposals/{rule.id}/approve")
    assert latest_rule(db.session, wine.id).share_fen_per_unit == 1000

    app.config["APPROVAL_THRESHOLD_FEN"] = 10000
    order = make_order([(wine, 3)])
    apply_payment(order.order_no, "TFOUREYES2", order.total_fen, paid=True)
    admin_client.post(
        f"/console/orders/{order.order_no}/refund", data={"amount": "200.00", "reason": "破损"}
    )
    refund = only_pending()
    assert refund.kind == "order.refund"
    db.session.expire_all()
    assert db.session.get(type(order), order.id).refunded_fen == 0


def test_a_household_registered_twice_is_merged_after_a_second_admin_approves(
    admin_client, admin_b, household
):
    from ledger import verify_database
    from shop.payouts.services import owed_to

    duplicate = make_household(
        household.village, head_name="张三明", code="SJ-009", card="6217000055556666"
    )
    wine = make_product(price_fen=10000)
    set_product_rule(wine.id, [duplicate], "weighted", "equal", share_fen_per_unit=1500)
    order = make_order([(wine, 2)])
    apply_payment(order.order_no, "TMERGE1", order.total_fen, paid=True)
    assert owed_to("SJ-009") == 3000

    refused = admin_client.post(
        f"/admin/households/{duplicate.id}/merge",
        data={"keep_code": "SJ-001"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "现行帮扶规则仍关联户 SJ-009" in refused  # it would keep being credited
    assert approvals.pending() == []

    set_product_rule(wine.id, [household], "weighted", "equal", share_fen_per_unit=1500)
    admin_client.post(f"/admin/households/{duplicate.id}/merge", data={"keep_code": "sj-001"})
    proposal = only_pending()
    assert json.loads(proposal.after) == {"active": False, "into": "SJ-001", "moved_fen": 3000}
    assert owed_to("SJ-009") == 3000 and fresh(duplicate).active

    admin_b.post(f"/admin/proposals/{proposal.id}/approve")
    assert (owed_to("SJ-009"), owed_to("SJ-001")) == (0, 7000)
    assert not fresh(duplicate).active
    assert verify_database(db.session).ok
    result = verify_audit(db.session)
    assert result.ok, result.problems
    public = admin_b.get("/changes?household=SJ-009").get_data(as_text=True)
    assert "合并重复登记：SJ-009 并入 SJ-001" in public
    statement = admin_b.get("/households/SJ-009").get_data(as_text=True)
    assert "合并重复登记" in statement


def test_an_approval_applies_only_what_was_proposed(admin_client, admin_b, household):
    """Regression guard: approving a card change must not undo a change made meanwhile
    to other fields (by an approved import, say)."""
    admin_client.post(
        f"/admin/households/{household.id}/edit", data=edit_form(household, bank_card=NEW_CARD)
    )
    proposal = only_pending()
    assert json.loads(proposal.payload)["changed"] == ["bank_card"]
    meanwhile = fresh(household)
    meanwhile.members = 6  # approved elsewhere while this one waited
    db.session.commit()
    admin_b.post(f"/admin/proposals/{proposal.id}/approve")
    changed = fresh(household)
    assert (changed.bank_card, changed.members) == (NEW_CARD, 6)
