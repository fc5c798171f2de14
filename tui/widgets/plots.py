"""Line plots on textual-plotext: always the widget's own `.plt`, never the global plotext.

Callers decide when to redraw (the Monitor redraws at most 4 times a second); a draw downsamples
each series to about twice the plot's width, so its cost does not grow with the run's length.

The ticks are ours (`plot_axes`: 1-2-5 steps, one number of decimals per axis), and so is the
header line above the plot: title and a legend entry per series, fitted to the width without being
cut. The view settings (the x axis and its unit, log y, smoothing) are written into the plot's top
frame line, where nothing else is. A plot without fixed limits
is adjustable: `cycle_x_axis` (epoch / step / wall time, where every series carries them),
`toggle_log_y` and `change_smoothing` (TensorBoard's debiased EMA); the app binds keys to them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Protocol

from rich.console import Group
from rich.text import Text
from textual import events
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from tui.orchestration.runstate import downsample
from tui.widgets.plot_axes import (
    data_range,
    debiased_ema,
    fit_header,
    label_frame,
    log_labels,
    log_ticks,
    nice_ticks,
    tick_labels,
)

COLORS = ("cyan", "orange", "green", "magenta", "yellow", "red", "blue", "white")
# without colour, series differ by marker (and the legend shows what each draws)
MARKERS_NO_COLOR = ("braille", "dot", "+", "x", "*", "o", "#", "@")
MARKER_GLYPHS = {"braille": "⠉⠒", "dot": "•"}
POINT = "●"  # a series of one point (a 1-epoch run's val curve) draws as this marker
X_STEP, X_TIME = "step", "time (min)"
SMOOTHING = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99)  # the EMA weights `[` / `]` step through


class SeriesLike(Protocol):
    """A history with, per point, its x in epochs, optimizer step and wall time (RunState's)."""

    xs: list[float]
    ys: list[float]
    steps: list[float]
    ts: list[float]


@dataclass
class Line:
    """One series: `xs` in the plot's own unit (its `xlabel`); optionally, per point, the
    optimizer step and the wall-clock time (seconds since the Unix epoch), for the other x axes."""

    label: str
    xs: list[float]
    ys: list[float]
    steps: list[float] | None = None
    ts: list[float] | None = None

    @classmethod
    def of(cls, label: str, series: SeriesLike) -> Line:
        return cls(label, series.xs, series.ys, series.steps, series.ts)

    def x_for(self, axis: str, t0: float) -> list[float]:
        if axis == X_STEP and self.steps is not None:
            return self.steps
        if axis == X_TIME and self.ts is not None:
            return [(t - t0) / 60.0 for t in self.ts]
        return self.xs


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


class MetricPlot(PlotextPlot):
    """A titled multi-line plot. `show(lines)` replaces the data and redraws once."""

    DEFAULT_CSS = """
    MetricPlot { height: 1fr; width: 1fr; min-height: 6; }
    """

    def __init__(
        self,
        title: str,
        *,
        xlabel: str = "epoch",
        percent: bool = False,
        limits: tuple[float, float] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.xlabel = xlabel  # the unit of every Line's xs
        self.percent = percent  # values in [0, 1] shown as %
        self.limits = limits  # fixed x and y range (PR / ROC: the unit square)
        self.lines: list[Line] = []
        self.draws = 0
        self.x_axis = xlabel
        self.log_y = False
        self.smoothing = 0.0
        self.x_ticks: list[str] = []  # the tick labels of the last draw (what the axes say)
        self.y_ticks: list[str] = []
        self.drawn: list[tuple[list[float], list[float]]] = []  # each series as plotted

    # ------------------------------------------------------------------ the view

    @property
    def adjustable(self) -> bool:
        """Axes, log y and smoothing can change (not for a fixed range such as PR / ROC)."""
        return self.limits is None

    def x_axes(self) -> tuple[str, ...]:
        """The x axes every shown series can be drawn against: its own unit, step, time."""
        shown = [line for line in self.lines if line.xs]
        out = [self.xlabel]
        if self.adjustable and shown:
            if all(line.steps is not None and len(line.steps) == len(line.xs) for line in shown):
                out.append(X_STEP)
            if all(line.ts is not None and len(line.ts) == len(line.xs) for line in shown):
                out.append(X_TIME)
        return tuple(out)

    def current_x_axis(self) -> str:
        return self.x_axis if self.x_axis in self.x_axes() else self.xlabel

    def set_view(
        self,
        *,
        x_axis: str | None = None,
        log_y: bool | None = None,
        smoothing: float | None = None,
    ) -> None:
        """Change the view (None: keep) and redraw."""
        if x_axis is not None:
            self.x_axis = x_axis
        if log_y is not None:
            self.log_y = log_y
        if smoothing is not None:
            self.smoothing = smoothing
        self.draw()
        self.refresh()

    def next_x_axis(self) -> str:
        axes = self.x_axes()
        return axes[(axes.index(self.current_x_axis()) + 1) % len(axes)]

    def next_smoothing(self, delta: int) -> float:
        """The EMA weight `delta` steps along SMOOTHING from the current one."""
        below = [i for i, w in enumerate(SMOOTHING) if w <= self.smoothing + 1e-9]
        i = below[-1] if below else 0
        return SMOOTHING[min(max(i + delta, 0), len(SMOOTHING) - 1)]

    def settings_text(self, compact: bool = False) -> str:
        """'x: epoch', then '· log y' and '· EMA 0.6' when on (compact: 'epoch·log·EMA.6'):
        written into the top frame."""
        axis = self.current_x_axis() if self.adjustable else self.xlabel
        if compact:
            parts = [axis.replace(" (min)", "")]
            parts += ["log"] if self.adjustable and self.log_y else []
            if self.adjustable and self.smoothing > 0:
                parts.append(f"EMA{self.smoothing:g}".replace("0.", "."))
            return "·".join(parts)
        parts = [f"x: {axis}"]
        if self.adjustable and self.log_y:
            parts.append("log y")
        if self.adjustable and self.smoothing > 0:
            parts.append(f"EMA {self.smoothing:g}")
        return " · ".join(parts)

    # ------------------------------------------------------------------ drawing

    def show(self, lines: list[Line], title: str | None = None) -> None:
        self.lines = lines
        if title is not None:
            self.title = title
        self.draw()
        self.refresh()

    def on_resize(self, _event: events.Resize) -> None:
        if self.draws:
            self.draw()  # tick counts follow the size

    def _series(self) -> list[tuple[int, list[float], list[float]]]:
        """(index, xs, ys) of each series as plotted: on the chosen x axis, smoothed, in %, in
        log10 for a log axis (points <= 0 left out), downsampled."""
        width = max(self.size.width, 40)
        axis = self.current_x_axis()
        shown = [line for line in self.lines if line.xs]
        t0 = min((line.ts[0] for line in shown if line.ts), default=0.0)
        out = []
        for i, line in enumerate(self.lines):
            if not line.xs:
                continue
            xs, ys = line.x_for(axis, t0), list(line.ys)
            if self.adjustable and self.smoothing > 0:
                ys = debiased_ema(ys, self.smoothing)
            if self.percent:
                ys = [100.0 * y for y in ys]
            if self.adjustable and self.log_y:
                kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0 and math.isfinite(y)]
                xs, ys = [x for x, _ in kept], [math.log10(y) for _, y in kept]
            if xs:
                xs, ys = downsample(xs, ys, 2 * width)
                out.append((i, xs, ys))
        return out

    def draw(self) -> None:
        """Put the (downsampled) data and our ticks on this widget's plotext figure."""
        plt = self.plt
        plt.clear_figure()
        mono = no_color()
        series = self._series()
        self.drawn = [(xs, ys) for _, xs, ys in series]
        for i, xs, ys in series:
            marker = MARKERS_NO_COLOR[i % len(MARKERS_NO_COLOR)] if mono else "braille"
            color = None if mono else COLORS[i % len(COLORS)]
            if len(xs) == 1:
                plt.scatter(xs, ys, marker=POINT if marker == "braille" else marker, color=color)
            else:
                plt.plot(xs, ys, marker=marker, color=color)
        if series:
            self._axes(
                [x for _, xs, _ in series for x in xs], [y for _, _, ys in series for y in ys]
            )
        else:
            waiting = "no values above 0 for a log axis" if self.lines and self.log_y else ""
            plt.text(waiting or "waiting for data", 0.5, 0.5, alignment="center")
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            self.x_ticks, self.y_ticks = [], []
        self.draws += 1

    def _axes(self, xs: list[float], ys: list[float]) -> None:
        """Ranges and tick labels: nice values, the range widened to the outer ticks."""
        plt = self.plt
        width, height = max(self.size.width, 40), max(self.size.height, 10)
        rows = height - len(self.header(width)) - 3  # frame top and bottom, x tick labels
        max_y = min(max(2, rows // 2 + 1), 8)
        if self.limits is not None:
            (xlo, xhi), (ylo, yhi) = self.limits, self.limits
        else:
            xlo, xhi = data_range(xs, pad_unit=2.0)  # a lone epoch-1 point: 0..2
            ylo, yhi = data_range(ys, pad_unit=0.2 if self.log_y else 1.0)
        if self.adjustable and self.log_y:
            yvals = log_ticks(10**ylo, 10**yhi, max_y)
            ypos = [math.log10(v) for v in yvals]
            ylabels = log_labels(yvals)
        else:
            ypos = nice_ticks(ylo, yhi, max_y)
            ylabels = tick_labels(ypos)
        canvas = width - max(len(s) for s in ylabels) - 3
        xpos = nice_ticks(xlo, xhi, 2)
        for n in range(max(canvas // 4, 2), 1, -1):
            ticks = nice_ticks(xlo, xhi, n)
            if len(ticks) * (max(len(s) for s in tick_labels(ticks)) + 2) <= canvas:
                xpos = ticks
                break
        xlabels = tick_labels(xpos)
        plt.xlim(min(xlo, xpos[0]), max(xhi, xpos[-1]))
        plt.ylim(min(ylo, ypos[0]), max(yhi, ypos[-1]))
        plt.xticks(xpos, xlabels)
        plt.yticks(ypos, ylabels)
        self.x_ticks, self.y_ticks = xlabels, ylabels

    # ------------------------------------------------------------------ the header

    def header(self, width: int) -> list[Text]:
        """Title, then each shown series in its colour (or with its marker), in `width` cells:
        one line when they fit in it with labels shortened (a tall plot takes a second line
        first), more lines rather than a cut."""
        mono = no_color()
        entries = []
        for i, line in enumerate(self.lines):
            if not line.xs:
                continue
            single = len(line.xs) == 1
            if mono:
                marker = MARKERS_NO_COLOR[i % len(MARKERS_NO_COLOR)]
                glyph = (
                    POINT if single and marker == "braille" else MARKER_GLYPHS.get(marker, marker)
                )
                entries.append((Text(glyph), line.label))
            else:
                entries.append(
                    (Text(POINT if single else "━", COLORS[i % len(COLORS)]), line.label)
                )
        # one line if it fits (labels shortened), more rather than cut: the canvas keeps 3 rows
        height = self.size.height
        max_lines = max(height - 6, 1)
        return fit_header(self.title, entries, width, max_lines, wrap_first=height >= 20)

    def render(self) -> RenderResult:
        """The header, then the plot in the remaining height, its settings in its top frame."""
        header = self.header(self.size.width)
        width, height = self.size.width, max(self.size.height - len(header), 1)
        self._plot.plotsize(width, height)
        self._plot._set_size(width, height)  # as PlotextPlot.render does (its issue #5)
        self._plot.theme(self._get_plotext_theme_name(self.app.theme))
        lines = Text.from_ansi(self._plot.build()).split("\n")
        if lines and self.draws:
            lines[0] = label_frame(lines[0], self.settings_text(), self.settings_text(True))
        return Group(*header, *lines)
