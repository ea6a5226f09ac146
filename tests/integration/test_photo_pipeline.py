"""The photo pipeline: what a village uploader gets, and what an attacker cannot."""

import io
import struct
import zlib

import pytest
from PIL import Image

from shop import create_app
from shop.media.services import PhotoRejected, store_photo
from tests.builders import image_bytes

WIDTHS = (320, 800, 1600)
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def plain_app():
    """An app context for translated messages; the pipeline needs no database."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with app.app_context():
        yield app


def store(data, folder, max_bytes=TEN_MB, max_pixels=40_000_000):
    return store_photo(data, folder, WIDTHS, max_bytes, max_pixels)


def files_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def jpeg_with_exif(size=(1200, 600), orientation=6) -> bytes:
    """A landscape JPEG whose EXIF says 'rotate 90° to view', plus GPS and camera tags."""
    image = Image.new("RGB", size, (10, 120, 200))
    image.paste((250, 250, 0), (0, 0, size[0] // 4, size[1]))  # a yellow left band
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCameraMaker"
    exif[0x8825] = {1: "N", 2: (34.0, 1.0, 2.0), 3: "E", 4: (107.0, 1.0, 2.0)}
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=90)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width=100_000, height=100_000) -> bytes:
    """A tiny PNG whose header claims ten billion pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


def test_exif_orientation_applied_and_all_metadata_stripped(plain_app, tmp_path):
    stored, created = store(jpeg_with_exif(), tmp_path)

    assert (stored.width, stored.height) == (600, 1200)  # turned upright
    assert stored.widths == (320, 600)  # never upscaled past the original
    assert [p.name for p in created] == stored.filenames()
    for path in created:
        raw = path.read_bytes()
        assert b"SecretCameraMaker" not in raw and b"Exif" not in raw
        with Image.open(path) as out:
            assert out.format == "JPEG" and out.mode == "RGB"
            assert not out.getexif()
            assert out.height > out.width
            # The yellow band that was on the left is now on top.
            top = out.getpixel((out.width // 2, 2))
            assert top[0] > 200 and top[1] > 200 and top[2] < 80


def test_large_photo_gets_every_size_named_by_content(plain_app, tmp_path):
    data = image_bytes("JPEG", size=(2400, 1800))
    stored, _ = store(data, tmp_path)
    assert stored.widths == (320, 800, 1600)
    assert len(stored.key) == 64
    assert files_in(tmp_path) == sorted(f"{stored.key}-{w}.jpg" for w in (320, 800, 1600))
    with Image.open(tmp_path / f"{stored.key}-800.jpg") as medium:
        assert medium.size == (800, 600)


def test_same_picture_twice_shares_files(plain_app, tmp_path):
    data = image_bytes("PNG", size=(900, 900))
    first, created = store(data, tmp_path)
    again, created_again = store(data, tmp_path)
    assert again.key == first.key
    assert created and created_again == []


@pytest.mark.parametrize(
    "fmt,args",
    [("PNG", {"alpha": True}), ("WEBP", {"quality": 80}), ("JPEG", {"progressive": True})],
)
def test_accepted_formats_become_rgb_jpeg(plain_app, tmp_path, fmt, args):
    stored, created = store(image_bytes(fmt, size=(500, 400), **args), tmp_path)
    assert stored.widths == (320, 500)
    with Image.open(created[-1]) as out:
        assert out.format == "JPEG" and out.mode == "RGB"


def truncated_jpeg() -> bytes:
    data = image_bytes("JPEG", size=(1200, 900))
    return data[: len(data) // 2]


def polyglot_jpeg() -> bytes:
    return image_bytes("JPEG", size=(400, 300)) + b"<script>alert(document.cookie)</script>"


def gif() -> bytes:
    return image_bytes("GIF", size=(400, 300))


REFUSALS = {
    "empty": (b"", "空"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "JPEG"),
    "html": (b"<!doctype html><html><body>hi</body></html>", "JPEG"),
    "text": ("这不是照片".encode(), "JPEG"),
    "gif": (gif(), "JPEG"),
    "truncated": (truncated_jpeg(), "损坏"),
    "polyglot": (polyglot_jpeg(), "脚本"),
    "bomb": (png_bomb(), "太大"),
    "png_magic_then_junk": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "损坏"),
    "jpeg_magic_then_html": (b"\xff\xd8\xff\xe0<html><body>x</body></html>", "脚本"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_bad_uploads_are_refused_and_leave_no_file(plain_app, tmp_path, name):
    data, words = REFUSALS[name]
    folder = tmp_path / "uploads"
    with pytest.raises(PhotoRejected) as refused:
        store(data, folder)
    assert words in refused.value.message
    assert files_in(folder) == []


def test_too_many_bytes_refused_before_decoding(plain_app, tmp_path):
    data = image_bytes("JPEG", size=(800, 600))
    with pytest.raises(PhotoRejected) as refused:
        store(data, tmp_path, max_bytes=len(data) - 1)
    assert "MB" in refused.value.message
    assert files_in(tmp_path) == []


def test_pixel_limit_is_configurable(plain_app, tmp_path):
    with pytest.raises(PhotoRejected):
        store(image_bytes("PNG", size=(2000, 2000)), tmp_path, max_pixels=3_000_000)
    assert files_in(tmp_path) == []


def test_failure_while_writing_removes_the_files_of_this_upload(plain_app, tmp_path, monkeypatch):
    from shop.media import services

    calls = {"n": 0}
    real_encode = services._encode

    def encode_then_fail(image, width):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_encode(image, width)

    monkeypatch.setattr(services, "_encode", encode_then_fail)
    with pytest.raises(OSError):
        store(image_bytes("JPEG", size=(2000, 1500)), tmp_path)
    assert files_in(tmp_path) == []
