"""The reliability diagram as a Rich table (the Results screen's Calibration tab and
`cifar-tui eval --top-losses`): per confidence bin, its count, mean confidence, accuracy and a
bar of the accuracy with the mean confidence marked."""

from __future__ import annotations

import math

from rich import box
from rich.table import Column, Table
from rich.text import Text

from engine.calibration import Reliability

BAR = 30


def _bar(accuracy: float, confidence: float, width: int = BAR) -> Text:
    """`█` up to the accuracy, `│` at the mean confidence (red: over-confident, the bar stops
    before it; blue: under-confident)."""
    if math.isnan(accuracy):
        return Text("")
    filled = round(accuracy * width)
    mark = min(round(confidence * width), width - 1)
    cells = ["█" if i < filled else "·" for i in range(width)]
    text = Text("".join(cells), style="green")
    text.stylize("dim", filled, width)
    over = confidence > accuracy
    text = text[:mark] + Text("│", style="bold red" if over else "bold blue") + text[mark + 1 :]
    return text


def reliability_title(rel: Reliability) -> str:
    return (
        f"reliability: ECE {rel.ece:.4f} over {rel.total:,} test images, "
        f"{len(rel.counts)} equal-width confidence bins"
    )


def reliability_table(rel: Reliability, title: str | None = None) -> Table:
    """The bins as rows; `title` above them (None: none)."""
    table = Table(
        Column("confidence", no_wrap=True),
        Column("n", justify="right"),
        Column("conf.", justify="right"),
        Column("acc.", justify="right"),
        Column("gap", justify="right"),
        Column("accuracy (█) vs mean confidence (│), 0 .. 1", no_wrap=True),
        box=box.SIMPLE_HEAD,
        title=title,
        title_justify="left",
        caption="ECE = sum over bins |acc - conf| * n_bin / N; confidence = top softmax "
        "probability; a red mark right of the bar: over-confident",
        caption_justify="left",
    )
    for m, count in enumerate(rel.counts):
        lo, hi = rel.edges[m], rel.edges[m + 1]
        acc, conf = float(rel.accuracy[m]), float(rel.confidence[m])
        empty = not count
        table.add_row(
            f"{lo:.2f}-{hi:.2f}",
            f"{int(count):,}",
            "-" if empty else f"{conf:.3f}",
            "-" if empty else f"{acc:.3f}",
            "-" if empty else f"{acc - conf:+.3f}",
            _bar(acc, conf),
            style="dim" if empty else None,
        )
    return table
