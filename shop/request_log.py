"""One log line per request, with a request id that travels with it.

The id comes from the proxy's ``X-Request-ID`` when it is a plain token (nginx's
``$request_id``), otherwise it is made here; it is sent back as ``X-Request-ID``, put on
every log record written during the request (``%(request_id)s``) and kept in
``g.request_id`` for audit records.

The line names the route *pattern* (``/orders/<token>``), never the path, and no
client address or query string: order tokens, phone numbers in searches and addresses
are personal data, and a log is read by more people than the database is.
"""

import logging
import os
import re
import time
import uuid

from flask import Flask, g, has_request_context, request

ACCESS_LOG = logging.getLogger("shop.access")
_INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def request_id() -> str:
    """This request's id ("-" outside a request)."""
    if not has_request_context():
        return "-"
    rid = g.get("request_id")
    if rid is None:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _INCOMING_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.request_id = rid
    return rid


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request_id`` attribute (for formats that print it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id()
        return True


def init_app(app: Flask) -> None:
    @app.before_request
    def start_clock() -> None:
        g.request_started = time.perf_counter()
        g.pop("request_id", None)  # one id per request, even where ``g`` outlives it
        request_id()

    @app.after_request
    def log_request(response):
        response.headers["X-Request-ID"] = request_id()
        started = g.get("request_started")
        elapsed_ms = (time.perf_counter() - started) * 1000 if started else 0.0
        rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
        ACCESS_LOG.info(
            "%s %s %s %.1fms pid=%s",
            request.method,
            rule,
            response.status_code,
            elapsed_ms,
            os.getpid(),
        )
        return response


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with the request id on every line (once per process; gunicorn
    and ``flask`` both start here)."""
    root = logging.getLogger("shop")
    if any(getattr(h, "_lianxin", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._lianxin = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
