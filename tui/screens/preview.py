"""Augmentation preview: asks an engine process (`python -m engine preview`) for original and
augmented training images, then draws them with half blocks. Torch stays in that process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static
from textual.worker import Worker

from tui.messages import PreviewReady
from tui.screens.common import pass_worker_error_on
from tui.widgets.preview import AugmentPreview

PREVIEW_COUNT = 6
PREVIEW_TIMEOUT_S = 120


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def run_preview(config_yaml: str, out: Path, *, count: int, seed: int) -> str | None:
    """Run the engine's preview command; returns an error text or None."""
    cfg_path = out.with_suffix(".yaml")
    cfg_path.write_text(config_yaml)
    cmd = [sys.executable, "-m", "engine", "preview", str(cfg_path), str(out)]
    cmd += ["--count", str(count), "--seed", str(seed)]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=engine_env(),
            timeout=PREVIEW_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"the preview took over {PREVIEW_TIMEOUT_S} s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"engine preview exited with {done.returncode}"
    return None


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

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="preview-head")
            with VerticalScroll():
                yield AugmentPreview(id="preview")
            yield Footer()

    def on_mount(self) -> None:
        self._head("asking the engine for an augmentation preview ...")
        self.fetch()

    def on_unmount(self) -> None:
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
        error = run_preview(self.config_yaml, out, count=self.count, seed=self.seed)
        self.post_message(PreviewReady(None if error else out, error))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        pass_worker_error_on(self, event)  # the app shows it

    def _head(self, text: str) -> None:
        self.query_one("#preview-head", Static).update(Text(text, style="bold"))

    @on(PreviewReady)
    def _ready(self, message: PreviewReady) -> None:
        widget = self.query_one("#preview", AugmentPreview)
        if message.path is None:
            self._head("augmentation preview failed")
            widget.show_message(f"engine preview failed: {message.error}")
            return
        n = widget.show_npz(message.path)
        self._head(
            f"augmentation preview: {n} training images, original (top) and augmented (below)"
            f" · draw {self.seed + 1}"
        )

    def action_reroll(self) -> None:
        self.seed += 1
        self._head("drawing new augmentations ...")
        self.fetch()

    def action_close(self) -> None:
        self.dismiss(None)
