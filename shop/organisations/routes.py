"""Organisation pages (signed-in members only; anyone else gets 404, so an id tells
nothing): register, join by invite, members, the organisation's orders and impact,
and the recipients CSV that places a bulk order."""

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
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required

from shop.csv_input import ImportFailed
from shop.errors import UserError, show_on_form
from shop.extensions import limiter
from shop.orders.holds import Requester
from shop.orders.services import BuyerDetails
from shop.organisations import bulk, services
from shop.organisations.forms import BulkOrderForm, OrganisationForm
from shop.payments.services import channel_for
from shop.pii import mask_name, mask_phone

bp = Blueprint("organisations", __name__)


@bp.app_template_global("bulk_recipients")
def bulk_recipients(order_id: int) -> list:
    """The parcels of a bulk order (empty for any other): the order pages show them."""
    return bulk.recipients_of(order_id)


def _member_or_404(organisation_id: int) -> services.Membership:
    member = services.membership(current_user.id, organisation_id)
    if member is None:
        abort(404)
    return member


@bp.route("/organisations")
@login_required
def mine():
    return render_template(
        "organisations/mine.html", memberships=services.my_organisations(current_user.id)
    )


@bp.route("/organisations/new", methods=["GET", "POST"])
@login_required
@limiter.limit("10 per hour", methods=["POST"])
def register():
    form = OrganisationForm()
    if form.validate_on_submit():
        try:
            organisation = services.register(
                current_user.id, form.name.data, form.credit_code.data, form.contact_name.data,
                form.contact_phone.data, form.email.data or "",
            )  # fmt: skip
        except UserError as error:
            show_on_form(form, error)
        else:
            flash(_("单位已登记。把邀请链接发给同事，他们登录后即可为单位下单。"), "success")
            return redirect(url_for("organisations.show", organisation_id=organisation.id))
    return render_template("organisations/register.html", form=form)


@bp.route("/organisations/<int:organisation_id>")
@login_required
def show(organisation_id: int):
    member = _member_or_404(organisation_id)
    organisation = member.organisation
    return render_template(
        "organisations/show.html",
        member=member,
        organisation=organisation,
        contact=(mask_name(organisation.contact_name), mask_phone(organisation.contact_phone)),
        members=services.members(organisation_id),
        orders=services.orders_of(organisation_id),
    )


@bp.route("/organisations/<int:organisation_id>/impact")
@login_required
def impact(organisation_id: int):
    member = _member_or_404(organisation_id)
    return render_template(
        "organisations/impact.html",
        organisation=member.organisation,
        impact=services.impact(organisation_id),
    )


@bp.route("/organisations/<int:organisation_id>/invite", methods=["POST"])
@login_required
def new_invite(organisation_id: int):
    _member_or_404(organisation_id)
    try:
        services.new_invite(current_user.id, organisation_id)
        flash(_("已更换邀请链接，旧链接不能再加入。"), "success")
    except UserError as error:
        flash(error.message, "error")
    return redirect(url_for("organisations.show", organisation_id=organisation_id))


@bp.route("/organisations/<int:organisation_id>/members/<int:user_id>/remove", methods=["POST"])
@login_required
def remove_member(organisation_id: int, user_id: int):
    _member_or_404(organisation_id)
    try:
        services.remove_member(current_user.id, organisation_id, user_id)
        flash(_("已移出该成员。"), "success")
    except UserError as error:
        flash(error.message, "error")
    return redirect(url_for("organisations.show", organisation_id=organisation_id))


@bp.route("/organisations/join/<code>", methods=["GET", "POST"])
@login_required
@limiter.limit("30 per hour", methods=["POST"])
def join(code: str):
    if request.method == "POST":
        try:
            organisation = services.join(current_user.id, code)
        except UserError as error:
            flash(error.message, "error")
            return redirect(url_for("organisations.mine"))
        joined = _("您已加入“%(name)s”，结算时可以选择为单位下单。", name=organisation.name)
        flash(joined, "success")
        return redirect(url_for("organisations.show", organisation_id=organisation.id))
    return render_template("organisations/join.html", code=code)


@bp.route("/organisations/bulk-template.csv")
def bulk_template():
    return Response(
        bulk.template_csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=recipients-template.csv"},
    )


@bp.route("/organisations/<int:organisation_id>/bulk", methods=["GET", "POST"])
@login_required
@limiter.limit("30 per hour", methods=["POST"])
def bulk_order(organisation_id: int):
    member = _member_or_404(organisation_id)
    organisation = member.organisation
    form = BulkOrderForm()
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            rows = bulk.read_rows(form.recipients.data.read(bulk.MAX_FILE_BYTES + 1))
            contact = BuyerDetails(
                name=form.contact_name.data, phone=form.contact_phone.data, address="",
                board_display=form.board_display.data, email=form.email.data or "",
            )  # fmt: skip
            placed = bulk.place_bulk_order(
                rows,
                services.ordering_for(current_user.id, organisation_id),
                contact,
                user_id=current_user.id,
                channel=channel_for(request.headers.get("User-Agent", "")),
                expiry_minutes=current_app.config["ORDER_EXPIRY_MINUTES"],
                requester=Requester(request.remote_addr),
                locale=str(get_locale()),
            )
        except ImportFailed as failed:
            problems = failed.errors
        except UserError as error:
            if error.field and error.field in form:  # the contact's: on its field
                show_on_form(form, error)
            else:  # the list's: stock taken meanwhile, unpaid-order limits
                problems = [error.message]
        else:
            if placed.created:
                flash(
                    _("已生成 1 个订单，分送 %(n)d 位收件人。请核对后付款。", n=placed.recipients),
                    "success",
                )
            else:
                flash(_("这份清单已经下过单了，没有重复下单：这是当时的订单。"), "success")
            return redirect(url_for("orders.show", token=placed.order.token))
    elif request.method == "GET":
        form.contact_name.data = organisation.contact_name
        form.contact_phone.data = organisation.contact_phone
        form.email.data = organisation.contact_email or ""
    return render_template(
        "organisations/bulk.html",
        form=form,
        organisation=organisation,
        problems=problems,
        columns=bulk.COLUMNS,
    )
