"""Proposals waiting for a second admin (console), and the public change log."""

from flask import (
    Blueprint,
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

from shop.approvals import kinds, public, services
from shop.approvals.forms import DecisionForm, RejectForm
from shop.approvals.kinds import FIELD_LABELS
from shop.auth.decorators import role_required
from shop.extensions import db
from shop.formatting import format_fen
from shop.offline.models import HouseholdIncome, OfflineSale

bp = Blueprint("approvals", __name__)
public_bp = Blueprint("changes", __name__)


@bp.route("/")
@role_required("staff")
def index():
    return render_template(
        "approvals/index.html",
        waiting=services.pending(),
        decided=services.recent(),
        label=services.kind_label,
    )


@bp.route("/<int:proposal_id>")
@role_required("staff")
def detail(proposal_id: int):
    try:
        proposal = services.get(proposal_id)
    except services.ApprovalError:
        abort(404)
    return render_template(
        "approvals/detail.html",
        proposal=proposal,
        before=services.decoded(proposal.before),
        after=services.decoded(proposal.after),
        field_labels=FIELD_LABELS,
        label=services.kind_label,
        approve_form=DecisionForm(),
        reject_form=RejectForm(),
        own=proposal.proposed_by_id == current_user.id,
    )


@bp.route("/<int:proposal_id>/approve", methods=["POST"])
@role_required("admin")
def approve(proposal_id: int):
    if not DecisionForm().validate_on_submit():
        abort(400)
    try:
        proposal = services.approve(proposal_id, current_user._get_current_object())
    except services.ApprovalError as error:
        flash(error.message, "error")
    else:
        flash(_("已批准并生效：%(title)s", title=proposal.title), "success")
        if proposal.outcome:
            flash(proposal.outcome, "success")
    return redirect(url_for("approvals.detail", proposal_id=proposal_id))


@bp.route("/<int:proposal_id>/reject", methods=["POST"])
@role_required("admin")
def reject(proposal_id: int):
    form = RejectForm()
    if not form.validate_on_submit():
        flash(_("请写明驳回理由。"), "error")
        return redirect(url_for("approvals.detail", proposal_id=proposal_id))
    try:
        proposal = services.reject(proposal_id, _me(), form.reason.data)
    except services.ApprovalError as error:
        flash(error.message, "error")
    else:
        own = proposal.proposed_by_id == current_user.id
        flash(_("已撤回。") if own else _("已驳回。"), "success")
    return redirect(url_for("approvals.detail", proposal_id=proposal_id))


@bp.route("/reverse-sale/<int:sale_id>", methods=["POST"])
@role_required("admin")
def propose_sale_reversal(sale_id: int):
    if not DecisionForm().validate_on_submit():
        abort(400)
    sale = db.session.get(OfflineSale, sale_id)
    if sale is None:
        abort(404)
    return _proposed(lambda: kinds.propose_sale_reversal(sale, _me()), "offline.sales")


@bp.route("/reverse-income/<int:income_id>", methods=["POST"])
@role_required("admin")
def propose_income_reversal(income_id: int):
    if not DecisionForm().validate_on_submit():
        abort(400)
    record = db.session.get(HouseholdIncome, income_id)
    if record is None:
        abort(404)
    return _proposed(lambda: kinds.propose_income_reversal(record, _me()), "offline.income_page")


def _me():
    return current_user._get_current_object()


def _proposed(make, back: str):
    try:
        proposal = make()
    except services.ApprovalError as error:
        flash(error.message, "error")
        return redirect(url_for(back))
    flash(
        _(
            "金额超过 %(limit)s，需另一位管理员审批，已提交：%(title)s。",
            limit=format_fen(current_app.config["APPROVAL_THRESHOLD_FEN"]),
            title=proposal.title,
        ),
        "success",
    )
    return redirect(url_for("approvals.detail", proposal_id=proposal.id))


@public_bp.route("/changes")
def change_log():
    code = request.args.get("household", "").strip()[:16] or None
    changes = public.approved_changes(code, request.args.get("before", type=int))
    return render_template(
        "boards/changes.html",
        rows=[(c, services.decoded(c.before), services.decoded(c.after)) for c in changes],
        household_code=code,
        field_labels=FIELD_LABELS,
        label=services.kind_label,
        page_size=public.PAGE_SIZE,
    )
