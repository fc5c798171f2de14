"""A worker that raises, on any screen, is shown (an error notification naming it) and the app
keeps running: the app's one Worker.StateChanged handler, workers with exit_on_error=False."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot

import tui.screens.monitor
import tui.screens.preview
import tui.screens.results
from engine.runs import RunRegistry
from tests.tui.conftest import wait_for, write_tiny_preset
from tests.tui.fixtures import make_run
from tui.app import CifarApp, worker_error_text
from tui.screens.monitor import MonitorScreen
from tui.screens.preview import PreviewScreen
from tui.screens.runs import RunsScreen
from tui.screens.setup import SetupScreen


def errors(app: App[Any]) -> list[str]:
    """The error notifications on screen now."""
    return [n.message for n in app._notifications if n.severity == "error"]


async def _error_shown(pilot: Pilot[Any], text: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: any(text in m for m in errors(app)), 10, f"a toast: {text}")
    assert app.is_running and app.return_code is None  # no crash, no exit


async def _still_answers_keys(pilot: Pilot[Any]) -> None:
    await pilot.press("4")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunsScreen), 5, "runs (key 4)")


def test_any_screens_failing_worker_is_shown_once_and_the_app_goes_on(
    tmp_path: Path, checkpoints: Path
) -> None:
    write_tiny_preset(tmp_path / "presets")

    async def boom() -> None:
        raise RuntimeError("disk on fire\n  (second line)")

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), 10, "setup")
            app.screen.run_worker(boom(), name="the test task", exit_on_error=False)
            text = "the test task failed: RuntimeError: disk on fire (second line)"
            await _error_shown(pilot, text)
            assert errors(app) == [text]  # one line, shown once
            await _still_answers_keys(pilot)

    asyncio.run(scenario())


def test_worker_error_text_is_one_line_naming_the_worker() -> None:
    class FakeWorker:
        name, group = "", "overlay"
        error: BaseException | None = ValueError("bad\nvalue")

    assert worker_error_text(FakeWorker()) == "overlay failed: ValueError: bad value"  # type: ignore[arg-type]


def test_a_failing_results_loader_is_shown(
    checkpoints: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = make_run(checkpoints)

    def load_eval(run_dir: Path) -> object:
        raise RuntimeError(f"cannot decode {run_dir.name}")

    monkeypatch.setattr(tui.screens.results, "load_eval", load_eval)

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, results=run_dir)
        async with app.run_test(size=(100, 30)) as pilot:
            text = f"loading results failed: RuntimeError: cannot decode {run_dir.name}"
            await _error_shown(pilot, text)
            await _still_answers_keys(pilot)

    asyncio.run(scenario())


def test_a_failing_preview_is_shown(
    tmp_path: Path, checkpoints: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_preview(config_yaml: str, out: Path, *, count: int, seed: int, **_: Any) -> str | None:
        raise OSError(f"no room for {out.name}")

    monkeypatch.setattr(tui.screens.preview, "run_preview", run_preview)
    write_tiny_preset(tmp_path / "presets")

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), 10, "setup")
            await app.push_screen(PreviewScreen("model: {name: wrn}\n"))
            text = "the augmentation preview failed: OSError: no room for preview-0.npz"
            await _error_shown(pilot, text)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), 5, "setup again")
            await _still_answers_keys(pilot)

    asyncio.run(scenario())


def test_a_failing_runs_overlay_is_shown(
    checkpoints: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_run(checkpoints)

    def epochs(self: RunRegistry, run_id: str) -> list[dict[str, Any]]:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(RunRegistry, "epochs", epochs)

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(100, 30)) as pilot:
            await _error_shown(pilot, "the runs plot failed: RuntimeError: database is locked")
            assert isinstance(app.screen, RunsScreen) and app.screen.rows  # the table is there
            await pilot.press("1")
            await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), 5, "setup")

    asyncio.run(scenario())


def test_a_failing_supervisor_is_shown_once_and_in_the_monitor(
    checkpoints: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = make_run(checkpoints)

    def supervise(*args: object, **kwargs: object) -> tuple[int | None, bool]:
        raise RuntimeError("tail lost")

    monkeypatch.setattr(tui.screens.monitor, "supervise", supervise)

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, attach=run_dir)
        async with app.run_test(size=(100, 30)) as pilot:
            text = "the run supervisor failed: RuntimeError: tail lost"
            await _error_shown(pilot, text)
            assert errors(app) == [text]  # the app's notification only, not a second one
            monitor = app.monitor
            assert isinstance(monitor, MonitorScreen)
            assert monitor.launch_error == "the supervisor failed: RuntimeError: tail lost"
            await _still_answers_keys(pilot)

    asyncio.run(scenario())
