"""gunicorn settings for Lianxin Market: ``gunicorn -c gunicorn.conf.py wsgi:app``.

``make run`` serves through this file too, so a laptop runs what production runs.
Everything can be set from the environment:

- ``WEB_CONCURRENCY``: worker processes (default: 2 per core, at least 2, at most 8);
- ``WEB_THREADS``: threads per worker (default 4). Threads matter here: the built-in
  sandbox gateway is served by the shop itself and posts its payment notification back
  to the shop while the cashier page's request is still open, and slow phones on a
  village connection should not hold a whole process each;
- ``HOST`` / ``PORT`` or ``BIND`` (default 127.0.0.1:5000; behind nginx keep it on the
  loopback or a private address);
- ``WEB_TIMEOUT``: seconds before a silent worker is killed and replaced (default 30;
  an Alipay call times out after ALIPAY_TIMEOUT_SECONDS, 15, well within it).

``kill -HUP <master pid>`` reloads gracefully: new workers start with the new code and
settings, old ones finish the requests they are serving and exit. Access lines are
written by the application itself (``shop.access``, one per request with its request
id, the route's pattern and no client address), because gunicorn's own access log would
print paths that carry order tokens.
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = os.environ.get("BIND") or (
    f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
)
workers = _int("WEB_CONCURRENCY", max(2, min(2 * multiprocessing.cpu_count(), 8)))
worker_class = "gthread"
threads = _int("WEB_THREADS", 4)
timeout = _int("WEB_TIMEOUT", 30)
graceful_timeout = _int("WEB_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle a worker now and then so a slow leak can never grow without bound.
max_requests = _int("WEB_MAX_REQUESTS", 5000)
max_requests_jitter = max_requests // 10
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# Which proxy to believe about https is the application's decision (TRUSTED_PROXIES and
# werkzeug's ProxyFix), so gunicorn does not read X-Forwarded-Proto itself.
secure_scheme_headers: dict = {}
proc_name = "lianxin-market"
