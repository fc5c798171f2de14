"""Results of runs without a test evaluation (diverged, killed): the screen says why and what can
be done; the Monitor offers `r: results` only where there are some. Fixture runs, no engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual.widgets import DataTable

from engine.events import EVENTS_FILE
from tests.tui.conftest import wait_for
from tests.tui.fixtures import make_run, typed
from tui.app import CifarApp
from tui.orchestration.evaldata import fit_name
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


COARSE = [  # CIFAR-100's superclass names (its meta file)
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
]  # fmt: skip


def test_fit_name_keeps_short_names_and_wraps_or_abbreviates_long_ones():
    assert fit_name("fish", 12) == "fish"
    assert fit_name("aquarium_fish", 13) == "aquarium_fish"
    for name in COARSE:
        for width in (8, 12, 16):
            lines = fit_name(name, width).split("\n")
            assert len(lines) <= 2 and all(len(line) <= width for line in lines), (name, width)
    assert fit_name("large_natural_outdoor_scenes", 12) == "large natu.\noutd. scenes"


def test_superclass_pairs_fit_the_panel_at_80_and_120_columns(tmp_path):
    async def check(size: tuple[int, int]) -> None:
        run_dir = make_run(tmp_path / f"ck{size[0]}")
        arrays = dict(np.load(run_dir / "eval.npz"))
        np.savez(run_dir / "eval.npz", **(arrays | {"coarse_names": np.array(COARSE)}))
        app = CifarApp(checkpoints=run_dir.parent, results=run_dir)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: app.results and app.results.data, 10, "results")
            await pilot.press("z")
            results = app.results
            assert results is not None and results.coarse
            table = results.query_one("#pairs", DataTable)
            assert table.region.right <= size[0]
            widths = sum(c.get_render_width(table) for c in table.columns.values())
            assert widths <= table.size.width  # every column on screen, % the last
            shown = [table.get_row_at(i)[:2] for i in range(table.row_count)]
            names = {n for row in shown for n in row}
            assert "household\nelectrical d." not in names and any("\n" in n for n in names)
            for true, pred in shown:
                for name in (true, pred):
                    assert all(len(line) <= table.columns[next(iter(table.columns))].width
                               for line in name.split("\n"))  # fmt: skip
                    assert all(len(w) >= 4 or w == "and" for w in name.split()), name  # no `la`

    async def scenario() -> None:
        await check((80, 24))
        await check((120, 40))

    asyncio.run(scenario())


def test_resume_from_runs_checks_first_and_says_why_it_cannot(tmp_path):
    """`R` on Runs goes through --resume's checks: a killed run without last.pt is refused with
    one line, nothing started, nothing written."""
    run_dir = make_run(tmp_path / "ck", epochs=2, finished=False)
    before = sorted(p.name for p in run_dir.iterdir())

    async def scenario() -> None:
        app = CifarApp(checkpoints=tmp_path / "ck", start="runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: getattr(app.screen, "rows", None), 10, "the runs")
            await pilot.press("R")

            def refused() -> bool:
                return any("last.pt" in n.message for n in app._notifications)

            await wait_for(pilot, refused, 10, "the refusal")
            assert app.monitor is None  # no engine was started, no Monitor shown

    asyncio.run(scenario())
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_attach_follows_a_resumed_run_past_its_old_finished_event(tmp_path):
    """The log of a run stopped and resumed holds its old `finished`: the supervisor follows the
    live engine (lock held) until the new one."""
    from engine.events import Finished, read_events
    from engine.run_lock import RunLock
    from tui.orchestration.supervisor import supervise

    run_dir = make_run(tmp_path / "ck", epochs=2)  # ... finished (done): make it a stopped run
    events = read_events(run_dir / EVENTS_FILE)
    started = events[0]
    resumed = dict(
        type="resumed", t=2e9, epoch=2, step=250, epoch_step=0, checkpoint="last.pt",
        warning=None, config_changes=[],
        **{k: v for k, v in vars(started).items() if k not in ("t",)},
    )  # fmt: skip
    _append(run_dir, resumed)
    seen: list[str] = []
    polls = 0

    def cancelled() -> bool:
        nonlocal polls
        polls += 1
        if polls == 3:  # the resumed engine ends the run
            _append(run_dir, dict(type="finished", t=2e9 + 1, status="done", summary={}))
        return polls > 50

    with RunLock(run_dir).acquire():
        code, final = supervise(
            run_dir, lambda b: seen.extend(e.type for e in b), cancelled=cancelled, poll_s=0.01
        )
    assert (code, final) == (None, True) and 3 <= polls <= 50
    assert seen.count("finished") == 2 and seen[-1] == "finished"
    assert isinstance(read_events(run_dir / EVENTS_FILE)[-1], Finished)


def test_evaluate_with_tta_from_results_shows_the_new_results(tmp_path, monkeypatch):
    """`E` on a killed run's Results: the engine evaluation (stood in for by a script that writes
    what `python -m engine eval --eval-file` writes: tests/engine/test_tta.py checks that one)
    runs with a progress line, then the matrix and a TTA tab show."""
    import json
    import subprocess
    import sys

    from tests.tui.fixtures import write_eval
    from tui.cli import eval_cmd
    from tui.orchestration import no_results

    run_dir = make_run(tmp_path / "ck", epochs=2, finished=False)
    made = tmp_path / "made"
    made.mkdir()
    write_eval(made)
    views = [{"view": v, "top1": 0.5, "top5": 0.8} for v in ("identity", "hflip")]
    report = {"epoch": 2, "views": views, "top1": 0.55, "top5": 0.8, "count": 2000, "cost": 2}
    asked: list[list[str] | None] = []

    def fake(
        checkpoint: Path, views: list[str] | None, *, out: Path, eval_file: Path, output: Any
    ) -> subprocess.Popen[bytes]:
        asked.append(views)
        script = (
            "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2]); "
            "open(sys.argv[3], 'w').write(sys.argv[4])"
        )
        args = [made / "eval.npz", eval_file, out, json.dumps(report)]
        return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=output)

    monkeypatch.setattr(eval_cmd, "start_engine_eval", fake)
    monkeypatch.setattr(no_results, "best_is_intact", lambda _run_dir: True)

    async def scenario() -> None:
        app = CifarApp(checkpoints=tmp_path / "ck", results=run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.results and app.results.missing, 10, "the panel")
            results = app.results
            assert results is not None and "E: with TTA" in results.panel_text.plain
            await pilot.press("E")
            await wait_for(pilot, lambda: results.data is not None, 20, "the evaluation")
            assert asked and asked[0] and "hflip" in asked[0]  # the default TTA views
            assert results.data is not None and results.data.report == report
            tta = results.data.tta
            assert tta is not None and tta.cost == 2 and not results.has_class("-damaged")
            assert results.check_action("tab", ("tta",))  # its TTA tab is there

    asyncio.run(scenario())
