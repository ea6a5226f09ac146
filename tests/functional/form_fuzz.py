"""Strategies and checks shared by the form fuzzers (``test_form_fuzz*.py``).

What a fuzzer sends (:func:`form`: a submission whose fields are sent as a person would,
hostile, as bytes that are not UTF-8, left out or twice) and what the shop must do with
it (:func:`assert_refused_cleanly`: no 5xx, every table's row count unchanged, words on
the page saying why). ``FORM_FUZZ_EXAMPLES`` sets how many examples each test runs.
"""

import itertools
import os
import re
from urllib.parse import quote_from_bytes

import sqlalchemy as sa
import werkzeug.urls  # noqa: F401  (registers the 'werkzeug.url_quote' codec error handler)
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from shop.extensions import db
from shop.orders.services import MAX_QUANTITY_PER_LINE
from tests.builders import make_product

EXAMPLES = int(os.environ.get("FORM_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # The fixtures' database is shared by the examples of one test: each example reads
    # the state it starts from and asserts on what it changed (see the docstring).
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
# For forms whose every example hashes a password or draws a QR code (slow on purpose).
FUZZ_SLOW = settings(FUZZ, max_examples=max(10, EXAMPLES // 2))

# --- what a fuzzer sends ---------------------------------------------------------------

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "王\x00小明",
    "\x07\x08",
    "\x1b[2J",
    "\x7f",
    "\x0b\x0c",
    "\u202e\u0645\u0631\u062d\u0628\u0627",  # RTL override, Arabic
    "abc\u200b\u200c\u200d\u2060",  # zero-width
    "\ufeff",
    "\u2028\u2029",
    "e\u0301" * 30,
    "Z" + "\u0336" * 300,  # stacked combining marks
    "🍓🧑‍🌾👨‍👩‍👧",
    "\U0001f600" * 200,
    "\uffff\U0010ffff",
    "\U000e0041\U000e0042",  # tag characters
    "ｆｕｌｌ－ｗｉｄｔｈ",
    "=1+1",
    "@SUM(A1)",
    "<script>alert(1)</script>",
    "'\"--;",
    "{{7*7}}",
    "%00",
    "../../etc/passwd",
    "x" * 10_000,
    "中" * 5_000,
]
# Bytes no UTF-8 decoder accepts: stray continuation, overlong, an encoded surrogate,
# a truncated sequence, Latin-1.
BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80abc", b"caf\xe9"]
STRANGE_NUMBERS = [
    "0",
    "-1",
    "-0",
    "1.5",
    "2.0",
    "1e3",
    "1E2",
    "²",
    "３",
    "٣",
    "१",
    "１２",
    "①",
    "+3",
    "0x10",
    "1_000",
    "NaN",
    "inf",
    " 3 ",
    "\u30003\u3000",
    "007",
    str(MAX_QUANTITY_PER_LINE),
    str(MAX_QUANTITY_PER_LINE + 1),
    str(2**31),
    str(2**63),
    str(2**64),
    "9" * 400,
]

hostile_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=40),
    st.text(st.characters(categories=["Cc", "Cf", "Mn", "Zl", "Zp", "Co"]), max_size=8),
)
bad_bytes = st.one_of(st.sampled_from(BAD_UTF8), st.binary(min_size=1, max_size=40))
numbers = st.one_of(
    st.sampled_from(STRANGE_NUMBERS),
    st.integers(-(10**20), 10**20).map(str),
    st.decimals(allow_nan=True, allow_infinity=True, places=3).map(str),
)
phones = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)

# How each field of a form is sent: as a person would ("good"), hostile, as bytes that
# are not UTF-8, left out, sent twice (good then hostile, or the other way round). A
# submission is clean (every field good: the accepted path gets exercised), has one
# field spoiled, or any number of them; sometimes an unknown field rides along.
HOW = ["good", "good", "hostile", "hostile", "bytes", "missing", "twice", "twice-reversed"]


