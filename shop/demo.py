"""The demo programme: 双井村 with its enterprise, 244 households and products.

Names, ID numbers and bank cards are generated (deterministically, from a fixed seed)
and belong to nobody. Seeding is idempotent: each object is looked up by its natural
key (code, slug, username) and only missing ones are created.
"""

import csv
import hashlib
import io
import math
import random
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from PIL import Image, ImageDraw
from sqlalchemy import func, select

from shop.auth.models import User
from shop.benefits.services import set_product_rule
from shop.catalog.models import Category, Product
from shop.console.services import add_product_photo
from shop.db import utcnow
from shop.extensions import db
from shop.households.models import Enterprise, Household, Village
from shop.offline import importer
from shop.offline.importer import SALES_COLUMNS, roster_csv
from shop.offline.models import ImportBatch, OfflineSale
from shop.pii import cipher

HOUSEHOLD_COUNT = 244  # registered households in the programme (see the seed article)
# Two admins, because every change to a household's money needs a second one (four eyes).
DEMO_LOGINS = [
    ("village", "lianxin-village-2026", "staff"),
    ("admin", "lianxin-admin-2026", "admin"),
    ("checker", "lianxin-checker-2026", "admin"),
]
DEMO_DISPLAY_NAMES = {"village": "驻村工作队", "admin": "管理员", "checker": "复核管理员"}

VILLAGE = {
    "code": "SJ",
    "name": "双井村",
    "county": "城固县",
    "province": "陕西省汉中市",
    "story": (
        "双井村地处秦岭南麓。树莓产业示范园流转土地1500亩，带动贫困户通过土地流转、"
        "入园务工、产业分红和合作社四条渠道增收；消费帮扶平台让每一笔购买都关联到具体农户。"
    ),
}
ENTERPRISE = {"name": "双井树莓果酒厂（扶贫企业）", "description": "树莓产业示范园的果酒加工企业。"}
CATEGORIES = [
    ("fruit-wine", "果酒", "Fruit wine"),
    ("produce", "农产品", "Farm produce"),
    ("specialties", "土特产", "Local specialties"),
]
# slug, name, subtitle, category, price_fen, beneficiary_fen_per_unit, unit, stock, colour, shape
# fmt: off
PRODUCTS = [
    ("raspberry-wine", "树莓果酒", "WLA世界美酒大赛果酒类金奖", "fruit-wine", 15800, 2000, "瓶", 500, (170, 20, 60), "bottle"),  # noqa: E501
    ("mulberry-wine", "桑葚果酒", "第一代桑葚果酒，果香浓郁", "fruit-wine", 12800, 1500, "瓶", 300, (80, 20, 70), "bottle"),  # noqa: E501
    ("orange-wine", "橘子果酒", "用滞销柑橘的橘瓤酿造", "fruit-wine", 9800, 1200, "瓶", 200, (235, 140, 20), "bottle"),  # noqa: E501
    ("fresh-raspberry", "树莓鲜果礼盒", "当季采摘，冷链直发", "produce", 6800, 1000, "盒", 150, (200, 30, 70), "fruit"),  # noqa: E501
    ("chenggu-orange", "城固柑橘", "5公斤装，皮薄汁多", "produce", 3990, 600, "箱", 400, (240, 150, 30), "fruit"),  # noqa: E501
    ("dried-apricot", "吊干杏", "果园自然晾制", "specialties", 4500, 800, "盒", 120, (230, 170, 60), "fruit"),  # noqa: E501
    ("mountain-honey", "秦岭土蜂蜜", "农户散养土蜂所产", "specialties", 8800, 1200, "瓶", 80, (220, 160, 40), "jar"),  # noqa: E501
]
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
)
# fmt: on
GIVEN = (
    "建国华明军平秀英兰芳玉红丽强伟勇涛斌刚杰磊超宏林霞燕春梅桂珍凤海亮成福贵德安顺和永祥生才富荣"
)
GROUPS = ["一组", "二组", "三组", "四组", "五组", "六组", "七组", "八组"]
REGION_CODE = "610722"  # 城固县
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


@dataclass
class SeedReport:
    created: dict[str, int] = field(default_factory=dict)
    skipped: bool = False

    def add(self, what: str, count: int = 1) -> None:
        self.created[what] = self.created.get(what, 0) + count

    def summary(self) -> str:
        if self.skipped:
            return "demo seed: the database already has data; nothing changed"
        if not self.created:
            return "demo seed: everything already present; nothing changed"
        parts = ", ".join(f"{n} {what}" for what, n in sorted(self.created.items()))
        return f"demo seed: created {parts}"


