"""Admin pages for the money: benefit rules, payouts, the trial balance."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from shop.admin.forms import RuleForm
from shop.admin.routes import bp
from shop.auth.decorators import role_required
from shop.benefits import admin as benefits_admin
from shop.console.forms import ActionForm
from shop.errors import show_on_form
from shop.payouts.services import run_payouts


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
        try:
            rule = benefits_admin.new_rule_version(
                product_id=form.product_id.data or None,
                share_kind=form.share_kind.data,
                share_amount=form.share_amount.data,
                split=form.split.data,
                weight_basis=form.weight_basis.data,
                household_group=form.households.data,
                note=form.note.data or "",
            )
        except benefits_admin.RuleInputError as error:
            show_on_form(form, error)
        else:
            flash(
                _(
                    "已生效：规则第 %(version)s 版，关联 %(n)s 户。",
                    version=rule.version,
                    n=len(rule.households),
                ),
                "success",
            )
            return redirect(url_for("admin.rules"))
    status = 422 if request.method == "POST" else 200
    return render_template("admin/rule_form.html", form=form), status


@bp.route("/payouts")
@role_required("admin")
def payouts():
    return render_template(
        "admin/payouts.html",
        overview=benefits_admin.payout_overview(),
        action_form=ActionForm(),
    )


@bp.route("/payouts/run", methods=["POST"])
@role_required("admin")
def run_payouts_now():
    if not ActionForm().validate_on_submit():
        abort(400)
    report = run_payouts()
    flash(
        _(
            "打款完成：新发起 %(started)s 笔，成功 %(paid)s 笔，失败 %(failed)s 笔，"
            "处理中 %(pending)s 笔，无银行卡跳过 %(skipped)s 户。",
            started=report.started,
            paid=report.paid,
            failed=report.failed,
            pending=report.pending,
            skipped=len(report.skipped),
        ),
        "success" if report.finished else "error",
    )
    if report.held:
        flash(
            _(
                "%(n)s 户上次打款被银行退回（卡号或户名有误），暂不重试："
                "在农户管理中改正银行卡或户主姓名后，下次打款会重试。",
                n=len(report.held),
            ),
            "error",
        )
    return redirect(url_for("admin.payouts"))


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
