"""The public face: love board (爱心榜), results board (扶贫成果), household and order
trace pages, the trace page's QR code, and the open data downloads.

Nothing here needs a login; nothing here shows a buyer's phone, address or full name,
or a household's full name, ID number or bank card.
"""

from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _

from ledger import CHANNELS, head
from shop.boards import open_data as open_data_rows
from shop.boards import reads
from shop.boards.charts import COLOURS, stacked_chart
from shop.boards.qr import qr_svg, svg_response
from shop.boards.trace import public_buyer, trace_of
from shop.csv_input import csv_stream
from shop.db import MAX_ROW_ID
from shop.extensions import db, limiter
from shop.page_cache import cached_page
from shop.transparency import services as transparency
from shop.urls import public_url

bp = Blueprint("boards", __name__)
LEDGER_DIR = Path(__file__).resolve().parent.parent.parent / "ledger"


def _channel_labels() -> dict[str, str]:
    return {
        "sales": _("消费帮扶"),
        "land": _("土地流转"),
        "wages": _("务工工资"),
        "dividends": _("分红"),
        "coop": _("合作社"),
    }


POLL_MS_DEFAULT, POLL_MS_MIN, POLL_MS_MAX = 10_000, 1_000, 120_000


def _posting_kinds() -> dict[str, str]:
    """What each kind of ledger posting means on a household's statement."""
    return {
        "sale": _("网店销售分成"),
        "offline_sale": _("线下销售分成"),
        "refund": _("退款冲回"),
        "income_land": _("土地流转租金"),
        "income_wages": _("务工工资"),
        "income_dividend": _("分红"),
        "income_coop": _("合作社收益"),
        "income_reversal": _("收入冲销"),
        "payout": _("打款到银行卡"),
        "payout_paid": _("银行已到账"),
        "payout_failed": _("打款失败，退回账户"),
        "adjustment": _("调整"),
        "household_merge": _("合并重复登记（余额转入保留的户）"),
    }


@bp.route("/board")
@cached_page(version=reads.love_board_version)
def love_board():
    board = reads.love_board()
    if request.args.get("live") == "1":  # the part the page swaps in when the board moved
        return render_template("boards/_love_live.html", board=board)
    poll_ms = request.args.get("poll", POLL_MS_DEFAULT, type=int) or POLL_MS_DEFAULT
    return render_template(
        "boards/love.html",
        board=board,
        poll_url=url_for("api.board"),
        poll_ms=max(POLL_MS_MIN, min(poll_ms, POLL_MS_MAX)),
    )


@bp.route("/results")
def results_board():
    query = request.args.get("q", "", type=str)[:20].strip()
    exact = reads.find_household_code(query)
    if exact:
        return redirect(url_for("boards.household", code=exact))
    months = reads.monthly_income()
    return render_template(
        "boards/results.html",
        rows=reads.household_rows(query),
        query=query,
        totals=reads.programme_totals(),
        chart=stacked_chart(months),
        months=months,
        colours=COLOURS,
        channels=_channel_labels(),
    )


@bp.route("/households/<code>")
def household(code: str):
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_ROW_ID:
        before = None  # not a transaction id: the newest page
    page = reads.household_page(code[:16], statement_before=before)
    if page is None:
        exact = reads.find_household_code(code[:16])  # sj-001 → SJ-001
        if exact and exact != code:
            return redirect(url_for("boards.household", code=exact), code=301)
        abort(404)
    return render_template(
        "boards/household.html",
        page=page,
        kinds=_posting_kinds(),
        chart=stacked_chart(page.months),
        colours=COLOURS,
        channels=_channel_labels(),
    )


@bp.route("/trace/<token>")
def trace(token: str):
    found = trace_of(token)
    if found is None:
        abort(404)
    buyer, organization = public_buyer(found.order)
    url = public_url("boards.trace", token=token)
    ledger = found.ledger
    return render_template(
        "boards/trace.html",
        trace=found,
        buyer=buyer,
        organization=organization,
        # The signed tree head that includes the order's transaction (None until the
        # next head is signed, within TREE_HEAD_EVERY_SECONDS).
        included=transparency.included_in(ledger.transaction_id) if ledger else None,
        qr=qr_svg(url, scale=3, inline=True),
        share_url=url,
    )


