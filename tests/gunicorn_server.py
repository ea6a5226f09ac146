"""Real processes on 127.0.0.1 for multi-process tests: the shop under gunicorn with the
repository's ``gunicorn.conf.py``, and a throwaway Redis.

Each is a context manager that starts the process, waits (bounded) until it answers,
yields, and stops it — killing it if it will not stop — so a failing test never leaves
a server behind::

    with redis_server() as redis_url, gunicorn(env, workers=2) as server:
        urllib.request.urlopen(server.url + "/healthz")
        server.log()  # what the workers printed so far
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from shop.config import PROJECT_ROOT

REQUIRE_REDIS = os.environ.get("REQUIRE_REDIS") == "1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def app_environment(app, **extra: str) -> dict[str, str]:
    """The environment that makes a new process serve the same shop as ``app``: same
    database, same keys, same sandbox gateway (at the process's own URL)."""
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "PII_KEY": app.config["PII_KEY"],
        "UPLOAD_FOLDER": app.config["UPLOAD_FOLDER"],
        "PAYOUTS_AT": "",
    }
    env.update(extra)
    return env


@contextmanager
def gunicorn(
    env: dict[str, str], workers: int = 2, log_dir: Path | None = None
) -> Iterator[Served]:
    """Serve ``wsgi:app`` with ``gunicorn.conf.py`` on a free port of 127.0.0.1."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **env,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "PUBLIC_BASE_URL": url,
        "ALIPAY_GATEWAY_URL": env.get("ALIPAY_GATEWAY_URL") or url + "/sandbox/alipay/gateway.do",
    }
    log_path = (log_dir or Path(env.get("UPLOAD_FOLDER", "/tmp"))) / f"gunicorn-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    served = Served(url, process, log_path)
    try:
        deadline = wait_until_healthy(process, url, served.log, "gunicorn")
        _wait_for_workers(served, workers, deadline)
        yield served
    finally:
        _stop(process)


def wait_until_healthy(process, url: str, log, name: str, seconds: float = 60) -> float:
    """Ask ``url``/healthz until it answers 200; fail with ``log()`` if ``process`` exits
    or ``seconds`` pass. Returns the deadline, for waits that follow."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{log()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return deadline
        except OSError:  # refused, reset or timed out while it starts
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not answer within {seconds:.0f} s:\n{log()}")
        time.sleep(0.2)


def _wait_for_workers(served: Served, workers: int, deadline: float) -> None:
    """The first worker to answer is not all of them: on a busy machine the others may
    still be loading the app, and a test about several workers would see one. Ask
    /healthz until the access log shows ``workers`` pids (bounded by ``deadline``)."""
    seen: set[str] = set()
    while len(seen) < workers and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(served.url + "/healthz", timeout=5) as answer:
                request_id = answer.headers.get("X-Request-ID", "")
        except OSError:
            time.sleep(0.1)
            continue
        found = re.search(rf"\[{re.escape(request_id)}\] .* pid=(\d+)", served.log())
        if found:
            seen.add(found.group(1))
        else:
            time.sleep(0.05)  # the line is written after the answer


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis with no persistence on a free port; yields its URL. Skips the test when
    ``redis-server`` is absent, unless CI requires it."""
    executable = shutil.which("redis-server")
    if executable is None:
        if REQUIRE_REDIS:
            pytest.fail("redis-server is required here (apt-get install redis-server)")
        pytest.skip("no redis-server on this machine")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("redis-server did not start")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
