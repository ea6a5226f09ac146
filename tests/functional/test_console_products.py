"""The village team's console: products from draft to shelf, with their photos."""

import io
from pathlib import Path

from sqlalchemy import func, select

from shop.catalog.models import Product, ProductPhoto
from shop.extensions import db
from tests.builders import image_bytes, make_category, make_product, make_user
from tests.conftest import login

PRODUCT_FORM = {
    "name": "树莓果酒",
    "subtitle": "双井村树莓产业园自酿",
    "price": "158.00",
    "unit": "瓶",
    "stock": "120",
    "beneficiary": "20",
    "origin": "陕西省汉中市城固县双井村",
    "producer": "双井树莓果酒厂",
    "story": "村里的树莓，酿成果酒。",
    "category_id": "0",
}


def uploads(app):
    folder = Path(app.config["UPLOAD_FOLDER"])
    return sorted(p.name for p in folder.iterdir())


def upload(client, product_id, *files):
    data = {"photos": [(io.BytesIO(content), name) for name, content in files]}
    return client.post(
        f"/console/products/{product_id}/photos",
        data=data,
        content_type="multipart/form-data",
        follow_redirects=True,
    )


def product_count():
    return db.session.scalar(select(func.count()).select_from(Product))


def test_console_needs_staff(client, app):
    assert client.get("/console/products").status_code == 302
    make_user(username="buyer1", password="buyer-password-1")
    login(client, "buyer1", "buyer-password-1")
    assert client.get("/console/products").status_code == 403
    assert client.post("/console/products/new", data=PRODUCT_FORM).status_code == 403
    assert product_count() == 0


def test_staff_creates_uploads_publishes_and_the_public_sees_it(staff_client, client, app):
    category = make_category(name="果酒", slug="wine")
    form = dict(PRODUCT_FORM, category_id=str(category.id))
    response = staff_client.post("/console/products/new", data=form)
    assert response.status_code == 302
    product = db.session.scalar(select(Product))
    assert (product.price_fen, product.beneficiary_fen_per_unit, product.stock) == (
        15800,
        2000,
        120,
    )
    assert product.status == "draft"
    assert client.get(f"/p/{product.slug}").status_code == 404  # drafts are not public

    page = upload(
        staff_client,
        product.id,
        ("front.jpg", image_bytes("JPEG", size=(2000, 1500))),
        ("label.png", image_bytes("PNG", size=(600, 600), color=(0, 90, 0))),
    ).get_data(as_text=True)
    assert "已上传 2 张照片" in page
    db.session.expire_all()
    assert len(product.photos) == 2 and product.cover == product.photos[0]

    staff_client.post(f"/console/products/{product.id}/status", data={"action": "publish"})
    public = client.get(f"/p/{product.slug}").get_data(as_text=True)
    assert "树莓果酒" in public and "¥158.00" in public and "¥20.00" in public
    cover_file = product.photos[0].filename(800)
    assert cover_file in public
    media = client.get(f"/media/{cover_file}")
    assert media.status_code == 200 and media.mimetype == "image/jpeg"
    assert "immutable" in media.headers["Cache-Control"]
    found = client.get("/search", query_string={"q": "树莓"}).get_data(as_text=True)
    assert f"/p/{product.slug}" in found

    staff_client.post(f"/console/products/{product.id}/status", data={"action": "unpublish"})
    assert client.get(f"/p/{product.slug}").status_code == 404
    staff_client.post(f"/console/products/{product.id}/status", data={"action": "archive"})
    db.session.expire_all()
    assert db.session.get(Product, product.id).status == "archived"


def test_bad_product_input_shows_messages_and_writes_nothing(staff_client, app):
    for field, value, words in [
        ("price", "abc", "金额"),
        ("price", "-5", "金额"),
        ("price", "1.999", "金额"),
        ("price", "0", "价格必须大于零"),
        ("beneficiary", "200", "不能超过售价"),
        ("stock", "-1", ""),
        ("stock", "1.5", ""),
        ("name", "", ""),
        ("slug", "Bad Slug!", "网址名"),
    ]:
        response = staff_client.post(
            "/console/products/new", data=dict(PRODUCT_FORM, **{field: value})
        )
        assert response.status_code == 422, (field, value)
        assert words in response.get_data(as_text=True)
    assert product_count() == 0