@st.composite
def form(draw, good: dict, hostile=hostile_text):
    """A form submission as ``[(name, value), …]``: ``good`` maps each field to a
    strategy of values a person might type, or to ``(good, bad)`` where ``bad`` are
    wrong values of that field's own kind; each field is then sent as HOW says."""
    names = list(good)
    mode = draw(st.sampled_from(["clean", "one", "many"]))
    spoiled = {"clean": set(), "one": {draw(st.sampled_from(names))}, "many": set(names)}[mode]
    pairs = []
    for name, strategy in good.items():
        strategy, bad = strategy if isinstance(strategy, tuple) else (strategy, None)
        worse = st.one_of(bad, hostile) if bad is not None else hostile
        how = draw(st.sampled_from(HOW)) if name in spoiled else "good"
        if mode == "one" and how == "good":
            how = "hostile"
        value = draw(strategy)
        if how == "good":
            pairs.append((name, value))
        elif how == "hostile":
            pairs.append((name, draw(worse)))
        elif how == "bytes":
            pairs.append((name, draw(bad_bytes)))
        elif how == "twice":
            pairs += [(name, value), (name, draw(worse))]
        elif how == "twice-reversed":
            pairs += [(name, draw(worse)), (name, value)]
    if mode != "clean" and draw(st.integers(0, 3)) == 0:
        pairs.append((draw(st.sampled_from(["x", "csrf_token", "id", "\x00"])), draw(hostile)))
    return pairs


def encode_form(pairs) -> bytes:
    """``application/x-www-form-urlencoded`` exactly as given: text as UTF-8, bytes as
    they are, so invalid UTF-8 reaches the server."""
    return b"&".join(
        (
            quote_from_bytes(k if isinstance(k, bytes) else k.encode(), safe="")
            + "="
            + quote_from_bytes(v if isinstance(v, bytes) else v.encode("utf-8"), safe="")
        ).encode("ascii")
        for k, v in pairs
    )


def post_form(client, url, pairs, **kwargs):
    return client.post(
        url,
        data=encode_form(pairs),
        content_type="application/x-www-form-urlencoded",
        **kwargs,
    )


def first(pairs, name):
    """The value Flask's ``request.form.get(name)`` sees: the first one sent, decoded
    as werkzeug decodes a form (bytes that are not UTF-8 stay percent-quoted: ``%FF``)."""
    for key, value in pairs:
        if key == name:
            if isinstance(value, bytes):
                return value.decode("utf-8", "werkzeug.url_quote")
            return value
    return None


# --- what the shop must do with it -----------------------------------------------------

ERROR_MARKERS = (
    'class="flash flash-error"',  # a flashed error
    'role="alert"',  # an error on a form field, or a list of a file's problems
    '<section class="notice">',  # the error page (4xx)
)
TABLES = db.metadata.sorted_tables


def row_counts() -> dict[str, int]:
    """Every table's row count, in one query."""
    db.session.expire_all()
    query = sa.select(
        *(sa.select(sa.func.count()).select_from(t).scalar_subquery().label(t.name) for t in TABLES)
    )
    counts = dict(db.session.execute(query).one()._mapping)
    db.session.rollback()
    return counts


def changed_tables(before: dict, after: dict) -> dict:
    return {name: (before[name], after[name]) for name in before if before[name] != after[name]}


def assert_not_5xx(response):
    assert response.status_code < 500, response.get_data(as_text=True)[:2000]


def page_of(client, response) -> str:
    """The page the person ends up looking at (following one redirect)."""
    if response.status_code in (301, 302, 303):
        follow = client.get(response.headers["Location"])
        assert_not_5xx(follow)
        return follow.get_data(as_text=True)
    return response.get_data(as_text=True)


def assert_refusal_explained(client, response):
    """A refusal is a 4xx with a page, a form shown again, or a redirect to a page
    with a flashed error — with words on it, never a blank."""
    assert response.status_code in (200, 302, 303) or 400 <= response.status_code < 500
    page = page_of(client, response)
    assert any(marker in page for marker in ERROR_MARKERS), (response.status_code, page[:3000])


def assert_refused_cleanly(client, response, before, allowed=()):
    if currently_in_test_context():  # the statistics of a Hypothesis test
        event("refused")
    assert_not_5xx(response)
    changed = changed_tables(before, row_counts())
    for name in allowed:
        changed.pop(name, None)
    assert changed == {}, f"refused, yet wrote {changed}"
    assert_refusal_explained(client, response)


def typed_whole_number(raw) -> int | None:
    """The shop's rule for a quantity or id typed in a form: ASCII digits, spaces
    around allowed; anything else means nothing."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    return int(text) if re.fullmatch(r"[0-9]+", text, re.ASCII) else None


_addresses = itertools.count(1)


def fresh_client(app):
    """A new browser with its own address (the unpaid-order limits count per address),
    on 127.0.0.0/8 like every client of these tests."""
    n = next(_addresses)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"127.{n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1}"
    return client


def published(**overrides):
    return make_product(stock=10_000, **overrides)
