"""The augmentation preview keeps one engine process warm while its dialog is open (a new draw
costs only the augmentation), shows a progress line, and stops that process when it closes.
A stand-in engine (numpy only) speaks the real one's protocol, so no torch is imported here."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from tests.tui.conftest import wait_for
from tui.app import CifarApp
from tui.orchestration.preview_engine import PreviewEngine
from tui.screens.preview import PreviewScreen
from tui.screens.runs import RunsScreen
from tui.widgets.preview import AugmentPreview

STAND_IN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    for line in sys.stdin:
        r = json.loads(line)
        print(json.dumps({"progress": "augmenting"}))
        print("a library's stray print")
        n = r["count"]
        img = np.full((n, 3, 32, 32), 10 * r["seed"], np.uint8)
        np.savez(r["out"], original=img, augmented=img, labels=np.zeros(n, np.int64),
                 class_names=np.array(["apple"] * 100), synthetic=np.array(True))
        print(json.dumps({"done": r["out"]}), flush=True)  # three lines in one pipe read
    """
)


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "stand_in_engine.py"
    script.write_text(STAND_IN)
    monkeypatch.setattr(PreviewEngine, "command", (sys.executable, str(script)))


def test_the_preview_engine_stays_warm_between_draws_and_stops_on_close(
    tmp_path: Path, checkpoints: Path, stand_in: None
) -> None:
    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, start="runs")  # no Setup form to build
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "runs")
            screen = PreviewScreen("model: {name: wrn10_2}\n", count=2)
            await app.push_screen(screen)
            widget = screen.query_one("#preview", AugmentPreview)
            await wait_for(pilot, lambda: widget.grid is not None, 20, "the first draw")
            process = screen.engine.process
            assert process is not None and process.poll() is None

            await pilot.press("r")
            await wait_for(pilot, lambda: screen.seed == 1 and not screen.drawing, 20, "draw 2")
            assert screen.engine.process is process  # the same process: warm
            assert widget.grid is not None and int(widget.grid.original[0, 0, 0, 0]) == 10
            head = str(screen.query_one("#preview-head").render())
            assert "draw 2 in" in head and "r: new draw" in head

            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "runs again")
            await wait_for(pilot, lambda: process.poll() is not None, 5, "the engine to stop")

    asyncio.run(scenario())


def test_a_dead_preview_engine_gives_its_last_line(tmp_path: Path, monkeypatch) -> None:
    script = tmp_path / "dies.py"
    script.write_text("import sys\nsys.stdin.readline()\nsys.exit('cannot start: no memory')\n")
    monkeypatch.setattr(PreviewEngine, "command", (sys.executable, str(script)))
    engine = PreviewEngine()
    seen: list[str] = []
    error = engine.draw("{}", tmp_path / "x.npz", count=1, seed=0, timeout=20, progress=seen.append)
    engine.close()
    assert error == "cannot start: no memory"
    assert seen == ["starting the preview engine (importing torch) ..."]
