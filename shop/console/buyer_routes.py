"""The team's buyers page and contact export (staff only)."""

from flask import Blueprint, Response, render_template

from shop.auth.decorators import role_required
from shop.console import buyers
from shop.csv_input import csv_stream
from shop.invoices.services import pending as invoices_waiting

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


@bp.route("/buyers.csv")
@role_required("staff")
def export():
    # Built whole (a village shop's buyers are thousands, not millions): the rows read
    # and decrypt orders, which a streamed body would do after the request has ended.
    response = Response(
        "".join(csv_stream(buyers.CONTACTS_HEADER, buyers.contact_rows())), mimetype="text/csv"
    )
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="buyers.csv"'
    return response
