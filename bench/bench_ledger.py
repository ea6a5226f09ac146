"""Ledger benchmark (issue 4): sale postings per second and ``verify`` time per 100k.

Usage::

    .venv/bin/python bench/bench_ledger.py                                  # SQLite only
    createdb -h 127.0.0.1 -U postgres bench_ledger
    .venv/bin/python bench/bench_ledger.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_ledger
    dropdb -h 127.0.0.1 -U postgres bench_ledger

Every scenario gets a fresh schema built by the project's real Alembic migrations
(``flask --app wsgi db upgrade`` in a subprocess), so the append-only triggers and, on
PostgreSQL, the deferred zero-sum constraint trigger on ``ledger_entry`` are in place:
SQLite in a temporary file (WAL, ``foreign_keys``, ``busy_timeout`` as the app sets
them); PostgreSQL in a throw-away schema ``bench_<pid>_<n>`` of the database given
(selected with ``search_path``, dropped afterwards; the database itself is left alone).

Benchmarks, each on SQLite and (with ``--database-url``) PostgreSQL:

1. ``post_sale`` rate, a weighted fixed-share rule split across 1, 10 and 148
   households, Alipay fee 0.6 %, hash chain kept:
   - ``per-tx``: one sale per database transaction (``post_sale`` + ``commit``, as the
     payment notification does), ``--clients`` clients each with its own Session and
     connection: first as threads of this process, then (unless ``--threads-only``) as
     separate processes, as gunicorn workers would be. Threads share one GIL, so on a
     2-core machine they leave the database more of the CPU; processes compete with it.
     On SQLite the database write lock serialises them (they wait in ``busy_timeout``);
     on PostgreSQL the chain head's row lock does.
   - ``batched``: one client, ``--batch`` sales per commit with ``post_sales`` (an
     import: one append per commit).
2. ``verify``: ``--verify-tx`` sale-shaped transactions (10 households) are appended
   with ``ledger.posting.post_many``, 1000 per commit; then timed: (a)
   ``ledger.audit.verify_database``, and the whole ``flask --app wsgi ledger verify``
   command (a subprocess: the same check plus about a second of start-up); (b)
   writing the export with ``ledger.export.iter_export_lines`` and ``python -m
   ledger.verify`` on the file in a subprocess. Finally ``--grown-sales`` more
   ``post_sale`` calls, one per commit, on the grown ledger, crediting the same 10
   households (does posting slow down as the ledger grows?).

Prints one table; ``--json FILE`` also writes the rows as JSON.
"""

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ledger.models  # noqa: E402
import ledger.payouts  # noqa: E402, F401
from ledger import (  # noqa: E402
    CLEARING,
    FEES,
    NewTransaction,
    SaleLine,
    SaleRequest,
    create_rule,
    ensure_account,
    fee_for,
    household_account,
    iter_export_lines,
    post_many,
    post_sale,
    post_sales,
    split_by_weight,
    utcnow,
    verify_database,
)

ENTERPRISE = "enterprise:bench"
UNIT_PRICE_FEN = 15_800  # ¥158.00, the demo's gift box
SHARE_FEN_PER_UNIT = 2_000  # ¥20.00 of each unit to households
FEE_BASIS_POINTS = 60  # Alipay's 0.6 %
VERIFY_SPLIT = 10


def households(split: int) -> dict[str, int]:
    """``split`` household codes → weight (land in 0.01 mu, varied so splits leave
    remainders for the largest-remainder method to place)."""
    return {f"H{split:03d}-{n:03d}": 150 + (n * 37) % 400 for n in range(split)}


# --- schema -------------------------------------------------------------------------


