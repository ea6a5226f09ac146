from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from shop.auth.decorators import role_required
from shop.catalog.models import Product
from shop.console import services
from shop.console.forms import ActionForm, PhotoUploadForm, ProductForm
from shop.extensions import db
from shop.formatting import format_fen_plain as fen_plain

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


def _show_error(form: ProductForm, error: services.ConsoleError) -> None:
    target = getattr(form, error.field, None) if error.field else None
    if target is not None:
        target.errors = [*target.errors, error.message]
    else:
        flash(error.message, "error")


@bp.route("/products/new", methods=["GET", "POST"])
@role_required("staff")
def new_product():
    form = _product_form()
    if form.validate_on_submit():
        try:
            product = services.create_product(_input_from(form))
        except services.ConsoleError as error:
            _show_error(form, error)
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
            _show_error(form, error)
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
