"""Where one sale's posting spends its time (issue 17's starting point).

Posts ``N`` sales of a weighted rule shared by ``H`` households, one client, one sale
per transaction (as the payment notification does), on a fresh schema built by the
real migrations (see ``bench_ledger.py``), and prints the rate, the time per SQL
statement (wall time in the driver, per sale) and the top of a cProfile::

    createdb -h 127.0.0.1 -U postgres bench_ledger
    .venv/bin/python bench/profile_sale.py --households 244 --sales 200 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_ledger
"""

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
import types
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ledger as bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=244)
    parser.add_argument("--sales", type=int, default=200)
    parser.add_argument("--database-url", default="", help="PostgreSQL; SQLite without it")
    parser.add_argument("--top", type=int, default=20, help="cProfile lines (20)")
    args = parser.parse_args()
    kind = "postgresql" if args.database_url else "sqlite"
    options = types.SimpleNamespace(
        clients=1, database_url=args.database_url, busy_timeout_ms=60_000
    )
    with (
        tempfile.TemporaryDirectory(prefix="profile-sale-") as folder,
        bench.fresh_database(kind, options, Path(folder), f"profile{args.households}") as engine,
    ):
        bench.prepare(engine, args.households, 1)
        spent: dict[str, list] = {}

        @event.listens_for(engine, "before_cursor_execute")
        def started(conn, cursor, statement, params, context, executemany):
            conn.info["started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def finished(conn, cursor, statement, params, context, executemany):
            entry = spent.setdefault(" ".join(statement.split())[:70], [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - conn.info["started"]

        with Session(engine) as session:
            for n in range(20):  # warm up: prepared statements, caches
                bench.post_one(session, 1, "warm", n)
            spent.clear()
            profile = cProfile.Profile()
            began = time.perf_counter()
            profile.enable()
            for n in range(args.sales):
                bench.post_one(session, 1, "sale", n)
            profile.disable()
            elapsed = time.perf_counter() - began
    print(
        f"{kind}, {args.households} households: {args.sales / elapsed:.0f} sales/s, "
        f"{elapsed / args.sales * 1000:.2f} ms a sale (one client)"
    )
    for statement, (count, seconds) in sorted(spent.items(), key=lambda kv: -kv[1][1])[:8]:
        per_sale = seconds / args.sales * 1000
        print(f"  {per_sale:7.2f} ms a sale  ×{count / args.sales:.1f}  {statement}")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
