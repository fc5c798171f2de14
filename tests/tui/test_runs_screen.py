"""The Runs screen with fixture runs (no engine): sort, filter, config columns, Home / End, a
run refused at start, live time, the overlay's metric, at 80 and 120 columns."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from textual.widgets import Input

from engine.events import EventWriter, Failed
from engine.run_lock import RunLock
from engine.runs import DB_FILE, RunRegistry, create_run_dir
from tests.tui.conftest import wait_for
from tests.tui.fixtures import make_run
from tui.app import CifarApp
from tui.screens.common import ConfirmScreen
from tui.screens.runs import RunsScreen, RunsTable
from tui.screens.runs_columns import ColumnsScreen
from tui.widgets.plots import MetricPlot

# (run id, optim.name, optim.lr, dataset, epochs)
RECIPES = [
    ("20260101-120000-quickstart-a1b2", "sgd", 0.1, "synthetic", 12),
    ("20260102-120000-resnet18-c3d4", "adamw", 0.001, "cifar100", 6),
    ("20260103-120000-wrn-e5f6", "sgd", 0.05, "cifar100", 9),
]


def config(optim: str, lr: float, dataset: str, epochs: int) -> dict:
    return {
        "model": {"name": "wrn", "depth": 16, "width": 4},
        "data": {"dataset": dataset, "batch_size": 128},
        "augment": [{"name": "random_crop", "padding": 4}, {"name": "hflip"}],
        "optim": {"name": optim, "lr": lr, "weight_decay": 5e-4},
        "train": {"epochs": epochs, "device": "cpu"},
    }


def varied_runs(root: Path) -> list[str]:
    """Three finished fixture runs of different recipes (started a day apart, newest last)."""
    for day, (run_id, optim, lr, dataset, epochs) in enumerate(RECIPES):
        make_run(root, run_id=run_id, epochs=epochs)
        db = sqlite3.connect(root / DB_FILE)
        with db:
            db.execute(
                "UPDATE runs SET config = ?, dataset = ?, started = started + ? WHERE run_id = ?",
                (json.dumps(config(optim, lr, dataset, epochs)), dataset, day * 86400, run_id),
            )
        db.close()
    return [r[0] for r in RECIPES]


@pytest.fixture(scope="session")
def made_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("varied") / "checkpoints"
    varied_runs(root)
    return root


@pytest.fixture
def varied(made_once: Path, checkpoints: Path) -> list[str]:
    """`varied_runs` in this test's checkpoints folder (copied: make_run's eval.npz is slow)."""
    shutil.copytree(made_once, checkpoints)
    return [r[0] for r in RECIPES]


def refused_run(root: Path) -> str:
    """A run the engine refused at start: its only event is `failed` (no registry row)."""
    yaml = "model: {name: wrn}\ndata: {dataset: cifar100}\ntrain: {device: cuda, epochs: 2}\n"
    run_id, run_dir = create_run_dir(root, "quickstart", yaml)
    writer = EventWriter(run_dir / "events.jsonl")
    writer.emit(Failed(status="bad_input", message="train.device = cuda but no CUDA device"))
    writer.close()
    return run_id


def shown_ids(screen: RunsScreen) -> list[str]:
    return [r.run_id for r in screen.rows]


def column_keys(screen: RunsScreen) -> list[str]:
    return [str(k.value) for k in screen.query_one(RunsTable).columns]


async def _runs_screen(pilot, count: int) -> RunsScreen:
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, RunsScreen) and len(pilot.app.screen.rows) == count,
        5,
        "the runs",
    )
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    return screen


async def _pick_columns(pilot, *keys: str) -> None:
    """`c`, then each key found by typing it and ticked with space; Escape closes."""
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ColumnsScreen), 5, "the picker")
    picker = pilot.app.screen
    assert isinstance(picker, ColumnsScreen)
    finder = picker.query_one("#find", Input)
    await pilot.press(*keys[0][:2])  # typed in the list: goes to the finder, nothing lost
    assert finder.value == keys[0][:2] and all(finder.value in k for k in picker.shown)
    for key in keys:
        finder.value = key  # as typed (typing is Textual's own)
        await pilot.pause()
        assert picker.shown[0] == key
        picker.query_one("#keys").focus()
        await pilot.press("space")
    await pilot.press("escape")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunsScreen), 5, "the runs")


def test_a_config_column_is_chosen_sorted_by_key_and_header_and_kept_home_end_move(
    checkpoints, varied
):
    ids = varied

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _runs_screen(pilot, 3)
            assert shown_ids(screen) == ids[::-1]  # newest first
            await _pick_columns(pilot, "optim.lr")
            assert "cfg:optim.lr" in column_keys(screen)
            while screen.view.sort != "cfg:optim.lr":
                await pilot.press("s")
            table = screen.query_one(RunsTable)
            header = table.columns["cfg:optim.lr"].label  # type: ignore[index]
            assert str(header) == "optim.lr ▲"
            assert shown_ids(screen) == [ids[1], ids[2], ids[0]]  # lr 0.001, 0.05, 0.1
            await pilot.press("S")
            assert shown_ids(screen) == [ids[0], ids[2], ids[1]]
            before = list(table.columns.values())[: table.get_column_index("status")]
            x = sum(c.get_render_width(table) for c in before)
            await pilot.click(RunsTable, offset=(x + 2, 0))  # the status header
            assert screen.view.sort == "status"
            await pilot.press("end")  # Home / End: the first / last run
            assert table.cursor_row == 2
            await pilot.press("home")
            assert table.cursor_row == 0
        again = CifarApp(checkpoints=checkpoints, start="runs")
        async with again.run_test(size=(80, 24)) as pilot:
            screen = await _runs_screen(pilot, 3)
            assert "cfg:optim.lr" in column_keys(screen) and screen.view.sort == "status"

    asyncio.run(scenario())


def test_the_filter_matches_any_column_or_a_config_key_and_escape_clears_it(checkpoints, varied):
    ids = varied

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _runs_screen(pilot, 3)
            await pilot.press("slash")
            screen.query_one("#filter", Input).value = "resnet"
            await pilot.pause()
            assert shown_ids(screen) == [ids[1]]
            assert "1 of 3 runs" in str(screen.query_one("#hint").render())
            await pilot.press("enter")  # the filter stays; keys go to the table
            assert screen.query_one(RunsTable).has_focus and shown_ids(screen) == [ids[1]]
            await pilot.press("slash")
            screen.query_one("#filter", Input).value = "optim.name=SGD"
            await pilot.pause()
            assert shown_ids(screen) == [ids[2], ids[0]]
            await pilot.press("escape")
            assert shown_ids(screen) == ids[::-1] and screen.view.filter == ""

    asyncio.run(scenario())


def test_at_80_columns_nothing_is_off_screen_and_the_sorted_config_column_stays(
    checkpoints, varied
):

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _runs_screen(pilot, 3)
            await _pick_columns(pilot, "optim.lr", "augment", "optim.weight_decay")
            while screen.view.sort != "cfg:optim.lr":
                await pilot.press("s")
            table = screen.query_one(RunsTable)
            await pilot.pause()
            keys = column_keys(screen)
            assert {"run", "status", "test", "data", "cfg:optim.lr"} <= set(keys)
            assert table.virtual_size.width <= table.size.width  # no horizontal scrolling

    asyncio.run(scenario())


def test_a_run_refused_at_start_is_listed_with_its_reason_and_deleted(
    checkpoints, varied, monkeypatch
):
    """Under NO_COLOR too: the table, the overlay and the dialog render without colour."""
    monkeypatch.setenv("NO_COLOR", "1")
    refused = refused_run(checkpoints)

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _runs_screen(pilot, 4)
            assert screen.rows[0].run_id == refused and screen.rows[0].status == "bad_input"
            hint = str(screen.query_one("#hint").render())
            assert "bad_input: train.device = cuda but no CUDA device" in hint
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "confirm")
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            label = confirm.query_one("Label")
            lines = [
                "".join(s.text for s in label.render_line(y)).strip()
                for y in range(label.size.height)
            ]
            words = " ".join(lines).split()
            assert words == confirm.question.split()  # wrapped between words, none cut
            await pilot.press("y")
            await _runs_screen(pilot, 3)
            assert not (checkpoints / refused).exists()
            assert refused not in {r.run_id for r in RunRegistry(checkpoints).runs()}

    asyncio.run(scenario())


def test_a_live_run_shows_its_running_time_and_epochs_and_rings_when_it_ends(
    checkpoints, monkeypatch
):
    import tui.screens.runs as runs_screen

    run_dir = make_run(checkpoints, epochs=3, finished=False)
    rung: list[tuple[str, str]] = []
    monkeypatch.setattr(
        runs_screen, "notify_run_end", lambda app, run, status: rung.append((run, status))
    )

    async def scenario() -> None:
        lock = RunLock(run_dir)
        lock.acquire()  # an engine holds it: running
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await _runs_screen(pilot, 1)
            table = screen.query_one(RunsTable)
            assert str(table.get_cell(run_dir.name, "status")) == "running 3/3"
            assert str(table.get_cell(run_dir.name, "time")).count(":") == 2  # hours on
            screen.reload()
            assert rung == []  # still running: no bell
            lock.release()  # the engine is gone without a final event: crashed
            screen.reload()
            assert rung == [(run_dir.name, "crashed")]
            screen.reload()
            assert len(rung) == 1  # once

    asyncio.run(scenario())


def test_the_overlay_tags_synthetic_lines_among_real_ones_and_m_changes_its_metric(
    checkpoints, varied
):
    ids = varied

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _runs_screen(pilot, 3)
            plot = screen.query_one("#overlay", MetricPlot)
            await pilot.press("end", "space", "home", "space")  # the synthetic and a real run
            await wait_for(pilot, lambda: len(plot.lines) == 2, 5, "two lines")
            assert plot.title == "val top-1 % by epoch" and plot.percent
            labels = {line.label for line in plot.lines}
            assert labels == {"quickstart a1b2 SYNTHETIC", f"quickstart {ids[2][-4:]}"}
            await pilot.press("m")
            await wait_for(pilot, lambda: plot.title.startswith("val loss"), 5, "val loss")
            assert not plot.percent and plot.lines[0].ys[0] > 1  # a loss, not a fraction
            await pilot.press("space")  # only the synthetic run (the cursor is on the other)
            await wait_for(pilot, lambda: len(plot.lines) == 1, 5, "one line")
            assert plot.title == "val loss by epoch (SYNTHETIC data)"

    asyncio.run(scenario())
