"""The team's buyers page and contact export (staff only)."""

from flask import Blueprint, Response, render_template

from shop.auth.decorators import role_required
from shop.console import buyers
from shop.csv_input import csv_stream
from shop.invoices.services import pending as invoices_waiting
from shop.organisations import bulk

bp = Blueprint("buyers", __name__)


@bp.route("/buyers")
@role_required("staff")
def index():
    return render_template(
        "console/buyers.html",
        organisations=buyers.organisations(),
        repeat=buyers.repeat_buyers(),
        invoices_waiting=len(invoices_waiting()),
    )


def _csv_download(header: list[str], rows, filename: str) -> Response:
    # Built whole (a village shop's buyers are thousands, not millions): the rows read
    # and decrypt orders, which a streamed body would do after the request has ended.
    response = Response("".join(csv_stream(header, rows)), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.route("/buyers.csv")
@role_required("staff")
def export():
    return _csv_download(buyers.CONTACTS_HEADER, buyers.contact_rows(), "buyers.csv")


@bp.route("/parcels.csv")
@role_required("staff")
def parcels():
    """The parcels of paid bulk orders still to ship, for the courier."""
    return _csv_download(bulk.PARCELS_HEADER, bulk.parcel_rows(), "parcels.csv")