def resident_id(rng: random.Random) -> str:
    """A well-formed 18-character resident ID (valid MOD 11-2 check digit) for a fake person."""
    year = rng.randint(1940, 2000)
    birth = f"{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = f"{REGION_CODE}{birth}{rng.randint(0, 999):03d}"
    total = sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True))
    return body + ID_CHECK[total % 11]


def demo_household_rows(count: int = HOUSEHOLD_COUNT, seed: int = 311) -> list[dict]:
    """Deterministic household data shaped like the programme's "4+1" links.

    86 households rent out land, 62 work in the park, 100 receive dividends and one in
    eight is a co-operative member — the proportions the programme reports.
    """
    rng = random.Random(seed)
    indices = list(range(count))
    land = set(rng.sample(indices, min(86, count)))
    wages = set(rng.sample(indices, min(62, count)))
    dividends = set(rng.sample(indices, min(100, count)))
    coop = set(rng.sample(indices, count // 8))
    rows = []
    for i in indices:
        given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        rows.append(
            {
                "code": f"SJ-{i + 1:03d}",
                "group_name": GROUPS[i % len(GROUPS)],
                "head_name": rng.choice(SURNAMES) + given,
                "id_number": resident_id(rng),
                "members": rng.randint(1, 6),
                "land_mu": Decimal(rng.randint(5, 60)) / 10 if i in land else Decimal("0"),
                "employed": i in wages,
                "dividend": i in dividends,
                "coop_member": i in coop,
                "bank_name": rng.choice(["城固农商银行", "中国邮政储蓄银行", "中国农业银行"]),
                "bank_card": "6217" + "".join(str(rng.randint(0, 9)) for _ in range(15)),
            }
        )
    return rows


def product_photo_bytes(colour: tuple[int, int, int], shape: str, variant: int = 0) -> bytes:
    """Draw a simple product picture (bottle, jar or fruit) as a JPEG; no text, no fonts."""
    width, height = 1200, 1200
    background = (248, 243, 235) if variant == 0 else (232, 240, 228)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 900, width, height), fill=(214, 196, 170))
    dark = tuple(max(0, c - 60) for c in colour)
    if shape == "bottle":
        draw.rounded_rectangle((470, 380, 730, 1000), radius=60, fill=colour, outline=dark, width=8)
        draw.rectangle((550, 200, 650, 400), fill=colour, outline=dark, width=8)
        draw.rectangle((540, 170, 660, 220), fill=(60, 40, 30))
        draw.rounded_rectangle((495, 600, 705, 800), radius=12, fill=(250, 246, 236))
    elif shape == "jar":
        draw.rounded_rectangle((420, 460, 780, 1000), radius=80, fill=colour, outline=dark, width=8)
        draw.rectangle((450, 390, 750, 470), fill=(120, 80, 40))
    else:
        rng = random.Random(sum(colour) + variant)
        for _ in range(9):
            cx, cy = rng.randint(330, 870), rng.randint(520, 860)
            r = rng.randint(90, 140)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=dark, width=6)
    for k in range(12):
        angle = k * math.pi / 6
        x, y = 180 + 60 * math.cos(angle), 180 + 60 * math.sin(angle)
        draw.line((180, 180, x, y), fill=(250, 200, 80), width=10)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _get_or_create(model, lookup: dict, values: dict, report: SeedReport, label: str):
    found = db.session.scalar(select(model).filter_by(**lookup))
    if found is not None:
        return found
    obj = model(**lookup, **values)
    db.session.add(obj)
    report.add(label)
    return obj


