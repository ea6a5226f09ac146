"""Money in the shop: integer fen inside, yuan text only at the edges.

Three edges, one function each:

- **Alipay's wire** (``total_amount="158.00"``): :func:`fen_to_wire` and the strict
  :func:`wire_to_fen`, which refuses anything Alipay would not send (``"1e3"``,
  ``"-1"``, ``" 1"``, ``"158.001"``, full-width digits).
- **What people type** in the console, the admin and CSV files: :func:`parse_typed_yuan`
  is lenient about the decoration (``¥``/``￥`` before, ``元`` after, thousands commas,
  surrounding spaces) and about full-width characters, which a Chinese input method
  produces (``１５８．５０`` is folded by NFKC to ``158.50``). It is strict about the
  number: ASCII digits after folding only (Arabic-Indic or other scripts' digits are
  refused, not silently read), no sign, no exponent, at most two decimals, at most
  nine digits of yuan.
- **Display**: :func:`format_fen` (the ``fen`` template filter, ``¥1,234.56``) and
  :func:`format_fen_plain` (``1234.56``, for CSV files and form values).

Never a float: everything goes through ``int`` and ``Decimal``.
"""

import re
import unicodedata
from decimal import Decimal

_WIRE_YUAN = re.compile(r"(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?", re.ASCII)
_TYPED_NUMBER = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,2}))?", re.ASCII)


def fen_to_wire(amount_fen: int) -> str:
    """15800 → ``"158.00"``. Only positive integer fen are valid amounts on the wire;
    raises ValueError for anything else."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen < 1:
        raise ValueError(f"amount must be a positive integer of fen, got {amount_fen!r}")
    return str((Decimal(amount_fen) / 100).quantize(Decimal("0.01")))


def wire_to_fen(text) -> int:
    """``"158.00"`` → 15800, strictly as Alipay writes amounts; raises ValueError for
    ``"1e3"``, ``"-1"``, ``"abc"``, ``"158.001"``, ``" 1"`` and non-strings."""
    if not isinstance(text, str) or not _WIRE_YUAN.fullmatch(text):
        raise ValueError(f"not an amount in yuan: {text!r}")
    whole, _dot, cents = text.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


def parse_typed_yuan(text) -> int:
    """A yuan amount as a person types it → fen (≥ 0); raises ValueError.

    ``"158"``, ``"158.5"``, ``"¥1,580.50"``, ``"￥158元"``, ``"１５８"`` are read;
    ``"-1"``, ``"1e3"``, ``"1.005"``, ``"٣"``, ``""`` are refused.
    """
    raw = _fold(text).removeprefix("¥").removesuffix("元").strip()
    return _hundredths(raw, text)


def parse_typed_hundredths(text) -> int:
    """A plain number as a person types it (mu of land, days, a percentage) → hundredths
    (``"2.5"`` → 250), by the same rule as :func:`parse_typed_yuan` but with no currency
    signs; raises ValueError."""
    return _hundredths(_fold(text), text)


def _fold(text) -> str:
    return unicodedata.normalize("NFKC", str(text if text is not None else "")).strip()


def _hundredths(raw: str, original) -> int:
    match = _TYPED_NUMBER.fullmatch(raw.replace(",", ""))
    if match is None:
        raise ValueError(f"not a number with at most two decimals: {original!r}")
    whole, cents = match.group(1), match.group(2) or ""
    return int(whole) * 100 + int((cents + "00")[:2])


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
