"""Each screen, fed a fixed event log and eval.npz (no live run), against committed SVGs, through
pytest-textual-snapshot's `snap_compare` (snapshots in __snapshots__/test_snapshots/).

Update after an intended change: pytest tests/tui/test_snapshots.py --snapshot-update
(then look at the SVGs before committing them; a failing run writes snapshot_report.html).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen

from tests.tui.compare_runs import two_arms
from tests.tui.conftest import wait_for, write_tiny_preset
from tests.tui.fixtures import RUN_ID, make_run
from tui.app import CifarApp
from tui.screens.compare import CompareScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.results import ResultsScreen
from tui.screens.runs import RunsScreen
from tui.screens.setup import SetupScreen
from tui.widgets.confusion import ConfusionMatrix
from tui.widgets.plots import MetricPlot

SIZES = [(80, 24), (120, 40)]
SnapCompare = Callable[..., bool]  # the snap_compare fixture's function
RunBefore = Callable[[Pilot[Any]], Awaitable[None]]


@pytest.fixture
def fixed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished fixture run under ./checkpoints (relative: the same text in every tmp dir)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIFAR_TUI_CHECKPOINTS", "checkpoints")
    make_run(Path("checkpoints"))
    write_tiny_preset(Path("presets"), name="tiny", epochs=1)
    return Path("checkpoints") / RUN_ID


def settled(ready: RunBefore) -> RunBefore:
    """`ready`, then no toasts (their text and timing are not what a snapshot is about)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await ready(pilot)
        await pilot.pause()  # the notifications asked for so far are on the app
        pilot.app.clear_notifications()
        await pilot.pause()

    return run_before


def _plots_drawn(screen: Screen[Any]) -> bool:
    return all(p.draws > 0 for p in screen.query(MetricPlot))


def _results_ready(app: CifarApp) -> bool:
    return isinstance(app.screen, ResultsScreen) and app.screen.data is not None


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_monitor_screen(snap_compare: SnapCompare, fixed_run: Path, size: tuple[int, int]) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), attach=fixed_run)

    async def ready(pilot: Pilot[Any]) -> None:
        def followed() -> bool:
            screen = app.screen
            return (
                isinstance(screen, MonitorScreen)
                and screen.state is not None
                and screen.state.final is not None
                and screen.engine_gone
            )

        await wait_for(pilot, followed, 10, "the fixture log")
        screen = app.screen
        assert isinstance(screen, MonitorScreen)
        screen.redraw(force=True)
        await wait_for(pilot, lambda: _plots_drawn(screen), 5, "plots")

    assert snap_compare(app, terminal_size=size, run_before=settled(ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_results_screen_confusion(
    snap_compare: SnapCompare, fixed_run: Path, size: tuple[int, int]
) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), results=fixed_run)

    async def ready(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: _results_ready(app), 10, "results")
        await pilot.press("right", "right", "down")  # the cursor shows names and counts

    assert snap_compare(app, terminal_size=size, run_before=settled(ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_results_screen_curves(
    snap_compare: SnapCompare, fixed_run: Path, size: tuple[int, int]
) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), results=fixed_run)

    async def ready(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: _results_ready(app), 10, "results")
        await pilot.press("p", "down", "down")  # worst class by AP

    assert snap_compare(app, terminal_size=size, run_before=settled(ready))


def test_error_images_panel(snap_compare: SnapCompare, fixed_run: Path) -> None:
    """Enter on a confusion cell: its test images, captioned, highest confidence first."""
    from tui.screens.error_images import ErrorImagesScreen

    app = CifarApp(checkpoints=Path("checkpoints"), results=fixed_run)

    async def ready(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: _results_ready(app), 10, "results")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorImagesScreen), 10, "images")

    assert snap_compare(app, terminal_size=(120, 40), run_before=settled(ready))


def test_results_screen_calibration(snap_compare: SnapCompare, fixed_run: Path) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), results=fixed_run)

    async def ready(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: _results_ready(app), 10, "results")
        await pilot.press("c")

    assert snap_compare(app, terminal_size=(120, 40), run_before=settled(ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_runs_screen(snap_compare: SnapCompare, fixed_run: Path, size: tuple[int, int]) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), start="runs")

    async def ready(pilot: Pilot[Any]) -> None:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunsScreen) and bool(app.screen.rows),
            10,
            "runs",
        )
        await wait_for(pilot, lambda: _plots_drawn(app.screen), 5, "the overlay plot")

    assert snap_compare(app, terminal_size=size, run_before=settled(ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare_screen(
    snap_compare: SnapCompare,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    """Two arms of two seeds each (hand-built runs): the runs, the config diff, the paired test."""
    monkeypatch.chdir(tmp_path)
    a, b = two_arms(Path("checkpoints"), seeds=(0, 1))
    app = CifarApp(checkpoints=Path("checkpoints"), start="runs")

    async def ready(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "runs")
        await app.push_screen(CompareScreen([m.run_id for m in a + b]))
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, CompareScreen) and app.screen.ready,
            10,
            "the comparison",
        )
        await wait_for(pilot, lambda: _plots_drawn(app.screen), 5, "the curves")

    assert snap_compare(app, terminal_size=size, run_before=settled(ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_setup_screen(snap_compare: SnapCompare, fixed_run: Path, size: tuple[int, int]) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), presets_dir=Path("presets"))

    async def ready(pilot: Pilot[Any]) -> None:
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, SetupScreen)
                and app.screen.preset == "tiny"
                and app.screen.form_ready
            ),
            10,
            "setup",
        )
        # the scrollbar's thumb measures the whole form, which grows with every config field
        # added to the engine; the snapshot is about what is on screen
        app.screen.query_one("#form").styles.scrollbar_size_vertical = 0

    assert snap_compare(app, terminal_size=size, run_before=settled(ready))


def test_superclass_toggle_aggregates_the_matrix(fixed_run: Path) -> None:
    async def scenario() -> None:
        app = CifarApp(checkpoints=Path("checkpoints"), results=fixed_run)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: _results_ready(app), 10, "results")
            matrix = app.screen.query_one(ConfusionMatrix)
            await pilot.press("z")
            assert matrix.view is not None and matrix.view.counts.shape == (20, 20)
            assert int(matrix.view.counts.sum()) == 2000
            await pilot.press("z")
            assert matrix.view.counts.shape == (100, 100)

    asyncio.run(scenario())