def seed_demo(only_if_empty: bool = False) -> SeedReport:
    """Create whatever part of the demo programme is missing and commit it.

    With ``only_if_empty`` nothing happens when any product or household exists, so
    ``make run`` never mixes demo data into a real shop.
    """
    report = SeedReport()
    if only_if_empty:
        has_data = db.session.scalar(
            select(func.count()).select_from(Product)
        ) or db.session.scalar(select(func.count()).select_from(Household))
        if has_data:
            report.skipped = True
            return report

    village = _get_or_create(
        Village,
        {"code": VILLAGE["code"]},
        {k: v for k, v in VILLAGE.items() if k != "code"},
        report,
        "village",
    )
    enterprise = _get_or_create(
        Enterprise,
        {"name": ENTERPRISE["name"]},
        {"description": ENTERPRISE["description"]},
        report,
        "enterprise",
    )
    categories = {}
    for position, (slug, name, name_en) in enumerate(CATEGORIES):
        categories[slug] = _get_or_create(
            Category,
            {"slug": slug},
            {"name": name, "name_en": name_en, "position": position},
            report,
            "categories",
        )
    db.session.flush()

    existing_codes = set(db.session.scalars(select(Household.code)))
    for row in demo_household_rows():
        if row["code"] in existing_codes:
            continue
        household = Household(
            code=row["code"],
            village=village,
            group_name=row["group_name"],
            members=row["members"],
            land_mu=row["land_mu"],
            employed=row["employed"],
            dividend=row["dividend"],
            coop_member=row["coop_member"],
            bank_name=row["bank_name"],
        )
        household.set_head_name(row["head_name"])
        household.set_bank_card(row["bank_card"])
        household.id_number = row["id_number"]
        household.id_number_digest = cipher().blind_index(row["id_number"])
        db.session.add(household)
        report.add("households")

    new_products = []
    for slug, name, subtitle, category, price, share, unit, stock, colour, shape in PRODUCTS:
        if db.session.scalar(select(Product.id).where(Product.slug == slug)) is not None:
            continue
        product = Product(
            slug=slug,
            name=name,
            subtitle=subtitle,
            category=categories[category],
            enterprise_id=enterprise.id,
            price_fen=price,
            beneficiary_fen_per_unit=share,
            unit=unit,
            stock=stock,
            origin="陕西省汉中市城固县双井村",
            producer=ENTERPRISE["name"],
            story=f"{name}出自双井村。每卖出一{unit}，{share // 100}元记入受益农户的账户。",
            status="published",
            featured=slug in {"raspberry-wine", "mulberry-wine", "orange-wine", "fresh-raspberry"},
            published_at=utcnow(),
        )
        db.session.add(product)
        new_products.append((product, colour, shape))
        report.add("products")

    for username, password, role in DEMO_LOGINS:
        if db.session.scalar(select(User.id).where(User.username == username)) is None:
            user = User(
                username=username,
                role=role,
                display_name=DEMO_DISPLAY_NAMES[username],
            )
            user.set_password(password)
            db.session.add(user)
            report.add("logins")
    db.session.commit()

    for product, colour, shape in new_products:
        attach_demo_photos(product, colour, shape)
        attach_demo_rule(product)
        report.add("benefit rules")
    seed_offline_year(report)
    return report


def attach_demo_rule(product: Product) -> None:
    """The programme's links: wine and produce come from the park, so their share is
    split by transferred land; the rest is matched one unit to one household."""
    households = list(
        db.session.scalars(
            select(Household).where(Household.active.is_(True)).order_by(Household.code)
        )
    )
    from_the_park = product.slug in {"raspberry-wine", "mulberry-wine", "fresh-raspberry"}
    if from_the_park:
        set_product_rule(
            product.id,
            [h for h in households if h.land_mu > 0],
            "weighted",
            "land",
            share_fen_per_unit=product.beneficiary_fen_per_unit,
            note="按流转土地亩数分配（树莓产业园）",
        )
    else:
        set_product_rule(
            product.id,
            households,
            "matched",
            "equal",
            share_fen_per_unit=product.beneficiary_fen_per_unit,
            note="一对一结对：每单位给收入最少的农户",
        )


def attach_demo_photos(product: Product, colour, shape) -> None:
    """Give a demo product two generated photos through the real upload pipeline."""
    for variant in (0, 1):
        add_product_photo(product.id, product_photo_bytes(colour, shape, variant))


# --- offline sales and household income: a year of the programme (issue 6) -----------

# The 2026 Spring Festival event: 1,036 boxes of produce and 1,200 two-bottle boxes of
# fruit wine, over ¥320,000 in ten days (as in the seed article).
EVENT_NAME = "春节年货展销会"
EVENT_SALES = [  # slug, units (bottles or boxes), buyer lines
    ("raspberry-wine", 1400, 28),
    ("mulberry-wine", 1000, 20),
    ("fresh-raspberry", 436, 12),
    ("chenggu-orange", 600, 12),
]
LIVE_SESSIONS = ["三月直播专场", "五一直播专场", "618直播带货", "中秋直播专场", "双十一直播"]
ORGANIZATIONS = ["汉中市某局工会", "城固县某银行", "西安某科技公司", "对口帮扶单位"]


def _split_units(total: int, parts: int, rng: random.Random) -> list[int]:
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


def _demo_csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    return buffer.getvalue().encode("utf-8")


def _post_demo_batch(purpose: str, data: bytes, name: str, **defaults) -> int:
    """Preview and confirm a batch through the real importer, once per content."""
    digest = hashlib.sha256(data.decode("utf-8-sig").replace("\r\n", "\n").encode()).hexdigest()
    done = db.session.scalar(
        select(ImportBatch.id).where(
            ImportBatch.content_sha256 == digest, ImportBatch.status == "posted"
        )
    )
    if done is not None:
        return 0
    batch = importer.create_batch(purpose, data, f"demo:{name}", **defaults)
    return importer.confirm(batch.id).batch.posted_rows


