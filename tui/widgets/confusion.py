"""The confusion matrix as a heat map on Textual's Line API (Toolong's pattern).

Two matrix rows share one terminal line: `▀` with the upper row's colour as foreground and the
lower row's as background, so the 100x100 matrix takes 100 columns x 50 lines and scrolls. Rows
are normalised (share of each true class); the colour follows a log scale so that a single error
(1% of a class) stays visible beside a 90% diagonal. Without colour (NO_COLOR), each line holds
one matrix row drawn with shade characters.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.orchestration.evaldata import row_normalise

PLAIN = Style()  # every segment styled: Textual's monochrome filter reads each style

# "magma"-like stops: dark purple -> red -> orange -> pale yellow
_STOPS = np.array(
    [
        [0.00, 40, 11, 84],
        [0.25, 120, 28, 109],
        [0.50, 196, 55, 83],
        [0.75, 247, 131, 17],
        [1.00, 252, 253, 191],
    ]
)
ZERO_RGB = (12, 12, 20)
CURSOR_RGB = (0, 255, 255)
LOG_DECADES = 3.0  # a share of 10^-3 maps to the bottom of the scale
SHADES = " ░▒▓█"
GUTTER = 4  # row index column on the left


def intensity(share: np.ndarray) -> np.ndarray:
    """Row share in [0, 1] -> colour position in [0, 1] on a log scale; 0 stays 0 (no samples).

    Any non-zero share maps to at least 0.12 so a lone error is never drawn as empty.
    """
    share = np.asarray(share, dtype=np.float64)
    with np.errstate(divide="ignore"):
        pos = 1.0 + np.log10(np.maximum(share, 1e-12)) / LOG_DECADES
    pos = np.clip(pos, 0.12, 1.0)
    return np.where(share > 0, pos, 0.0)


def colour(pos: float) -> tuple[int, int, int]:
    if pos <= 0:
        return ZERO_RGB
    rgb = [np.interp(pos, _STOPS[:, 0], _STOPS[:, i]) for i in (1, 2, 3)]
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


@dataclass
class View:
    counts: np.ndarray  # int [K, K]
    names: list[str]
    cell_w: int  # characters per column
    cell_h: int  # half-lines per row (colour mode)


class ConfusionMatrix(ScrollView, can_focus=True):
    """Heat map with a cursor; posts `CursorMoved` as the cursor goes."""

    DEFAULT_CSS = """
    ConfusionMatrix { height: 1fr; width: 1fr; scrollbar-size: 1 1; }
    """
    BINDINGS = [
        Binding("up", "move(-1, 0)", "up", show=False),
        Binding("down", "move(1, 0)", "down", show=False),
        Binding("left", "move(0, -1)", "left", show=False),
        Binding("right", "move(0, 1)", "right", show=False),
        Binding("pageup", "move(-10, 0)", "row -10", show=False),
        Binding("pagedown", "move(10, 0)", "row +10", show=False),
        Binding("shift+left", "move(0, -10)", "col -10", show=False),
        Binding("shift+right", "move(0, 10)", "col +10", show=False),
        Binding("d", "diagonal", "to diagonal", show=False),
    ]

    cursor: reactive[tuple[int, int]] = reactive((0, 0), always_update=True)

    @dataclass
    class CursorMoved(Message):
        matrix: ConfusionMatrix
        true: int
        pred: int

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: View | None = None
        self._styles: list[list[tuple[int, int, int]]] = []
        self._shades: list[list[str]] = []
        self.mono = bool(os.environ.get("NO_COLOR"))

    # ------------------------------------------------------------------ data

    def set_matrix(self, counts: np.ndarray, names: list[str], *, coarse: bool = False) -> None:
        k = counts.shape[0]
        cell = 2 if coarse or k <= 40 else 1
        self.view = View(np.asarray(counts), list(names), cell, cell)
        pos = intensity(row_normalise(self.view.counts))
        self._styles = [[colour(float(v)) for v in row] for row in pos]
        self._shades = [
            [SHADES[0] if v <= 0 else SHADES[1 + min(3, int(v * 3.999))] for v in row]
            for row in pos
        ]
        t, p = self.cursor
        self.cursor = (min(t, k - 1), min(p, k - 1))
        self._update_size()
        self.refresh()

    def _update_size(self) -> None:
        if self.view is None:
            self.virtual_size = Size(0, 0)
            return
        k = len(self.view.names)
        width = GUTTER + k * self.view.cell_w
        height = k if self.mono else math.ceil(k * self.view.cell_h / 2)
        self.virtual_size = Size(width, height)

    # ------------------------------------------------------------------ cursor

    def action_move(self, dt: int, dp: int) -> None:
        if self.view is None:
            return
        k = len(self.view.names) - 1
        t, p = self.cursor
        self.cursor = (max(0, min(k, t + dt)), max(0, min(k, p + dp)))

    def action_diagonal(self) -> None:
        t, _ = self.cursor
        self.cursor = (t, t)

    def move_to(self, true: int, pred: int) -> None:
        self.cursor = (true, pred)

    def watch_cursor(self, cursor: tuple[int, int]) -> None:
        if self.view is None:
            return
        t, p = cursor
        v = self.view
        y = t if self.mono else (t * v.cell_h) // 2
        h = 1 if self.mono else max(1, v.cell_h // 2)
        self.scroll_to_region(
            Region(GUTTER + p * v.cell_w, y, v.cell_w, h), animate=False, force=True
        )
        self.refresh()
        self.post_message(self.CursorMoved(self, t, p))

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = y + scroll_y
        width = self.scrollable_content_region.width
        if self.view is None or line >= self.virtual_size.height:
            return Strip.blank(width, PLAIN)
        body = self._mono_line(line) if self.mono else self._colour_line(line)
        rows = self._rows_of_line(line)
        label = (
            f"{rows[0]:>3} " if rows[0] % 10 == 0 or (len(rows) > 1 and rows[1] % 10 == 0) else ""
        )
        gutter = Segment(label.rjust(GUTTER) if label else " " * GUTTER, Style(dim=True))
        body_strip = Strip(body).crop(scroll_x, scroll_x + width - GUTTER)
        return Strip([gutter, *body_strip]).extend_cell_length(width)

    def _rows_of_line(self, line: int) -> list[int]:
        v = self.view
        assert v is not None
        if self.mono:
            return [line]
        k = len(v.names)
        return sorted({min(k - 1, (2 * line + i) // v.cell_h) for i in (0, 1)})

    def _colour_line(self, line: int) -> list[Segment]:
        v = self.view
        assert v is not None
        k = len(v.names)
        ct, cp = self.cursor
        upper = (2 * line) // v.cell_h
        lower_half = 2 * line + 1
        lower = lower_half // v.cell_h if lower_half < k * v.cell_h else None
        segments = []
        for p in range(k):
            fg = CURSOR_RGB if (upper, p) == (ct, cp) else self._styles[upper][p]
            if lower is None:
                bg = None
            else:
                bg = CURSOR_RGB if (lower, p) == (ct, cp) else self._styles[lower][p]
            segments.append(Segment("▀" * v.cell_w, half_block_style(fg, bg)))
        return segments

    def _mono_line(self, line: int) -> list[Segment]:
        v = self.view
        assert v is not None
        ct, cp = self.cursor
        segments = []
        for p, ch in enumerate(self._shades[line]):
            text = (ch if ch != " " else "·") * v.cell_w
            style = Style(reverse=True) if (line, p) == (ct, cp) else Style()
            segments.append(Segment(text, style))
        return segments


@lru_cache(maxsize=8192)
def half_block_style(fg: tuple[int, int, int], bg: tuple[int, int, int] | None) -> Style:
    """Style for `▀`: the upper half takes `fg`, the lower half `bg`."""
    return Style.from_color(Color.from_rgb(*fg), Color.from_rgb(*bg) if bg is not None else None)
