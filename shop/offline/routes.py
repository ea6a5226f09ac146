import secrets
from datetime import datetime

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from shop.auth.decorators import role_required
from shop.console.forms import ActionForm
from shop.csv_input import ImportFailed
from shop.errors import show_on_form
from shop.extensions import db
from shop.formatting import SHANGHAI, format_fen
from shop.offline import importer, income, services
from shop.offline.forms import (
    HallSaleForm,
    IncomeForm,
    IncomeUploadForm,
    ReportForm,
    RosterForm,
    SalesUploadForm,
)
from shop.offline.models import HouseholdIncome, ImportBatch, OfflineSale

bp = Blueprint("offline", __name__)


def _needs_approval(amount_fen: int) -> bool:
    """Reversals above APPROVAL_THRESHOLD_FEN (fen) need a second admin."""
    return amount_fen > current_app.config["APPROVAL_THRESHOLD_FEN"]


def _csv_response(data: bytes, filename: str) -> Response:
    return Response(
        data,
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


# --- sales -------------------------------------------------------------------------


def _hall_form() -> HallSaleForm:
    form = HallSaleForm()
    products = services.sale_products()
    form.product_id.choices = [
        (p.id, f"{p.name}（{format_fen(p.price_fen)}/{p.unit}，库存 {p.stock}）") for p in products
    ]
    form.payment_method.choices = list(services.payment_labels().items())
    if not form.token.data:
        form.token.data = secrets.token_urlsafe(16)
    return form


@bp.route("/", methods=["GET", "POST"])
@role_required("staff")
def sales():
    form = _hall_form()
    status = 200
    if form.validate_on_submit():
        entry = services.OfflineSaleInput(
            product_id=form.product_id.data,
            quantity=form.quantity.data,
            unit_price=form.unit_price.data or "",
            payment_method=form.payment_method.data,
            board_display=form.board_display.data,
            buyer_name=form.buyer_name.data or "",
            organization=form.organization.data or "",
        )
        try:
            record = services.record_counter_sale(entry, form.token.data, current_user.id)
        except services.OfflineError as error:
            flash(error.message, "error")
            status = 422
        else:
            flash(
                _(
                    "已记账：%(name)s ×%(qty)s，%(amount)s，其中 %(share)s 直达农户。",
                    name=record.product_name,
                    qty=record.quantity,
                    amount=format_fen(record.total_fen),
                    share=format_fen(record.beneficiary_fen),
                ),
                "success",
            )
            return redirect(url_for("offline.sales"))
    elif request.method == "POST":
        status = 422
    return render_template(
        "offline/sales.html",
        form=form,
        upload_form=SalesUploadForm(),
        sales=services.recent_sales(),
        batches=importer.recent_batches("sales"),
        channel_labels=services.channel_labels(),
        payment_labels=services.payment_labels(),
        action_form=ActionForm(),
    ), status


@bp.route("/sales/upload", methods=["POST"])
@role_required("staff")
def upload_sales():
    form = SalesUploadForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for("offline.sales") + "#upload")
    upload = form.file.data
    try:
        batch = importer.create_batch(
            "sales",
            upload.read(importer.MAX_BYTES + 1),
            upload.filename or "",
            channel=form.channel.data,
            session_name=form.session_name.data or "",
            starts_on=form.starts_on.data,
            ends_on=form.ends_on.data,
            user_id=current_user.id,
        )
    except ImportFailed as failed:
        for error in failed.errors:
            flash(error, "error")
        return redirect(url_for("offline.sales") + "#upload")
    return redirect(url_for("offline.batch", batch_id=batch.id))


@bp.route("/sales/template.csv")
@role_required("staff")
def sales_template():
    return _csv_response(importer.sales_template_csv(), "offline-sales-template.csv")


