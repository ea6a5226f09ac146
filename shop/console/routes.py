from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from shop.approvals import kinds as changes
from shop.approvals import services as approvals
from shop.auth.decorators import role_required
from shop.boards.products import label_sheet as label_sheet_of
from shop.catalog.models import Product
from shop.catalog.services import published_products
from shop.console import services
from shop.console.forms import ActionForm, PhotoUploadForm, ProductForm, RefundForm, ShipForm
from shop.errors import show_on_form
from shop.extensions import db
from shop.formatting import format_fen
from shop.formatting import format_fen_plain as fen_plain
from shop.orders.services import OrderError, mark_completed, mark_shipped
from shop.payments.refunds import request_refund
from shop.urls import public_url

bp = Blueprint("console", __name__)

STATUS_ACTIONS = {"publish": "published", "unpublish": "draft", "archive": "archived"}


@bp.route("/")
@role_required("staff")
def dashboard():
    return redirect(url_for("console.products"))


@bp.route("/products")
@role_required("staff")
def products():
    status = request.args.get("status") or None
    query = request.args.get("q", "")
    return render_template(
        "console/products.html",
        products=services.list_products(status, query),
        status=status,
        query=query,
        action_form=ActionForm(),
    )


def _product_form(product: Product | None = None) -> ProductForm:
    form = ProductForm(obj=product) if product else ProductForm()
    form.category_id.choices = [(0, _("（未分类）"))] + [
        (c.id, c.name) for c in services.categories()
    ]
    if product and request.method == "GET":
        form.price.data = fen_plain(product.price_fen)
        form.beneficiary.data = fen_plain(product.beneficiary_fen_per_unit)
        form.category_id.data = product.category_id or 0
    return form


def _input_from(form: ProductForm) -> services.ProductInput:
    return services.ProductInput(
        name=form.name.data or "",
        slug=(form.slug.data or "").strip().lower(),
        subtitle=form.subtitle.data or "",
        category_id=form.category_id.data or None,
        price_fen=services.yuan_to_fen(form.price.data, "price"),
        stock=form.stock.data,
        unit=form.unit.data or "",
        beneficiary_fen_per_unit=services.yuan_to_fen(form.beneficiary.data, "beneficiary"),
        origin=form.origin.data or "",
        producer=form.producer.data or "",
        story=form.story.data or "",
        featured=bool(form.featured.data),
    )


@bp.route("/products/new", methods=["GET", "POST"])
@role_required("staff")
def new_product():
    form = _product_form()
    if form.validate_on_submit():
        try:
            product = services.create_product(_input_from(form))
        except services.ConsoleError as error:
            show_on_form(form, error)
        else:
            flash(_("商品已保存为草稿，上传照片后即可上架。"), "success")
            return redirect(url_for("console.edit_product", product_id=product.id))
    status = 422 if request.method == "POST" else 200
    return render_template("console/product_form.html", form=form, product=None), status


def _product_or_404(product_id: int) -> Product:
    product = db.session.get(Product, product_id)
    if product is None:
        abort(404)
    return product


@bp.route("/products/<int:product_id>", methods=["GET", "POST"])
@role_required("staff")
def edit_product(product_id: int):
    product = _product_or_404(product_id)
    form = _product_form(product)
    if form.validate_on_submit():
        try:
            services.update_product(product.id, _input_from(form))
        except services.ConsoleError as error:
            show_on_form(form, error)
        else:
            flash(_("已保存。"), "success")
            return redirect(url_for("console.edit_product", product_id=product.id))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "console/product_form.html",
        form=form,
        product=product,
        upload_form=PhotoUploadForm(),
        action_form=ActionForm(),
    ), status


@bp.route("/products/<int:product_id>/status", methods=["POST"])
@role_required("staff")
def change_status(product_id: int):
    _product_or_404(product_id)
    target = STATUS_ACTIONS.get(request.form.get("action", ""))
    if target is None or not ActionForm().validate_on_submit():
        abort(400)
    try:
        services.set_status(product_id, target)
    except services.ConsoleError as error:
        flash(error.message, "error")
    else:
        messages = {"published": _("已上架。"), "draft": _("已下架。"), "archived": _("已归档。")}
        flash(messages[target], "success")
    return redirect(url_for("console.edit_product", product_id=product_id))


@bp.route("/products/<int:product_id>/photos", methods=["POST"])
@role_required("staff")
def upload_photos(product_id: int):
    _product_or_404(product_id)
    form = PhotoUploadForm()
    if not form.validate_on_submit():
        abort(400)
    files = [f for f in request.files.getlist("photos") if f and f.filename]
    if not files:
        flash(_("请选择要上传的照片。"), "error")
    added = 0
    for upload in files:
        # Read one byte past the limit: enough to know it is too big without reading more.
        data = upload.stream.read(current_app.config["MAX_PHOTO_BYTES"] + 1)
        try:
            services.add_product_photo(product_id, data)
            added += 1
        except services.ConsoleError as error:
            flash(f"{upload.filename}：{error.message}", "error")
    if added:
        flash(_("已上传 %(n)s 张照片。", n=added), "success")
    return redirect(url_for("console.edit_product", product_id=product_id) + "#photos")


def _photo_action(photo_id: int, action) -> object:
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        product_id = action()
    except services.ConsoleError as error:
        flash(error.message, "error")
        product_id = request.form.get("product_id", type=int)
        if product_id is None:
            abort(404)
    return redirect(url_for("console.edit_product", product_id=product_id) + "#photos")


