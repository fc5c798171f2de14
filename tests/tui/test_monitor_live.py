"""The Monitor following a run's events in process (no engine): a killed engine, a failed start,
the phases after training, the live in-epoch numbers, the system panel, a pending stop and the
confirmation of `t`. The run folder's lock is held by the test while the "engine" is alive."""

from __future__ import annotations

import asyncio
import functools
import io
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, Group
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static

import tui.screens.monitor as monitor_module
from engine.datafiles import WHERE_HINT
from engine.events import EVENTS_FILE, Event, Failed, Finished, Phase, SystemSample
from engine.outcome import RunStatus, read_outcome
from engine.run_lock import RunLock
from tests.tui.conftest import wait_for
from tests.tui.fixtures import RUN_ID, make_events, make_run, typed
from tui.app import CifarApp
from tui.orchestration.supervisor import supervise
from tui.screens.common import ConfirmScreen
from tui.screens.monitor import MonitorScreen


@pytest.fixture(autouse=True)
def fast_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor polls every 10 ms (a dead engine is seen after 8 idle polls, not 2 s)."""
    monkeypatch.setattr(monitor_module, "supervise", functools.partial(supervise, poll_s=0.01))


@pytest.fixture
def rung(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The (run id, status) of each bell + desktop notification the Monitor asked for."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(
        monitor_module,
        "notify_run_end",
        lambda app, run_id, status, *_: calls.append((run_id, status)),
    )
    return calls


@pytest.fixture
def live_lock(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """`hold(run_dir)`: the run looks alive (its lock is held) until the test ends."""
    held: list[RunLock] = []
    yield lambda run_dir: held.append(RunLock(run_dir).acquire())
    for lock in held:
        lock.release()


def text_of(screen: MonitorScreen, widget_id: str) -> str:
    """The plain text a Static of the screen shows (its content, rendered 120 columns wide)."""
    console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
    console.print(screen.query_one(f"#{widget_id}", Static).content)
    return console.export_text()


def append(run_dir: Path, *events: Event) -> None:
    with (run_dir / EVENTS_FILE).open("a") as f:
        for event in events:
            f.write(event.to_json() + "\n")


def attach(run_dir: Path, body: Callable[[Pilot[Any], MonitorScreen], Awaitable[None]]) -> None:
    app = CifarApp(checkpoints=run_dir.parent, attach=run_dir)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
            screen = app.screen
            assert isinstance(screen, MonitorScreen)
            await body(pilot, screen)

    asyncio.run(scenario())


def test_a_killed_engine_shows_crashed_as_the_runs_screen_does(
    tmp_path: Path, rung: list[tuple[str, str]]
) -> None:
    run_dir = make_run(tmp_path / "checkpoints", epochs=3, finished=False)  # lock free: killed

    async def body(pilot: Pilot[Any], screen: MonitorScreen) -> None:
        await wait_for(pilot, lambda: screen.engine_gone, 5, "the dead engine noticed")
        screen.redraw(force=True)
        assert screen.state is not None
        assert screen.state.status is read_outcome(run_dir).status is RunStatus.CRASHED
        assert "CRASHED" in text_of(screen, "title") and "RUNNING" not in text_of(screen, "title")
        info = text_of(screen, "info")
        assert "- img/s" in info and "left ~" not in info and "the engine is gone" in info
        assert "crashed" in text_of(screen, "status")
        assert rung == []  # attached to a run that was already dead: no bell

    attach(run_dir, body)


def test_a_run_refused_at_start_shows_why_in_red_with_setup_advice(tmp_path: Path) -> None:
    run_dir = tmp_path / "checkpoints" / RUN_ID
    run_dir.mkdir(parents=True)
    where = f"no CIFAR-100 files in data/ {WHERE_HINT}"
    append(run_dir, Failed(status="bad_input", message=where, t=1.0))

    async def body(pilot: Pilot[Any], screen: MonitorScreen) -> None:
        await wait_for(pilot, lambda: screen.engine_gone, 5, "the log read")
        screen.redraw(force=True)
        info = text_of(screen, "info")
        assert "waiting for the engine" not in info
        assert "set the data.data_dir field in Setup" in info
        assert "--data-dir" not in info + text_of(screen, "status")
        content = screen.query_one("#info", Static).content
        assert isinstance(content, Group) and isinstance(content.renderables[0], Text)
        assert "red" in str(content.renderables[0].style)
        assert "BAD_INPUT" in text_of(screen, "title")
        assert screen.query_one("#status").has_class("-failed")

    attach(run_dir, body)


def test_phases_after_training_show_in_the_title_with_evaluation_time_left(
    tmp_path: Path, live_lock: Callable[[Path], None], rung: list[tuple[str, str]]
) -> None:
    run_dir = make_run(tmp_path / "checkpoints", epochs=2, finished=False)
    live_lock(run_dir)

    async def body(pilot: Pilot[Any], screen: MonitorScreen) -> None:
        state = screen.state
        assert state is not None
        await wait_for(pilot, lambda: state.last_epoch is not None, 5, "the log read")
        t = time.time()  # the phase began now: its time left is counted from here
        append(run_dir, Phase(phase="testing", images=2000, detail="best", t=t))
        await wait_for(pilot, lambda: state.phase is not None, 5, "the phase event")
        screen.redraw(force=True)
        title = text_of(screen, "title")
        assert "RUNNING" in title and "testing best" in title
        left = state.eta_s(now=t)
        assert left is not None and left > 0  # the test pass still to run, not ~0:00
        info = text_of(screen, "info")
        assert "left ~0:00" not in info
        assert re.search(r"testing best ~\d+% ", info)  # the pass's estimated share, not
        assert "step 125/125" not in info  # the full step bar of the epoch that ended
        append(run_dir, Phase(phase="tta", images=2000, passes=3, detail="id,flip,crop", t=t + 5))
        await wait_for(pilot, lambda: state.phase and state.phase.phase == "tta", 5, "tta")
        screen.redraw(force=True)
        assert "TTA 3 views" in text_of(screen, "title")
        append(run_dir, Finished(status="done", summary={"status": "done"}, t=t + 9))
        await wait_for(pilot, lambda: rung, 5, "the run's end rung")
        assert rung == [(RUN_ID, "done")]
        assert "RUNNING" not in text_of(screen, "title") and state.phase_name() is None

    attach(run_dir, body)


def test_live_numbers_system_panel_and_a_pending_stop_show_in_the_status_box(
    tmp_path: Path, live_lock: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "checkpoints"
    run_dir = root / RUN_ID
    run_dir.mkdir(parents=True)
    events = make_events(RUN_ID, 3)
    upto = next(i for i, e in enumerate(events) if e["type"] == "epoch_end")
    append(run_dir, *(typed(e) for e in events[: upto + 4]))  # inside epoch 2: 3 step events
    gpu = dict(gpu_util=97.0, gpu_mem_mb=30720.0, gpu_mem_total_mb=81920.0, gpu_temp_c=64.0)
    sample = SystemSample(cpu_pct=187.0, rss_mb=2150.0, **gpu, t=events[upto]["t"])
    append(run_dir, sample)
    live_lock(run_dir)
    killed: list[int] = []
    monkeypatch.setattr("os.kill", lambda pid, sig: killed.append(sig))

    async def body(pilot: Pilot[Any], screen: MonitorScreen) -> None:
        state = screen.state
        assert state is not None
        await wait_for(pilot, lambda: state.system is not None, 5, "the log read")
        step = state.last_step
        assert step is not None and step.epoch == 2
        await pilot.press("s")
        status = text_of(screen, "status")
        assert f"now e2 {step.epoch_step}/{step.steps_per_epoch}" in status
        assert f"loss {step.loss:.3f}" in status and f"lr {step.lr:.3g}" in status
        assert "system: cpu 187% · rss 2.1 GiB · gpu 97% · gpu mem 30.0 GiB / 80.0 GiB" in status
        assert "64°C" in status
        assert "stop requested: the run ends after epoch 2" in status
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), 5, "confirm")
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen, 5, "confirm closed")
        assert killed == []  # no SIGTERM without a yes
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), 5, "confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: killed, 5, "SIGTERM")

    attach(run_dir, body)
