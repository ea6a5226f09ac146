"""Boards benchmark (issue 5): server time of the love board, the results board and
``/api/v1/board`` with a thousand and with a million sales, on PostgreSQL.

Usage::

    createdb -h 127.0.0.1 -U postgres bench_boards
    .venv/bin/python bench/bench_boards.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_boards
    dropdb -h 127.0.0.1 -U postgres bench_boards

What it does, in a throw-away schema ``bench_boards_<pid>`` of the database given
(built by the project's real migrations, dropped afterwards):

1. The demo programme (``demo seed``: 244 households, 7 products with benefit rules, a
   year of offline sales and household income), then online orders placed and paid
   through the shop's own services (``place_order`` + ``apply_payment``, which posts the
   sale to the ledger and folds it into the boards in the same transaction) until the
   love board holds ``--small`` (1,000) sales. Timed: each page, ``--repeat`` requests
   through Flask's test client (routing, queries, Jinja, JSON; no network), after
   ``--warmup`` untimed ones. Also timed: paying one more order (post + fold).
2. The history is then grown to ``--large`` (1,000,000) sales by writing the rows the
   fold would have written for them straight into the aggregate tables with
   ``generate_series`` (posting a million sales one by one takes hours; the pages read
   only the aggregates, never the ledger, so their cost depends on these tables alone).
   The synthetic purchases spread over the last 365 days, 300,000 distinct buyers, 400
   organisations and 1-3 households each, so the ranking, feed and household indexes
   hold a million-sale history. The foreign key from ``board_feed`` to the ledger is
   dropped in the throw-away schema for this (the synthetic purchases have no ledger
   rows). ``ANALYZE``, then the same measurements — and paying an order on top of the
   million, which folds into the grown tables through the real code path.

Prints one table (median and p95 in ms, the large/small ratio of medians); ``--json
FILE`` also writes the rows and the machine.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_ledger import machine, migrate  # noqa: E402  (this folder is on sys.path)

PAGES = {
    "love board  GET /board": "/board",
    "results     GET /results": "/results",
    "api         GET /api/v1/board": "/api/v1/board",
}


def timed_pages(client, repeat: int, warmup: int) -> dict[str, list[float]]:
    result = {}
    for name, path in PAGES.items():
        for _ in range(warmup):
            assert client.get(path).status_code == 200, path
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, path
        result[name] = samples
    return result


def pay_orders(count: int, offset: int) -> list[float]:
    """Place and pay ``count`` orders through the shop; return each payment's ms."""
    from sqlalchemy import select

    from shop.catalog.models import Product
    from shop.extensions import db
    from shop.orders.services import BuyerDetails, RequestedLine, apply_payment, place_order

    products = list(db.session.scalars(select(Product).where(Product.status == "published")))
    timings = []
    for n in range(count):
        product = products[n % len(products)]
        if product.stock < 10:
            product.stock += 10_000
            db.session.commit()
        buyer = BuyerDetails(
            name=f"买家{(offset + n) % 997}",
            phone=f"139{(offset + n) % 997:08d}",
            address="陕西省汉中市城固县",
            board_display=("masked", "nickname", "anonymous")[n % 3],
            nickname=f"树莓粉{n % 50}",
            organization=f"爱心单位{n % 40}" if n % 7 == 0 else "",
        )
        order = place_order([RequestedLine(product.id, 1 + n % 3)], buyer, "pc", 30)
        started = time.perf_counter()
        outcome = apply_payment(
            order.order_no, f"BENCH{offset + n:012d}", "TRADE_SUCCESS", order.total_fen
        )
        timings.append((time.perf_counter() - started) * 1000)
        assert outcome.verdict == "paid", outcome
    return timings


def sale_count() -> int:
    from sqlalchemy import func, select

    from shop.boards.models import BoardFeed
    from shop.extensions import db

    return db.session.scalar(select(func.count()).select_from(BoardFeed))


