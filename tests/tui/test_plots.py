"""The plots: nice ticks, the debiased EMA, a lone point, the header that is never cut, the x axis
/ log y / smoothing keys on the Monitor, and the palette's Screenshot without ~/Downloads."""

from __future__ import annotations

import asyncio
import io
import math
import random
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult
from textual.command import CommandList

from tests.tui.conftest import wait_for
from tests.tui.fixtures import make_run
from tui.app import CifarApp
from tui.screens.monitor import MonitorScreen
from tui.screens.results import ResultsScreen
from tui.screens.runs import RunsScreen
from tui.screens.setup import SetupScreen
from tui.widgets.plot_axes import (
    debiased_ema,
    fit_header,
    label_frame,
    log_labels,
    log_ticks,
    nice_ticks,
    short_number,
    shorten,
    tick_labels,
)
from tui.widgets.plots import POINT, X_STEP, X_TIME, Line, MetricPlot


def rendered(plot: MetricPlot) -> list[str]:
    """The widget's lines as plain text, at its size."""
    console = Console(width=plot.size.width, file=io.StringIO(), color_system=None, record=True)
    console.print(plot.render())
    return console.export_text().splitlines()


class OnePlot(App[None]):
    def __init__(self, plot: MetricPlot) -> None:
        super().__init__()
        self.plot = plot

    def compose(self) -> ComposeResult:
        yield self.plot


# ---------------------------------------------------------------------------- numbers


