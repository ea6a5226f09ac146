"""Serve an app over real HTTP on 127.0.0.1 for the length of a ``with`` block.

The Alipay SDK and the sandbox's notifications make real HTTP requests, and a browser
needs a real server, so tests that exercise them run the app under test here::

    with live_server(app) as base_url:
        ...

The server uses the very same app object (hence the same per-test database) in a thread,
threaded itself so that a request may call back into the app (the sandbox POSTing its
notification, the return page querying the gateway). While it runs, ``PUBLIC_BASE_URL``
and — when it pointed at the built-in sandbox — ``ALIPAY_GATEWAY_URL`` name the live
server; both are restored afterwards.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

SANDBOX_GATEWAY_PATH = "/sandbox/alipay/gateway.do"


@contextmanager
def live_server(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` on a free port; yield its base URL (``http://127.0.0.1:<port>``)."""
    server = make_server(host, 0, app, threaded=True)
    base_url = f"http://{host}:{server.server_port}"
    saved = {key: app.config.get(key) for key in ("PUBLIC_BASE_URL", "ALIPAY_GATEWAY_URL")}
    app.config["PUBLIC_BASE_URL"] = base_url
    old_gateway = saved["ALIPAY_GATEWAY_URL"] or ""
    if not old_gateway or old_gateway == (saved["PUBLIC_BASE_URL"] or "") + SANDBOX_GATEWAY_PATH:
        app.config["ALIPAY_GATEWAY_URL"] = base_url + SANDBOX_GATEWAY_PATH
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.config.update(saved)


def client_transport(app):
    """A sandbox notify transport that delivers through ``app.test_client()`` instead of
    HTTP, for tests without a live server::

        app.extensions["sandbox_notify_transport"] = client_transport(app)
    """
    from urllib.parse import urlsplit

    def post(url: str, data: dict[str, str], timeout: float) -> tuple[int, str]:
        response = app.test_client().post(urlsplit(url).path, data=data)
        return response.status_code, response.get_data(as_text=True)

    return post