@bp.route("/sales/<int:sale_id>/reverse", methods=["POST"])
@role_required("admin")
def reverse_sale(sale_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    record = db.session.get(OfflineSale, sale_id)
    if record is not None and _needs_approval(record.total_fen):
        # A second admin decides: the proposal is made by the approvals pages (307 keeps
        # the POST and its CSRF token).
        return redirect(url_for("approvals.propose_sale_reversal", sale_id=sale_id), code=307)
    try:
        services.reverse_sale(sale_id, current_user.id)
    except services.OfflineError as error:
        flash(error.message, "error")
    else:
        flash(_("已冲销这笔线下销售，商品已放回库存。"), "success")
    return redirect(url_for("offline.sales"))


# --- batches (sales and income) ----------------------------------------------------


def _batch_or_404(batch_id: int) -> ImportBatch:
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None:
        abort(404)
    return batch


@bp.route("/batches/<int:batch_id>")
@role_required("staff")
def batch(batch_id: int):
    found = _batch_or_404(batch_id)
    return render_template(
        "offline/batch.html",
        batch=found,
        preview=importer.preview(found),
        action_form=ActionForm(),
        channel_labels=services.channel_labels(),
        income_labels=income.channel_labels(),
    )


@bp.route("/batches/<int:batch_id>/confirm", methods=["POST"])
@role_required("staff")
def confirm_batch(batch_id: int):
    found = _batch_or_404(batch_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        result = importer.confirm(found.id, current_user.id)
    except ImportFailed as failed:
        for error in failed.errors[:20]:
            flash(error, "error")
    else:
        posted = result.batch.posted_rows
        flash(
            _(
                "已入账 %(n)s 行，跳过已入账的 %(m)s 行。",
                n=posted,
                m=result.batch.skipped_rows,
            ),
            "success",
        )
    return redirect(url_for("offline.batch", batch_id=found.id))


# --- income ------------------------------------------------------------------------


def _income_form() -> IncomeForm:
    form = IncomeForm()
    form.channel.choices = list(income.channel_labels().items())
    form.payer.choices = income.payer_choices()
    return form


def _roster_form() -> RosterForm:
    form = RosterForm()
    form.payer.choices = income.payer_choices()
    if not form.period.data:
        form.period.data = str(datetime.now(SHANGHAI).year)
    return form


def _income_page(form=None, status=200, roster_form=None):
    channel = request.args.get("channel") or None
    query = request.args.get("q", "")
    upload_form = IncomeUploadForm()
    upload_form.payer.choices = [("", _("按类别默认")), *income.payer_choices()]
    return render_template(
        "offline/income.html",
        form=form or _income_form(),
        roster_form=roster_form or _roster_form(),
        upload_form=upload_form,
        records=income.recent_income(channel, query),
        totals=income.income_totals_by_channel(),
        batches=importer.recent_batches("income"),
        labels=income.channel_labels(),
        quantity_labels=income.quantity_labels(),
        channel=channel,
        query=query,
        action_form=ActionForm(),
    ), status


@bp.route("/income", methods=["GET", "POST"])
@role_required("staff")
def income_page():
    form = _income_form()
    if not form.validate_on_submit():
        return _income_page(form, 422 if request.method == "POST" else 200)
    entry = income.IncomeFormInput(
        household_code=form.household_code.data,
        channel=form.channel.data,
        period=form.period.data,
        payer_account=form.payer.data,
        quantity=form.quantity.data or "",
        rate=form.rate.data or "",
        amount=form.amount.data or "",
        memo=form.memo.data or "",
    )
    try:
        record, created = income.record_typed_income(entry, current_user.id)
    except services.OfflineError as error:
        show_on_form(form, error)
        return _income_page(form, 422)
    if created:
        flash(
            _(
                "已记入户 %(code)s：%(kind)s %(amount)s。",
                code=record.household_code,
                kind=income.channel_labels()[record.channel],
                amount=format_fen(record.amount_fen),
            ),
            "success",
        )
    else:
        flash(_("这笔收入之前已经入账，没有重复记账。"), "success")
    return redirect(url_for("offline.income_page"))


@bp.route("/income/upload", methods=["POST"])
@role_required("staff")
def upload_income():
    form = IncomeUploadForm()
    form.payer.choices = [("", ""), *income.payer_choices()]
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for("offline.income_page") + "#upload")
    upload = form.file.data
    try:
        batch = importer.create_batch(
            "income",
            upload.read(importer.MAX_BYTES + 1),
            upload.filename or "",
            session_name=form.payer.data or "",
            user_id=current_user.id,
        )
    except ImportFailed as failed:
        for error in failed.errors:
            flash(error, "error")
        return redirect(url_for("offline.income_page") + "#upload")
    return redirect(url_for("offline.batch", batch_id=batch.id))


@bp.route("/income/roster", methods=["POST"])
@role_required("staff")
def income_roster():
    form = _roster_form()
    if not form.validate_on_submit():
        return _income_page(roster_form=form, status=422)
    entry = income.RosterInput(
        channel=form.channel.data,
        period=form.period.data,
        rate=form.rate.data or "",
        pool=form.pool.data or "",
        basis=form.basis.data,
        payer=form.payer.data,
    )
    try:
        roster = income.check_roster(entry)
        data = importer.roster_file(roster)
    except services.OfflineError as error:
        flash(error.message, "error")
        return _income_page(roster_form=form, status=422)
    if roster.to_fill_in:
        return _csv_response(data, f"wages-{roster.period}.csv")
    batch = importer.create_batch("income", data, roster.batch_name, user_id=current_user.id)
    return redirect(url_for("offline.batch", batch_id=batch.id))


@bp.route("/income/template.csv")
@role_required("staff")
def income_template():
    return _csv_response(importer.income_template_csv(), "household-income-template.csv")


@bp.route("/income/<int:income_id>/reverse", methods=["POST"])
@role_required("admin")
def reverse_income(income_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    record = db.session.get(HouseholdIncome, income_id)
    if record is not None and _needs_approval(record.amount_fen):
        return redirect(
            url_for("approvals.propose_income_reversal", income_id=income_id), code=307
        )
    try:
        income.reverse_income(income_id, current_user.id)
    except services.OfflineError as error:
        flash(error.message, "error")
    else:
        flash(_("已冲销这笔收入。"), "success")
    return redirect(url_for("offline.income_page"))


# --- reports -----------------------------------------------------------------------


@bp.route("/reports")
@role_required("staff")
def reports():
    form = ReportForm(request.args)
    form.validate()
    chosen = services.report_range(
        services.ReportInput(form.group.data, form.start.data, form.end.data)
    )
    group, start, end = chosen.group, chosen.start, chosen.end
    rows = services.sales_report(group, start, end)
    if request.args.get("format") == "csv":
        return _csv_response(
            services.report_csv(group, rows), f"sales-by-{group}-{start}-{end}.csv"
        )
    return render_template(
        "offline/reports.html",
        form=form,
        rows=rows,
        group=group,
        start=start,
        end=end,
        total_amount=sum(r.amount_fen for r in rows),
        total_share=sum(r.beneficiary_fen for r in rows),
        total_units=sum(r.units for r in rows),
    )
