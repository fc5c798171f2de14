"""The LR finder dialog: the sweep's progress, its curve, and "apply to Setup" setting optim.lr
in the Setup form. The engine process is stood in for by a script that writes a known curve."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from textual.widgets import Input
from textual_plotext import PlotextPlot

from tests.tui.conftest import wait_for, write_tiny_preset
from tui.app import CifarApp
from tui.screens import lr_finder
from tui.screens.lr_finder import LRFinderScreen, open_lr_finder
from tui.screens.setup import SetupScreen
from tui.screens.setup_form import control_path

LRS = [10 ** (-5 + 6 * i / 19) for i in range(20)]
CURVE = {
    "lrs": LRS,
    "losses": [4.6 - 0.1 * i if i < 15 else 5.0 + i for i in range(20)],
    "smoothed": [4.6 - 0.09 * i if i < 16 else 4.0 + i for i in range(20)],
    "suggestion": 0.0123,
    "rule": "lr at the minimum of the smoothed loss / 10",
    "reason": "the loss diverged",
}
FAKE = (  # prints a progress line and writes the curve, as `python -m engine lr-find` does
    "import sys; print('lr-find: step 20/20  lr 10', flush=True); "
    f"open(sys.argv[1], 'w').write({json.dumps(CURVE)!r})"
)


def test_apply_to_setup_sets_optim_lr_in_the_form(tmp_path, checkpoints, monkeypatch) -> None:
    def fake(config: Path, out: Path) -> list[str]:
        assert "optim:" in config.read_text()  # the Setup config, edits and all
        return [sys.executable, "-c", FAKE, str(out)]

    monkeypatch.setattr(lr_finder, "engine_command", fake)

    async def scenario() -> None:
        write_tiny_preset(tmp_path / "presets")
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, SetupScreen) and app.screen.form_ready,
                15,
                "the setup form",
            )
            setup = app.screen
            assert isinstance(setup, SetupScreen)
            open_lr_finder(app, setup)
            await wait_for(pilot, lambda: isinstance(app.screen, LRFinderScreen), 5, "dialog")
            dialog = app.screen
            assert isinstance(dialog, LRFinderScreen)
            await wait_for(pilot, lambda: dialog.curve is not None, 20, "the curve")
            assert dialog.curve == CURVE
            assert "suggested lr 0.0123" in dialog.progress_line
            plot = dialog.query_one("#curve", PlotextPlot)
            first = plot.plt.build()
            assert plot.plt.build() == first  # a second render (a resize) draws the same
            assert "0.001" in first and "1e-05" in first  # the rate axis, labelled in rates
            await pilot.click("#apply")
            await wait_for(pilot, lambda: app.screen is setup, 5, "back to Setup")
            assert setup.raw["optim"]["lr"] == pytest.approx(0.0123)
            (field,) = [w for w in setup.query(Input) if control_path(w) == ("optim", "lr")]
            assert field.value == "0.0123"
            assert setup.error is None  # still a valid config

    asyncio.run(scenario())