def test_edit_keeps_slug_unique(staff_client, app):
    make_product(slug="raspberry-wine")
    product = make_product(slug="mulberry-wine", status="draft")
    response = staff_client.post(
        f"/console/products/{product.id}", data=dict(PRODUCT_FORM, slug="raspberry-wine")
    )
    assert response.status_code == 422
    assert "网址名已被其他商品使用" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Product, product.id).slug == "mulberry-wine"


def test_publishing_needs_a_photo(staff_client, app):
    product = make_product(status="draft")
    page = staff_client.post(
        f"/console/products/{product.id}/status", data={"action": "publish"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "请先上传至少一张照片" in page
    db.session.expire_all()
    assert db.session.get(Product, product.id).status == "draft"


def test_refused_upload_leaves_no_row_and_no_file(staff_client, app):
    product = make_product(status="draft")
    page = upload(
        staff_client,
        product.id,
        ("evil.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"),
        ("half.jpg", image_bytes("JPEG", size=(1200, 900))[:3000]),
        ("empty.jpg", b""),
    ).get_data(as_text=True)
    assert "evil.svg" in page and "只接受 JPEG、PNG 或 WebP" in page
    assert "half.jpg" in page and "损坏" in page
    assert "empty.jpg" in page
    assert db.session.scalar(select(func.count()).select_from(ProductPhoto)) == 0
    assert uploads(app) == []


def test_too_large_file_gets_a_message_not_a_413(staff_client, app):
    app.config["MAX_PHOTO_BYTES"] = 50_000
    product = make_product(status="draft")
    big = image_bytes("PNG", size=(800, 800), color=(1, 2, 3), compress_level=0)
    assert len(big) > 50_000
    page = upload(staff_client, product.id, ("big.png", big)).get_data(as_text=True)
    assert "照片不能超过" in page
    assert uploads(app) == []


def test_at_most_eight_photos(staff_client, app):
    product = make_product(status="draft")
    files = [
        (f"p{i}.jpg", image_bytes("JPEG", size=(400, 300), color=(i * 20, 5, 5))) for i in range(9)
    ]
    page = upload(staff_client, product.id, *files).get_data(as_text=True)
    assert "最多 8 张照片" in page
    db.session.expire_all()
    assert len(db.session.get(Product, product.id).photos) == 8


def test_reorder_cover_and_delete(staff_client, app):
    product = make_product(status="draft")
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    upload(
        staff_client,
        product.id,
        *[
            (f"{i}.jpg", image_bytes("JPEG", size=(400, 300), color=c))
            for i, c in enumerate(colours)
        ],
    )
    db.session.expire_all()
    first, second, third = db.session.get(Product, product.id).photos
    assert first.is_cover

    staff_client.post(f"/console/photos/{third.id}/move", data={"direction": "up"})
    staff_client.post(f"/console/photos/{third.id}/cover")
    db.session.expire_all()
    product = db.session.get(Product, product.id)
    assert [p.id for p in product.photos] == [first.id, third.id, second.id]
    assert product.cover.id == third.id

    staff_client.post(f"/console/photos/{third.id}/delete")
    db.session.expire_all()
    product = db.session.get(Product, product.id)
    assert [p.id for p in product.photos] == [first.id, second.id]
    assert product.cover.id == first.id  # the cover moves to the first remaining photo
    assert not any(name.startswith(third.key) for name in uploads(app))
    assert any(name.startswith(first.key) for name in uploads(app))


def test_published_product_keeps_its_last_photo(staff_client, app):
    product = make_product(status="draft")
    upload(staff_client, product.id, ("only.jpg", image_bytes("JPEG", size=(400, 300))))
    staff_client.post(f"/console/products/{product.id}/status", data={"action": "publish"})
    db.session.expire_all()
    photo = db.session.get(Product, product.id).photos[0]
    page = staff_client.post(f"/console/photos/{photo.id}/delete", follow_redirects=True).get_data(
        as_text=True
    )
    assert "至少要有一张照片" in page
    assert db.session.get(ProductPhoto, photo.id) is not None