def test_nice_ticks_of_the_unit_range_are_halves_not_thirds() -> None:
    # plotext's own ticks for 0..1 in 3 labels were 0.00 / 0.33 / 0.67 / 1.00 (0.50 missing)
    assert nice_ticks(0.0, 1.0, 3) == [0.0, 0.5, 1.0]
    assert tick_labels([0.0, 0.5, 1.0]) == ["0.0", "0.5", "1.0"]
    assert nice_ticks(0.33, 1.0, 4) == [0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(1.46, 4.42, 3) == [2.0, 3.0, 4.0]
    assert nice_ticks(0.0, 0.05, 3) == [0.0, 0.02, 0.04]
    assert tick_labels([0.0, 0.02, 0.04]) == ["0.00", "0.02", "0.04"]
    assert tick_labels([0.0, 2e-5, 4e-5]) == ["0", "2e-5", "4e-5"]  # an lr of 1e-5..4e-5
    assert nice_ticks(2.1, 2.12, 3) == [2.1, 2.11, 2.12]  # a narrow range: 0.01 steps


def test_log_ticks_are_decades_or_one_two_five() -> None:
    assert log_ticks(0.001, 0.1, 5) == [0.001, 0.01, 0.1]
    assert log_ticks(0.1, 10.0, 8) == [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
    assert log_ticks(16.0, 53.0, 5) == [20.0, 30.0, 40.0, 50.0]
    assert log_labels([0.001, 0.01]) == ["0.001", "0.01"]  # an lr from 1e-3 to 1e-2
    assert log_labels([4.5, 4.55, 4.6]) == ["4.50", "4.55", "4.60"]  # a narrow loss range
    assert [short_number(v) for v in (1e-4, 2.5e-5, 0.001, 0.5, 3e7)] == [
        "1e-4",
        "2.5e-5",
        "0.001",
        "0.5",
        "3e7",
    ]


def test_smoothing_is_tensorboards_debiased_ema() -> None:
    w = 0.5
    # by hand: last_n = w * last_(n-1) + (1 - w) * y_n, shown as last_n / (1 - w^n)
    assert debiased_ema([1.0, 2.0, 3.0], w) == pytest.approx([1.0, 1.25 / 0.75, 2.125 / 0.875])
    smoothed = debiased_ema([1.0, math.nan, 3.0], w)  # nan passes through, does not count
    assert smoothed[0] == 1.0 and math.isnan(smoothed[1])
    assert smoothed[2] == pytest.approx((0.25 + 1.5) / 0.75)
    assert debiased_ema([0.1] * 4, 0.9) == [0.1] * 4  # constant: as it is
    assert debiased_ema([1.0, 2.0], 0.0) == [1.0, 2.0]


def tensorboard_smoothing(values: list[float], w: float) -> list[float]:
    """TensorBoard's loop (vz_line_chart2 resmoothDataset), as the independent reference."""
    out, last, count = [], 0.0, 0
    for y in values:
        if not math.isfinite(y):
            out.append(y)
            continue
        last = last * w + (1 - w) * y
        count += 1
        out.append(last / (1 - w**count))
    return out


@pytest.mark.parametrize("w", [0.3, 0.6, 0.9, 0.99])
def test_vectorised_ema_matches_tensorboards_loop_over_many_blocks(w: float) -> None:
    rng = random.Random(0)
    values = [4.6 * math.exp(-i / 3000) + rng.gauss(0, 0.2) for i in range(10_000)]
    values[5], values[777] = math.nan, math.inf
    ours, reference = debiased_ema(values, w), tensorboard_smoothing(values, w)
    assert math.isnan(ours[5]) and ours[777] == math.inf
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    assert [ours[i] for i in finite] == pytest.approx([reference[i] for i in finite], rel=1e-9)


def test_header_shortens_labels_in_the_middle_and_never_cuts() -> None:
    ids = [f"20260101-1200{i:02d}-wrn40-10-sam-{i}a{i}b" for i in range(5)]
    entries = [(Text("━"), run_id) for run_id in ids]
    lines = fit_header("val top-1 % by epoch", entries, 80, 1)
    assert len(lines) == 1 and lines[0].cell_len <= 80
    for run_id in ids:  # each label keeps its distinguishing end
        assert run_id[-4:] in lines[0].plain
    assert shorten("train (running)", 8) == "tra…ing)"
    lines = fit_header("val top-1 % by epoch", entries, 40, 4)  # narrower: more lines, no cut
    assert 1 < len(lines) <= 4 and all(line.cell_len <= 40 for line in lines)
    assert all(run_id[-4:] in Text("\n").join(lines).plain for run_id in ids)
    assert label_frame(Text("  ┌──────────────┐"), "x: epoch").plain == "  ┌─── x: epoch ─┐"


# ---------------------------------------------------------------------------- the widget


def test_a_single_point_draws_as_a_marker_with_its_axis_unit() -> None:
    async def scenario() -> None:
        plot = MetricPlot("top-1 %", percent=True)
        app = OnePlot(plot)
        async with app.run_test(size=(50, 14)) as pilot:
            plot.show([Line("val", [1.0], [0.534])])  # a 1-epoch run's val curve
            await pilot.pause()
            text = "\n".join(rendered(plot))
            assert plot.drawn == [([1.0], [pytest.approx(53.4)])]
            assert text.count(POINT) == 2  # in the legend and on the canvas
            assert "x: epoch" in text.splitlines()[1]  # in the top frame
            assert plot.x_ticks == ["0.0", "0.5", "1.0", "1.5", "2.0"] and plot.y_ticks

    asyncio.run(scenario())


# ---------------------------------------------------------------------------- on the screens


@pytest.fixture
def fixture_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_run(tmp_path / "checkpoints")


def test_monitor_plot_keys_change_axis_scale_and_smoothing(fixture_run: Path) -> None:
    async def scenario() -> None:
        app = CifarApp(checkpoints=fixture_run.parent, attach=fixture_run)
        async with app.run_test(size=(80, 24)) as pilot:

            def followed() -> bool:
                m = app.monitor
                return (
                    m is not None and m.engine_gone and m.state is not None and bool(m.state.final)
                )

            await wait_for(pilot, followed, 10, "the fixture log")
            monitor = app.screen
            assert isinstance(monitor, MonitorScreen)
            monitor.redraw(force=True)
            plots = list(monitor.query(MetricPlot))
            assert len(plots) == 3
            for plot in plots:  # every plot names its x axis in its top frame, fully
                assert "x: epoch ─┐" in rendered(plot)[1]
                assert all(len(line) <= plot.size.width for line in rendered(plot))
            loss = monitor.query_one("#loss", MetricPlot)
            assert loss.x_ticks[-1] == "12"

            await pilot.press("x")
            assert all(p.current_x_axis() == X_STEP for p in plots)
            assert loss.x_ticks[-1] == "1500"  # 12 epochs of 125 steps
            assert "x: step" in rendered(loss)[1]
            await pilot.press("x")
            assert loss.current_x_axis() == X_TIME
            ts = loss.lines[0].ts
            assert ts is not None  # minutes since the first point (the first step event)
            assert max(loss.drawn[0][0]) == pytest.approx((ts[-1] - ts[0]) / 60) == 5.9

            await pilot.press("y")
            assert all(p.log_y for p in plots)
            lr = monitor.query_one("#lr", MetricPlot)
            assert all(float(label) > 0 for label in lr.y_ticks)  # log ticks: values, not logs

            await pilot.press("right_square_bracket", "right_square_bracket")
            assert loss.smoothing == 0.6 and "EMA 0.6" in rendered(loss)[1]
            state = monitor.state
            assert state is not None
            raw = state.train_loss.ys  # 12 points: not downsampled
            expected = [math.log10(y) for y in debiased_ema(raw, 0.6)]
            assert loss.drawn[1][1] == pytest.approx(expected)
            await pilot.press("left_square_bracket", "left_square_bracket", "x", "y")
            assert loss.smoothing == 0.0 and not loss.log_y and loss.current_x_axis() == "epoch"

    asyncio.run(scenario())


def test_plot_keys_do_not_clash_with_screen_keys() -> None:
    plot_keys = {
        key
        for b in CifarApp.BINDINGS
        if not isinstance(b, tuple) and b.action.startswith("plot_")
        for key in b.key.split(",")
    }
    assert plot_keys == {"x", "y", "left_square_bracket", "right_square_bracket"}
    for screen in (SetupScreen, MonitorScreen, ResultsScreen, RunsScreen):
        keys = {
            key for b in screen.BINDINGS if not isinstance(b, tuple) for key in b.key.split(",")
        }
        assert not keys & plot_keys, screen.__name__


def test_runs_overlay_legend_of_five_long_runs_fits_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "checkpoints"
    ids = [f"20260101-12000{i}-wrn40-10-sam-label-smoothing-{i}f{i}e" for i in range(5)]
    for run_id in ids:
        make_run(root, run_id=run_id, epochs=3, finished=False)

    async def scenario() -> None:
        app = CifarApp(checkpoints=root, start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(
                pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, 10, "runs"
            )
            runs = app.screen
            assert isinstance(runs, RunsScreen)
            overlay = runs.query_one("#overlay", MetricPlot)

            def idle() -> bool:  # the first draw done: no earlier worker can overwrite ours
                return overlay.draws > 0 and all(w.is_finished for w in runs.workers)

            await wait_for(pilot, idle, 5, "the first overlay")
            runs.selected = set(ids)  # as space on each row does
            runs.draw_overlay()
            await wait_for(pilot, lambda: len(overlay.lines) == 5, 5, "five curves")
            await pilot.pause()
            lines = rendered(overlay)
            header = "\n".join(lines[: len(overlay.header(overlay.size.width))])
            assert all(len(line) <= 80 for line in lines)
            for line in overlay.lines:  # every entry is there with its run's suffix
                assert line.label[-4:] in header
            assert not header.rstrip().endswith("…")
            # registry curves are by epoch only: no x axis key here, log y and smoothing work
            assert not app.check_action("plot_x_axis", ())
            assert app.check_action("plot_log_y", ())
            await pilot.press("y")
            assert (
                overlay.log_y and "x: epoch · log y" in rendered(overlay)[len(overlay.header(80))]
            )

    asyncio.run(scenario())


def test_palette_screenshot_without_downloads_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    notes: list[Any] = []

    async def scenario() -> None:
        app = CifarApp(checkpoints=work / "checkpoints", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "runs")
            await pilot.press("ctrl+p")
            await pilot.press(*"screenshot")

            def one_hit() -> bool:
                hits = app.screen.query(CommandList)
                return bool(hits) and hits.first().option_count == 1

            await wait_for(pilot, one_hit, 5, "the Screenshot command")
            await pilot.press("enter")
            await wait_for(pilot, lambda: list(work.glob("*.svg")), 5, "the screenshot")
            notes.extend(n.message for n in app._notifications)

    asyncio.run(scenario())
    (svg,) = work.glob("*.svg")
    assert svg.read_text().startswith("<svg")
    assert not (home / "Downloads").exists()
    assert any(str(svg) in note for note in notes)
