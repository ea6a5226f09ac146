"""The organisation forms, driven by Hypothesis (see ``test_form_fuzz.py`` for what every
example checks): registering a unit, and the recipients CSV of a bulk order — placed
whole (one order, one recipient per row, stock down by exactly its units) or refused
with a message and nothing written."""

import io

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from shop.catalog.models import Product
from shop.extensions import db
from shop.orders.models import Order
from shop.organisations import services
from shop.organisations.models import BulkRecipient, Organisation
from tests.functional.form_fuzz import (
    FUZZ,
    assert_not_5xx,
    assert_refused_cleanly,
    changed_tables,
    form,
    hostile_text,
    phones,
    post_form,
    published,
    row_counts,
)
from tests.functional.test_form_fuzz import CONTROL, login_buyer
from tests.functional.test_form_fuzz_console import csv_file, multipart_fields

CODES = st.sampled_from(["91350100M000100Y43", "91110000802100433B", "9131 0000 MA1F L4B2 4G"])
GOOD_ORGANISATION = {
    "name": (st.sampled_from(["连心科技有限公司", "某某中学工会"]), st.just("名" * 61)),
    "credit_code": (CODES, st.sampled_from(["91350100M000100Y44", "123", "91350100M000100I43"])),
    "contact_name": (st.just("赵经理"), st.just("名" * 41)),
    "contact_phone": (phones, st.sampled_from(["1234", "+1 555 0100", "１３８００１３８０００"])),
    "email": (st.just("hr@example.org"), st.just("not-an-email")),
}


@FUZZ
@given(pairs=form(GOOD_ORGANISATION))
@example(pairs=[("name", "连心\x00科技"), ("credit_code", "91350100M000100Y43"),
                ("contact_name", "赵经理"), ("contact_phone", "13700001111")])  # fmt: skip
def test_register_organisation_fuzzed(client, signed_in_buyer, pairs):
    """Registered as checked (code with a right check character, clean text), or refused
    with a message and nothing written."""
    before = row_counts()
    response = post_form(client, "/organisations/new", pairs)
    assert_not_5xx(response)
    after = row_counts()
    if after["organisation"] > before["organisation"]:
        event("accepted")
        assert set(changed_tables(before, after)) == {"organisation", "organisation_member"}
        organisation = db.session.scalar(select(Organisation).order_by(Organisation.id.desc()))
        assert len(organisation.credit_code) == 18 and not CONTROL.search(organisation.name)
        db.session.rollback()
    else:
        assert_refused_cleanly(client, response, before)


RECIPIENT_HEADER = ["收货人", "手机号", "收货地址", "商品", "数量"]
RECIPIENT_CELLS = [
    (st.sampled_from(["孙一", "李二"]), hostile_text),
    (phones, st.sampled_from(["1370000", "+86 137 0000 1111", "１３７０００００１１１"])),
    (st.just("福建省福州市鼓楼区一号路1号"), st.just("短")),
    (st.sampled_from(["树莓果酒", "fuzz-wine"]), st.sampled_from(["没有这个酒", "draft-wine"])),
    (st.integers(1, 5).map(str), st.sampled_from(["0", "-1", "1.5", "1e3", "999", "３"])),
]


@pytest.fixture
def signed_in_buyer(client):
    return login_buyer(client)


@pytest.fixture
def member(signed_in_buyer):
    user = signed_in_buyer
    return services.register(
        user.id, "连心科技有限公司", "91350100M000100Y43", "赵经理", "13700001111"
    )


@FUZZ
@given(
    content=csv_file(RECIPIENT_HEADER, RECIPIENT_CELLS),
    pairs=form({"contact_name": (st.just("赵经理"), hostile_text),
                "contact_phone": (phones, st.just("12")),
                "board_display": (st.sampled_from(["masked", "anonymous"]), st.just("x"))}),
)  # fmt: skip
@example(
    content="收货人,手机号,收货地址,商品,数量\r\n孙一,13700003331,福建省福州市鼓楼区一号路1号,树莓果酒,2\r\n"
    .encode("gbk"),
    pairs=[("contact_name", "赵经理"), ("contact_phone", "13700001111"),
           ("board_display", "masked")],
)  # fmt: skip
def test_recipients_csv_fuzzed(client, member, content, pairs):
    wine = db.session.scalar(select(Product).where(Product.slug == "fuzz-wine"))
    if wine is None:
        wine = published(name="树莓果酒", slug="fuzz-wine", price_fen=15800)
        published(name="草稿酒", slug="draft-wine", status="draft")
    stock = wine.stock
    before = row_counts()
    orders_before = db.session.scalar(select(func.count()).select_from(Order))
    response = client.post(
        f"/organisations/{member.id}/bulk",
        data={**multipart_fields(pairs), "recipients": (io.BytesIO(content), "recipients.csv")},
        content_type="multipart/form-data",
    )
    assert_not_5xx(response)
    after = row_counts()
    db.session.expire_all()
    placed = db.session.scalar(select(func.count()).select_from(Order)) - orders_before
    if placed == 0 and after["bulk_upload"] == before["bulk_upload"]:
        if response.status_code == 302:  # the same list as an earlier example: its order
            event("placed before")
            assert after == before
            return
        assert_refused_cleanly(client, response, before)
        return
    event("accepted")
    assert placed == 1 and after["bulk_upload"] == before["bulk_upload"] + 1
    order = db.session.scalar(select(Order).order_by(Order.id.desc()))
    recipients = db.session.scalars(select(BulkRecipient).where(
        BulkRecipient.upload_id == db.session.scalar(
            select(func.max(BulkRecipient.upload_id))))).all()  # fmt: skip
    assert order.organisation_id == member.id and order.units == sum(r.quantity for r in recipients)
    assert db.session.get(Product, wine.id).stock == stock - order.units
    for r in recipients:
        assert not CONTROL.search(r.name + r.address) and len(r.phone) == 11
    db.session.rollback()
