from urllib.parse import quote

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

from shop.admin.forms import HouseholdForm, HouseholdImportForm, MergeForm
from shop.approvals import kinds as changes
from shop.approvals import services as approvals
from shop.audit.history import object_history
from shop.auth.decorators import role_required
from shop.csv_input import ImportFailed
from shop.errors import show_on_form
from shop.extensions import db
from shop.households import importer, services
from shop.households.models import Household
from shop.pii import mask_id_number

bp = Blueprint("admin", __name__)


@bp.route("/")
@role_required("admin")
def index():
    return render_template("admin/index.html")


@bp.route("/households")
@role_required("admin")
def households():
    village_id = request.args.get("village", type=int)
    query = request.args.get("q", "").strip()[:60]
    status = request.args.get("status", "")
    active = {"active": True, "inactive": False}.get(status)
    page = services.list_households(
        village_id=village_id, q=query, page=request.args.get("page", 1, type=int), active=active
    )
    return render_template(
        "admin/households.html",
        page=page,
        villages=services.villages(),
        village_id=village_id,
        query=query,
        status=status,
        mask_id_number=mask_id_number,
    )


def _household_form(household: Household | None = None) -> HouseholdForm:
    form = HouseholdForm(obj=household) if household else HouseholdForm()
    form.village_id.choices = [(v.id, f"{v.name}（{v.code}）") for v in services.villages()]
    if household:
        form.code.label.text = _("户编码")
    # Shown as text, and kept as text when a POST leaves them out (the household's own
    # number reached the length check: a 500).
    if household and (request.method == "GET" or not isinstance(form.land_mu.data, str)):
        form.land_mu.data = f"{household.land_mu:.2f}"
    if household and (request.method == "GET" or not isinstance(form.members.data, str)):
        form.members.data = str(household.members)
    return form


def _input_from(form: HouseholdForm) -> services.HouseholdInput:
    return services.HouseholdInput(
        code=form.code.data or "",
        head_name=form.head_name.data or "",
        id_number=form.id_number.data or "",
        members=form.members.data or "",
        village_id=form.village_id.data,
        group_name=form.group_name.data or "",
        bank_name=form.bank_name.data or "",
        bank_card=form.bank_card.data or "",
        land_mu=form.land_mu.data or "",
        employed=bool(form.employed.data),
        dividend=bool(form.dividend.data),
        coop_member=bool(form.coop_member.data),
        active=bool(form.active.data),
    )


def _me():
    return current_user._get_current_object()


def _private(response):
    # The edit page shows decrypted PII: keep it out of shared and browser caches.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/households/new", methods=["GET", "POST"])
@role_required("admin")
def new_household():
    form = _household_form()
    if form.validate_on_submit():
        try:
            proposal = changes.propose_household_create(_input_from(form), _me())
        except (services.HouseholdError, approvals.ApprovalError) as error:
            show_on_form(form, error)
        else:
            flash(
                _("已提交审批：%(title)s。另一位管理员批准后生效。", title=proposal.title),
                "success",
            )
            return redirect(url_for("approvals.detail", proposal_id=proposal.id))
    status = 422 if request.method == "POST" else 200
    body = render_template("admin/household_form.html", form=form, household=None)
    return _private(current_app.make_response((body, status)))


@bp.route("/households/<int:household_id>/edit", methods=["GET", "POST"])
@role_required("admin")
def edit_household(household_id: int):
    household = db.session.get(Household, household_id)
    if household is None:
        abort(404)
    form = _household_form(household)
    if request.method == "POST":
        form.code.data = household.code  # fixed once registered; the input is read-only
    if form.validate_on_submit():
        try:
            proposal = changes.propose_household_update(household.id, _input_from(form), _me())
        except (services.HouseholdError, approvals.ApprovalError) as error:
            show_on_form(form, error)
        else:
            flash(
                _("已提交审批：%(title)s。另一位管理员批准后生效。", title=proposal.title),
                "success",
            )
            return redirect(url_for("approvals.detail", proposal_id=proposal.id))
    status = 422 if request.method == "POST" else 200
    body = render_template(
        "admin/household_form.html",
        form=form,
        household=household,
        history=object_history("household", household.id),
        merge_form=MergeForm(),
        proposals=approvals.for_household(household.code),
        label=approvals.kind_label,
    )
    return _private(current_app.make_response((body, status)))


@bp.route("/households/<int:household_id>/merge", methods=["POST"])
@role_required("admin")
def merge_household(household_id: int):
    """Propose merging this household (registered twice) into the one whose code is typed."""
    if db.session.get(Household, household_id) is None:
        abort(404)
    form = MergeForm()
    if not form.validate_on_submit():
        flash(_("请填写保留的户编码。"), "error")
        return redirect(url_for("admin.edit_household", household_id=household_id))
    try:
        proposal = changes.propose_household_merge(household_id, form.keep_code.data, _me())
    except (services.HouseholdError, approvals.ApprovalError) as error:
        flash(error.message, "error")
        return redirect(url_for("admin.edit_household", household_id=household_id))
    flash(_("已提交审批：%(title)s。另一位管理员批准后生效。", title=proposal.title), "success")
    return redirect(url_for("approvals.detail", proposal_id=proposal.id))


@bp.route("/households/import", methods=["GET", "POST"])
@role_required("admin")
def import_households():
    form = HouseholdImportForm()
    errors: list[str] = []
    if form.validate_on_submit():
        limit = current_app.config.get("HOUSEHOLD_IMPORT_MAX_BYTES", importer.MAX_IMPORT_BYTES)
        # One byte past the limit is enough to know the file is too big.
        data = form.file.data.stream.read(limit + 1)
        try:
            proposal = changes.propose_household_import(data, _me())
        except ImportFailed as failure:
            errors = failure.errors
        except approvals.ApprovalError as error:
            errors = [error.message]
        else:
            flash(
                _("已提交审批：%(title)s。另一位管理员批准后写入。", title=proposal.title),
                "success",
            )
            return redirect(url_for("approvals.detail", proposal_id=proposal.id))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "admin/household_import.html",
        form=form,
        errors=errors,
        columns=importer.COLUMNS,
        required=importer.REQUIRED,
        max_rows=importer.MAX_IMPORT_ROWS,
    ), status


@bp.route("/households/template.csv")
@role_required("admin")
def household_template():
    response = Response(importer.template_csv(), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    # HTTP headers are Latin-1: a Chinese name goes in RFC 6266's filename* (UTF-8,
    # percent-encoded), with an ASCII name for clients that do not read it. Sent raw,
    # the server could not write the header and the download failed.
    response.headers["Content-Disposition"] = (
        'attachment; filename="household-template.csv"; '
        "filename*=UTF-8''" + quote("农户导入模板.csv")
    )
    return response