GROW_SQL = """
-- Purchases: one row per sale, spread over the last 365 days.
INSERT INTO board_feed (id, transaction_id, source, order_id, at, board_display, board_name,
    organization, items, units, amount_fen, beneficiary_fen, refunded_fen, who_key,
    rank_key, org_key)
SELECT :base + g, -(:base + g), 'online', NULL,
    now() - (g % 365) * interval '1 day' - (g % 86400) * interval '1 second',
    CASE WHEN g % 4 = 0 THEN 'anonymous' ELSE 'masked' END,
    CASE WHEN g % 4 = 0 THEN '爱心人士' ELSE '王*' END,
    CASE WHEN g % 9 = 0 AND g % 4 <> 0 THEN '爱心单位' || (g % 400) ELSE '' END,
    '[{"slug": "raspberry-wine", "name": "树莓果酒", "quantity": 2, "unit": "瓶"}]',
    2, 31600, 4000, 0, md5('who' || (g % 300000)),
    CASE WHEN g % 4 = 0 THEN NULL ELSE md5('rank' || (g % 300000)) END,
    CASE WHEN g % 9 = 0 AND g % 4 <> 0 THEN md5('org' || (g % 400)) END
FROM generate_series(1, :n) AS g;

-- Households each purchase reached (1-3 of the 244).
INSERT INTO board_feed_household (feed_id, household_code, amount_fen)
SELECT f.id, h.code, 4000 / (1 + f.id % 3)
FROM board_feed f
CROSS JOIN LATERAL (
    SELECT code FROM household ORDER BY code OFFSET (f.id % 241) LIMIT 1 + f.id % 3
) h
WHERE f.id > :base;

-- Rankings and counts per period, as the fold would leave them.
INSERT INTO board_rank (period, kind, key, label, orders, units, amount_fen, beneficiary_fen)
SELECT p.period, k.kind, k.key, max(k.label), count(*), sum(f.units), sum(f.amount_fen),
       sum(f.beneficiary_fen)
FROM board_feed f
CROSS JOIN LATERAL (VALUES
    ('all'),
    ('m:' || to_char(f.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')),
    ('d:' || to_char(f.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'))) AS p(period)
CROSS JOIN LATERAL (VALUES
    ('who', f.who_key, ''),
    ('buyer', f.rank_key, f.board_name),
    ('org', f.org_key, f.organization)) AS k(kind, key, label)
WHERE f.id > :base AND k.key IS NOT NULL
GROUP BY p.period, k.kind, k.key
ON CONFLICT (period, kind, key) DO UPDATE SET
    orders = board_rank.orders + excluded.orders, units = board_rank.units + excluded.units,
    amount_fen = board_rank.amount_fen + excluded.amount_fen,
    beneficiary_fen = board_rank.beneficiary_fen + excluded.beneficiary_fen;

INSERT INTO board_period (period, orders, units, amount_fen, beneficiary_fen, buyers)
SELECT p.period, count(*), sum(f.units), sum(f.amount_fen), sum(f.beneficiary_fen),
       count(DISTINCT f.who_key)
FROM board_feed f
CROSS JOIN LATERAL (VALUES
    ('all'),
    ('m:' || to_char(f.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')),
    ('d:' || to_char(f.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'))) AS p(period)
WHERE f.id > :base
GROUP BY p.period
ON CONFLICT (period) DO UPDATE SET
    orders = board_period.orders + excluded.orders, units = board_period.units + excluded.units,
    amount_fen = board_period.amount_fen + excluded.amount_fen,
    beneficiary_fen = board_period.beneficiary_fen + excluded.beneficiary_fen,
    buyers = board_period.buyers + excluded.buyers;

-- Household income columns and months.
INSERT INTO board_household (household_code, sales_fen, land_fen, wages_fen, dividends_fen,
    coop_fen, total_fen, purchases)
SELECT fh.household_code, sum(fh.amount_fen), 0, 0, 0, 0, sum(fh.amount_fen), count(*)
FROM board_feed_household fh WHERE fh.feed_id > :base GROUP BY fh.household_code
ON CONFLICT (household_code) DO UPDATE SET
    sales_fen = board_household.sales_fen + excluded.sales_fen,
    total_fen = board_household.total_fen + excluded.total_fen,
    purchases = board_household.purchases + excluded.purchases;

INSERT INTO board_household_month (household_code, month, channel, amount_fen)
SELECT fh.household_code, to_char(f.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), 'sales',
       sum(fh.amount_fen)
FROM board_feed_household fh JOIN board_feed f ON f.id = fh.feed_id
WHERE f.id > :base GROUP BY 1, 2
ON CONFLICT (household_code, month, channel) DO UPDATE SET
    amount_fen = board_household_month.amount_fen + excluded.amount_fen;

INSERT INTO board_month (month, channel, amount_fen)
SELECT to_char(f.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), 'sales', sum(fh.amount_fen)
FROM board_feed_household fh JOIN board_feed f ON f.id = fh.feed_id
WHERE f.id > :base GROUP BY 1
ON CONFLICT (month, channel) DO UPDATE SET
    amount_fen = board_month.amount_fen + excluded.amount_fen;
"""


