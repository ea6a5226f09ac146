"""A stacked bar chart of income by month and channel, laid out on the server so the
page needs no JavaScript: the template draws the rectangles this computes."""

from dataclasses import dataclass

from shop.boards.models import CHANNELS

COLOURS = {
    "sales": "#c62828",
    "land": "#8d6e63",
    "wages": "#1565c0",
    "dividends": "#f9a825",
    "coop": "#2e7d32",
}
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 12, 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    channel: str
    colour: str
    month: str
    amount_fen: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, int]]  # (y, fen)
    labels: list[tuple[float, str]]  # (x centre, month label)
    baseline: float
    left: int
    right: int


def _nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 × 10ⁿ yuan (in fen) at or above ``value``."""
    if value <= 0:
        return 100
    step = 100
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_chart(months: list[dict]) -> Chart | None:
    """Lay out ``months`` (``[{"month", <channel>: fen, …}]``) as stacked bars; negative
    months (reversals larger than income) are drawn at zero."""
    if not months:
        return None
    top = _nice_ceiling(max(sum(max(m[c], 0) for c in CHANNELS) for m in months))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / len(months)
    bar_w = max(slot * 0.7, 2)
    bars, labels = [], []
    every = max(1, len(months) // 8)
    for index, month in enumerate(months):
        x = LEFT + index * slot + (slot - bar_w) / 2
        y = TOP + plot_h
        for channel in CHANNELS:
            fen = max(month[channel], 0)
            if not fen:
                continue
            h = plot_h * fen / top
            y -= h
            bars.append(
                Bar(
                    round(x, 1),
                    round(y, 1),
                    round(bar_w, 1),
                    round(h, 1),
                    channel,
                    COLOURS[channel],
                    month["month"],
                    month[channel],
                )
            )
        if index % every == 0 or index == len(months) - 1:
            labels.append((round(x + bar_w / 2, 1), month["month"]))
    ticks = [(round(TOP + plot_h * (1 - i / 4), 1), top * i // 4) for i in range(5)]
    return Chart(WIDTH, HEIGHT, bars, ticks, labels, TOP + plot_h, LEFT, WIDTH - RIGHT)
