"""Command palette (Ctrl+P): launch the Setup config (with its edits), start a preset as saved,
stop or checkpoint the run, open results, attach, go to a screen."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.config import load_config
from engine.errors import ConfigError
from tui.screens.keys import SCREEN_KEYS

if TYPE_CHECKING:
    from tui.app import CifarApp


class RunCommands(Provider):
    def _commands(self) -> list[tuple[str, str, object]]:
        app: CifarApp = self.app  # type: ignore[assignment]
        out: list[tuple[str, str, object]] = []
        setup = app.get_screen("setup")
        if hasattr(setup, "action_launch"):
            edited = f"preset {setup.preset or '-'} with the edits made in Setup"  # type: ignore[attr-defined]
            out.append(("launch the Setup config", edited, self._launch_setup))
        presets = setup.preset_names() if hasattr(setup, "preset_names") else []
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
            if (run_dir / "events.jsonl").is_file():
                out.append(
                    (f"attach {r.run_id}", f"{r.preset}, {r.status}", partial(app.attach, run_dir))
                )
        for key, name in enumerate(SCREEN_KEYS, 1):
            out.append((f"go to {name}", f"key {key}", partial(app.action_goto, name)))
        return out

    async def _launch_setup(self) -> None:
        app: CifarApp = self.app  # type: ignore[assignment]
        await app.get_screen("setup").action_launch()  # type: ignore[attr-defined]

    async def _start(self, name: str) -> None:
        app: CifarApp = self.app  # type: ignore[assignment]
        setup = app.get_screen("setup")
        try:
            cfg = load_config(str(setup.presets_dir / f"{name}.yaml"))  # type: ignore[attr-defined]
        except ConfigError as exc:
            app.notify(str(exc), severity="error")
            return
        await app.start_run(name, cfg)

    def _stop(self) -> None:
        app: CifarApp = self.app  # type: ignore[assignment]
        if app.monitor is not None:
            app.monitor.action_stop_after_epoch()

    def _checkpoint(self) -> None:
        app: CifarApp = self.app  # type: ignore[assignment]
        if app.monitor is not None:
            app.monitor.action_checkpoint_now()

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)  # type: ignore[arg-type]
