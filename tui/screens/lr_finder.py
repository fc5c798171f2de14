"""The LR finder dialog: the LR range test (`cifar-tui lr-find`'s engine process) run on the
Setup config in a worker, its progress line, then its curve (loss and smoothed loss against
the learning rate, log x) and suggestion; "apply to Setup" sets optim.lr there
(`SetupScreen.set_field`). Escape closes it and stops a sweep still running."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from engine.config import dump_config
from engine.lr_sweep import DEFAULT_END, DEFAULT_START, DEFAULT_STEPS
from tui.screens.common import pass_worker_error_on

if TYPE_CHECKING:
    from tui.app import CifarApp
    from tui.screens.setup import SetupScreen


def draw_curve(plot: PlotextPlot, curve: dict[str, Any]) -> None:
    """The curve as `cifar-tui lr-find` prints it (tui.cli.lr_find.render_plot), in a widget."""
    plt = plot.plt
    plt.clear_figure()
    lrs, losses, smoothed = curve["lrs"], curve["losses"], curve["smoothed"]
    if not lrs:
        plt.title("no points: the sweep stopped at once")
        return
    # log10 of the rates on a linear axis, labelled as rates: plotext's own log scale rewrites
    # its data in place at each build, so a second render (a resize) took the log of a log
    xs = [math.log10(lr) for lr in lrs]
    plt.scatter(xs, losses, label="loss", marker="·")
    plt.plot(xs, smoothed, label="smoothed", marker="braille")
    best = smoothed.index(min(smoothed))
    top, bottom = max(smoothed[: best + 1]), min(losses)
    if top > bottom:  # the blow-up past the minimum would squash the interesting part
        span = top - bottom
        plt.ylim(bottom - 0.05 * span, top + 0.15 * span)
    first, last = math.ceil(xs[0]), math.floor(xs[-1])
    if last > first:
        decades = [float(k) for k in range(first, last + 1)]
        plt.xticks(decades, [f"{10.0**k:g}" for k in decades])
    if curve.get("suggestion"):
        plt.vline(math.log10(curve["suggestion"]))
    plt.xlabel("learning rate (log scale)")
    plot.refresh()


class LRFinderScreen(ModalScreen[float | None]):
    """Dismissed with the suggested lr ("apply to Setup") or None."""

    DEFAULT_CSS = """
    LRFinderScreen { align: center middle; }
    LRFinderScreen > Vertical { width: 90%; height: 90%; border: round $accent; padding: 0 1; }
    LRFinderScreen #curve { height: 1fr; }
    LRFinderScreen #lr-progress { height: auto; max-height: 3; }
    LRFinderScreen #lr-title { height: auto; text-style: bold; }
    LRFinderScreen Horizontal { height: 3; }
    """
    BINDINGS = [Binding("escape", "close", "close")]

    def __init__(self, config_yaml: str, current_lr: float | None) -> None:
        super().__init__()
        self.config_yaml, self.current_lr = config_yaml, current_lr
        self.curve: dict[str, Any] | None = None
        self.progress_line = "starting the engine ..."
        self.process: subprocess.Popen[str] | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            now = f" (optim.lr now {self.current_lr:g})" if self.current_lr is not None else ""
            yield Static(
                f"LR range test of the Setup config{now}: {DEFAULT_STEPS} steps, "
                f"lr {DEFAULT_START:g} to {DEFAULT_END:g}",
                id="lr-title",
            )
            yield PlotextPlot(id="curve")
            yield Static(self.progress_line, id="lr-progress")
            with Horizontal():
                yield Button("Apply to Setup", id="apply", variant="primary", disabled=True)
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#curve", PlotextPlot).plt.title("running the LR range test ...")
        self.sweep()

    def on_worker_state_changed(self, event: Any) -> None:
        pass_worker_error_on(self, event)

    @work(thread=True, exclusive=True, exit_on_error=False, group="lr-find", name="the LR finder")
    def sweep(self) -> None:
        worker = get_current_worker()
        with tempfile.TemporaryDirectory(prefix="cifar-tui-lr-find-") as tmp:
            config, out = Path(tmp) / "config.yaml", Path(tmp) / "curve.json"
            config.write_text(self.config_yaml)
            process = subprocess.Popen(
                engine_command(config, out),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            self.process = process
            assert process.stdout is not None
            last = ""
            for line in process.stdout:
                if worker.is_cancelled:
                    break
                last = line.strip() or last
                self.app.call_from_thread(self._progress, last)
            if worker.is_cancelled:
                process.terminate()
                process.wait()
                return
            code = process.wait()
            curve = json.loads(out.read_text()) if code == 0 and out.is_file() else None
        self.app.call_from_thread(self._done, curve, last or f"exit code {code}")

    def _progress(self, line: str) -> None:
        self.progress_line = line
        self.query_one("#lr-progress", Static).update(line)

    def _done(self, curve: dict[str, Any] | None, last: str) -> None:
        if curve is None:
            self._progress(f"the LR finder failed: {last}")
            return
        self.curve = curve
        draw_curve(self.query_one("#curve", PlotextPlot), curve)
        suggestion = curve.get("suggestion")
        if suggestion is None:
            self._progress(f"no suggested lr: {curve.get('reason')}")
            return
        rule, reason = curve.get("rule"), curve.get("reason")
        self._progress(f"suggested lr {suggestion:g} ({rule}); stopped: {reason}")
        self.query_one("#apply", Button).disabled = False

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        if self.curve is not None and self.curve.get("suggestion") is not None:
            self.dismiss(float(self.curve["suggestion"]))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.workers.cancel_group(self, "lr-find")
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # no engine left running once the dialog is gone
        self.dismiss(None)


def open_lr_finder(app: CifarApp, setup: SetupScreen) -> None:
    """The dialog on Setup's config (its edits included); "apply" sets its optim.lr."""
    cfg = setup.config()  # an invalid config: said in a notification, no dialog
    if cfg is None:
        return
    lr = cfg.optim.params.get("lr")

    def apply(suggestion: float | None) -> None:
        if suggestion is not None:
            setup.set_field(("optim", "lr"), suggestion)
            app.notify(f"optim.lr = {suggestion:g} in Setup (was {lr:g})", title="LR finder")

    app.push_screen(LRFinderScreen(dump_config(cfg), lr), apply)


def engine_command(config: Path, out: Path) -> list[str]:
    """`python -m engine lr-find CONFIG OUT` with the default sweep (`cifar-tui lr-find`'s)."""
    return [sys.executable, "-m", "engine", "lr-find", str(config), str(out)]
