"""Augmentation preview: asks a warm engine process (tui.orchestration.preview_engine) for
original and augmented training images, then draws them with half blocks. Torch stays in that
process, which lives as long as the dialog: a new draw (r) costs only the augmentation."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from tui.messages import PreviewReady
from tui.orchestration.preview_engine import PreviewEngine
from tui.screens.common import pass_worker_error_on
from tui.widgets.preview import AugmentPreview

PREVIEW_COUNT = 6
PREVIEW_TIMEOUT_S = 120


def run_preview(
    config_yaml: str,
    out: Path,
    *,
    count: int,
    seed: int,
    engine: PreviewEngine,
    progress: Callable[[str], None] | None = None,
) -> str | None:
    """One draw from the dialog's warm engine process; returns an error text or None."""
    return engine.draw(
        config_yaml, out, count=count, seed=seed, timeout=PREVIEW_TIMEOUT_S, progress=progress
    )


class PreviewScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    PreviewScreen { align: center middle; }
    PreviewScreen > Vertical {
        width: 100%; height: 100%; border: thick $accent; background: $surface;
    }
    PreviewScreen #preview-head { height: 1; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "close"),
        Binding("r", "reroll", "new draw"),
    ]

    def __init__(self, config_yaml: str, *, count: int = PREVIEW_COUNT) -> None:
        super().__init__()
        self.config_yaml = config_yaml
        self.count = count
        self.seed = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="cifar-tui-preview-")
        self.engine = PreviewEngine()
        self._started = 0.0  # when the current draw was asked for (monotonic s)
        self.last_draw_s: float | None = None  # how long the last draw took
        self.drawing = False  # one draw at a time: the engine answers one request at once

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="preview-head")
            with VerticalScroll():
                yield AugmentPreview(id="preview")
            yield Footer()

    def on_mount(self) -> None:
        self._head("asking the engine for an augmentation preview ...")
        self.drawing = True
        self.fetch()

    def on_unmount(self) -> None:
        self.engine.close()  # the engine process (~900 MB with CIFAR-100) goes with the dialog
        self._tmp.cleanup()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="preview",
        name="the augmentation preview",
    )
    def fetch(self) -> None:
        out = Path(self._tmp.name) / f"preview-{self.seed}.npz"
        self._started = time.monotonic()
        draw = self.seed + 1

        def progress(text: str) -> None:
            if not self.engine.closed:  # closed: nobody to tell
                line = f"draw {draw}: {text} ({time.monotonic() - self._started:.1f} s)"
                self.app.call_from_thread(self._head, line)

        error = run_preview(
            self.config_yaml,
            out,
            count=self.count,
            seed=self.seed,
            engine=self.engine,
            progress=progress,
        )
        self.post_message(PreviewReady(None if error else out, error))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.drawing = False
        pass_worker_error_on(self, event)  # the app shows it

    def _head(self, text: str) -> None:
        for head in self.query("#preview-head").results(Static):  # none once the dialog closed
            head.update(Text(text, style="bold"))

    @on(PreviewReady)
    def _ready(self, message: PreviewReady) -> None:
        self.drawing = False
        widget = self.query_one("#preview", AugmentPreview)
        if message.path is None:
            self._head("augmentation preview failed")
            widget.show_message(f"engine preview failed: {message.error}")
            return
        n = widget.show_npz(message.path)
        self.last_draw_s = time.monotonic() - self._started
        self._head(
            f"augmentation preview: {n} training images, original (top) and augmented (below)"
            f" · draw {self.seed + 1} in {self.last_draw_s:.1f} s · r: new draw"
        )

    def action_reroll(self) -> None:
        if self.drawing:
            self.notify("a draw is under way: wait for it", severity="warning")
            return
        self.seed += 1
        self._head("drawing new augmentations ...")
        self.drawing = True
        self.fetch()

    def action_close(self) -> None:
        self.dismiss(None)