def flask_command(url: str, folder: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Run ``flask --app wsgi <arguments>`` on the database at ``url``, as an operator
    would (a subprocess with its own app, config and engine)."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(folder / "instance"),
        "LIANXIN_ENV": "development",
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def migrate(url: str, folder: Path) -> None:
    """Upgrade the database at ``url`` to head with the real migrations (subprocess)."""
    done = flask_command(url, folder, "db", "upgrade")
    if done.returncode != 0:
        raise SystemExit(f"flask db upgrade failed for {url}:\n{done.stderr[-3000:]}")


def sqlite_engine(path: Path, busy_timeout_ms: int, pool_size: int) -> sa.Engine:
    engine = sa.create_engine(
        f"sqlite:///{path}",
        pool_size=pool_size,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        # What shop.db sets for the app (WAL, foreign keys, a busy timeout), with the
        # timeout raised so 8 clients queue for the write lock instead of failing.
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            cursor.close()

    return engine


def open_engine(spec: tuple) -> sa.Engine:
    """An engine from a picklable spec, so client processes can open their own:
    ``("sqlite", path, busy_timeout_ms, pool)`` or ``("postgresql", url, options, pool)``."""
    if spec[0] == "sqlite":
        _, path, busy_timeout_ms, pool = spec
        return sqlite_engine(Path(path), busy_timeout_ms, pool)
    _, url, options, pool = spec
    return sa.create_engine(url, pool_size=pool, connect_args={"options": options})


@contextmanager
def fresh_database(kind: str, args, folder: Path, tag: str) -> Iterator[sa.Engine]:
    """A migrated, empty database for one scenario; removed afterwards. The engine's
    ``bench_spec`` attribute is its :func:`open_engine` spec."""
    pool = max(args.clients, 1) + 2
    if kind == "sqlite":
        path = folder / f"{tag}.db"
        url = f"sqlite:///{path}"
        migrate(url, folder)
        spec = ("sqlite", str(path), args.busy_timeout_ms, pool)
        engine = open_engine(spec)
        engine.bench_spec = spec
        engine.bench_url = url
        try:
            yield engine
        finally:
            engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    schema = f"bench_{os.getpid()}_{tag}".lower().replace("-", "_")
    admin = sa.create_engine(args.database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    option = f"-csearch_path={schema}"
    joiner = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{joiner}options={quote(option)}"
    migrate(url, folder)
    spec = ("postgresql", args.database_url, option, pool)
    engine = open_engine(spec)
    engine.bench_spec = spec
    engine.bench_url = url
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def prepare(engine: sa.Engine, split: int, product_id: int) -> None:
    """Accounts and the product's weighted rule, as the shop would have them."""
    with Session(engine) as session:
        ensure_account(session, CLEARING, "clearing", "支付宝待结算")
        ensure_account(session, FEES, "fees", "支付宝手续费")
        ensure_account(session, ENTERPRISE, "enterprise", "扶贫企业")
        for code in households(split):
            ensure_account(session, household_account(code), "household", code)
        create_rule(
            session,
            product_id,
            "fixed",
            "weighted",
            households(split),
            share_fen_per_unit=SHARE_FEN_PER_UNIT,
            weight_basis="land",
            effective_from=utcnow() - timedelta(days=1),
        )
        session.commit()


def sale_lines(product_id: int, n: int) -> list[SaleLine]:
    return [SaleLine(product_id, UNIT_PRICE_FEN, 1 + n % 3, ENTERPRISE)]


def retryable(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return "locked" in text or "deadlock" in text or "serializ" in text or "busy" in text


# --- 1. sale postings ---------------------------------------------------------------


def post_one(session: Session, product_id: int, tag: str, n: int) -> None:
    """One sale as the payment notification posts it: ``post_sale`` and commit."""
    post_sale(
        session,
        f"sale:{tag}-{n}",
        sale_lines(product_id, n),
        utcnow(),
        fee_basis_points=FEE_BASIS_POINTS,
        memo=f"订单 {tag}-{n}",
    )
    session.commit()


def post_until_done(session: Session, product_id: int, tag: str, take_number) -> tuple[list, int]:
    """Post sales numbered by ``take_number()`` until it returns None; retry a sale
    the database refused for a lock or serialisation conflict. Returns (latencies in
    seconds, retries)."""
    latencies: list[float] = []
    retries = 0
    while (n := take_number()) is not None:
        while True:
            started = time.perf_counter()
            try:
                post_one(session, product_id, tag, n)
            except DBAPIError as error:
                session.rollback()
                if not retryable(error):
                    raise
                retries += 1
                continue
            latencies.append(time.perf_counter() - started)
            break
    return latencies, retries


def client_process(spec, product_id, tag, n_sales, counter, barrier, results) -> None:
    """A client in its own process (as a gunicorn worker is): its own engine and
    connection, sales numbered by a shared counter."""

    def take_number():
        with counter.get_lock():
            n = counter.value
            counter.value += 1
        return n if n < n_sales else None

    engine = open_engine(spec)
    try:
        with Session(engine) as session:
            session.connection()  # connect before the clock starts
            session.rollback()
            barrier.wait()
            results.put(post_until_done(session, product_id, tag, take_number))
    except BaseException as error:  # reported by the parent
        barrier.abort()
        results.put(error)
    finally:
        engine.dispose()


def bench_per_tx(
    engine: sa.Engine, split: int, n_sales: int, clients: int, tag: str, processes: bool
) -> dict:
    """``n_sales`` sales, one per database transaction, from ``clients`` threads of
    this process or, with ``processes``, ``clients`` processes."""
    product_id = 1
    prepare(engine, split, product_id)
    if processes:
        context = multiprocessing.get_context("spawn")
        counter = context.Value("q", 0)
        barrier = context.Barrier(clients + 1)
        results = context.Queue()
        workers = [
            context.Process(
                target=client_process,
                args=(engine.bench_spec, product_id, tag, n_sales, counter, barrier, results),
            )
            for _ in range(clients)
        ]
        for worker in workers:
            worker.start()
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass
        started = time.perf_counter()
        outcomes = [results.get() for _ in workers]
        elapsed = time.perf_counter() - started
        for worker in workers:
            worker.join()
    else:
        numbers = itertools.count()
        take = threading.Lock()
        thread_barrier = threading.Barrier(clients + 1)
        outcomes = []

        def take_number():
            with take:
                n = next(numbers)
            return n if n < n_sales else None

        def client() -> None:
            try:
                with Session(engine) as session:
                    session.connection()  # connect before the clock starts
                    session.rollback()
                    thread_barrier.wait()
                    outcome = post_until_done(session, product_id, tag, take_number)
            except BaseException as error:  # reported by the main thread
                outcome = error
                if not thread_barrier.broken:
                    thread_barrier.abort()
            with take:
                outcomes.append(outcome)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            thread_barrier.wait()
        except threading.BrokenBarrierError:
            pass
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        raise errors[0]
    latencies = sorted(seconds for mine, _ in outcomes for seconds in mine)
    check_chain(engine, n_sales)
    return {
        "benchmark": f"sale per-tx ({'processes' if processes else 'threads'})",
        "households": split,
        "clients": clients,
        "batch": 1,
        "count": n_sales,
        "seconds": elapsed,
        "per_s": n_sales / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "retries": sum(retries for _, retries in outcomes),
    }


def bench_batched(engine: sa.Engine, split: int, n_sales: int, batch: int, tag: str) -> dict:
    """``n_sales`` sales from one client, ``batch`` per database transaction."""
    product_id = 1
    prepare(engine, split, product_id)
    with Session(engine) as session:
        started = time.perf_counter()
        for first in range(0, n_sales, batch):
            post_sales(
                session,
                [
                    SaleRequest(
                        f"import:{tag}-{n}",
                        sale_lines(product_id, n),
                        utcnow(),
                        fee_basis_points=FEE_BASIS_POINTS,
                        memo=f"批量 {tag}-{n}",
                    )
                    for n in range(first, min(first + batch, n_sales))
                ],
            )
            session.commit()
        elapsed = time.perf_counter() - started
    check_chain(engine, n_sales)
    return {
        "benchmark": "sale batched",
        "households": split,
        "clients": 1,
        "batch": batch,
        "count": n_sales,
        "seconds": elapsed,
        "per_s": n_sales / elapsed,
    }


def check_chain(engine: sa.Engine, expected: int) -> None:
    """The run left a linear chain of exactly ``expected`` transactions (not timed)."""
    with engine.connect() as conn:
        count, distinct = conn.execute(
            sa.text("SELECT COUNT(*), COUNT(DISTINCT prev_hash) FROM ledger_transaction")
        ).one()
        head = conn.execute(sa.text("SELECT count FROM ledger_head")).scalar_one()
    if not count == distinct == head == expected:
        raise SystemExit(f"chain check failed: {count} rows, {distinct} prev_hash, head {head}")


# --- 2. verify ----------------------------------------------------------------------


def sale_entries(codes: dict[str, int], n: int) -> list[tuple[str, int]]:
    """Entries exactly as post_sale builds them for one line of ``sale_lines(…, n)``."""
    quantity = 1 + n % 3
    total = UNIT_PRICE_FEN * quantity
    share = SHARE_FEN_PER_UNIT * quantity
    parts = split_by_weight(share, codes)
    fee = fee_for(total, FEE_BASIS_POINTS)
    credits = [(household_account(c), -fen) for c, fen in sorted(parts.items()) if fen]
    return [(CLEARING, total), *credits, (FEES, -fee), (ENTERPRISE, -(total - share - fee))]


def fill(engine: sa.Engine, n_tx: int, codes: dict[str, int], batch: int = 1000) -> float:
    """Append ``n_tx`` sale-shaped transactions with ``post_many``, ``batch`` per
    commit; return the seconds taken."""
    start = utcnow() - timedelta(seconds=n_tx)
    with Session(engine) as session:
        started = time.perf_counter()
        for first in range(0, n_tx, batch):
            post_many(
                session,
                [
                    NewTransaction(
                        f"sale:FILL-{n:07d}",
                        "sale",
                        sale_entries(codes, n),
                        memo=f"订单 FILL-{n}",
                        now=start + timedelta(seconds=n),
                    )
                    for n in range(first, min(first + batch, n_tx))
                ],
            )
            session.commit()
        return time.perf_counter() - started


def bench_verify(engine: sa.Engine, args, folder: Path, tag: str) -> list[dict]:
    n_tx = args.verify_tx
    product_id = 1
    prepare(engine, VERIFY_SPLIT, product_id)
    filling = fill(engine, n_tx, households(VERIFY_SPLIT))
    rows = [
        {
            "benchmark": "fill (post_many, 1000)",
            "households": VERIFY_SPLIT,
            "clients": 1,
            "batch": 1000,
            "count": n_tx,
            "seconds": filling,
            "per_s": n_tx / filling,
        }
    ]

    with Session(engine) as session:
        started = time.perf_counter()
        result = verify_database(session)
        auditing = time.perf_counter() - started
    if not result.ok or result.count != n_tx:
        raise SystemExit(f"verify_database: {result.count} tx, problems {result.problems[:3]}")
    rows.append(verify_row("verify_database", n_tx, auditing))

    # The whole command, as an operator runs it: process start, app, then the same check.
    started = time.perf_counter()
    command = flask_command(engine.bench_url, folder, "ledger", "verify")
    commanding = time.perf_counter() - started
    if command.returncode != 0 or f"head {result.head_hash}" not in command.stdout:
        raise SystemExit(f"flask ledger verify disagreed:\n{command.stdout[:2000]}")
    rows.append(verify_row("flask ledger verify", n_tx, commanding))

    export = folder / f"{tag}.jsonl"
    with Session(engine) as session:
        started = time.perf_counter()
        with export.open("w", encoding="utf-8") as handle:
            handle.writelines(iter_export_lines(session))
        exporting = time.perf_counter() - started
    rows.append(verify_row("export (iter_export_lines)", n_tx, exporting))
    rows[-1]["mb"] = export.stat().st_size / 1e6

    started = time.perf_counter()
    checked = subprocess.run(
        [sys.executable, "-m", "ledger.verify", str(export)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    outside = time.perf_counter() - started
    if checked.returncode != 0 or f"head {result.head_hash}" not in checked.stdout:
        raise SystemExit(f"python -m ledger.verify disagreed:\n{checked.stdout[:2000]}")
    export.unlink()
    rows.append(verify_row("python -m ledger.verify", n_tx, outside))
    rows.append(verify_row("export + ledger.verify", n_tx, exporting + outside))

    if args.grown_sales:
        rows.append(bench_grown(engine, product_id, args.grown_sales, n_tx, tag))
    return rows


def verify_row(name: str, n_tx: int, seconds: float) -> dict:
    return {
        "benchmark": name,
        "households": VERIFY_SPLIT,
        "clients": 1,
        "batch": "",
        "count": n_tx,
        "seconds": seconds,
        "per_s": n_tx / seconds,
        "s_per_100k": seconds * 100_000 / n_tx,
    }


def bench_grown(engine: sa.Engine, product_id: int, n_sales: int, size: int, tag: str) -> dict:
    """post_sale, one per commit, one client, on a ledger already ``size`` long."""
    latencies = []
    with Session(engine) as session:
        started = time.perf_counter()
        for n in range(n_sales):
            began = time.perf_counter()
            post_sale(
                session,
                f"sale:{tag}-grown-{n}",
                sale_lines(product_id, n),
                utcnow(),
                fee_basis_points=FEE_BASIS_POINTS,
            )
            session.commit()
            latencies.append(time.perf_counter() - began)
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "benchmark": f"sale per-tx on {size // 1000}k ledger",
        "households": VERIFY_SPLIT,
        "clients": 1,
        "batch": 1,
        "count": n_sales,
        "seconds": elapsed,
        "per_s": n_sales / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
    }


# --- driver -------------------------------------------------------------------------


def run(kind: str, args, folder: Path) -> list[dict]:
    rows: list[dict] = []
    scenario = itertools.count(1)

    def record(row: dict) -> None:
        row["database"] = kind
        rows.append(row)
        print(format_row(row), flush=True)

    for split in args.splits:
        for processes in [False, True][: 1 + args.processes] if args.clients else []:
            tag = f"t{next(scenario)}"
            with fresh_database(kind, args, folder, tag) as engine:
                record(bench_per_tx(engine, split, args.sales, args.clients, tag, processes))
        if args.batched_sales:
            tag = f"t{next(scenario)}"
            with fresh_database(kind, args, folder, tag) as engine:
                record(bench_batched(engine, split, args.batched_sales, args.batch, tag))
    if args.verify_tx:
        tag = f"t{next(scenario)}"
        with fresh_database(kind, args, folder, tag) as engine:
            for row in bench_verify(engine, args, folder, tag):
                record(row)
    return rows


COLUMNS = (
    ("database", 10, "{}"),
    ("benchmark", 27, "{}"),
    ("households", 5, "{}"),
    ("clients", 4, "{}"),
    ("batch", 6, "{}"),
    ("count", 7, "{}"),
    ("seconds", 8, "{:.2f}"),
    ("per_s", 9, "{:.0f}"),
    ("p50_ms", 7, "{:.1f}"),
    ("p95_ms", 7, "{:.1f}"),
    ("s_per_100k", 9, "{:.2f}"),
    ("retries", 4, "{}"),
)
HEADINGS = {
    "households": "hh",
    "clients": "cli",
    "per_s": "per s",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "s_per_100k": "s/100k",
    "retries": "retr",
}


def format_row(row: dict) -> str:
    cells = []
    for name, width, fmt in COLUMNS:
        value = row.get(name, "")
        text = fmt.format(value) if value != "" else ""
        cells.append(text.ljust(width) if name in ("database", "benchmark") else text.rjust(width))
    return " ".join(cells)


def heading() -> str:
    cells = []
    for name, width, _ in COLUMNS:
        text = HEADINGS.get(name, name)
        cells.append(text.ljust(width) if name in ("database", "benchmark") else text.rjust(width))
    return " ".join(cells)


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sa.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL URL of a scratch database (schemas bench_<pid>_* are made in it\n"
        "and dropped); without it only SQLite runs",
    )
    parser.add_argument("--sales", type=int, default=2000, help="sales per per-tx run (2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8; 0 skips)")
    parser.add_argument(
        "--threads-only",
        dest="processes",
        action="store_false",
        help="per-tx clients as threads of this process only (default: threads, then\n"
        "processes — one Python process per client, as gunicorn workers are)",
    )
    parser.add_argument(
        "--batched-sales", type=int, default=5000, help="sales per batched run (5000; 0 skips)"
    )
    parser.add_argument("--batch", type=int, default=500, help="sales per commit, batched (500)")
    parser.add_argument(
        "--splits",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1, 10, 148],
        help="households per split (1,10,148)",
    )
    parser.add_argument(
        "--verify-tx", type=int, default=100_000, help="transactions to verify (100000; 0 skips)"
    )
    parser.add_argument(
        "--grown-sales",
        type=int,
        default=200,
        help="post_sale calls timed on the grown verify ledger (200; 0 skips)",
    )
    parser.add_argument("--busy-timeout-ms", type=int, default=60_000, help="SQLite (60000)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--json", type=Path, help="also write the rows and machine here")
    args = parser.parse_args()

    kinds = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if args.database_url else [])
    if not kinds:
        parser.error("nothing to run: --no-sqlite without --database-url")
    info = machine()
    if args.database_url:
        with sa.create_engine(args.database_url).connect() as conn:
            info["postgresql"] = conn.execute(sa.text("SHOW server_version")).scalar_one()
    print(" · ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    print(heading(), flush=True)

    folder = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    rows: list[dict] = []
    try:
        for kind in kinds:
            rows += run(kind, args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "args": sys.argv[1:], "rows": rows}, indent=1),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
