"""A whole-page cache for what anonymous visitors read most (a product page, the love
board), so that a page shared in a WeChat group costs one small query per view instead of
a full render.

Invariants:

- **Only anonymous readers.** A GET with no login, no cart and no flashed message is
  served from the cache or stored in it; anyone else gets a fresh render. The pages'
  per-visitor parts are then only the two below.
- **Per-request values are never cached.** The CSP nonce and the CSRF token a page was
  rendered with are replaced by markers when it is stored, and filled in with this
  request's own values when it is served (the token exactly as a render would make it).
- **Never stale.** A page is stored under a key that includes its *version*: a tuple the
  view's version function reads from the shared database in one query — for a product,
  its row's ``updated_at`` (moved by every change of price, stock, text, status or
  photos) and the boards' last folded ledger transaction; for the love board, that
  transaction and the day in Asia/Shanghai. A change on any host changes the version,
  so nothing needs invalidating: the old entry is simply never asked for again and
  ages out of the LRU.
- **Bounded.** Each worker keeps at most ``PAGE_CACHE_ENTRIES`` pages (0 turns the cache
  off). Nothing is shared between processes, so nothing can leak between them.

``X-Page-Cache: hit`` or ``miss`` on a cacheable page says which happened.
"""

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import wraps

from flask import Response, current_app, g, make_response, request, session
from flask_babel import get_locale
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from shop.security import csp_nonce

_EXTENSION = "page_cache"
# Unguessable per process, so no page content can ever contain a marker by chance.
_MARK = secrets.token_hex(16)
NONCE_MARK = f"{_MARK}-nonce"
CSRF_MARK = f"{_MARK}-csrf"


@dataclass(frozen=True)
class _Page:
    body: str
    content_type: str


class PageCache:
    """A thread-safe LRU of rendered pages (gthread workers serve several at once)."""

    def __init__(self, entries: int):
        self.entries = entries
        self._pages: OrderedDict[Hashable, _Page] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> _Page | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: Hashable, page: _Page) -> None:
        with self._lock:
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self.entries:
                self._pages.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()


def init_app(app) -> None:
    entries = int(app.config.get("PAGE_CACHE_ENTRIES", 0))
    app.extensions[_EXTENSION] = PageCache(entries) if entries > 0 else None


def _anonymous_reader() -> bool:
    return (
        request.method == "GET"
        and "cart" not in session
        and "_flashes" not in session
        and not current_user.is_authenticated
    )


def _csrf_field() -> str:
    return current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")


def _stored(response: Response) -> _Page:
    body = response.get_data(as_text=True)
    nonce = g.get("csp_nonce")
    if nonce:
        body = body.replace(nonce, NONCE_MARK)
    token = g.get(_csrf_field())
    if token:
        body = body.replace(token, CSRF_MARK)
    return _Page(body, response.content_type)


def _served(page: _Page) -> Response:
    body = page.body.replace(NONCE_MARK, csp_nonce())
    if CSRF_MARK in body:
        # A token already in ``g`` belongs to whoever an outer app context rendered for
        # (the test suite and the CLI keep one app context across requests): this
        # visitor gets one made from their own session.
        g.pop(_csrf_field(), None)
        body = body.replace(CSRF_MARK, generate_csrf())
    return Response(body, content_type=page.content_type)


def cached_page(version: Callable[..., Hashable | None]):
    """Serve the decorated view from the cache for anonymous readers. ``version`` gets
    the view's arguments and returns the page's version (see the module's docstring),
    or None when there is nothing to cache (the view then answers, e.g. 404)."""

    def decorate(view):
        @wraps(view)
        def wrapper(**view_args):
            cache: PageCache | None = current_app.extensions.get(_EXTENSION)
            if cache is None or not _anonymous_reader():
                return view(**view_args)
            current = version(**view_args)
            if current is None:
                return view(**view_args)
            key = (request.endpoint, request.full_path, str(get_locale()), current)
            page = cache.get(key)
            if page is not None:
                response = _served(page)
                response.headers["X-Page-Cache"] = "hit"
                return response
            response = make_response(view(**view_args))
            if response.status_code == 200 and response.mimetype == "text/html":
                cache.put(key, _stored(response))
                response.headers["X-Page-Cache"] = "miss"
            return response

        return wrapper

    return decorate
