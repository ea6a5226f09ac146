"""No public page or API answer shows a household's or a buyer's personal data.

The crawl walks every GET route the app has. Routes with arguments must be listed in
``PUBLIC_ARGUMENTS`` (how to fill them) or be private; a new public route that is in
neither makes this test fail, so it cannot be forgotten.
"""

import re

import pytest
from sqlalchemy import select

from shop.account import card as impact_card
from shop.account import profile
from shop.approvals import kinds
from shop.approvals import services as approvals
from shop.catalog.models import Category, Product
from shop.demo import seed_demo
from shop.extensions import db
from shop.households.models import Household
from shop.households.services import HouseholdInput, id_check_char
from shop.orders.services import apply_payment
from shop.organisations import bulk
from shop.organisations import services as organisations
from tests.builders import buyer, make_household, make_order, make_user

# Only staff, admins and the pretend Alipay see these; they are checked by role tests.
PRIVATE_PREFIXES = ("/console", "/admin", "/sandbox")
# Pages for the holder of an order's secret token: the buyer's own details may appear,
# household details still may not.
BUYER_ONLY_ENDPOINTS = {
    "orders.show", "payments.payment_return", "api.get_order", "invoices.download",
}  # fmt: skip
SKIPPED_ENDPOINTS = {"static", "media.photo", "catalog.set_language"}

BUYER_NAME = "欧阳秀英"
BUYER_PHONE = "13912345678"
BUYER_ADDRESS = "陕西省西安市幸福路88号"
ANONYMOUS_NAME = "诸葛红梅"
ANONYMOUS_NICKNAME = "红梅花开"
ANONYMOUS_ORG = "诸葛梅园科技有限公司"
ORG_CONTACT, ORG_PHONE = "慕容经理", "13700006789"
RECIPIENT, RECIPIENT_PHONE, RECIPIENT_ADDRESS = "慕容秋水", "13700004321", "福建省福州市秋水路9号"


def public_arguments(seeded) -> dict:
    return {
        "catalog.product": [{"slug": slug} for slug in seeded["product_slugs"]],
        "catalog.category": [{"slug": slug} for slug in seeded["category_slugs"]],
        "orders.show": [{"token": seeded["token"]}],
        "invoices.download": [{"token": seeded["token"]}],
        "account.public_impact": [{"slug": seeded["card_slug"]}],
        "payments.payment_return": [{"token": seeded["token"]}],
        "api.get_order": [{"token": seeded["token"]}],
        "boards.household": [{"code": code} for code in seeded["household_codes"]],
        "boards.trace": [{"token": seeded["token"]}, {"token": seeded["anonymous_token"]}],
        "boards.trace_qr": [{"token": seeded["token"]}],
        "catalog.product_qr": [{"slug": slug} for slug in seeded["product_slugs"]],
        "boards.verifier_source": [{"name": "verify"}, {"name": "canonical"}],
        # Members only: the public walk is sent to log in.
        **{
            f"organisations.{name}": [{"organisation_id": seeded["organisation_id"]}]
            for name in ("show", "impact", "bulk_order")
        },
        "organisations.join": [{"code": seeded["invite_code"]}],
    }


