"""Import households from a CSV file the village team keeps in Excel.

All or nothing: every row is parsed and checked first (fields, duplicates inside the
file, duplicates against the database), and nothing is written unless every row is
valid; the writes then happen in one transaction. Errors come back as a list of
sentences that name rows the way Excel numbers them (the header is row 1).

Re-importing a row whose 户编码 already exists **updates** that household rather than
refusing the file: the team's spreadsheet is their working copy, and importing it again
after a change is the expected way to keep the register current. Columns that the file
leaves out are not touched on update (e.g. a file without 银行卡号 keeps the cards);
a column that is present but blank is applied as blank. A row without 户编码 always
registers a new household with a generated code, so an ID number that is already
registered is reported, never silently merged. Swapping ID numbers between two
households in one file is refused; do it in two imports.

Files may be UTF-8 (with or without BOM) or GB18030/GBK, which is what Excel in China
saves as "CSV (逗号分隔)". Excel workbooks (.xlsx/.xls), UTF-16 text and other binary
files are refused with a message saying how to save a CSV instead: the reading rules
(encodings, delimiters, header matching) are :mod:`shop.csv_input`'s.
"""

import unicodedata
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shop.csv_input import (
    Columns,
    ImportFailed,
    column_labels,
    csv_bytes,
    data_rows,
    decode,
    match_header,
    read_records,
    require_header,
    template_header,
)
from shop.extensions import db
from shop.households import services
from shop.households.models import Household, Village
from shop.households.services import HouseholdError, HouseholdInput

MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_ROWS = 5000
MAX_ERRORS_LISTED = 100

# (field, header as written in the template, other accepted spellings)
COLUMNS: Columns = [
    ("code", "户编码", ("户号", "编码", "code", "household_code")),
    ("head_name", "户主姓名", ("户主", "姓名", "head_name", "name")),
    ("id_number", "身份证号", ("身份证号码", "身份证", "id_number", "id_card")),
    ("members", "家庭人口", ("人口", "家庭人口数", "人口数", "members")),
    ("village", "村", ("村名", "所在村", "village")),
    ("group_name", "村民小组", ("小组", "组", "group", "group_name")),
    ("bank_name", "开户银行", ("开户行", "bank", "bank_name")),
    ("bank_card", "银行卡号", ("银行卡", "卡号", "bank_card", "card")),
    ("land_mu", "流转土地(亩)", ("流转土地", "土地(亩)", "土地流转(亩)", "land", "land_mu")),
    ("employed", "务工", ("入园务工", "employed")),
    ("dividend", "分红", ("产业分红", "dividend")),
    ("coop_member", "合作社", ("合作社社员", "coop", "coop_member")),
]
REQUIRED = ("head_name", "id_number", "members", "village")
BOOLEAN_FIELDS = ("employed", "dividend", "coop_member")
TRUE_WORDS = {"是", "1", "yes", "y", "true", "√", "✓", "有"}
FALSE_WORDS = {"否", "0", "no", "n", "false", "", "×", "无"}

EXAMPLE_ID = "11010119000101009X"  # born 1900-01-01: valid check digit, nobody's ID


LABELS = column_labels(COLUMNS)


@dataclass
class ImportSummary:
    created_codes: list[str] = field(default_factory=list)
    updated_codes: list[str] = field(default_factory=list)

    @property
    def created(self) -> int:
        return len(self.created_codes)

    @property
    def updated(self) -> int:
        return len(self.updated_codes)


@dataclass
class _Row:
    number: int
    cleaned: services.CleanHousehold
    target: Household | None  # the existing household this row updates
    digest: str


def _limit(name: str, default: int) -> int:
    return int(current_app.config.get(name, default))


def _parse_header(cells: list[str]) -> dict[str, int]:
    match = match_header(cells, COLUMNS)
    problems = [
        _("“%(name)s”这一列出现了两次。", name=LABELS[name])
        for kind, name in match.problems
        if kind == "duplicate"
    ]
    unknown = [cell for kind, cell in match.problems if kind == "unknown"]
    if unknown:
        problems.append(_("不认识的列：%(cols)s。", cols="、".join(f"“{c}”" for c in unknown)))
    missing = [LABELS[f] for f in REQUIRED if f not in match.positions]
    if missing:
        problems.append(_("缺少必填的列：%(cols)s。", cols="、".join(missing)))
    if problems:
        header = template_header(COLUMNS)
        problems.append(_("第一行应是表头：%(header)s（可下载模板对照）。", header=header))
        raise ImportFailed([_("第 1 行：%(msg)s", msg=p) for p in problems])
    return match.positions


