"""Compare: the runs selected on the Runs screen side by side. The config keys that differ, the
recall per class and superclass of an arm minus the first (tested across seeds where the arms
hold several), the confusions that grew and shrank, and one metric of every run overlaid.

The arms are formed by recipe (tui.orchestration.compare.arms_by_recipe); the runs come oldest
first, so the first arm (the baseline) is the recipe run first.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from engine.errors import BadInputError
from tui.orchestration.compare import (
    Arm,
    Confusion,
    arms_by_recipe,
    confusion_diff,
    load_runs,
    read_confusions,
)
from tui.orchestration.compare_report import config_table, diff_renderables
from tui.screens.common import CifarScreen, TitleBar
from tui.screens.runs_overlay import METRICS, event_overlay
from tui.widgets.plots import MetricPlot

TOP = 5  # the largest gains and losses listed per class (`a` lists every class)


class CompareScreen(CifarScreen):
    AUTO_FOCUS = "#report-scroll"
    DEFAULT_CSS = """
    CompareScreen #report-scroll { height: 2fr; min-height: 8; padding: 0 1; }
    CompareScreen #curves { height: 1fr; min-height: 8; }
    """
    BINDINGS = [
        Binding("escape,q", "back", "back"),
        Binding("m", "next_metric", "metric"),
        Binding("n", "next_arm", "next arm"),  # shown with three arms or more (check_action)
        Binding("a", "all_classes", "every class"),
    ]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = run_ids  # oldest first
        self.arms: list[Arm] = []
        self.confusions: dict[str, Confusion] = {}
        self.other = 1  # the arm compared with the first
        self.metric = 0  # index into METRICS
        self.every_class = False
        self.ready = False  # the report is shown (tests wait on it)
        self.report: list[RenderableType] = []

    def compose(self) -> ComposeResult:
        yield TitleBar("Compare", id="title")
        with VerticalScroll(id="report-scroll"):
            yield Static(Text("reading the runs…", "dim"), id="report")
        yield MetricPlot(METRICS[0][1], xlabel="epoch", percent=True, id="curves")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#title", TitleBar).set(f"{len(self.run_ids)} runs")
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, name="the comparison")
    def load(self) -> None:
        root = self.cifar.checkpoints
        try:
            arms = arms_by_recipe(load_runs(root, self.run_ids))
            confusions = read_confusions(arms)
        except BadInputError as exc:
            self.app.call_from_thread(self.show_error, str(exc))
            return

        def show() -> None:
            self.arms, self.confusions = arms, confusions
            self.refresh_bindings()
            self.show_report()
            self.draw_curves()

        self.app.call_from_thread(show)

    def show_error(self, text: str) -> None:
        self.query_one("#report", Static).update(Text(f"cannot compare: {text}", "bold red"))
        self.notify(text, severity="error")

    def show_report(self) -> None:
        a, b = self.arms[0], self.arms[self.other]
        diff = confusion_diff(a, b, self.confusions, TOP)
        self.report = [
            config_table(self.arms, self.confusions),
            *diff_renderables(diff, None if self.every_class else TOP),
        ]
        keys = "n: next arm · " if len(self.arms) > 2 else ""
        hint = Text(f"{keys}a: every class / the largest changes · m: metric · x: x axis", "dim")
        self.query_one("#report", Static).update(Group(hint, *self.report))
        self.ready = True

    @work(thread=True, exclusive=True, exit_on_error=False, group="curves", name="the curves")
    def draw_curves(self) -> None:
        labelled = [(arm.run_name(r), r.run_id) for arm in self.arms for r in arm.runs]
        lines, title, percent = event_overlay(self.cifar.checkpoints, labelled, self.metric)
        plot = self.query_one("#curves", MetricPlot)

        def show() -> None:
            plot.percent = percent
            plot.show(lines, title)

        self.app.call_from_thread(show)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_arm":
            return len(self.arms) > 2
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_next_metric(self) -> None:
        """The plot's metric: val top-1 -> val loss -> train loss -> train top-1 -> lr."""
        self.metric = (self.metric + 1) % len(METRICS)
        if self.arms:
            self.draw_curves()

    def action_next_arm(self) -> None:
        """The arm compared with the first: B -> C -> ... -> B."""
        if len(self.arms) > 2:
            self.other = self.other % (len(self.arms) - 1) + 1
            self.show_report()

    def action_all_classes(self) -> None:
        self.every_class = not self.every_class
        if self.arms:
            self.show_report()
