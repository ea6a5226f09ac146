"""Splitting an amount of fen among recipients so the parts add up exactly.

The largest-remainder (Hamilton) method: every recipient first gets the floor of its
exact share; the fen left over go one each to the recipients with the largest
fractional remainders. Ties are broken by the order of ``weights``' keys as given
(callers pass keys in a stable order, e.g. household code), so the result is
deterministic and reproducible by an auditor.
"""

from collections.abc import Hashable, Mapping


def split_by_weight(amount_fen: int, weights: Mapping[Hashable, int]) -> dict[Hashable, int]:
    """Split ``amount_fen`` among ``weights``' keys in proportion to their weights.

    Invariants: the parts sum to ``amount_fen``; each part is ⌊exact share⌋ or that + 1;
    a recipient with weight 0 gets 0.

    Raises ``ValueError`` when ``amount_fen`` is negative, a weight is negative or not
    an int, or all weights are zero while ``amount_fen`` is not.
    """
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen < 0:
        raise ValueError("amount_fen must be a non-negative integer")
    for key, weight in weights.items():
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
            raise ValueError(f"weight for {key!r} must be a non-negative integer")
    total_weight = sum(weights.values())
    if total_weight == 0:
        if amount_fen:
            raise ValueError("cannot split a non-zero amount among zero weights")
        return dict.fromkeys(weights, 0)

    parts: dict[Hashable, int] = {}
    remainders: list[tuple[int, int, Hashable]] = []
    for position, (key, weight) in enumerate(weights.items()):
        quotient, remainder = divmod(amount_fen * weight, total_weight)
        parts[key] = quotient
        # Sort key: larger remainder first, then earlier position.
        remainders.append((-remainder, position, key))
    leftover = amount_fen - sum(parts.values())
    for _, _, key in sorted(remainders)[:leftover]:
        parts[key] += 1
    return parts


def split_pro_rata(amount_fen: int, parts_fen: Mapping[Hashable, int]) -> dict[Hashable, int]:
    """Split ``amount_fen`` in proportion to existing parts (e.g. a partial refund of a sale).

    Same guarantees as :func:`split_by_weight`; additionally, when ``amount_fen`` is not
    more than the sum of ``parts_fen``, no result exceeds its original part.
    """
    result = split_by_weight(amount_fen, parts_fen)
    if amount_fen <= sum(parts_fen.values()):
        for key, value in result.items():
            if value > parts_fen[key]:  # pragma: no cover - impossible by construction
                raise AssertionError("pro-rata share exceeds original part")
    return result
