"""Admin pages for the money: benefit rules, payouts, the trial balance."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from shop.admin.forms import RuleForm
from shop.admin.routes import bp
from shop.approvals import kinds as changes
from shop.approvals import services as approvals
from shop.auth.decorators import role_required
from shop.benefits import admin as benefits_admin
from shop.console.forms import ActionForm
from shop.errors import show_on_form
from shop.payouts.services import plan_batch


@bp.route("/rules")
@role_required("admin")
def rules():
    return render_template("admin/rules.html", rows=benefits_admin.rule_overview())


@bp.route("/rules/new", methods=["GET", "POST"])
@role_required("admin")
def new_rule():
    form = RuleForm()
    form.product_id.choices = benefits_admin.product_choices(_("全部商品的默认规则"))
    if request.method == "GET":
        form.product_id.data = request.args.get("product", 0, type=int)
    if form.validate_on_submit():
        args = {
            "product_id": form.product_id.data or None,
            "share_kind": form.share_kind.data,
            "share_amount": form.share_amount.data,
            "split": form.split.data,
            "weight_basis": form.weight_basis.data,
            "household_group": form.households.data,
            "note": form.note.data or "",
        }
        try:
            proposal = changes.propose_rule(args, current_user._get_current_object())
        except (benefits_admin.RuleInputError, approvals.ApprovalError) as error:
            show_on_form(form, error)
        else:
            flash(
                _("已提交审批：%(title)s。另一位管理员批准后生效。", title=proposal.title),
                "success",
            )
            return redirect(url_for("approvals.detail", proposal_id=proposal.id))
    status = 422 if request.method == "POST" else 200
    return render_template("admin/rule_form.html", form=form), status


@bp.route("/payouts")
@role_required("admin")
def payouts():
    return render_template(
        "admin/payouts.html",
        overview=benefits_admin.payout_overview(),
        plan=plan_batch(),
        action_form=ActionForm(),
    )


@bp.route("/payouts/run", methods=["POST"])
@role_required("admin")
def run_payouts_now():
    """Propose the next payout batch: it is paid when a second admin approves it."""
    if not ActionForm().validate_on_submit():
        abort(400)
    plan = plan_batch()
    if plan.held:
        flash(
            _(
                "%(n)s 户上次打款被银行退回（卡号或户名有误），暂不重试："
                "在农户管理中改正银行卡或户主姓名后，下次打款会重试。",
                n=len(plan.held),
            ),
            "error",
        )
    if plan.recent_card:
        flash(
            _(
                "%(n)s 户银行卡近期变更，未列入批次，需逐户单独审批：%(codes)s",
                n=len(plan.recent_card),
                codes="、".join(plan.recent_card),
            ),
            "error",
        )
    try:
        proposal = changes.propose_payout_batch(current_user._get_current_object(), plan)
    except approvals.ApprovalError as error:
        flash(error.message, "error")
        return redirect(url_for("admin.payouts"))
    flash(_("已提交审批：%(title)s。另一位管理员批准后打款。", title=proposal.title), "success")
    return redirect(url_for("approvals.detail", proposal_id=proposal.id))


@bp.route("/payouts/households/<code>", methods=["POST"])
@role_required("admin")
def propose_household_payout(code: str):
    """Propose paying one household whose card changed recently, on its own."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        proposal = changes.propose_household_payout(code, current_user._get_current_object())
    except approvals.ApprovalError as error:
        flash(error.message, "error")
        return redirect(url_for("admin.payouts"))
    flash(_("已提交审批：%(title)s。", title=proposal.title), "success")
    return redirect(url_for("approvals.detail", proposal_id=proposal.id))


@bp.route("/ledger")
@role_required("admin")
def ledger_overview():
    return render_template("admin/ledger.html", **benefits_admin.ledger_overview())


@bp.route("/households/<int:household_id>/statement")
@role_required("admin")
def household_statement(household_id: int):
    view = benefits_admin.household_statement(household_id)
    if view is None:
        abort(404)
    return render_template("admin/household_statement.html", **view)
