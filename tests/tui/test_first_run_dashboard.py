"""The dashboard opened with a first run (`cifar-tui --start first_run`, `make run`): the
preparation panel, then the Monitor with the size and the SYNTHETIC banner in its header, then
at the end the Results and the "what next" note. The preparation and the engine are fakes (a
finished run written by tests.tui.fixtures): nothing trains, nothing is downloaded."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import ProgressBar

from engine.config import RunConfig, load_config
from engine.datafiles import synthetic_banner
from engine.events import EVENTS_FILE
from engine.sizing import DeviceInfo, apply_sizing, first_run_sizing
from tests.tui.conftest import wait_for
from tests.tui.fixtures import RUN_ID, make_run
from tui.app import CifarApp
from tui.cli.common import StartRequest
from tui.orchestration import launcher
from tui.orchestration.first_run import FirstRun
from tui.screens import first_run as first_run_screen
from tui.screens.first_run import PrepareScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.results import ResultsScreen

PREPARED: list[str] = []


def _fake_prepare(cfg: RunConfig, **kwargs: object) -> FirstRun:
    """What the preparation panel's worker calls (tui.screens.first_run.PrepareScreen)."""
    PREPARED.append(cfg.sizing)
    data = cfg.data.__class__(**{**cfg.data.__dict__, "dataset": "synthetic"})
    synthetic = cfg.__class__(**{**cfg.__dict__, "data": data})
    sized = apply_sizing(synthetic, first_run_sizing(DeviceInfo("cpu", "cpu"), "synthetic"))
    return FirstRun(sized, ["offline in this test"], synthetic_banner())


def test_the_dashboard_started_with_a_first_run_shows_it_then_its_results(
    checkpoints: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[RunConfig] = []
    engines: list[subprocess.Popen[bytes]] = []
    rest: list[str] = []  # the run's end, written once the Monitor has been seen

    def fake_launch(preset: str, cfg: RunConfig, root: object, **kwargs: object):
        launched.append(cfg)
        run_dir = make_run(checkpoints, epochs=2)
        log = run_dir / EVENTS_FILE
        lines = log.read_text().splitlines()
        first = json.loads(lines[0])
        first["config"]["sizing"] = cfg.sizing
        end = next(i for i, line in enumerate(lines) if '"evaluated"' in line)
        log.write_text("\n".join([json.dumps(first), *lines[1:end]]) + "\n")
        rest.extend(lines[end:])
        engine = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        engines.append(engine)  # alive until its stdin closes: the run goes on until then
        return launcher.LaunchedRun(RUN_ID, run_dir, cfg, engine)

    monkeypatch.setattr(first_run_screen, "prepare_first_run", _fake_prepare)
    monkeypatch.setattr(launcher, "launch", fake_launch)

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start_request=StartRequest("first_run"))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, MonitorScreen)
                    and app.screen.state is not None
                    and app.screen.state.started is not None
                ),
                30,
                "the Monitor following the first run",
            )
            monitor = app.screen
            assert isinstance(monitor, MonitorScreen) and monitor.state is not None
            out = io.StringIO()
            Console(file=out, width=120).print(monitor._info(monitor.state))
            header = out.getvalue().splitlines()
            assert header[0] == "cpu: synthetic 4,000-image subset, wrn16_2, 3 epochs"
            assert header[1].startswith("SYNTHETIC: put cifar-100-python in ./data or ")

            with (monitor.state.run_dir / EVENTS_FILE).open("a") as log:  # the run ends
                log.write("\n".join(rest) + "\n")
            assert engines[0].stdin is not None
            engines[0].stdin.close()
            await wait_for(
                pilot, lambda: isinstance(app.screen, ResultsScreen), 30, "the first run's results"
            )
            notes = [n.title + ": " + n.message for n in app._notifications]
            assert any(n.startswith("what next: ") and "resnet18" in n for n in notes), notes
            assert any("offline in this test" in n for n in notes)

    try:
        asyncio.run(scenario())
    finally:
        for engine in engines:
            engine.kill()
            engine.wait()
    assert PREPARED == ["auto"]  # the panel prepared the preset as saved
    assert [c.sizing for c in launched] == ["cpu: synthetic 4,000-image subset, wrn16_2, 3 epochs"]


def test_the_preparation_panel_shows_each_step_and_the_download(
    checkpoints: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The panel while CIFAR-100 downloads: its lines and a progress bar (the fake download
    holds until the test has seen them)."""
    go_on = threading.Event()

    def downloading(cfg: RunConfig, **kwargs: Any) -> FirstRun:
        kwargs["say"]("CIFAR-100 not found: downloading it into /cache/cifar-tui")
        kwargs["progress"](40_000_000, 160_000_000)
        go_on.wait(30)
        return _fake_prepare(cfg)

    monkeypatch.setattr(first_run_screen, "prepare_first_run", downloading)
    results: list[FirstRun | None] = []

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints)
        async with app.run_test(size=(120, 40)) as pilot:
            panel = PrepareScreen("first_run", load_config("first_run"))
            await app.push_screen(panel, results.append)
            bar = panel.query_one(ProgressBar)
            await wait_for(pilot, lambda: bar.progress == 40_000_000, 10, "the download's bar")
            assert bar.total == 160_000_000 and bar.has_class("-shown")
            assert panel.lines == ["CIFAR-100 not found: downloading it into /cache/cifar-tui"]
            go_on.set()
            await wait_for(pilot, lambda: results, 10, "the panel to close")

    try:
        asyncio.run(scenario())
    finally:
        go_on.set()
    assert results[0] is not None and results[0].config.data.dataset == "synthetic"