@bp.route("/qr/trace/<token>.svg")
def trace_qr(token: str):
    if trace_of(token) is None:
        abort(404)
    return svg_response(qr_svg(public_url("boards.trace", token=token)))


# --- open data --------------------------------------------------------------------------


@bp.route("/open-data")
def open_data():
    count, head_hash = head(db.session)
    return render_template(
        "boards/open_data.html",
        count=count,
        head_hash=head_hash,
        signing_key=transparency.public_key_json(),
        tree_head=transparency.latest_tree_head(),
    )


# The downloads stream the whole history, so a loop of them is the cheapest way to
# load the database: one shared count per client address, the API's read limit.
open_data_limit = limiter.shared_limit(
    lambda: current_app.config["API_READ_RATE_LIMIT"], scope="open-data"
)


def _csv_download(header: list[str], rows, filename: str) -> Response:
    """Stream a UTF-8 CSV (with BOM, so spreadsheet programs read the Chinese) through
    the shop's one CSV writer, :func:`shop.csv_input.csv_stream`: text cells a
    spreadsheet would run as a formula (a buyer's board name ``=HYPERLINK(…)``) get a
    leading apostrophe; the numbers the shop computed (fen, counts, ids — ``int``, which
    may be negative) are written as numbers."""
    response = Response(stream_with_context(csv_stream(header, rows)), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.route("/open-data/love-board.csv")
@open_data_limit
def purchases_csv():
    def rows():
        for p in open_data_rows.iter_purchases():
            yield [
                p["at"],
                p["channel"],
                p["buyer"],
                p["organization"],
                "; ".join(f"{i['product']}×{i['quantity']}" for i in p["items"]),
                p["units"],
                p["amount_fen"],
                p["refunded_fen"],
                p["beneficiary_fen"],
                "; ".join(f"{h['code']}:{h['amount_fen']}" for h in p["households"]),
            ]

    header = [
        "at",
        "channel",
        "buyer",
        "organization",
        "items",
        "units",
        "amount_fen",
        "refunded_fen",
        "beneficiary_fen",
        "households",
    ]
    return _csv_download(header, rows(), "lianxin-love-board.csv")


@bp.route("/open-data/households.csv")
@open_data_limit
def households_csv():
    def rows():
        for r in reads.household_rows():
            yield [
                r.code,
                r.name_masked,
                r.village,
                r.group_name,
                r.members,
                *(r.income[c] for c in (*CHANNELS, "total")),
            ]

    header = [
        "code",
        "name_masked",
        "village",
        "group",
        "members",
        *(f"{c}_fen" for c in (*CHANNELS, "total")),
    ]
    return _csv_download(header, rows(), "lianxin-results-board.csv")


@bp.route("/open-data/ledger.csv")
@open_data_limit
def ledger_csv():
    header = [
        "transaction_id",
        "key",
        "kind",
        "created_at",
        "reverses",
        "position",
        "account",
        "amount_fen",
        "hash",
    ]
    return _csv_download(header, open_data_rows.iter_ledger_entries(), "lianxin-ledger.csv")


# The standalone verifier: two standard-library files an auditor saves side by side.
VERIFIER_FILES = ("verify.py", "canonical.py")


@bp.route("/open-data/<any(verify, canonical):name>.py")
@open_data_limit
def verifier_source(name: str):
    """The verifier's source (``verify.py`` imports ``canonical.py`` from its folder),
    exactly as the ledger package runs it."""
    source = (LEDGER_DIR / f"{name}.py").read_text(encoding="utf-8")
    response = Response(source, mimetype="text/x-python")
    response.headers["Content-Type"] = "text/x-python; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.py"'
    return response
