"""The photo pipeline: untrusted upload bytes in, safe re-encoded JPEGs out.

Invariants:
- Only JPEG, PNG and WebP are accepted, recognised by their magic bytes *and* by
  Pillow agreeing on the format; anything else (SVG, HTML, scripts, PDFs, zero bytes,
  truncated files, files over ``max_bytes``) raises :class:`PhotoRejected`.
- The pixel count is checked from the header before any pixel is decoded, so a
  decompression bomb is refused without allocating its memory.
- Output files never carry the upload's bytes: every size is decoded, turned upright
  (EXIF orientation), stripped of all metadata and re-encoded as RGB JPEG.
- Files are named ``<key>-<width>.jpg`` where ``key`` is the SHA-256 of the normalised
  pixels, written atomically (temp file + rename); on any failure the files this call
  created are removed, so a refused or failed upload leaves nothing behind.
"""

import hashlib
import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from flask_babel import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from shop.errors import UserError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
JPEG_QUALITY = 85
# Markup that makes a file dangerous if any browser or tool ever sniffs it as a page.
_MARKUP = re.compile(rb"<\s*(script|html|svg|iframe|body|\?php|!doctype)", re.IGNORECASE)


class PhotoRejected(UserError):
    """The upload is not a photo we accept; ``message`` says why in the user's language."""


@dataclass(frozen=True)
class StoredPhoto:
    """What was written: ``key`` (hex SHA-256), stored ``widths`` ascending, and the
    upright original's ``width`` × ``height`` in pixels."""

    key: str
    widths: tuple[int, ...]
    width: int
    height: int

    def filenames(self) -> list[str]:
        return [photo_filename(self.key, w) for w in self.widths]


def photo_filename(key: str, width: int) -> str:
    return f"{key}-{width}.jpg"


def sniff_format(data: bytes) -> str | None:
    """The format named by the file's magic bytes, or None if it is not one we accept."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _open_checked(data: bytes, expected_format: str, max_pixels: int) -> Image.Image:
    """Open, check header size against ``max_pixels``, verify, then fully decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data), formats=[expected_format])
            width, height = probe.size
            if width < 1 or height < 1 or width * height > max_pixels:
                raise PhotoRejected(
                    _(
                        "照片尺寸太大（%(w)s×%(h)s 像素），最多 %(limit)s 百万像素。",
                        w=width,
                        h=height,
                        limit=max_pixels // 1_000_000,
                    )
                )
            probe.verify()  # structure and checksums, without decoding pixels
            image = Image.open(io.BytesIO(data), formats=[expected_format])
            image.load()  # a truncated file fails here
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(_("照片尺寸太大，无法处理。")) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise PhotoRejected(_("照片文件已损坏或不完整，请重新导出后上传。")) from None
    return image


def _upright_rgb(image: Image.Image) -> Image.Image:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        # JPEG has no transparency: put transparent parts on white, not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _target_widths(original_width: int, widths: tuple[int, ...]) -> tuple[int, ...]:
    """Sizes never exceed the original: smaller configured widths, plus the original
    (capped at the largest configured width) as the top size."""
    largest = max(widths)
    top = min(original_width, largest)
    return tuple(sorted({w for w in widths if w < top} | {top}))


def _encode(image: Image.Image, width: int) -> bytes:
    if image.width != width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # No exif/icc arguments: the output carries no metadata at all.
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return out.getvalue()


def _write_atomically(folder: Path, name: str, content: bytes) -> bool:
    """Write ``folder/name`` via a temp file and rename; False if it already existed."""
    target = folder / name
    if target.exists():
        return False
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return True


def check_upload(data: bytes, max_bytes: int) -> str:
    """Cheap checks before decoding; return the sniffed format or raise PhotoRejected."""
    if not data:
        raise PhotoRejected(_("文件是空的。"))
    if len(data) > max_bytes:
        raise PhotoRejected(_("照片不能超过 %(mb)s MB。", mb=max_bytes // (1024 * 1024)))
    sniffed = sniff_format(data)
    if sniffed is None:
        raise PhotoRejected(_("只接受 JPEG、PNG 或 WebP 格式的照片。"))
    if _MARKUP.search(data):
        raise PhotoRejected(_("文件中含有网页或脚本内容，不能作为照片上传。"))
    return sniffed


def store_photo(
    data: bytes,
    folder: Path | str,
    widths: tuple[int, ...],
    max_bytes: int,
    max_pixels: int,
) -> tuple[StoredPhoto, list[Path]]:
    """Validate and store one uploaded photo; return it and the files this call created.

    The caller removes the returned new files (:func:`remove_files`) if its own
    database write fails. Raises :class:`PhotoRejected` with nothing written.
    """
    expected = check_upload(data, max_bytes)
    image = _upright_rgb(_open_checked(data, expected, max_pixels))
    key = hashlib.sha256(f"{image.width}x{image.height}:".encode() + image.tobytes()).hexdigest()
    sizes = _target_widths(image.width, tuple(widths))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    try:
        for width in sizes:
            name = photo_filename(key, width)
            if _write_atomically(folder, name, _encode(image, width)):
                created.append(folder / name)
    except BaseException:
        remove_files(created)
        raise
    return StoredPhoto(key, sizes, image.width, image.height), created


def remove_files(paths: list[Path]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def remove_photo_files(folder: Path | str, key: str, widths: tuple[int, ...]) -> None:
    remove_files([Path(folder) / photo_filename(key, w) for w in widths])
