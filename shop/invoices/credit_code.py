"""The unified social credit code (统一社会信用代码, GB 32100-2015) of a company or unit.

18 characters from ``0-9`` and ``A-Z`` without I, O, Z, S and V; the last is a check
character: 31 − (Σ value(cᵢ) × wᵢ mod 31) over the first 17, 31 read as 0.
"""

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def normalise(code: str) -> str:
    return "".join((code or "").split()).upper()


def is_valid(code: str) -> bool:
    """True for an 18-character code whose check character is right (normalised first)."""
    code = normalise(code)
    if len(code) != 18 or any(ch not in ALPHABET for ch in code):
        return False
    total = sum(ALPHABET.index(ch) * weight for ch, weight in zip(code, WEIGHTS, strict=False))
    return ALPHABET[(31 - total % 31) % 31] == code[17]
