"""HTTP benchmark (issue 12): the shop under gunicorn against a bare Flask "hello" under
the same gunicorn settings, driven by the same client at the same concurrency.

Usage::

    .venv/bin/python bench/bench_http.py                      # SQLite in a temp folder
    createdb -h 127.0.0.1 -U postgres bench_http
    .venv/bin/python bench/bench_http.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_http

What it does:

1. Builds the demo shop (``db upgrade``, ``demo seed``, ``boards follow`` — 244
   households, 7 products, a year of offline sales) in the database given; on
   PostgreSQL the database must be empty (the script drops its tables afterwards).
2. Starts ``gunicorn -c gunicorn.conf.py wsgi:app`` and ``… bench/hello_app:app`` on
   free ports of 127.0.0.1 with the same ``WEB_CONCURRENCY`` / ``WEB_THREADS``; rate
   limits off (``RATELIMIT_ENABLED=0``: every request comes from one address).
3. For each page — home, a product page, the love board, ``GET /api/v1/products``, and
   ``/healthz`` as the floor of the shop's own stack (session, CSP, request log; no
   query, no template) — and for "hello": ``--warmup`` seconds untimed, then
   ``--seconds`` timed, with ``--concurrency`` client threads each on its own
   keep-alive connection. Prints requests/s, p50 and p99 latency, and the ratio of
   requests/s to bare Flask's.
4. The resident memory (VmRSS) of one shop worker after the run, and the SQL
   statements each page runs (counted in-process with a SQLAlchemy event, after one
   warm-up request, so what a cache saves shows here too).

The client runs on the same machine as the servers and shares its cores (Python
threads, ``http.client``): on a 2-core box it is itself a bottleneck for "hello", which
makes the ratios conservative rather than flattering.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_ledger import flask_command, machine  # noqa: E402  (this folder is on sys.path)

from shop import create_app  # noqa: E402
from shop.extensions import db  # noqa: E402

PAGES = {
    "health        GET /healthz": "/healthz",  # the shop's stack, no query, no page
    "home          GET /": "/",
    "product page  GET /p/raspberry-wine": "/p/raspberry-wine",
    "love board    GET /board": "/board",
    "api           GET /api/v1/products": "/api/v1/products",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(app_spec: str, env: dict, chdir: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """Start gunicorn with the repository's settings; its output goes to ``log`` (a pipe
    nobody reads would fill up and stall the workers)."""
    port = free_port()
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
             "--chdir", str(chdir), app_spec],
            cwd=ROOT, env={**env, "BIND": f"127.0.0.1:{port}", "LOG_LEVEL": "warning"},
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{app_spec} did not start:\n{log.read_text()[-3000:]}")


def drive(port: int, path: str, seconds: float, concurrency: int) -> list[float]:
    """Latencies (seconds) of every request completed in ``seconds``."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                answer = conn.getresponse()
                answer.read()
            except OSError as error:
                with lock:
                    failures.append(f"GET {path}: {error}")
                return
            if answer.status != 200:
                with lock:
                    failures.append(f"GET {path} answered {answer.status}")
                return
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(failures[0])
    return latencies


def measure(port: int, path: str, args) -> dict:
    drive(port, path, args.warmup, args.concurrency)
    latencies = sorted(drive(port, path, args.seconds, args.concurrency))
    return {
        "rps": len(latencies) / args.seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "requests": len(latencies),
    }


def worker_rss_mb(master: subprocess.Popen) -> float:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    for line in Path(f"/proc/{children[0]}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def queries_per_page(env: dict) -> dict[str, int]:
    os.environ.update(env)  # read by create_app's Config, not at import
    app = create_app()
    counts: dict[str, int] = {}
    with app.app_context():
        seen = []
        sa.event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(1))
        client = app.test_client()
        for name, path in PAGES.items():
            client.get(path)  # warm
            seen.clear()
            assert client.get(path).status_code == 200
            counts[name] = len(seen)
    return counts


def drop_everything(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="PostgreSQL (empty); default SQLite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite:///{folder / 'shop.db'}"
        for command in (("db", "upgrade"), ("demo", "seed"), ("boards", "follow")):
            done = flask_command(url, folder, *command)
            if done.returncode != 0:
                raise SystemExit(f"flask {' '.join(command)} failed:\n{done.stderr[-3000:]}")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(folder / "instance"),
            "LIANXIN_ENV": "development",
            "RATELIMIT_ENABLED": "0",
            "WEB_CONCURRENCY": str(args.workers),
            "WEB_THREADS": str(args.threads),
            "PAYOUTS_AT": "",
            # No worker recycling mid-run: it would reset the client's connections.
            "WEB_MAX_REQUESTS": "0",
        }
        rows = {}
        shop, shop_port = serve("wsgi:app", env, ROOT, folder / "shop.log")
        hello, hello_port = serve("hello_app:app", env, ROOT / "bench", folder / "hello.log")
        try:
            rows["bare Flask    GET / (hello)"] = measure(hello_port, "/", args)
            for name, path in PAGES.items():
                rows[name] = measure(shop_port, path, args)
            rss = worker_rss_mb(shop)
        finally:
            for process in (shop, hello):
                process.terminate()
                process.wait(timeout=30)
        queries = queries_per_page(env)
        if args.database_url:
            drop_everything(url)

    base = rows["bare Flask    GET / (hello)"]["rps"]
    print(f"gunicorn {args.workers} workers × {args.threads} threads, "
          f"{args.concurrency} client threads, {args.seconds:.0f} s a page, "
          f"{'PostgreSQL' if args.database_url else 'SQLite'}")  # fmt: skip
    print(f"{'page':38} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs Flask':>9} {'SQL':>4}")
    for name, row in rows.items():
        print(
            f"{name:38} {row['rps']:8.0f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} "
            f"{row['rps'] / base:8.0%} {queries.get(name, 0):4d}"
        )
    print(f"one shop worker's resident memory: {rss:.0f} MB")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), "rows": rows, "queries": queries,
                        "worker_rss_mb": rss}, indent=2)
        )  # fmt: skip


if __name__ == "__main__":
    main()
