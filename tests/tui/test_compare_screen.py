"""The Compare screen from the Runs screen (hand-built runs, no engine): two runs selected with
space, `v` opens the comparison, which shows their config diff and recall change; the curves
align by epoch, step or wall time; fewer than two runs selected is said, not opened."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console, Group

from tests.tui.compare_runs import two_arms
from tests.tui.conftest import wait_for
from tui.app import CifarApp
from tui.screens.compare import CompareScreen
from tui.screens.runs import RunsScreen, RunsTable
from tui.widgets.plots import X_STEP, X_TIME, MetricPlot


def text_of(screen: CompareScreen) -> str:
    console = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(Group(*screen.report))
    return console.export_text()


def test_two_selected_runs_open_their_comparison(checkpoints: Path) -> None:
    a, b = two_arms(checkpoints, seeds=(0,))

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 2,
                10,
                "the runs",
            )
            runs = app.screen
            assert isinstance(runs, RunsScreen)
            await pilot.press("space", "v")  # one run: not enough
            await pilot.pause()
            assert app.screen is runs
            assert any("select two runs" in n.message for n in app._notifications)
            table = runs.query_one(RunsTable)
            table.move_cursor(row=1)
            await pilot.press("space", "v")
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, CompareScreen) and app.screen.ready,
                10,
                "the comparison",
            )
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            assert screen.run_ids == [a[0].run_id, b[0].run_id]  # oldest first: A is the base
            text = text_of(screen)
            rows: dict[str, list[str]] = {}  # the first line that starts with each word
            for words in (line.split() for line in text.splitlines()):
                if words:
                    rows.setdefault(words[0], words[1:])
            assert rows["optim.name"] == ["sgd", "adamw"]
            assert rows["optim.lr"] == ["0.1", "0.001"]
            assert "model.name" not in rows  # the same in both
            assert rows["apple"][-1].startswith("+")  # B's best class change comes first
            assert "no significance test" in text
            plot = screen.query_one("#curves", MetricPlot)
            await wait_for(pilot, lambda: plot.draws > 0 and plot.lines, 5, "the curves")
            assert [line.label for line in plot.lines] == ["A1", "B1"]
            assert plot.x_axes() == ("epoch", X_STEP, X_TIME)  # from the event logs
            await pilot.press("x")
            assert plot.current_x_axis() == X_STEP
            await pilot.press("m")
            await wait_for(pilot, lambda: plot.title.startswith("val loss"), 5, "val loss")
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is runs, 5, "the runs again")

    asyncio.run(scenario())
