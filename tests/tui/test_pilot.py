"""The dashboard driven by keys against the REAL engine process (tiny synthetic runs)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.screen import Screen

from engine import control
from engine.events import EVENTS_FILE, Finished
from engine.run_lock import holder_pid
from engine.runs import RunRegistry
from engine.test_hooks import PAUSE_ENV, is_paused
from tests.tui.conftest import wait_for, write_tiny_preset
from tui.app import CifarApp
from tui.messages import EngineEvents
from tui.screens.monitor import MonitorScreen
from tui.screens.results import ResultsScreen
from tui.screens.runs import RunsScreen
from tui.screens.setup import SetupScreen
from tui.widgets.confusion import ConfusionMatrix
from tui.widgets.plots import MetricPlot

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e  # drives the real app on a live engine


def _finished(app: CifarApp) -> Finished | None:
    state = app.monitor.state if app.monitor is not None else None
    return state.final if state is not None and isinstance(state.final, Finished) else None


def test_launch_from_setup_runs_the_engine_and_opens_results(tmp_path, checkpoints) -> None:
    async def scenario() -> None:
        presets = tmp_path / "presets"
        write_tiny_preset(presets, epochs=1)
        messages: list[object] = []
        app = CifarApp(checkpoints=checkpoints, presets_dir=presets)
        async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, SetupScreen) and app.screen.preset == "tiny",
                10,
                "the setup screen",
            )
            await pilot.press("enter")  # load the highlighted preset
            await pilot.press("l")  # launch
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 10, "the monitor")
            await wait_for(pilot, lambda: _finished(app) is not None, 150, "the run to finish")
            final = _finished(app)
            assert final is not None and final.status == "done"
            assert any(
                isinstance(m, EngineEvents) and any(isinstance(e, Finished) for e in m.events)
                for m in messages
            )
            monitor = app.monitor
            assert monitor is not None and monitor.state is not None
            assert len(monitor.state.step_loss) > 0 and len(monitor.state.train_loss) == 1
            log = monitor.state.run_dir / "engine.log"
            assert log.is_file()  # the engine's stdout and stderr went to the run folder

            await pilot.press("r")
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, ResultsScreen) and app.screen.data is not None,
                30,
                "the results",
            )
            matrix = app.screen.query_one(ConfusionMatrix)
            assert matrix.view is not None
            assert matrix.view.counts.shape == (100, 100)
            assert int(matrix.view.counts.sum()) == 2000  # the synthetic test set

            for key, screen in (
                ("4", RunsScreen),
                ("1", SetupScreen),
                ("2", MonitorScreen),
                ("3", ResultsScreen),
                ("4", RunsScreen),
            ):
                await pilot.press(key)

                def shown(s: type[Screen[Any]] = screen) -> bool:
                    return isinstance(app.screen, s)

                await wait_for(pilot, shown, 5, screen.__name__)
            runs = app.screen
            assert isinstance(runs, RunsScreen)
            assert [r.status for r in runs.rows] == ["done"]

    asyncio.run(scenario())


def _start_headless(
    preset: Path, checkpoints: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CIFAR_TUI_CHECKPOINTS": str(checkpoints),
        "NO_COLOR": "1",
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from tui.cli import main; main()", "--run", str(preset)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_paused_engine(checkpoints: Path, launcher: subprocess.Popen[bytes]) -> int:
    """The pid of the run's engine once it has stopped itself at its pause step (test hook)."""
    deadline = time.monotonic() + 150
    pid = None
    while pid is None or not is_paused(pid):
        assert launcher.poll() is None, "the launcher exited before the engine paused"
        assert time.monotonic() < deadline, "the engine never reached its pause step"
        if pid is None:
            pid = next((holder_pid(p.parent) for p in checkpoints.glob("*/engine.lock")), None)
        time.sleep(0.05)
    return pid


def test_attach_mid_run_fills_plots_and_stop_after_epoch_interrupts(tmp_path, checkpoints) -> None:
    """The engine stops itself at step 12, inside epoch 2 (the tiny preset has 10 steps an
    epoch), so `s` is pressed while epoch 2 is surely running: the run must end after it."""

    async def scenario() -> None:
        preset = write_tiny_preset(tmp_path / "presets", epochs=4)
        process = _start_headless(preset, checkpoints, {PAUSE_ENV: "12"})
        pid = None
        try:
            pid = _wait_for_paused_engine(checkpoints, process)
            (run_dir,) = [p.parent for p in checkpoints.glob(f"*/{EVENTS_FILE}")]
            app = CifarApp(checkpoints=checkpoints, attach=run_dir)
            async with app.run_test(size=(100, 30)) as pilot:
                await wait_for(pilot, lambda: app.monitor is not None, 10, "the monitor")
                monitor = app.monitor
                assert monitor is not None
                await wait_for(
                    pilot,
                    lambda: monitor.state is not None and len(monitor.state.train_loss) >= 1,
                    20,
                    "the history so far",
                )
                state = monitor.state
                assert state is not None and state.started is not None
                assert state.started.run_id == run_dir.name
                assert state.last_epoch is not None and state.last_epoch.epoch == 1
                loss = monitor.query_one("#loss", MetricPlot)
                await wait_for(
                    pilot, lambda: loss.draws > 0 and len(loss.lines[0].xs) > 0, 5, "plot"
                )
                assert (
                    loss.lines[1].xs[0] == 1.0
                )  # epoch 1's train loss, read from before attaching

                await pilot.press("s")  # stop after this epoch (the engine removes the request)
                assert control.pending(run_dir) == {"stop_after_epoch"}
                os.kill(pid, signal.SIGCONT)
                await wait_for(pilot, lambda: state.final is not None, 150, "the run to stop")
                assert isinstance(state.final, Finished)
                assert state.final.status == "interrupted"
                assert state.last_epoch is not None and state.last_epoch.epoch == 2
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                process.kill()
        row = next(r for r in RunRegistry(checkpoints).runs() if r.run_id == run_dir.name)
        assert row.status == "interrupted"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "interrupted"
        assert control.pending(run_dir) == set()  # the engine acted on the request
        # stopped after an epoch, the run was tested as it stopped (its best checkpoint)
        assert (run_dir / "eval.npz").is_file()
        assert summary["test_top1"] == row.test_top1 and summary["test_top1"] is not None
        assert summary["epochs_done"] == 2 and summary["best_epoch"] in (1, 2)

    asyncio.run(scenario())
