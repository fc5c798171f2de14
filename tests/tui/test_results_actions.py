"""Results of runs without a test evaluation (diverged, killed): the screen says why and what can
be done; the Monitor offers `r: results` only where there are some. Fixture runs, no engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text

from engine.events import EVENTS_FILE
from tests.tui.conftest import wait_for
from tests.tui.fixtures import make_run, typed
from tui.app import CifarApp
from tui.screens.results import ResultsScreen


def _append(run_dir: Path, *events: dict) -> None:
    with (run_dir / EVENTS_FILE).open("a") as f:
        for ev in events:
            f.write(typed(ev).to_json() + "\n")


def _diverged_run(root: Path) -> Path:
    run_dir = make_run(root, epochs=2, finished=False)
    bad = [
        dict(type="bad_step", t=2e9 + k, epoch=3, step=251 + k, loss=float("nan"), consecutive=k)
        for k in range(1, 6)
    ]
    summary = {"run_id": run_dir.name, "status": "diverged", "epochs_done": 2}
    _append(run_dir, *bad, dict(type="finished", t=2e9 + 9, status="diverged", summary=summary))
    return run_dir


def _panel(app: CifarApp) -> Text:
    screen = app.screen
    assert isinstance(screen, ResultsScreen)
    assert screen.has_class("-damaged")  # the panel is shown in place of the tabs
    return screen.panel_text


def test_a_diverged_run_shows_why_in_red_and_offers_no_evaluation_without_best_pt(tmp_path):
    run_dir = _diverged_run(tmp_path / "ck")

    async def scenario() -> None:
        app = CifarApp(checkpoints=tmp_path / "ck", results=run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.results and app.results.missing, 10, "the panel")
            text = _panel(app)
            assert "diverged: 5 non-finite losses in a row, the last nan at step 256" in text.plain
            assert "no intact best.pt to evaluate" in text.plain
            red = [s for s in text.spans if "red" in str(s.style)]
            assert red and text.plain[red[0].start : red[0].end].startswith("diverged: 5")
            screen = app.screen
            assert isinstance(screen, ResultsScreen)
            assert screen.check_action("evaluate", (False,)) is False
            assert screen.check_action("resume", ()) is False  # diverged: not resumable
            await pilot.press("e")  # not offered: nothing happens, nothing raises
            assert not screen.evaluating

    asyncio.run(scenario())


def test_a_killed_run_says_so_and_offers_resume(tmp_path):
    run_dir = make_run(tmp_path / "ck", epochs=2, finished=False)  # no final event, no lock

    async def scenario() -> None:
        app = CifarApp(checkpoints=tmp_path / "ck", results=run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.results and app.results.missing, 10, "the panel")
            text = _panel(app).plain
            assert "the engine died without a final event" in text and "R: resume" in text
            screen = app.screen
            assert isinstance(screen, ResultsScreen) and screen.check_action("resume", ())

    asyncio.run(scenario())


def test_the_monitor_offers_results_only_where_there_are_some(tmp_path):
    root = tmp_path / "ck"
    diverged = _diverged_run(root)
    done = make_run(root, run_id="20260101-120000-done-0001", epochs=2)

    async def check(run_dir: Path, offer: str) -> None:
        app = CifarApp(checkpoints=root, attach=run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.monitor and app.monitor.engine_gone, 10, "the log")
            monitor = app.monitor
            assert monitor is not None and monitor.state is not None
            text = monitor._status(monitor.state).plain
            assert offer in text and ("r: results" in text) == (run_dir == done)
            await pilot.press("r")  # Results, which says why there are none
            await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), 5, "Results")

    async def scenario() -> None:
        await check(diverged, "r: why no test results")
        await check(done, "r: results")

    asyncio.run(scenario())
