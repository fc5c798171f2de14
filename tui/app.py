"""The dashboard app: Setup -> Monitor -> Results, and Runs. Never imports torch.

Screens are installed (kept alive when not shown) so that the Monitor's worker keeps following its
run while the user looks elsewhere. Keys 1-4 switch screens (alt+1-4 too, which also work while a
text field has focus, where digits type), `?` or F1 lists the keys in effect, Ctrl+P opens the
command palette (launch the Setup config, start a preset, stop run, open results, attach).

Only Setup is imported before the first frame: Monitor, Results and Runs (numpy, plotext) load
when first shown.

Every screen's background work runs in workers started with `exit_on_error=False`: a worker that
raises is reported here, once for all screens (a notification naming the worker, and the log),
and the app keeps running.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from engine.errors import BadInputError
from engine.runs import RunRegistry, checkpoints_root
from tui.commands import RunCommands, system_commands
from tui.messages import RunLaunched
from tui.screens.keys import SCREEN_KEYS, KeysScreen
from tui.screens.setup import SetupScreen

if TYPE_CHECKING:  # the other screens load on first use: the first frame only needs Setup
    from engine.config import RunConfig
    from tui.cli.common import StartRequest
    from tui.screens.monitor import MonitorScreen
    from tui.screens.results import ResultsScreen
    from tui.widgets.plots import MetricPlot

logger = logging.getLogger(__name__)


def worker_error_text(worker: Worker[object]) -> str:
    """One line: what failed (the worker's name) and the exception's type and message."""
    error = worker.error
    what = worker.name or worker.group or "a background task"
    detail = type(error).__name__ if error is not None else "unknown error"
    message = " ".join(str(error).split()) if error is not None else ""
    return f"{what} failed: {detail}: {message}" if message else f"{what} failed: {detail}"


class CifarApp(App[str | None]):
    TITLE = "cifar-tui"
    COMMANDS = App.COMMANDS | {RunCommands}
    CSS = """
    .dim { color: $text-muted; }
    """
    BINDINGS = [  # `keys` first: the footer cuts off at 80 columns, and it explains the rest
        Binding("question_mark,f1", "keys", "keys"),
        *(
            Binding(f"{i},alt+{i}", f"goto('{name}')", name)
            for i, name in enumerate(SCREEN_KEYS, 1)
        ),
        Binding("ctrl+q", "quit", "quit", show=False, priority=True),
        # the plots of the screen shown (Monitor, Runs): shown only where there are (check_action)
        Binding("x", "plot_x_axis", "plots: x axis epoch / step / time", show=False),
        Binding("y", "plot_log_y", "plots: log y on / off", show=False),
        Binding("left_square_bracket", "plot_smoothing(-1)", "plots: less smoothing", show=False),
        Binding("right_square_bracket", "plot_smoothing(1)", "plots: more smoothing", show=False),
    ]
    PLOT_ACTIONS = ("plot_x_axis", "plot_log_y", "plot_smoothing")

    def __init__(
        self,
        *,
        checkpoints: str | Path | None = None,
        attach: Path | None = None,
        results: Path | None = None,
        start: str = "setup",
        presets_dir: Path | None = None,
        start_request: StartRequest | None = None,
    ) -> None:
        """`start_request`: a preset to start at once (`cifar-tui --start PRESET`, `make run`)."""
        super().__init__()
        self.presets_dir = presets_dir
        self.checkpoints = checkpoints_root(checkpoints)
        self.monitor: MonitorScreen | None = None
        self.results: ResultsScreen | None = None
        self._attach_dir = attach  # not `_attach`: a MessagePump method
        self._results = results
        self._start = start
        self._start_request = start_request

    @property
    def registry(self) -> RunRegistry:
        return RunRegistry(self.checkpoints)

    async def on_mount(self) -> None:
        self.install_screen(SetupScreen(presets_dir=self.presets_dir), "setup")
        if self._attach_dir is not None:
            await self.attach(self._attach_dir)
        elif self._results is not None:
            await self.show_results(self._results)
        else:
            await self.push_screen(self._named(self._start))
        if self._start_request is not None:  # once Setup has drawn: it stays below the run
            self.call_after_refresh(self.start_preset, self._start_request)

    def _named(self, name: str) -> str:
        """An installed screen's name; Runs is built (and its module imported) on first use."""
        if name == "runs" and not self.is_screen_installed("runs"):
            from tui.screens.runs import RunsScreen

            self.install_screen(RunsScreen(), "runs")
        return name

    # ------------------------------------------------------------------ navigation

    async def _replace(self, old: Screen | None, new: Screen, name: str) -> None:
        self.install_screen(new, name)
        while len(self.screen_stack) > 1 and self.screen.is_modal:
            self.pop_screen()  # a dialog or the palette is open: close it first
        if self.screen.id == "_default":  # starting up: nothing of ours to replace yet
            await self.push_screen(new)
        else:
            await self.switch_screen(new)
        if old is not None and old is not new:
            self.uninstall_screen(old)
            old.workers.cancel_node(old)
            if old not in self.screen_stack:
                await old.remove()

    def action_goto(self, name: str) -> None:
        target: Screen | str | None = name
        if name == "monitor":
            target = self.monitor
            if target is None:
                self.notify("no run yet: launch one in Setup (1) or attach one in Runs (4)")
                return
        elif name == "results":
            target = self.results
            if target is None:
                state = self.monitor.state if self.monitor is not None else None
                if state is not None and (state.run_dir / "eval.npz").is_file():
                    self.call_later(self.show_results, state.run_dir)
                    return
                self.notify("no results open: pick a finished run in Runs (4)")
                return
        else:
            target = self._named(name)
        if self.screen is target or (isinstance(target, str) and self.screen.name == target):
            return
        while len(self.screen_stack) > 1 and self.screen.is_modal:
            self.pop_screen()
        self.switch_screen(target)

    async def start_preset(self, request: StartRequest) -> None:
        """Start a preset as saved (with its `--set` values), as `--run` would."""
        from tui.orchestration.launcher import resolve_config

        try:
            config = resolve_config(
                request.preset,
                request.overrides,
                data_dir=request.data_dir,
                device=request.device,
                check=False,
            )
        except BadInputError as exc:
            self.notify(str(exc), title="cannot start", severity="error", timeout=10)
            return
        await self.start_run(request.preset, config)

    async def start_run(self, preset: str, config: RunConfig, *, edited: bool = False) -> None:
        """Launch the engine on `config` (`preset` as changed in Setup when `edited`) and show
        its Monitor. A config `--run` would refuse (no data, download off) is refused here with
        the same line, its advice naming Setup's field, before a run folder exists. A
        `sizing: auto` config (the first run) is prepared first (tui.screens.first_run)."""
        from engine.sizing import needs_sizing
        from tui.orchestration.launcher import check_before_run
        from tui.screens.monitor import LaunchSpec, MonitorScreen
        from tui.screens.setup_check import SETUP_DATA_HINT

        if needs_sizing(config):
            from tui.screens.first_run import start_prepared

            start_prepared(self, preset, config, edited)
            return

        try:
            check_before_run(config, where=SETUP_DATA_HINT)
        except BadInputError as exc:
            self.notify(str(exc), title="cannot start", severity="error", timeout=10)
            return

        old = self.monitor
        live = old.state if old is not None and not old.engine_gone else None
        if live is not None and live.final is None:
            self.notify(f"{live.run_id} keeps training; attach to it from Runs (4)", timeout=6)
        screen = MonitorScreen(launch=LaunchSpec(preset, config, self.checkpoints, edited))
        self.monitor = screen
        await self._replace(old, screen, f"monitor-{id(screen)}")

    async def attach(self, run_dir: Path) -> None:
        """Show the live view of an existing run (running or finished) from its event log."""
        from tui.screens.monitor import MonitorScreen

        old = self.monitor
        screen = MonitorScreen(run_dir=Path(run_dir))
        self.monitor = screen
        await self._replace(old, screen, f"monitor-{id(screen)}")

    async def show_results(self, run_dir: Path) -> None:
        from tui.screens.results import ResultsScreen

        old = self.results
        if old is not None and old.run_dir == Path(run_dir):
            if self.screen is not old:
                await self.switch_screen(old)
            return
        screen = ResultsScreen(Path(run_dir))
        self.results = screen
        await self._replace(old, screen, f"results-{id(screen)}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Any screen's worker that raised: shown as an error notification and logged; the app
        keeps running (workers are started with exit_on_error=False). The message does not
        bubble: screens pass their workers' failures on (tui.screens.common)."""
        if event.state is not WorkerState.ERROR:
            return
        text = worker_error_text(event.worker)
        self.log.error(text)
        logger.error(text, exc_info=event.worker.error)
        self.notify(text, title="background task failed", severity="error", timeout=10)

    def on_run_launched(self, message: RunLaunched) -> None:
        if self.is_screen_installed("runs"):  # not built yet: it reads the registry when it is
            runs = self.get_screen("runs")
            if hasattr(runs, "reload_later"):
                runs.reload_later()

    # ------------------------------------------------------------------ plot controls

    def adjustable_plots(self) -> list[MetricPlot]:
        """The plots on the screen shown whose view can change (not PR / ROC)."""
        plots = sys.modules.get("tui.widgets.plots")
        if plots is None:  # no plot shown yet; importing it here would load plotext at start
            return []
        try:
            screen = self.screen
        except ScreenStackError:  # starting up or closing: no screen yet
            return []
        return [p for p in screen.query(plots.MetricPlot) if p.adjustable]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.PLOT_ACTIONS:
            plots = self.adjustable_plots()
            if action == "plot_x_axis":
                return any(len(p.x_axes()) > 1 for p in plots)
            return bool(plots)
        return True

    def action_plot_x_axis(self) -> None:
        """Every plot of the screen to its next x axis: epoch -> step -> time -> epoch."""
        plots = [p for p in self.adjustable_plots() if len(p.x_axes()) > 1]
        if plots:
            axis = plots[0].next_x_axis()
            for p in plots:
                p.set_view(x_axis=axis)

    def action_plot_log_y(self) -> None:
        plots = self.adjustable_plots()
        if plots:
            log_y = not plots[0].log_y
            for p in plots:
                p.set_view(log_y=log_y)

    def action_plot_smoothing(self, delta: int) -> None:
        plots = self.adjustable_plots()
        if plots:
            weight = plots[0].next_smoothing(delta)
            for p in plots:
                p.set_view(smoothing=weight)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from system_commands(self, super().get_system_commands(screen))

    # ------------------------------------------------------------------ keys, leaving

    def action_keys(self) -> None:
        """The keys in effect on this screen (and in the focused widget), from the bindings."""
        if isinstance(self.screen, KeysScreen):
            self.screen.dismiss()
            return
        self.push_screen(KeysScreen.for_screen(self.screen))

    def live_run_id(self) -> str | None:
        m = self.monitor
        if m is None or m.state is None or m.state.final is not None or m.engine_gone:
            return None
        return m.state.run_id

    async def action_quit(self) -> None:
        run_id = self.live_run_id()
        if run_id is not None:
            self.exit(
                result=run_id,
                message=(
                    f"Training goes on in the background: cifar-tui attach {run_id}"
                    f"  (or cifar-tui attach last)"
                ),
            )
        else:
            self.exit()
