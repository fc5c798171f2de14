"""The first run in the dashboard: the panel that gets a `sizing: auto` recipe ready (finding
CIFAR-100, downloading it with a progress bar, sizing it to the device:
`tui.orchestration.first_run`), the Monitor's header lines for it, and what happens at its end
(Results, and a "what next" note)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, ProgressBar, Static

from engine.config import RunConfig
from engine.errors import BadInputError
from engine.events import Finished, RunStarted
from tui.orchestration import what_next
from tui.orchestration.first_run import FirstRun, prepare_first_run, saved_preset

if TYPE_CHECKING:
    from tui.app import CifarApp
    from tui.screens.monitor import MonitorScreen


class PrepareScreen(ModalScreen[FirstRun | None]):
    """'first run: getting ready': each step as a line, the download as a progress bar. It
    closes by itself with the prepared run (None: refused, and a notification says why)."""

    DEFAULT_CSS = """
    PrepareScreen { align: center middle; }
    PrepareScreen #panel { width: 90; height: auto; border: round $accent; padding: 0 1; }
    PrepareScreen #steps { height: auto; }
    PrepareScreen ProgressBar { display: none; }
    PrepareScreen ProgressBar.-shown { display: block; }
    """

    def __init__(self, preset: str, config: RunConfig) -> None:
        super().__init__()
        self.preset = preset
        self.config = config
        self.lines: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="panel"):
            yield Label(Text("first run: getting ready", style="bold"))
            yield Static("", id="steps")
            yield ProgressBar(total=None, show_eta=True, id="download")

    def on_mount(self) -> None:
        self.prepare()

    @work(thread=True, exit_on_error=False, name="preparing the first run")
    def prepare(self) -> None:
        try:
            prepared = prepare_first_run(
                self.config,
                base=saved_preset(self.preset),  # Setup's edits win over the sizing
                progress=lambda done, total: self.app.call_from_thread(self._progress, done, total),
                say=lambda line: self.app.call_from_thread(self.say, line),
            )
        except BadInputError as exc:
            self.app.call_from_thread(self._refused, str(exc))
            return
        self.app.call_from_thread(self.dismiss, prepared)

    def say(self, line: str) -> None:
        self.lines.append(line)
        self.query_one("#steps", Static).update("\n".join(self.lines))

    def _progress(self, done: int, total: int | None) -> None:
        bar = self.query_one("#download", ProgressBar)
        bar.add_class("-shown")
        bar.update(total=total, progress=done)

    def _refused(self, message: str) -> None:
        self.app.notify(message, title="cannot start", severity="error", timeout=10)
        self.dismiss(None)


def start_prepared(app: CifarApp, preset: str, config: RunConfig, edited: bool) -> None:
    """Prepare `config` in the panel, then start it as Setup starts any run."""

    async def ready(prepared: FirstRun | None) -> None:
        if prepared is None:
            return
        for note in prepared.notes:
            app.notify(note, title="no CIFAR-100", severity="warning", timeout=15)
        await app.start_run(preset, prepared.config, edited=edited)

    app.push_screen(PrepareScreen(preset, config), ready)


def header_lines(started: RunStarted | None) -> list[Text]:
    """The Monitor's lines above its info: the size the run got, the SYNTHETIC banner."""
    lines = what_next.header_lines(started)
    return [Text(line, style="bold" if i == 0 else "bold yellow") for i, line in enumerate(lines)]


def on_finished(monitor: MonitorScreen, final: Finished) -> None:
    """A first run that ended well: its Results, and what to try next."""
    state = monitor.state
    if state is None or final.status != "done" or not what_next.is_first_run(state.started):
        return
    lines = what_next.what_next_lines(state.run_id, state.run_dir, dashboard=True)
    monitor.app.notify("\n".join(lines[1:]), title=lines[0].rstrip(":"), timeout=120, markup=False)
    if (state.run_dir / "eval.npz").is_file():
        monitor.cifar.call_later(monitor.cifar.show_results, state.run_dir)