def grow(engine: sa.Engine, target: int, current: int) -> float:
    """Add ``target - current`` synthetic purchases to the aggregates; return seconds."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "ALTER TABLE board_feed DROP CONSTRAINT "
                "fk_board_feed_transaction_id_ledger_transaction"
            )
        )
        base = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM board_feed")).scalar()
        base = base + 1000  # ids for the real payments made after growing
        for statement in GROW_SQL.split(";\n"):
            if statement.strip():
                conn.execute(sa.text(statement), {"base": base, "n": target - current})
        conn.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('board_feed', 'id'), "
                "(SELECT max(id) FROM board_feed))"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def summarise(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database")
    parser.add_argument("--small", type=int, default=1_000, help="sales first (1000)")
    parser.add_argument("--large", type=int, default=1_000_000, help="sales then (1000000)")
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    parser.add_argument("--payments", type=int, default=100, help="timed payments per size")
    parser.add_argument("--json", type=Path, help="also write the rows and machine here")
    parser.add_argument("--keep-schema", action="store_true", help="leave the schema (to EXPLAIN)")
    args = parser.parse_args()

    schema = f"bench_boards_{os.getpid()}"
    admin = sa.create_engine(args.database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        server = conn.execute(sa.text("SHOW server_version")).scalar()
    option = f"-csearch_path={schema}"
    joiner = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{joiner}options={quote(option)}"
    folder = Path(tempfile.mkdtemp(prefix="bench-boards-"))
    os.environ["INSTANCE_PATH"] = str(folder / "instance")
    rows = []
    try:
        migrate(url, folder)
        from shop import create_app
        from shop.demo import seed_demo
        from shop.extensions import db

        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "RATELIMIT_ENABLED": False})
        with app.app_context():
            seed_demo()
            have = sale_count()
            pay_orders(max(args.small - have, 0), offset=0)
            client = app.test_client()
            for label, size in (("small", args.small), ("large", args.large)):
                if label == "large":
                    current = sale_count()
                    db.session.remove()  # no open transaction may hold board_feed
                    seconds = grow(db.engine, size, current)
                    print(
                        f"grew the boards to {sale_count():,} sales in {seconds:.0f} s", flush=True
                    )
                count = sale_count()
                pages = timed_pages(client, args.repeat, args.warmup)
                payments = pay_orders(args.payments, offset=size)
                for name, samples in pages.items():
                    median, p95 = summarise(samples)
                    rows.append(
                        {
                            "size": label,
                            "sales": count,
                            "what": name,
                            "median_ms": median,
                            "p95_ms": p95,
                            "n": len(samples),
                        }
                    )
                median, p95 = summarise(payments)
                rows.append(
                    {
                        "size": label,
                        "sales": count,
                        "what": "payment     apply_payment (post + fold)",
                        "median_ms": median,
                        "p95_ms": p95,
                        "n": len(payments),
                    }
                )
                db.session.remove()
    finally:
        if args.keep_schema:
            print(f"kept schema {schema}")
        else:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    print(f"\nPostgreSQL {server}; " + " · ".join(f"{k} {v}" for k, v in machine().items()))
    print(f"{'what':44} {'sales':>10} {'median ms':>10} {'p95 ms':>8} {'ratio':>6}")
    small = {r["what"]: r for r in rows if r["size"] == "small"}
    for row in rows:
        ratio = row["median_ms"] / small[row["what"]]["median_ms"]
        row["ratio_to_small"] = ratio
        print(
            f"{row['what']:44} {row['sales']:>10,} {row['median_ms']:>10.2f} "
            f"{row['p95_ms']:>8.2f} {ratio:>6.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": {**machine(), "postgresql": server}, "rows": rows},
                ensure_ascii=False,
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
