"""The numbers behind a plot, without Textual or plotext: nice tick values (1-2-5 steps, also on a
log axis) with even labels, the debiased EMA that TensorBoard's smoothing slider applies, a header
(title and legend) fitted to a width without cutting it, and the view settings written into the
plot's top frame line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.text import Text

NICE = (1.0, 2.0, 5.0)


def data_range(values: Sequence[float], pad_unit: float = 1.0) -> tuple[float, float]:
    """(lo, hi) of the finite `values`; a single value v becomes a range around it (v -+ 10 %,
    at least -+ `pad_unit`/2 when v is 0 or small) so that a lone point has an axis to sit on."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi > lo:
        return lo, hi
    half = max(abs(lo) * 0.1, pad_unit / 2)
    return lo - half, hi + half


def _steps(span: float) -> list[float]:
    """1-2-5 steps from about span/1000 up to span (ascending)."""
    exp = math.floor(math.log10(span)) - 3
    return [m * 10.0**e for e in range(exp, exp + 5) for m in NICE]


def nice_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Evenly spaced round values (a 1-2-5 step times a power of ten) inside [lo, hi]: the most
    that fit in `max_ticks`, and at least two (then one may lie just outside the range, and the
    caller widens its axis to it). 0.33..1.0 in 4 ticks: [0.4, 0.6, 0.8, 1.0]; in 3: [0.5, 1.0]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    max_ticks = max(max_ticks, 2)
    for step in _steps(hi - lo):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        count = last - first + 1
        if count > max_ticks:
            continue
        if count < 2:  # the range is narrower than this step: widen it to two ticks
            first, last = math.floor(lo / step + 1e-9), math.floor(lo / step + 1e-9) + 1
        return [_clean(k * step) for k in range(first, last + 1)]
    return [lo, hi]


def _clean(v: float) -> float:
    """k * step without the float noise (3 * 0.1 = 0.30000000000000004 -> 0.3)."""
    return 0.0 if v == 0 else float(f"{v:.12g}")


def log_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Tick values for a log axis over [lo, hi] (both > 0), the densest set that fits: 1..9 or
    1-2-5 in each decade, decades, every 2nd, 5th or 10th decade; plain nice ticks for a range
    too narrow for two of those (a loss between 1.4 and 1.9)."""
    max_ticks = max(max_ticks, 2)
    a, b = math.log10(lo), math.log10(hi)
    low, high = math.floor(a + 1e-9), math.ceil(b - 1e-9)
    candidates: list[list[float]] = [
        [m * 10.0**e for e in range(low, high + 1) for m in range(1, 10)],
        [m * 10.0**e for e in range(low, high + 1) for m in NICE],
        *([10.0**e for e in range(low, high + 1) if e % every == 0] for every in (1, 2, 5, 10)),
    ]
    for values in candidates:
        inside = [_clean(v) for v in values if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]
        if 2 <= len(inside) <= max_ticks:
            return inside
    return nice_ticks(lo, hi, max_ticks)


def log_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for `log_ticks`: each in its shortest form (0.001 / 0.01 / 0.1, 2e-5 / 5e-5) when
    they are one digit times a power of ten, else (plain nice ticks) as `tick_labels`."""

    def one_digit(v: float) -> bool:
        mantissa = v / 10.0 ** math.floor(math.log10(v))
        return abs(mantissa - round(mantissa)) < 1e-6

    if all(v > 0 and one_digit(v) for v in ticks):
        return [short_number(v) for v in ticks]
    return tick_labels(ticks)


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels with one number of decimals for all (0.5 / 1.0 / 1.5, never 0.5 / 1 / 1.5); very
    small or very large steps in the short e-notation (2e-4)."""
    if len(ticks) < 2:
        return [short_number(t) for t in ticks]
    step = min(abs(b - a) for a, b in zip(ticks, ticks[1:], strict=False)) or 1.0
    top = max(abs(t) for t in ticks)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if decimals > 4 or top >= 1e7:
        return [short_number(t) for t in ticks]
    return [f"{t:.{decimals}f}" for t in ticks]


def short_number(v: float) -> str:
    """0 -> '0', 0.05 -> '0.05', 2e-05 -> '2e-5', 1500 -> '1500', 3e7 -> '3e7'."""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e7:
        return f"{v:.4g}"
    mantissa, exp = f"{v:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exp)}"


def debiased_ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: last = last * w + (1 - w) * y, shown divided by 1 - w^n (n: the
    finite values so far), so the start is not pulled towards 0. Non-finite values pass through
    and do not count; a constant series is returned as it is (no rounding wobble).

    Vectorised (a 10^5-point step history every redraw): within a block the recurrence is a
    cumulative sum scaled by w^-j, blocks short enough that w^-j stays far from overflowing."""
    out = list(values)
    if not 0 < weight < 1 or not out:
        return out
    y = np.asarray(out, dtype=np.float64)
    ok = np.isfinite(y)
    finite = y[ok]
    if finite.size == 0 or finite.min() == finite.max():
        return out
    block = max(1, min(4096, int(100 / -math.log10(weight))))  # w^-block <= 1e100
    smoothed = np.empty_like(finite)
    last = 0.0
    for start in range(0, finite.size, block):
        chunk = finite[start : start + block]
        powers = weight ** np.arange(chunk.size, dtype=np.float64)
        part = (1 - weight) * powers * np.cumsum(chunk / powers) + last * weight * powers
        smoothed[start : start + chunk.size] = part
        last = float(part[-1])
    n = np.arange(1, finite.size + 1, dtype=np.float64)
    y[ok] = smoothed / (1 - weight**n)
    return list(y.tolist())


