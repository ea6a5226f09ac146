"""The buyer's own pages: my orders and my impact (any signed-in person)."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from shop.account import card, profile, services, tokens
from shop.errors import UserError, show_on_form
from shop.extensions import limiter
from shop.orders.forms import BuyerDetailsForm
from shop.orders.services import BuyerDetails

bp = Blueprint("account", __name__)


@bp.route("/account/orders")
@login_required
def orders():
    return render_template("account/orders.html", orders=services.my_orders(current_user.id))


@bp.route("/account/orders/<order_no>/reorder", methods=["POST"])
@login_required
def reorder(order_no: str):
    try:
        added, unavailable = services.reorder(current_user.id, order_no)
    except UserError as error:
        flash(error.message, "error")
        return redirect(url_for("account.orders"))
    if added:
        flash(_("已把 %(n)d 种商品放回购物车（按现价）。", n=added), "success")
    if unavailable:
        flash(_("这些商品没能加入购物车：%(names)s", names="、".join(unavailable)), "error")
    return redirect(url_for("cart.show"))


@bp.route("/account/orders/claim", methods=["POST"])
@login_required
@limiter.limit("30 per hour")
def claim():
    if services.claim_order(current_user.id, request.form.get("order", "")):
        flash(_("这个订单已加入您的账户。"), "success")
    else:
        flash(_("没有找到可以加入的订单：请粘贴下单后收到的订单链接。"), "error")
    return redirect(url_for("account.orders"))


@bp.route("/account/tokens", methods=["GET", "POST"])
@login_required
def api_tokens():
    secret = None
    if request.method == "POST":
        try:
            _token, secret = tokens.create(current_user.id, request.form.get("name", ""))
        except UserError as error:
            flash(error.message, "error")
    return render_template(
        "account/tokens.html", tokens=tokens.live_tokens(current_user.id), secret=secret
    )


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_api_token(token_id: int):
    if tokens.revoke(current_user.id, token_id):
        flash(_("令牌已撤销，用它的程序再也读不到您的数据。"), "success")
    return redirect(url_for("account.api_tokens"))


@bp.route("/account/profile", methods=["GET", "POST"])
@login_required
def buyer_profile():
    saved = profile.load(current_user.id)
    form = BuyerDetailsForm(data=None if saved is None or request.method == "POST" else vars(saved))
    if form.validate_on_submit():
        details = BuyerDetails(
            name=form.name.data, phone=form.phone.data, address=form.address.data,
            board_display=form.board_display.data, nickname=form.nickname.data or "",
            organization=form.organization.data or "", email=form.email.data or "",
        )  # fmt: skip
        try:
            saved = profile.save(current_user.id, details)
        except UserError as error:
            show_on_form(form, error)
        else:
            flash(_("已保存，下次结算时自动填好。"), "success")
            return redirect(url_for("account.buyer_profile"))
    return render_template(
        "account/profile.html",
        form=form,
        summary=profile.summary(saved) if saved else None,
    )


@bp.route("/account/profile/forget", methods=["POST"])
@login_required
def forget_profile():
    profile.forget(current_user.id)
    flash(_("已删除保存的收货信息。"), "success")
    return redirect(url_for("account.buyer_profile"))


@bp.route("/account/impact")
@login_required
def impact():
    return render_template(
        "account/impact.html",
        impact=services.my_impact(current_user.id),
        card=card.card_of(current_user.id),
    )


@bp.route("/account/impact/share", methods=["POST"])
@login_required
def share_impact():
    card.share(current_user.id)
    flash(_("公开卡片已生成：任何拿到链接的人都能看到，但看不到您的姓名和联系方式。"), "success")
    return redirect(url_for("account.impact"))


@bp.route("/account/impact/unshare", methods=["POST"])
@login_required
def unshare_impact():
    card.stop_sharing(current_user.id)
    flash(_("已停止公开，原来的链接不再能打开。"), "success")
    return redirect(url_for("account.impact"))


@bp.route("/impact/<slug>")
def public_impact(slug: str):
    shown = card.public_card(slug)
    if shown is None:
        abort(404)
    label, organisation, impact = shown
    return render_template(
        "account/public_card.html", label=label, organisation=organisation, impact=impact
    )