def seed_offline_year(report: SeedReport | None = None) -> SeedReport:
    """A plausible year of the programme beside the online shop: the Spring Festival
    event, weekly hall sales, live-stream sessions, and the households' land rent
    (86 × ≈¥850), park wages (62 × ≈¥3,658), dividends (100 × ¥400) and co-op shares
    (¥800 a member). Deterministic; idempotent by the ledger keys (a second run posts
    nothing). Stock for the event is taken in first, as a warehouse would."""
    report = report or SeedReport()
    products = {p.slug: p for p in db.session.scalars(select(Product))}
    if not all(slug in products for slug, _u, _n in EVENT_SALES):
        return report
    year = utcnow().year - 1  # the last complete programme year
    rng = random.Random(2026)
    header = [label for _f, label, _a in SALES_COLUMNS]

    def row(day: str, slug: str, qty: int, payment: str, buyer_rng: random.Random) -> list[str]:
        product = products[slug]
        roll = buyer_rng.random()
        if roll < 0.4:
            buyer, display = buyer_rng.choice(SURNAMES) + buyer_rng.choice(GIVEN), "实名打码"
        elif roll < 0.55:
            buyer, display = buyer_rng.choice(["秦岭游客", "汉中老乡", "树莓粉"]), "昵称"
        else:
            buyer, display = "", "匿名"
        organization = buyer_rng.choice(ORGANIZATIONS) if qty >= 40 else ""
        price = f"{product.price_fen // 100}.{product.price_fen % 100:02d}"
        return [day, slug, str(qty), price, "", "", "", payment, buyer, display, organization, ""]

    event_rows, wanted = [], {}
    for slug, units, lines in EVENT_SALES:
        for qty in _split_units(units, lines, rng):
            day = f"{year}-01-{rng.randint(20, 29)}"
            event_rows.append(row(day, slug, qty, rng.choice(["微信", "现金", "支付宝"]), rng))
        wanted[slug] = wanted.get(slug, 0) + units
    hall_rows = []
    for month in range(1, 13):
        for _ in range(4):
            slug = rng.choice(list(products))
            qty = rng.randint(1, 6)
            day = f"{year}-{month:02d}-{rng.randint(1, 28):02d}"
            hall_rows.append(row(day, slug, qty, rng.choice(["现金", "微信"]), rng))
            wanted[slug] = wanted.get(slug, 0) + qty
    live_rows = []
    for index, session in enumerate(LIVE_SESSIONS):
        month = (3, 5, 6, 9, 11)[index]
        for _ in range(8):
            slug = rng.choice(["raspberry-wine", "mulberry-wine", "orange-wine", "mountain-honey"])
            qty = rng.randint(1, 12)
            day = f"{year}-{month:02d}-{rng.randint(1, 28):02d} 20:{rng.randint(0, 59):02d}"
            cells = row(day, slug, qty, "支付宝", rng)
            cells[5], cells[6] = "直播", session
            live_rows.append(cells)
            wanted[slug] = wanted.get(slug, 0) + qty

    if db.session.scalar(select(func.count()).select_from(OfflineSale)) == 0:
        for slug, units in wanted.items():  # goods into the warehouse for the year's sales
            products[slug].stock += units
        db.session.commit()
    posted = _post_demo_batch(
        "sales",
        _demo_csv(header, event_rows),
        "event",
        channel="event",
        session_name=f"{year}年{EVENT_NAME}",
        starts_on=date(year, 1, 20),
        ends_on=date(year, 1, 29),
    )
    posted += _post_demo_batch("sales", _demo_csv(header, hall_rows), "hall", channel="hall")
    posted += _post_demo_batch("sales", _demo_csv(header, live_rows), "live", channel="live")
    if posted:
        report.add("offline sales", posted)

    income_rows = 0
    period = str(year)
    income_rows += _post_demo_batch("income", roster_csv("land", period, rate_fen=26000), "land")
    workers = [h.code for h in db.session.scalars(select(Household).where(Household.employed))]
    for quarter in range(1, 5):
        days = {code: rng.randint(5, 10) * 100 for code in sorted(workers)}
        data = roster_csv("wages", f"{period}-Q{quarter}", rate_fen=12000, days=days)
        income_rows += _post_demo_batch("income", data, f"wages-q{quarter}")
    income_rows += _post_demo_batch(
        "income", roster_csv("dividend", period, pool_fen=100 * 40000, basis="equal"), "dividend"
    )
    income_rows += _post_demo_batch("income", roster_csv("coop", period, rate_fen=80000), "coop")
    if income_rows:
        report.add("household income postings", income_rows)
    return report