@bp.route("/photos/<int:photo_id>/cover", methods=["POST"])
@role_required("staff")
def photo_cover(photo_id: int):
    return _photo_action(photo_id, lambda: services.set_cover(photo_id).product_id)


@bp.route("/photos/<int:photo_id>/move", methods=["POST"])
@role_required("staff")
def photo_move(photo_id: int):
    offset = -1 if request.form.get("direction") == "up" else 1
    return _photo_action(photo_id, lambda: services.move_photo(photo_id, offset).product_id)


@bp.route("/photos/<int:photo_id>/delete", methods=["POST"])
@role_required("staff")
def photo_delete(photo_id: int):
    return _photo_action(photo_id, lambda: services.delete_photo(photo_id))


@bp.route("/orders")
@role_required("staff")
def orders():
    status = request.args.get("status") or None
    query = request.args.get("q", "")
    page = request.args.get("page", 1, type=int)
    return render_template(
        "console/orders.html",
        pagination=services.order_page(status, query, page),
        status=status,
        query=query,
    )


def _order_or_404(order_no: str):
    order = services.order_by_number(order_no)
    if order is None:
        abort(404)
    return order


@bp.route("/orders/<order_no>")
@role_required("staff")
def order_detail(order_no: str):
    order = _order_or_404(order_no)
    refund_form = RefundForm()
    if request.method == "GET":
        refund_form.amount.data = fen_plain(order.total_fen - order.refunded_fen)
    return render_template(
        "console/order.html",
        order=order,
        ship_form=ShipForm(),
        refund_form=refund_form,
        action_form=ActionForm(),
    )


@bp.route("/orders/<order_no>/ship", methods=["POST"])
@role_required("staff")
def ship_order(order_no: str):
    order = _order_or_404(order_no)
    form = ShipForm()
    if form.validate_on_submit():
        try:
            shipped = mark_shipped(order.id, form.carrier.data, form.tracking_no.data)
        except OrderError as error:
            flash(error.message, "error")
        else:
            if shipped:
                flash(_("已标记发货。"), "success")
            else:
                flash(_("只有已支付、未发货的订单可以发货。"), "error")
    else:
        flash(_("请填写快递公司和快递单号。"), "error")
    return redirect(url_for("console.order_detail", order_no=order_no))


@bp.route("/orders/<order_no>/complete", methods=["POST"])
@role_required("staff")
def complete_order(order_no: str):
    order = _order_or_404(order_no)
    if not ActionForm().validate_on_submit():
        abort(400)
    if mark_completed(order.id):
        flash(_("订单已完成。"), "success")
    else:
        flash(_("只有已发货的订单可以标记完成。"), "error")
    return redirect(url_for("console.order_detail", order_no=order_no))


@bp.route("/orders/<order_no>/refund", methods=["POST"])
@role_required("admin")
def refund_order(order_no: str):
    order = _order_or_404(order_no)
    form = RefundForm()
    if not form.validate_on_submit():
        flash(_("请填写退款金额。"), "error")
        return redirect(url_for("console.order_detail", order_no=order_no))
    try:
        amount_fen = services.yuan_to_fen(form.amount.data, "amount")
        restock = None
        if form.restock.data:
            restock = {line.id: line.quantity - line.restocked for line in order.lines}
        if changes.needs_approval(amount_fen):
            proposal = changes.propose_refund(
                order, amount_fen, form.reason.data or "", restock,
                current_user._get_current_object(),
            )
            flash(
                _("超过 %(limit)s 的退款需另一位管理员审批，已提交：%(title)s。",
                  limit=format_fen(current_app.config["APPROVAL_THRESHOLD_FEN"]),
                  title=proposal.title),
                "success",
            )
            return redirect(url_for("approvals.detail", proposal_id=proposal.id))
        refund = request_refund(
            order.id, amount_fen, form.reason.data or "", restock, created_by=current_user.id
        )
    except (OrderError, services.ConsoleError, approvals.ApprovalError) as error:
        flash(error.message, "error")
    else:
        messages = {
            "succeeded": (
                _("退款成功：%(amount)s。", amount=format_fen(refund.amount_fen)),
                "success",
            ),
            "pending": (_("支付宝暂时无法连接，退款已记录，稍后会自动重试。"), "error"),
            "failed": (_("支付宝拒绝了退款：%(why)s", why=refund.failure), "error"),
        }
        flash(*messages[refund.status])
    return redirect(url_for("console.order_detail", order_no=order_no))


LABEL_COPIES_MAX = 60


@bp.route("/labels")
@role_required("staff")
def label_sheet():
    """Printable QR labels: products (``copies`` each, for bottles at the hall) and the
    trace pages of orders given by number (to slip into the parcel)."""
    copies = max(1, min(request.args.get("copies", 6, type=int) or 6, LABEL_COPIES_MAX))
    chosen = set(request.args.getlist("product"))
    orders_text = request.args.get("orders", "", type=str)[:2000]
    products = published_products()
    sheet = label_sheet_of(
        products,
        chosen,
        copies,
        orders_text,
        product_url=lambda slug: public_url("catalog.product", slug=slug),
        trace_url=lambda token: public_url("boards.trace", token=token),
    )
    return render_template(
        "console/labels.html",
        labels=sheet.labels,
        copies=copies,
        chosen=chosen,
        products=products,
        orders_text=orders_text,
        skipped=sheet.skipped,
    )
