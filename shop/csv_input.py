"""Reading the CSV files the village team saves from Excel: one set of rules for every
importer (households, offline sales, household income).

What is accepted:

- **Encodings**: UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8"), else
  GB18030 — a superset of GBK and GB2312, which is what Excel in China saves as
  "CSV (逗号分隔)". Excel workbooks (.xlsx/.xls), UTF-16 text, other binary files and
  text with control characters are refused with a message saying how to save a CSV.
- **Delimiters**: comma, tab or semicolon, whichever the first non-blank line has
  most of (comma when it has none); quoting follows Python's :mod:`csv` (Excel's).
- **Header**: the first row. A heading matches a column when it equals the column's
  label, field name or one of its aliases after folding full-width forms (NFKC) and
  case, dropping spaces, a stray BOM and the ``*`` people put on required columns —
  so "流转土地（亩）", " 身份证号* " and "ID_Number" all match.
- **Rows** are numbered the way Excel numbers them: the header is row 1. Rows whose
  cells are all blank are skipped, keeping the numbers of the others.

Every problem is raised as :class:`ImportFailed`, whose ``errors`` are sentences for
the user; each importer words its own header problems from :func:`match_header`.

**Writing.** Every CSV the shop hands out (open data, reports, rosters, templates, the
audit log) is written by :func:`csv_stream` / :func:`csv_bytes`, which put each cell
through :func:`csv_cell`: text that a spreadsheet would run as a formula gets a leading
apostrophe, numbers the shop computed stay numbers (the rule: the comment above
:func:`neutralise`).
"""

import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import gettext as _

# (field name, header as written in the template, other accepted spellings)
Columns = list[tuple[str, str, tuple[str, ...]]]

ENCODINGS = ("utf-8-sig", "gb18030")
DELIMITERS = (",", "\t", ";")


class ImportFailed(Exception):
    """The file was not imported; ``errors`` are sentences for the user."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def decode(data: bytes) -> str:
    """Bytes → text: UTF-8 (BOM optional), else GB18030 (a superset of GBK/GB2312).

    Raises ImportFailed for empty files, spreadsheets and other binary content.
    """
    if not data or not data.strip(b" \t\r\n\xef\xbb\xbf"):
        raise ImportFailed([_("文件是空的，请选择填好的 CSV 文件。")])
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFailed(
            [_("这是 Excel 工作簿，不是 CSV。请在 Excel 中“另存为 CSV（逗号分隔）”再上传。")]
        )
    if b"\x00" in data[:4096] or data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFailed(
            [_("文件不是 CSV 文本（可能是图片、Word 或 Unicode 文本），请另存为 CSV 再上传。")]
        )
    for encoding in ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text):
            break
        return text
    raise ImportFailed([_("无法读取文件内容：请上传 UTF-8 或 GBK 编码的 CSV 文件。")])


def sniff_delimiter(text: str) -> str:
    """The delimiter of ``text``: whichever of comma, tab and semicolon its first
    non-blank line holds most of (ties in that order); comma when it holds none."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_records(text: str) -> list[list[str]]:
    """Every row of the decoded file as a list of cells (blank rows included, so list
    index + 1 is the Excel row number). Raises ImportFailed for malformed CSV."""
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text)))
    except csv.Error:
        raise ImportFailed([_("文件不是有效的 CSV，请用 Excel 另存为 CSV 后再上传。")]) from None


def require_header(records: list[list[str]]) -> list[str]:
    """The header row (row 1); raises ImportFailed when the file has none or it is blank."""
    if not records or not any(cell.strip() for cell in records[0]):
        raise ImportFailed([_("第 1 行应是表头，但它是空的。请对照模板填写。")])
    return records[0]


def data_rows(records: list[list[str]]) -> list[tuple[int, list[str]]]:
    """The rows after the header as (Excel row number, cells), blank rows left out."""
    return [
        (number, cells)
        for number, cells in enumerate(records[1:], start=2)
        if any(cell.strip() for cell in cells)
    ]


def header_key(text: str) -> str:
    """A heading folded for matching: NFKC (full-width → ASCII), lower case, without
    whitespace, ``*``/``＊`` or a BOM."""
    folded = unicodedata.normalize("NFKC", text or "").lower()
    return "".join(ch for ch in folded if not ch.isspace() and ch not in "*＊\ufeff")


def header_lookup(columns: Columns) -> dict[str, str]:
    """Folded heading (label, field name or alias) → field name."""
    return {
        header_key(name): field_name
        for field_name, label, aliases in columns
        for name in (label, field_name, *aliases)
    }


def column_labels(columns: Columns) -> dict[str, str]:
    """Field name → the label the template writes for it."""
    return {field_name: label for field_name, label, _aliases in columns}


def template_header(columns: Columns) -> str:
    """The template's header line, labels joined by commas (for error messages)."""
    return ",".join(label for _f, label, _a in columns)


@dataclass
class HeaderMatch:
    """Where each known column is (field name → cell index), and what did not match,
    in the order the cells come: ``("unknown", heading)`` for a heading no column
    answers to, ``("duplicate", field name)`` for a column's second heading."""

    positions: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


def match_header(cells: list[str], columns: Columns) -> HeaderMatch:
    """Match a header row against ``columns`` (blank headings are ignored)."""
    lookup = header_lookup(columns)
    match = HeaderMatch()
    for index, cell in enumerate(cells):
        key = header_key(cell)
        if not key:
            continue
        name = lookup.get(key)
        if name is None:
            match.problems.append(("unknown", cell.strip()))
        elif name in match.positions:
            match.problems.append(("duplicate", name))
        else:
            match.positions[name] = index
    return match


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# --- writing: every CSV the shop hands out -------------------------------------------
#
# The one rule (OWASP "CSV injection"): a spreadsheet runs a cell that starts with
# = + - @, a tab or a CR as a formula, so every *text* cell that does gets a leading
# apostrophe — a buyer's board name, a product, village or payer name, and the shop's
# own labels alike, since text may hold anyone's input. *Numbers* the shop computed are
# written as they are, so a refund of -1200 fen or -12.00 yuan stays a number: pass them
# as ``int``, ``float`` or ``Decimal`` (for yuan, ``Decimal(format_fen_plain(fen))``),
# never as preformatted text, which is neutralised like any other text.


def neutralise(cell) -> str:
    """A cell Excel will show as text, never run as a formula (OWASP CSV injection):
    one starting with = + - @ or a tab/CR gets a leading apostrophe. ``None`` → ""."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(cell):
    """A cell as the shop writes it: numbers (``int``, ``float``, ``Decimal``; not
    ``bool``) as they are, anything else as text through :func:`neutralise`."""
    if isinstance(cell, int | float | Decimal) and not isinstance(cell, bool):
        return cell
    return neutralise(cell)


def csv_row(cells) -> list:
    """A row with :func:`csv_cell` applied to every cell."""
    return [csv_cell(cell) for cell in cells]


def csv_stream(header: list[str], rows: Iterable, chunk_rows: int = 500) -> Iterator[str]:
    """A CSV for download as text chunks (BOM first, CRLF lines), every cell through
    :func:`csv_cell`; ``rows`` may be a generator, so memory stays flat."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(csv_row(header))
    for index, row in enumerate(rows, start=1):
        writer.writerow(csv_row(row))
        if index % chunk_rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_bytes(header: list[str], rows: Iterable) -> bytes:
    """A file to download and open in Excel: CRLF lines, UTF-8 with BOM, every cell
    through :func:`csv_cell` (text neutralised, numbers kept)."""
    return "".join(csv_stream(header, rows)).encode("utf-8")
