"""The team's buyers page and contact export (staff only)."""

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from shop.auth.decorators import role_required
from shop.console import buyers
from shop.console.forms import ActionForm
from shop.csv_input import csv_stream
from shop.invoices.services import pending as invoices_waiting
from shop.organisations import bulk
from shop.organisations import services as organisations

bp = Blueprint("buyers", __name__)


@bp.route("/buyers")
@role_required("staff")
def index():
    return render_template(
        "console/buyers.html",
        organisations=buyers.organisations(),
        repeat=buyers.repeat_buyers(),
        invoices_waiting=len(invoices_waiting()),
        registered=organisations.registered(),
        action_form=ActionForm(),
    )


@bp.route("/organisations/<int:organisation_id>/verify", methods=["POST"])
@role_required("staff")
def verify_organisation(organisation_id: int):
    """The team checked the unit is real (its licence, a call to its contact): its orders
    get the organisation's unpaid-order room from now on."""
    if not ActionForm().validate_on_submit():
        abort(400)
    if organisations.verify(current_user.id, organisation_id):
        flash(_("已核实该单位。"), "success")
    return redirect(url_for("buyers.index"))


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
