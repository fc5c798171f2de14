"""Command palette (Ctrl+P): launch the Setup config (with its edits), start a preset as saved,
stop or checkpoint the run, open results, attach, go to a screen; and Textual's own system
commands, with a Screenshot that saves into a folder that exists."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from textual.app import App, SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.config import load_config
from engine.errors import ConfigError
from tui.screens.keys import SCREEN_KEYS
from tui.screens.lr_finder import open_lr_finder
from tui.screens.resume import resume_run
from tui.screens.setup import SetupScreen

if TYPE_CHECKING:
    from tui.app import CifarApp

Command = tuple[str, str, Callable[[], Any]]  # title, help text, what it runs


class RunCommands(Provider):
    @property
    def cifar(self) -> CifarApp:
        return cast("CifarApp", self.app)

    def _setup(self) -> SetupScreen | None:
        setup = self.cifar.get_screen("setup")
        return setup if isinstance(setup, SetupScreen) else None

    def _commands(self) -> list[Command]:
        app = self.cifar
        out: list[Command] = []
        setup = self._setup()
        if setup is not None:
            edited = f"preset {setup.preset or '-'} with the edits made in Setup"
            out.append(("launch the Setup config", edited, self._launch_setup))
            lr_finder = partial(open_lr_finder, app, setup)
            out.append(("LR finder on the Setup config", "curve; apply sets optim.lr", lr_finder))
        presets = setup.preset_names() if setup is not None else []
        for name in presets:
            out.append(
                (
                    f"start preset {name} (as saved)",
                    "its YAML file as it is, without Setup's edits",
                    partial(self._start, name),
                )
            )
        if app.live_run_id() is not None:
            out.append(("stop run after this epoch", app.live_run_id() or "", self._stop))
            out.append(("checkpoint run now", app.live_run_id() or "", self._checkpoint))
        try:
            rows = app.registry.runs()
        except Exception:  # noqa: BLE001 - no registry yet: no run commands
            rows = []
        for r in rows[:50]:
            run_dir = app.checkpoints / r.run_id
            if (run_dir / "eval.npz").is_file():
                out.append(
                    (f"open results {r.run_id}", r.preset, partial(app.show_results, run_dir))
                )
            if r.status in ("interrupted", "crashed"):
                resume = partial(resume_run, app, run_dir)
                out.append((f"resume {r.run_id}", f"{r.preset}, {r.status}", resume))
            if (run_dir / "events.jsonl").is_file():
                out.append(
                    (f"attach {r.run_id}", f"{r.preset}, {r.status}", partial(app.attach, run_dir))
                )
        for key, name in enumerate(SCREEN_KEYS, 1):
            out.append((f"go to {name}", f"key {key}", partial(app.action_goto, name)))
        return out

    async def _launch_setup(self) -> None:
        setup = self._setup()
        if setup is not None:
            await setup.action_launch()

    async def _start(self, name: str) -> None:
        app = self.cifar
        setup = self._setup()
        if setup is None:
            return
        try:
            cfg = load_config(str(setup.preset_file(name)))
        except ConfigError as exc:
            app.notify(str(exc), severity="error")
            return
        await app.start_run(name, cfg)

    def _stop(self) -> None:
        monitor = self.cifar.monitor
        if monitor is not None:
            monitor.action_stop_after_epoch()

    def _checkpoint(self) -> None:
        monitor = self.cifar.monitor
        if monitor is not None:
            monitor.action_checkpoint_now()

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


# ---------------------------------------------------------------------------- Screenshot


def screenshot_folder(checkpoints: Path) -> Path:
    """Where a screenshot goes: ~/Downloads (Textual's choice) when it exists, else the current
    folder, else the checkpoints folder, else the temp folder: the first that exists and takes a
    file. Textual's own command failed on a machine without ~/Downloads (servers, containers)."""
    import tempfile

    for folder in (Path("~/Downloads").expanduser(), Path.cwd(), checkpoints):
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            return folder.resolve()
    return Path(tempfile.gettempdir())


def save_screenshot(app: App[Any], checkpoints: Path) -> Path | None:
    """An SVG of the screen into `screenshot_folder`; the path (or why not) as a notification."""
    folder = screenshot_folder(checkpoints)
    try:
        path = Path(app.save_screenshot(path=str(folder)))
    except OSError as exc:
        app.notify(f"screenshot not saved in {folder}: {exc}", title="Screenshot", severity="error")
        return None
    app.notify(f"saved {path}", title="Screenshot", timeout=8)
    return path


def system_commands(app: CifarApp, commands: Iterable[SystemCommand]) -> Iterable[SystemCommand]:
    """Textual's system commands, its Screenshot replaced by one that saves where it can."""
    for command in commands:
        if command.title == "Screenshot":
            yield SystemCommand(
                command.title,
                "Save an SVG screenshot of this screen (in ~/Downloads or the current folder)",
                # after the palette has closed, so that it is not in the picture
                lambda: app.set_timer(0.1, partial(save_screenshot, app, app.checkpoints)),
            )
        else:
            yield command