def parse_bool(value: str, field_name: str) -> bool:
    word = unicodedata.normalize("NFKC", value or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise HouseholdError(_("“%(col)s”请填“是”或“否”。", col=LABELS[field_name]), field_name)


def _villages() -> tuple[dict[str, Village], dict[str, list[Village]]]:
    by_code: dict[str, Village] = {}
    by_name: dict[str, list[Village]] = {}
    for village in db.session.scalars(select(Village)):
        by_code[village.code.upper()] = village
        by_name.setdefault(village.name.strip(), []).append(village)
    return by_code, by_name


def _find_village(value: str, by_code, by_name) -> Village:
    text = unicodedata.normalize("NFKC", value or "").strip()
    if not text:
        raise HouseholdError(_("请填写村名。"), "village")
    if text.upper() in by_code:
        return by_code[text.upper()]
    matches = by_name.get(text, [])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise HouseholdError(_("有多个村叫“%(name)s”，请改填村编码。", name=text), "village")
    raise HouseholdError(_("系统里没有“%(name)s”这个村。", name=text), "village")


def _existing_input(household: Household) -> dict:
    return {
        "code": household.code,
        "head_name": household.head_name,
        "id_number": household.id_number or "",
        "members": household.members,
        "village_id": household.village_id,
        "group_name": household.group_name,
        "bank_name": household.bank_name,
        "bank_card": household.bank_card or "",
        "land_mu": f"{household.land_mu:.2f}",
        "employed": household.employed,
        "dividend": household.dividend,
        "coop_member": household.coop_member,
        "active": household.active,
    }


def import_households(data: bytes, dry_run: bool = False) -> ImportSummary:
    """Validate the whole CSV file, then create/update its households in one commit.

    Raises :class:`ImportFailed` (nothing written) listing every problem found.
    ``dry_run``: check only and say what would happen (new households have no code yet).
    """
    max_bytes = _limit("HOUSEHOLD_IMPORT_MAX_BYTES", MAX_IMPORT_BYTES)
    if len(data) > max_bytes:
        size = f"{max_bytes / 2**20:g}"
        raise ImportFailed([_("文件太大（超过 %(n)s MB），请分成几个文件导入。", n=size)])
    records = read_records(decode(data))
    header = require_header(records)
    positions = _parse_header(header)

    body = data_rows(records)
    if not body:
        raise ImportFailed([_("文件里只有表头，没有要导入的农户。")])
    max_rows = _limit("HOUSEHOLD_IMPORT_MAX_ROWS", MAX_IMPORT_ROWS)
    if len(body) > max_rows:
        raise ImportFailed([_("一次最多导入 %(n)s 户，请分成几个文件。", n=max_rows)])

    rows, errors = _check_rows(body, positions, len(header))
    if errors:
        if len(errors) > MAX_ERRORS_LISTED:
            total = len(errors)
            errors = errors[:MAX_ERRORS_LISTED]
            errors.append(_("……共 %(n)s 处错误，只列出前 %(m)s 处。", n=total, m=MAX_ERRORS_LISTED))
        raise ImportFailed(errors)
    if dry_run:
        return ImportSummary(
            created_codes=[row.cleaned.code or "" for row in rows if row.target is None],
            updated_codes=[row.target.code for row in rows if row.target is not None],
        )
    return _write(rows)


def _check_rows(body, positions, width: int) -> tuple[list[_Row], list[str]]:
    errors: list[str] = []
    by_code, by_name = _villages()
    existing = {h.code: h for h in db.session.scalars(select(Household))}
    digest_owner = {h.id_number_digest: h for h in existing.values() if h.id_number_digest}
    seen_codes: dict[str, int] = {}
    seen_digests: dict[str, int] = {}
    rows: list[_Row] = []

    for number, cells in body:
        row_errors: list[str] = []

        def note(message: str, row_errors=row_errors) -> None:
            row_errors.append(message)

        if any(c.strip() for c in cells[width:]):
            note(_("这一行的格子比表头多，请检查是否有多余的逗号。"))

        def cell(name: str, cells=cells) -> str:
            index = positions.get(name)
            return cells[index] if index is not None and index < len(cells) else ""

        try:
            code = services.parse_code(cell("code"))
        except HouseholdError as error:
            note(error.message)
            code = ""
        target = existing.get(code) if code else None
        values = _existing_input(target) if target else {"active": True}
        values["code"] = code
        for name in positions:
            if name in ("code", "village"):
                continue
            if name in BOOLEAN_FIELDS:
                try:
                    values[name] = parse_bool(cell(name), name)
                except HouseholdError as error:
                    note(error.message)
            else:
                values[name] = cell(name)
        try:
            values["village_id"] = _find_village(cell("village"), by_code, by_name).id
        except HouseholdError as error:
            note(error.message)
            values["village_id"] = None

        cleaned = services.clean(HouseholdInput(**{k: values.get(k, "") for k in _INPUT_FIELDS}))
        for error in cleaned.errors:
            if error.field == "village_id":
                continue  # already reported in the file's own words
            note(error.message)

        digest = ""
        if cleaned.id_number:
            digest = services.id_digest(cleaned.id_number)
            if digest in seen_digests:
                note(_("身份证号与第 %(row)s 行重复。", row=seen_digests[digest]))
            else:
                seen_digests[digest] = number
                owner = digest_owner.get(digest)
                if owner is not None and owner is not target:
                    note(
                        _(
                            "身份证号已登记在户 %(code)s（%(name)s）名下。",
                            code=owner.code,
                            name=owner.name_masked,
                        )
                    )
        if code:
            if code in seen_codes:
                note(_("户编码 %(code)s 与第 %(row)s 行重复。", code=code, row=seen_codes[code]))
            else:
                seen_codes[code] = number

        if row_errors:
            errors.extend(_("第 %(row)s 行：%(msg)s", row=number, msg=m) for m in row_errors)
        else:
            rows.append(_Row(number, cleaned, target, digest))
    return rows, errors


_INPUT_FIELDS = (
    "head_name", "id_number", "members", "village_id", "code", "group_name", "bank_name",
    "bank_card", "land_mu", "employed", "dividend", "coop_member", "active",
)  # fmt: skip


def _write(rows: list[_Row]) -> ImportSummary:
    summary = ImportSummary()
    taken = {row.cleaned.code for row in rows if row.cleaned.code}
    villages = {v.id: v for v in db.session.scalars(select(Village))}
    try:
        for row in rows:
            if row.target is not None:
                services.apply(row.target, row.cleaned)
                summary.updated_codes.append(row.target.code)
                continue
            code = row.cleaned.code
            if not code:
                code = services.next_codes(villages[row.cleaned.village_id], 1, taken)[0]
                taken.add(code)
            household = Household(code=code)
            services.apply(household, row.cleaned)
            db.session.add(household)
            summary.created_codes.append(code)
        db.session.commit()
    except HouseholdError as error:
        db.session.rollback()
        raise ImportFailed([error.message]) from None
    except IntegrityError:
        db.session.rollback()
        raise ImportFailed(
            [_("导入时农户名册被其他人同时修改了，什么都没有写入。请再导入一次。")]
        ) from None
    return summary


def template_csv() -> bytes:
    """The import template: header plus one example row, UTF-8 with BOM for Excel.

    The example ID number has a valid check digit but a 1900-01-01 birth date, and its
    last character X keeps Excel from turning it into a number; the code is left blank
    so importing the template as-is registers a new household instead of overwriting one.
    """
    village = db.session.scalar(select(Village).order_by(Village.id))
    example = {
        "code": "",
        "head_name": "王示例",
        "id_number": EXAMPLE_ID,
        "members": "3",
        "village": village.name if village else "双井村",
        "group_name": "一组",
        "bank_name": "城固农商银行",
        "bank_card": "6222 0000 0000 0000",
        "land_mu": "2.5",
        "employed": "是",
        "dividend": "否",
        "coop_member": "否",
    }
    return csv_bytes(
        [label for _f, label, _a in COLUMNS], [[example[f] for f, _label, _a in COLUMNS]]
    )
