"""Template filters: money in fen, times in Asia/Shanghai."""

from datetime import datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def format_fen(amount_fen: int | None, symbol: str = "¥") -> str:
    """Format integer fen as ``¥1,234.56`` (negative: ``-¥1,234.56``). Never uses floats."""
    if amount_fen is None:
        return ""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(int(amount_fen)), 100)
    return f"{sign}{symbol}{yuan:,}.{fen:02d}"


def format_fen_plain(amount_fen: int) -> str:
    """Fen as a plain decimal string without symbol or separators: 15800 → ``158.00``."""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(int(amount_fen)), 100)
    return f"{sign}{yuan}.{fen:02d}"


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Show a stored UTC time in Asia/Shanghai."""
    if value is None:
        return ""
    return value.astimezone(SHANGHAI).strftime(fmt)


def register(app) -> None:
    app.add_template_filter(format_fen, "fen")
    app.add_template_filter(format_fen_plain, "fen_plain")
    app.add_template_filter(local_time, "localtime")
