"""Invoices: the buyer's request and download (by the order's token), the team's queue."""

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from shop.auth.decorators import role_required
from shop.errors import UserError
from shop.extensions import db, limiter
from shop.invoices import services
from shop.invoices.models import InvoiceRequest
from shop.orders.services import order_by_token

bp = Blueprint("invoices", __name__)


@bp.app_template_global("invoice_of")
def invoice_of(order_id: int) -> InvoiceRequest | None:
    """The order page's invoice section asks this (the orders package knows nothing of
    invoices: they build on orders, not the other way round)."""
    return services.for_order(order_id)


def _order_or_404(token: str):
    order = order_by_token(token)
    if order is None:
        abort(404)
    return order


@bp.route("/orders/<token>/invoice", methods=["POST"])
@limiter.limit("20 per hour")
def request_invoice(token: str):
    order = _order_or_404(token)
    form = request.form
    try:
        services.request_invoice(
            order, form.get("kind", ""), form.get("title", ""), form.get("tax_id", ""),
            form.get("email", ""),
        )  # fmt: skip
    except UserError as error:
        flash(error.message, "error")
    else:
        flash(_("发票申请已提交，开具后会发到您的邮箱，也可在本页下载。"), "success")
    return redirect(url_for("orders.show", token=token) + "#invoice")


def _pdf_answer(invoice: InvoiceRequest):
    path = services.pdf_path(invoice)
    if path is None:
        abort(404)
    return send_file(
        path,
        mimetype="application/pdf",
        as_attachment=True,
        download_name=f"invoice-{invoice.order.order_no}.pdf",
        max_age=0,
    )


@bp.route("/orders/<token>/invoice.pdf")
def download(token: str):
    invoice = services.for_order(_order_or_404(token).id)
    if invoice is None:
        abort(404)
    return _pdf_answer(invoice)


@bp.route("/console/invoices")
@role_required("staff")
def queue():
    return render_template(
        "console/invoices.html", waiting=services.pending(), issued=services.recently_issued()
    )


@bp.route("/console/invoices/<int:invoice_id>/issue", methods=["POST"])
@role_required("staff")
def issue(invoice_id: int):
    upload = request.files.get("pdf")
    try:
        services.issue(invoice_id, upload.read() if upload else b"", current_user.id)
    except services.InvoiceError as error:
        flash(error.message, "error")
    else:
        flash(_("已开具，买家会收到邮件。"), "success")
    return redirect(url_for("invoices.queue"))


@bp.route("/console/invoices/<int:invoice_id>.pdf")
@role_required("staff")
def staff_pdf(invoice_id: int):
    invoice = db.session.get(InvoiceRequest, invoice_id)
    if invoice is None:
        abort(404)
    return _pdf_answer(invoice)
