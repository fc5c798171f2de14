"""Each screen, fed a fixed event log and eval.npz (no live run), against committed SVGs.

Update after an intended change: CIFAR_TUI_UPDATE_SNAPSHOTS=1 pytest tests/tui/test_snapshots.py
(then look at the SVGs in tests/tui/snapshots/ before committing them).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import run_async, wait_for, write_tiny_preset
from tests.tui.fixtures import RUN_ID, make_run
from tui.app import CifarApp
from tui.screens.monitor import MonitorScreen
from tui.screens.results import ResultsScreen
from tui.screens.runs import RunsScreen
from tui.screens.setup import SetupScreen
from tui.widgets.confusion import ConfusionMatrix
from tui.widgets.plots import MetricPlot

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("CIFAR_TUI_UPDATE_SNAPSHOTS") == "1"
SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def fixed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished fixture run under ./checkpoints (relative: the same text in every tmp dir)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIFAR_TUI_CHECKPOINTS", "checkpoints")
    make_run(Path("checkpoints"))
    write_tiny_preset(Path("presets"), name="tiny", epochs=1)
    return Path("checkpoints") / RUN_ID


def _normalise(svg: str) -> str:
    # Rich names its CSS classes after a hash of the content; the text is what we compare
    return re.sub(r"terminal-\d+", "terminal", svg)


def _compare(name: str, svg: str) -> None:
    path = SNAPSHOTS / f"{name}.svg"
    if UPDATE or not path.exists():
        if not UPDATE and os.environ.get("CI") == "true":
            pytest.fail(f"snapshot {path} is missing (CI): run with CIFAR_TUI_UPDATE_SNAPSHOTS=1")
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg)
        if not UPDATE:
            pytest.skip(f"wrote new snapshot {path}")
        return
    expected = path.read_text()
    if _normalise(expected) != _normalise(svg):
        actual = path.with_suffix(".actual.svg")
        actual.write_text(svg)
        diff = "".join(
            list(
                difflib.unified_diff(
                    _normalise(expected).splitlines(True),
                    _normalise(svg).splitlines(True),
                    "expected",
                    "actual",
                    n=0,
                )
            )[:40]
        )
        pytest.fail(f"{name} differs from {path} (actual: {actual})\n{diff}")
    else:
        path.with_suffix(".actual.svg").unlink(missing_ok=True)


async def _shoot(
    app: CifarApp, size: tuple[int, int], ready: Callable[[Pilot], Awaitable[None]]
) -> str:
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        app.clear_notifications()
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        return app.export_screenshot()


def _plots_drawn(screen) -> bool:
    return all(p.draws > 0 for p in screen.query(MetricPlot))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@run_async
async def test_monitor_screen(fixed_run: Path, size: tuple[int, int]) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), attach=fixed_run)

    async def ready(pilot: Pilot) -> None:
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, MonitorScreen)
                and app.screen.state is not None
                and app.screen.state.final is not None
                and app.screen.engine_gone
            ),
            10,
            "the fixture log",
        )
        app.screen.redraw(force=True)
        await wait_for(pilot, lambda: _plots_drawn(app.screen), 5, "plots")

    _compare(f"monitor_{size[0]}x{size[1]}", await _shoot(app, size, ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@run_async
async def test_results_screen_confusion(fixed_run: Path, size: tuple[int, int]) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), results=fixed_run)

    async def ready(pilot: Pilot) -> None:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ResultsScreen) and app.screen.data is not None,
            10,
            "results",
        )
        await pilot.press("right", "right", "down")  # the cursor shows names and counts

    _compare(f"results_{size[0]}x{size[1]}", await _shoot(app, size, ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@run_async
async def test_results_screen_curves(fixed_run: Path, size: tuple[int, int]) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), results=fixed_run)

    async def ready(pilot: Pilot) -> None:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ResultsScreen) and app.screen.data is not None,
            10,
            "results",
        )
        await pilot.press("p", "down", "down")  # worst class by AP

    _compare(f"results_curves_{size[0]}x{size[1]}", await _shoot(app, size, ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@run_async
async def test_runs_screen(fixed_run: Path, size: tuple[int, int]) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), start="runs")

    async def ready(pilot: Pilot) -> None:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunsScreen) and app.screen.rows,
            10,
            "runs",
        )
        await wait_for(pilot, lambda: _plots_drawn(app.screen), 5, "the overlay plot")

    _compare(f"runs_{size[0]}x{size[1]}", await _shoot(app, size, ready))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@run_async
async def test_setup_screen(fixed_run: Path, size: tuple[int, int]) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), presets_dir=Path("presets"))

    async def ready(pilot: Pilot) -> None:
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

    _compare(f"setup_{size[0]}x{size[1]}", await _shoot(app, size, ready))


@run_async
async def test_superclass_toggle_aggregates_the_matrix(fixed_run: Path) -> None:
    app = CifarApp(checkpoints=Path("checkpoints"), results=fixed_run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ResultsScreen) and app.screen.data is not None,
            10,
            "results",
        )
        matrix = app.screen.query_one(ConfusionMatrix)
        await pilot.press("z")
        assert matrix.view is not None and matrix.view.counts.shape == (20, 20)
        assert int(matrix.view.counts.sum()) == 2000
        await pilot.press("z")
        assert matrix.view.counts.shape == (100, 100)