@pytest.fixture
def seeded(app):
    seed_demo()
    sima_id = "61072219500101123" + id_check_char("61072219500101123")
    sima = make_household(head_name="司马建国", card="6228480012345678901", id_number=sima_id)
    # An approved change of name and card (four eyes): the public change log shows it,
    # masked — neither the old nor the new name or card may appear in full.
    maker = make_user(username="proposer", role="admin")
    checker = make_user(username="approver", role="admin")
    values = HouseholdInput(
        head_name="司马建军",
        id_number=sima_id,
        members=3,
        village_id=sima.village_id,
        code=sima.code,
        bank_card="6228480099998888777",
    )
    approvals.approve(kinds.propose_household_update(sima.id, values, maker).id, checker)
    wine = db.session.scalar(select(Product).order_by(Product.id))
    # The buyer has an account, saved details and a public impact card (opt-in).
    account = make_user(username="ouyang", password="buyer-pass-1")
    details = buyer(
        name=BUYER_NAME, phone=BUYER_PHONE, address=BUYER_ADDRESS, board_display="masked"
    )
    profile.save(account.id, details)
    order = make_order([(wine, 2)], details, user_id=account.id)
    apply_payment(order.order_no, "2026112522001400000001", order.total_fen, paid=True)
    # An anonymous enterprise buyer: neither the name, nor the nickname, nor the
    # organisation may show anywhere public.
    anonymous = make_order(
        [(wine, 1)],
        buyer(
            name=ANONYMOUS_NAME,
            phone="13700001111",
            address=BUYER_ADDRESS,
            board_display="anonymous",
            nickname=ANONYMOUS_NICKNAME,
            organization=ANONYMOUS_ORG,
        ),
    )
    apply_payment(anonymous.order_no, "2026112522001400000002", anonymous.total_fen, paid=True)
    households = list(db.session.scalars(select(Household)))
    # A caring enterprise's bulk order, paid: the love board shows the organisation; its
    # contact and its recipients never appear anywhere public.
    organisation = organisations.register(
        account.id, "慕容爱心实业有限公司", "91350100M000100Y43", ORG_CONTACT, ORG_PHONE
    )
    rows = bulk.read_rows(
        f"收货人,手机号,收货地址,商品,数量\n{RECIPIENT},{RECIPIENT_PHONE},{RECIPIENT_ADDRESS},"
        f"{wine.slug},1\n".encode()
    )
    placed = bulk.place_bulk_order(
        rows,
        organisations.ordering_for(account.id, organisation.id),
        buyer(name=ORG_CONTACT, phone=ORG_PHONE, address=""),
        account.id,
        "pc",
        30,
    )
    order_for_unit = placed.order
    apply_payment(
        order_for_unit.order_no, "2026112522001400000003", order_for_unit.total_fen, paid=True
    )
    return {
        "organisation_id": organisation.id,
        "invite_code": organisation.invite_code,
        "household_secrets": [
            secret
            for h in households
            for secret in (
                h.head_name if len(h.head_name) >= 3 else None,
                h.id_number,
                h.bank_card,
            )
            if secret
        ],
        "household_secrets_changed": ["司马建国", "6228480012345678901"],
        "buyer_secrets": [
            BUYER_NAME,
            BUYER_PHONE,
            BUYER_ADDRESS,
            "幸福路88号",
            ANONYMOUS_NAME,
            ANONYMOUS_NICKNAME,
            ANONYMOUS_ORG,
            "13700001111",
            ORG_CONTACT,
            ORG_PHONE,
            RECIPIENT,
            RECIPIENT_PHONE,
            RECIPIENT_ADDRESS,
        ],
        "household_codes": [h.code for h in households],
        "anonymous_token": anonymous.token,
        "product_slugs": list(db.session.scalars(select(Product.slug))),
        "category_slugs": list(db.session.scalars(select(Category.slug))),
        "token": order.token,
        "card_slug": impact_card.share(account.id).slug,
    }


def get_urls(app, seeded):
    arguments = public_arguments(seeded)
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in SKIPPED_ENDPOINTS:
            continue
        if rule.rule.startswith(PRIVATE_PREFIXES):
            continue
        if rule.arguments:
            assert rule.endpoint in arguments, (
                f"new public route {rule.rule}: add it to PUBLIC_ARGUMENTS or make it private"
            )
            for values in arguments[rule.endpoint]:
                urls.append((rule.endpoint, rule.build(values)[1]))
        else:
            urls.append((rule.endpoint, rule.rule))
    return urls


def digits_only(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.mark.parametrize("lang", ["zh_Hans_CN", "en"])
def test_public_output_never_contains_seeded_pii(app, client, seeded, lang):
    urls = get_urls(app, seeded)
    assert len(urls) >= 10
    assert len(seeded["household_secrets"]) > 500  # 245 households: names, IDs, cards
    for endpoint, url in urls:
        response = client.get(url, query_string={"lang": lang})
        assert response.status_code < 500, url
        body = response.get_data(as_text=True)
        body_digits = digits_only(body)
        secrets = seeded["household_secrets"] + seeded["household_secrets_changed"]
        leaked = [s for s in secrets if s in body]
        leaked += [s for s in secrets if s.isdigit() and s in body_digits]
        if endpoint not in BUYER_ONLY_ENDPOINTS:
            leaked += [s for s in seeded["buyer_secrets"] if s in body]
            leaked += [BUYER_PHONE] if BUYER_PHONE in body_digits else []
        assert not leaked, f"{url} shows personal data: {leaked[:3]}"


def test_the_public_change_log_is_in_the_crawl(app, client, seeded):
    """The approved change above is there to be scanned, masked."""
    body = client.get("/changes").get_data(as_text=True)
    assert "**** 8901" in body and "**** 8777" in body and "司**军" in body
    assert client.get("/api/v1/changes").get_json()["changes"][0]["approved_by"] == "approver"


def test_the_crawl_would_notice_a_leak(app, client, seeded):
    """Guard against a crawl that sees nothing: put a name where it must not be."""
    product = db.session.scalar(select(Product).where(Product.status == "published"))
    product.story = "感谢农户司马建军"
    db.session.commit()
    body = client.get(f"/p/{product.slug}").get_data(as_text=True)
    assert "司马建军" in body
    assert "司马建军" in seeded["household_secrets"]
