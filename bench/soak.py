"""Soak (issue 15): minutes of mixed traffic against the shop under gunicorn with several
workers on PostgreSQL and Redis, then conservation checked from the database.

Usage::

    createdb -h 127.0.0.1 -U postgres soak
    .venv/bin/python bench/soak.py --minutes 5 --workers 4 --clients 8 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/soak [--json out.json]

The database (``--database-url`` or ``SOAK_DATABASE_URL``) must be empty: the script
builds the demo programme in it with the real migrations (``db upgrade``, ``demo seed``,
``boards follow``) and empties it again afterwards (``--keep`` leaves it). Redis is
``--redis-url`` or a throwaway ``redis-server`` on a free port (``/readyz`` checks it;
it counts the rate limits with ``--rate-limits``, off by default like the unpaid-order
limits per client address, because every buyer here is 127.0.0.1). The built-in Alipay
sandbox is the gateway, so every payment, notification and refund carries a real RSA2
signature. Only 127.0.0.1 is ever sent a request; every loop is bounded by a deadline
and a count, and every process started here is stopped (killed if it will not stop).

Traffic, from ``--clients`` buyer threads, one back-office thread and an auditor:

- browsing: home, product and category pages, search, love and results boards,
  household and trace pages, open data (CSV), ``/readyz``; API reads (products, board,
  households, ledger head, changes, an order by token);
- carts (add, update, remove) and checkouts through the HTML form and ``POST
  /api/v1/orders``; most are paid at the sandbox cashier, a few abandoned (their stock
  stays reserved: conservation counts it); a small-stock product runs out on purpose;
- notifications: genuine ones replayed (twice at once), ``TRADE_CLOSED`` after
  ``TRADE_SUCCESS``, ``WAIT_BUYER_PAY`` after the order was placed, and forged ones;
- back office (staff and two admins, logged in with password and TOTP): refunds (small
  ones directly; above ``APPROVAL_THRESHOLD_FEN`` proposed, then approved by the other
  admin), offline-sales and household-income CSV uploads confirmed (some twice, or the
  same file again), a household payout every ``--payout-every`` seconds (proposed and
  approved), console pages;
- the auditor: ``flask ledger verify`` and ``flask audit verify`` at half time and every
  90 s after, on the live shop, as an operator's cron would.

Checks (exit status 1 if any fails): every paid trade posted exactly once and none
missing; for every product, stock = start − sold + refunded/released (offline sales
counted); every account's balance equals the sum of its entries, and the households'
balances equal their allocations (sales shares, income, refunds) less payouts, each part
matched against the shop's own records; ``flask ledger verify`` and ``flask audit
verify`` pass, during the traffic and after it; no answer ≥ 500 and no traceback in the
workers' log; every genuine notification answered ``success`` and every forged one
``fail``. It prints the counts per action and the rates held (``--json`` writes them).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ledger import flask_command, machine  # noqa: E402  (this folder is on sys.path)
from soak_books import World  # noqa: E402
from soak_traffic import HOST, Soak  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def redis_server(url: str | None):
    if url:
        yield url
        return
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("no redis-server here: install it or pass --redis-url")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("redis-server did not start")
        yield f"redis://{HOST}:{port}/0"
    finally:
        stop(process)


@contextmanager
def gunicorn(env: dict, log: Path):
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(env["PUBLIC_BASE_URL"] + "/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield process
    finally:
        stop(process)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def summarise(soak: Soak, seconds: float, checks: dict, counts: dict, args) -> dict:
    rows = soak.recorder.rows
    kinds = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    for kind, label, status, took in rows:
        kinds[kind].append(took)
        statuses[label][str(status)] += 1
    errors = {
        label: sum(n for s, n in c.items() if int(s) >= 500 or s == "0")
        for label, c in statuses.items()
    }
    errors = {label: n for label, n in errors.items() if n}
    checks["no answer >= 500 (and none lost)"] = [
        f"{label}: {n}" for label, n in sorted(errors.items())
    ]
    checks["notifications answered as Alipay expects"] = [
        a for a in soak.recorder.anomalies if "notification" in a
    ]
    orders = counts["orders"]
    return {
        "ok": not any(checks.values()),
        "checks": {
            name: {"ok": not problems, "problems": problems[:50]}
            for name, problems in checks.items()
        },
        "seconds": round(seconds, 1),
        "workers": args.workers,
        "threads": args.threads,
        "clients": args.clients,
        "requests": len(rows),
        "requests_per_second": round(len(rows) / seconds, 1),
        "checkouts_per_second": round(orders / seconds, 2),
        "paid_per_second": round(counts["orders_paid"] / seconds, 2),
        "latency_ms": {
            kind: {
                "n": len(v),
                "p50": round(percentile(v, 0.5), 1),
                "p95": round(percentile(v, 0.95), 1),
            }
            for kind, v in sorted(kinds.items())
        },
        "actions": dict(sorted(soak.recorder.actions.items())),
        "outcomes": dict(sorted(soak.recorder.outcomes.items())),
        "database": counts,
        "statuses": {label: dict(c) for label, c in sorted(statuses.items())},
        "anomalies": soak.recorder.anomalies[:50],
        "machine": machine(),
    }


def report(summary: dict) -> None:
    print(
        f"soak: {summary['seconds']} s, "
        f"{summary['workers']} workers × {summary['threads']} threads, "
        f"{summary['clients']} buyer threads + 1 back office"
    )
    print(
        f"  {summary['requests']} requests, {summary['requests_per_second']} req/s; "
        f"{summary['checkouts_per_second']} checkouts/s, {summary['paid_per_second']} paid/s"
    )
    print("  latency ms (p50 / p95):")
    for kind, row in summary["latency_ms"].items():
        print(f"    {kind:10} {row['n']:7d}  {row['p50']:8.1f} / {row['p95']:8.1f}")
    print("  actions:")
    for name, n in summary["actions"].items():
        print(f"    {name:28} {n}")
    for name, n in summary["outcomes"].items():
        print(f"      {name:40} {n}")
    print("  database:", json.dumps(summary["database"], ensure_ascii=False))
    for name, check in summary["checks"].items():
        print(f"  [{'ok' if check['ok'] else 'FAIL'}] {name}")
        for problem in check["problems"][:10]:
            print(f"        {problem}")
    for anomaly in summary["anomalies"][:10]:
        print(f"  anomaly: {anomaly}")
    print("soak: " + ("all checks passed" if summary["ok"] else "CHECKS FAILED"))


def empty_schema(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def verify(url: str, folder: Path) -> dict[str, list[str]]:
    """``flask ledger verify`` and ``flask audit verify``, as an operator runs them."""
    found = {}
    for command in (("ledger", "verify"), ("audit", "verify")):
        done = flask_command(url, folder, *command)
        output = (done.stdout + done.stderr)[-500:]
        found["flask " + " ".join(command)] = [] if done.returncode == 0 else [output]
    return found


def auditor(soak, url: str, folder: Path, problems: list[str]) -> None:
    """An operator's cron on the live shop: both verifications at half time, then every
    90 s until the deadline. A posting committed mid-check must not look like a fault."""
    wait = (soak.deadline - time.monotonic()) / 2
    while wait > 0 and soak.live():
        time.sleep(max(0.0, min(wait, soak.deadline - time.monotonic())))
        if not soak.live():
            return
        for name, found in verify(url, folder).items():
            problems.extend(f"{name} (live): {problem}" for problem in found)
        soak.recorder.action("verify while live")
        wait = 90


def say(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run(args, folder: Path, redis_url: str, stack: ExitStack) -> dict:
    url = args.database_url
    if sa.inspect(engine := sa.create_engine(url)).get_table_names():
        raise SystemExit(f"{url} is not empty: the soak needs an empty database")
    engine.dispose()
    stack.callback(lambda: None if args.keep else empty_schema(url))
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(folder / "instance"),
        "UPLOAD_FOLDER": str(folder / "uploads"),
        "LIANXIN_ENV": "development",
        "REDIS_URL": redis_url,
        "PUBLIC_BASE_URL": base,
        "BIND": f"{HOST}:{port}",
        "ALIPAY_GATEWAY_URL": base + "/sandbox/alipay/gateway.do",
        "WEB_CONCURRENCY": str(args.workers),
        "WEB_THREADS": str(args.threads),
        "WEB_MAX_REQUESTS": "0",  # no recycling mid-run: it would reset the clients' connections
        "PAYOUTS_AT": "",
        "PAYOUT_CARD_HOLD_DAYS": "0",  # the demo's cards are all "new"
        "APPROVAL_THRESHOLD_FEN": str(args.approval_threshold_fen),
        "RATELIMIT_ENABLED": "1" if args.rate_limits else "0",
        # The unpaid-order limits per client address, likewise (per phone they stay on).
        "UNPAID_ORDERS_PER_CLIENT": "1000000",
        "UNPAID_UNITS_PER_CLIENT": "100000000",
        "LOG_LEVEL": "warning",
    }
    for command in (("db", "upgrade"), ("demo", "seed"), ("boards", "follow")):
        say("flask " + " ".join(command))
        done = flask_command(url, folder, *command)
        if done.returncode != 0:
            raise SystemExit(f"flask {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    say("seeding the soak's users and stock")
    world = World(env)
    known = world.prepare()
    _checks, at_start = world.checks(known["held"])
    log = folder / "gunicorn.log"
    say(f"starting gunicorn ({args.workers} workers) on {base}")
    with gunicorn(env, log):
        say(f"traffic for {args.minutes * 60:.0f} s")
        started = time.monotonic()
        soak = Soak(base, world, known, args, started + args.minutes * 60)
        threads = [threading.Thread(target=soak.buyer, args=(n,)) for n in range(args.clients)]
        threads.append(threading.Thread(target=soak.back_office))
        live_checks: list[str] = []
        threads.append(threading.Thread(target=auditor, args=(soak, url, folder, live_checks)))
        for thread in threads:
            thread.start()
        for thread in threads:  # bounded: a request times out after 60 s, a loop at the deadline
            thread.join()
        seconds = time.monotonic() - started
        time.sleep(2)  # a notification the sandbox is re-sending lands before the books close
    # The workers are stopped (gracefully: requests in flight finish), so the books are still.
    say("checking the books")
    checks, counts = world.checks(known["held"])
    counts["during_soak"] = {
        name: value - at_start[name] for name, value in counts.items() if isinstance(value, int)
    }
    for name in ("batches_posted", "approved"):
        counts["during_soak"][name] = {
            what: n - at_start[name].get(what, 0) for what, n in counts[name].items()
        }
    for name, problems in verify(url, folder).items():
        checks[name + " passes"] = problems
    checks["ledger and audit verify pass while the traffic runs"] = live_checks
    text = log.read_text(errors="replace")
    traced = text.count("Traceback")
    checks["no traceback in the workers' log"] = (
        [f"{traced} tracebacks; the first:\n" + text[text.index("Traceback") :][:3000]]
        if traced
        else []
    )
    return summarise(soak, seconds, checks, counts, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SOAK_DATABASE_URL", ""),
        help="an empty PostgreSQL database (or SOAK_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SOAK_REDIS_URL", ""),
        help="default: a throwaway redis-server on a free port",
    )
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--clients", type=int, default=8, help="buyer threads")
    parser.add_argument(
        "--payout-every", type=float, default=15.0, help="seconds between household payouts"
    )
    parser.add_argument("--approval-threshold-fen", type=int, default=50000)
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="keep the per-address rate limits on (off by default: every buyer here is "
        "127.0.0.1, so they would count the whole load as one client)",
    )
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--keep", action="store_true", help="leave the database (and a log with tracebacks)"
    )
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit(
            "--database-url must be a PostgreSQL URL (the soak is about several workers)"
        )
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(args.redis_url))
        summary = run(args, Path(tmp), redis_url, stack)
    report(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