# ---------------------------------------------------------------------------- the header


def shorten(label: str, width: int) -> str:
    """`label` in at most `width` cells, cut in the middle ('quic…a1b2'): run ids and series
    names differ at their start and at their end."""
    if len(label) <= width:
        return label
    if width <= 1:
        return "…"[:width]
    tail = width // 2  # the end gets the extra cell: a run id's random suffix
    head = width - 1 - tail
    return label[:head] + "…" + (label[-tail:] if tail else "")


def fit_header(
    title: str,
    entries: Sequence[tuple[Text, str]],
    width: int,
    max_lines: int,
    *,
    wrap_first: bool = False,
    min_label: int = 8,
) -> list[Text]:
    """The title (bold), then each (marker, label) legend entry, in as few lines of `width` cells
    as they fit, at most `max_lines`; an entry is never split. What gives way first: the gaps
    narrow to one space; then the longest label is shortened in its middle (down to `min_label`
    cells) before another line is taken, or after when `wrap_first` (a tall plot); only when
    nothing fits is the last line cut."""
    max_lines = max(max_lines, 1)
    tries = [(n, False) for n in range(1, max_lines + 1)] if wrap_first else []
    tries += [(n, True) for n in range(1, max_lines + 1)]
    for lines_allowed, may_shorten in tries:
        for gap in ("  ", " "):
            lines = _wrap(title, entries, width, gap)
            if len(lines) <= lines_allowed:
                return lines
        if not may_shorten:
            continue
        labels = [label for _, label in entries]
        while True:
            longest = max(range(len(labels)), key=lambda i: (len(labels[i]), i), default=None)
            if longest is None or len(labels[longest]) <= min_label:
                break
            labels[longest] = shorten(entries[longest][1], len(labels[longest]) - 1)
            short = [(marker, label) for (marker, _), label in zip(entries, labels, strict=True)]
            lines = _wrap(title, short, width, " ")
            if len(lines) <= lines_allowed:
                return lines
    kept = lines[:max_lines]
    for extra in lines[max_lines:]:
        kept[-1].append(" ")
        kept[-1].append_text(extra)
    kept[-1].truncate(width, overflow="ellipsis")
    return kept


def _wrap(title: str, entries: Sequence[tuple[Text, str]], width: int, gap: str) -> list[Text]:
    items = [Text(title, style="bold")]
    items += [Text.assemble(marker, " ", label) for marker, label in entries]
    lines: list[Text] = []
    line = Text()
    for item in items:
        if line.cell_len and line.cell_len + len(gap) + item.cell_len > width:
            lines.append(line)
            line = Text()
        if line.cell_len:
            line.append(gap)
        line.append_text(item)
    lines.append(line)
    return lines


def label_frame(frame: Text, *labels: str) -> Text:
    """The plot's top frame line ('   ┌──────┐') with ` label ` in it, right-aligned: the first
    of `labels` (longest to shortest wording) that fits, else the last shortened at its end; a
    line without a frame comes back as it is."""
    plain = frame.plain
    left, right = plain.find("┌"), plain.rfind("┐")
    room = right - left - 5  # keep "┌─" and "─┐"; a space each side of the label
    if left < 0 or right < 0 or room < 3 or not labels:
        return frame
    label = next((text for text in labels if len(text) <= room), labels[-1])
    if len(label) > room:
        label = label[: room - 1] + "…"
    text = f" {label} "
    start = right - 1 - len(text)
    return frame[:start] + Text(text) + frame[start + len(text) :]
