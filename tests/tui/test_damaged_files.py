"""The dashboard on damaged run files: a panel or a warning names the file, and the rest of the
app keeps working (other screens, going back)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Static

from tests.tui.conftest import wait_for
from tests.tui.fixtures import make_run
from tui.app import CifarApp
from tui.screens.monitor import MonitorScreen
from tui.screens.results import ResultsScreen
from tui.screens.runs import RunsScreen


def _notes(app: App[Any], severity: str) -> list[str]:
    return [n.message for n in app._notifications if n.severity == severity]


def _text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def test_results_on_a_truncated_eval_npz_show_a_panel_and_the_keys_work(checkpoints) -> None:
    run_dir = make_run(checkpoints)
    path = run_dir / "eval.npz"
    path.write_bytes(path.read_bytes()[:4000])

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, results=run_dir)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            assert isinstance(screen, ResultsScreen)
            await wait_for(pilot, lambda: screen.has_class("-damaged"), 10, "the damage panel")
            shown = " ".join(_text(screen, "#damaged").split())
            assert f"eval.npz is damaged (truncated zip, or not a zip file): {path}" in shown
            await pilot.press("escape", "z", "p")  # nothing to act on: no error, no crash
            await pilot.press("4")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "runs (key 4)")
            await pilot.press("3")
            await wait_for(pilot, lambda: app.screen is screen, 5, "back to the results")
            assert app.is_running and not _notes(app, "error")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("summary", "damage"),
    [
        ([1, 2, 3], "it holds a list"),
        ({"status": "done", "test_top1": "high"}, 'test_top1 = "high"'),
    ],
)
def test_a_damaged_summary_json_opens_the_results_with_a_warning(
    checkpoints, summary, damage
) -> None:
    run_dir = make_run(checkpoints)
    (run_dir / "summary.json").write_text(json.dumps(summary))

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, results=run_dir)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            assert isinstance(screen, ResultsScreen)
            await wait_for(pilot, lambda: screen.data is not None, 10, "the results")
            (warning,) = _notes(app, "warning")
            assert warning.startswith(f"{run_dir / 'summary.json'} is damaged ({damage}")
            assert not screen.has_class("-damaged")
            await pilot.press("4")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "runs (key 4)")
            assert isinstance(app.screen, RunsScreen) and app.screen.rows
            assert app.is_running and not _notes(app, "error")

    asyncio.run(scenario())


def test_the_monitor_on_an_empty_log_says_so(checkpoints) -> None:
    run_dir = make_run(checkpoints, finished=False)
    (run_dir / "events.jsonl").write_text("")

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, attach=run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            monitor = app.screen
            assert isinstance(monitor, MonitorScreen)
            await wait_for(pilot, lambda: monitor.engine_gone, 20, "the supervisor to give up")
            await pilot.pause()
            status = " ".join(_text(monitor, "#status").split())
            assert status == (
                f"no events in {run_dir / 'events.jsonl'} and no engine holds the run; it never "
                "started or its log was deleted"
            )
            assert "NOT_STARTED" in _text(monitor, "#title")
            await pilot.press("4")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "runs (key 4)")

    asyncio.run(scenario())


def test_the_monitor_skips_one_bad_line_and_shows_every_other_event(checkpoints) -> None:
    run_dir = make_run(checkpoints)
    log = run_dir / "events.jsonl"
    lines = log.read_text().splitlines()
    lines.insert(10, json.dumps({"type": "epoch_end", "epoch": 3}))
    log.write_text("\n".join(lines) + "\n")

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, attach=run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            monitor = app.screen
            assert isinstance(monitor, MonitorScreen)
            await wait_for(pilot, lambda: monitor.engine_gone, 20, "the run to be read")
            state = monitor.state
            assert state is not None and state.final is not None
            assert state.last_epoch is not None and state.last_epoch.epoch == 12
            assert len(state.train_loss) == 12
            (warning,) = _notes(app, "warning")
            assert warning.startswith(f"skipped line 11 of {log}: epoch_end event: lacks epochs")

    asyncio.run(scenario())


def test_deleting_a_run_from_a_damaged_registry_is_an_error_note_not_a_crash(checkpoints) -> None:
    """The registry turns to garbage while the Runs screen is open: `d`, `y` shows what is
    wrong, keeps the run folder, and the app goes on."""
    run_dir = make_run(checkpoints)

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            await wait_for(pilot, lambda: bool(screen.rows), 10, "the run listed")
            (checkpoints / "runs.sqlite").write_bytes(b"not a database" * 100)
            await pilot.press("d")
            await wait_for(pilot, lambda: app.screen is not screen, 5, "the confirmation")
            await pilot.press("y")
            said = f"cannot delete {run_dir.name}: "

            def delete_notes() -> list[str]:
                return [n for n in _notes(app, "error") if n.startswith(said)]

            await wait_for(pilot, lambda: bool(delete_notes()), 5, "the error note")
            (note,) = delete_notes()
            assert "runs.sqlite" in note and "--rebuild" in note
            assert run_dir.is_dir() and app.is_running

    asyncio.run(scenario())


def test_results_on_a_damaged_eval_npz_render_under_no_color(checkpoints, monkeypatch) -> None:
    """NO_COLOR=1 filters every segment through Textual's monochrome filter, which reads each
    segment's style: the empty confusion matrix behind the damage panel used to crash it."""
    monkeypatch.setenv("NO_COLOR", "1")
    run_dir = make_run(checkpoints)
    path = run_dir / "eval.npz"
    path.write_bytes(path.read_bytes()[:4000])

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, results=run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: screen.has_class("-damaged"), 10, "the damage panel")
            await pilot.pause()
            assert app.is_running and app.return_code is None

    asyncio.run(scenario())


def test_every_results_view_renders_under_no_color(checkpoints, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    run_dir = make_run(checkpoints)

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, results=run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, ResultsScreen)
            await wait_for(pilot, lambda: screen.data is not None, 10, "the results")
            for key in ("z", "m", "z", "p", "4", "1"):  # superclasses, matrix, PR/ROC, screens
                await pilot.press(key)
                await pilot.pause()
            assert app.is_running and app.return_code is None and not _notes(app, "error")

    asyncio.run(scenario())
