"""Template filters: money in fen (from :mod:`shop.money`), times in Asia/Shanghai.

Times are stored in UTC; people see them in the programme's time zone, defined here once.
"""

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from shop.money import format_fen, format_fen_plain
from shop.pii import mask_name, mask_phone

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Show a stored UTC time in Asia/Shanghai."""
    if value is None:
        return ""
    return value.astimezone(SHANGHAI).strftime(fmt)


def register(app) -> None:
    app.add_template_filter(format_fen, "fen")
    app.add_template_filter(format_fen_plain, "fen_plain")
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(json_text, "json_text")
    app.add_template_filter(mask_name, "mask_name")
    app.add_template_filter(mask_phone, "mask_phone")


def json_text(value) -> str:
    """A value as readable JSON for a page (Chinese as itself, not \\u escapes); the
    template escapes it like any text."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
