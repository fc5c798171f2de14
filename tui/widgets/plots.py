"""Line plots on textual-plotext: always the widget's own `.plt`, never the global plotext.

Callers decide when to redraw (the Monitor redraws at most 4 times a second); a draw downsamples
each series to about twice the plot's width, so its cost does not grow with the run's length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rich.console import Group
from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from tui.orchestration.runstate import downsample

COLORS = ("cyan", "orange", "green", "magenta", "yellow", "red", "blue", "white")
# without colour, series differ by marker
MARKERS_NO_COLOR = ("braille", "dot", "+", "x", "*", "o", "#", "@")


@dataclass
class Line:
    label: str
    xs: list[float]
    ys: list[float]


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
        xlabel: str = "",
        percent: bool = False,
        limits: tuple[float, float] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.xlabel = xlabel
        self.percent = percent  # values in [0, 1] shown as %
        self.limits = limits  # fixed x and y range (PR / ROC: the unit square)
        self.lines: list[Line] = []
        self.draws = 0

    def show(self, lines: list[Line], title: str | None = None) -> None:
        self.lines = lines
        if title is not None:
            self.title = title
        self.draw()
        self.refresh()

    def draw(self) -> None:
        """Put the (downsampled) data on this widget's plotext figure."""
        plt = self.plt
        plt.clear_figure()
        width = max(self.size.width, 40)
        mono = no_color()
        drawn = 0
        for i, line in enumerate(self.lines):
            if not line.xs:
                continue
            xs, ys = downsample(line.xs, line.ys, 2 * width)
            if self.percent:
                ys = [100.0 * y for y in ys]
            kwargs: dict[str, str] = {}
            if mono:
                kwargs["marker"] = MARKERS_NO_COLOR[i % len(MARKERS_NO_COLOR)]
            else:
                kwargs["color"] = COLORS[i % len(COLORS)]
                kwargs["marker"] = "braille"
            if len(xs) == 1:
                plt.scatter(xs, ys, **kwargs)
            else:
                plt.plot(xs, ys, **kwargs)
            drawn += 1
        if drawn and self.limits is not None:
            plt.xlim(*self.limits)
            plt.ylim(*self.limits)
        if not drawn:
            plt.text("waiting for data", 0.5, 0.5, alignment="center")
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        self.draws += 1

    def legend(self) -> Text:
        """Title, then each series in its colour (or with its marker): one line."""
        text = Text(self.title, style="bold", no_wrap=True, overflow="ellipsis")
        mono = no_color()
        for i, line in enumerate(self.lines):
            if not line.xs:
                continue
            if mono:
                marker = MARKERS_NO_COLOR[i % len(MARKERS_NO_COLOR)]
                text.append(f"  {'⠉⠒' if marker == 'braille' else marker} {line.label}")
            else:
                text.append("  ━ ", style=COLORS[i % len(COLORS)])
                text.append(line.label)
        if self.xlabel:
            text.append(f"  (x: {self.xlabel})", style="dim")
        return text

    def render(self) -> RenderResult:
        """The legend line, then the plot in the remaining height."""
        width, height = self.size.width, max(self.size.height - 1, 1)
        self._plot.plotsize(width, height)
        self._plot._set_size(width, height)  # as PlotextPlot.render does (its issue #5)
        self._plot.theme(self._get_plotext_theme_name(self.app.theme))
        return Group(self.legend(), Text.from_ansi(self._plot.build()))
