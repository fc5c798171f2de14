"""Setup's check line is `cifar-tui --run`'s own check: the same one-line refusal before a run
folder exists (the data advice naming Setup's field), and a summary that says what will run."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.widgets import Checkbox, Input, Select, Static
from typer.testing import CliRunner

from engine.config import parse_config
from engine.datafiles import WHERE_HINT
from tests.tui.conftest import wait_for, write_tiny_preset
from tests.tui.test_keys import _control, _setup_ready
from tui.app import CifarApp
from tui.cli import app as cli_app
from tui.screens.setup import SetupScreen
from tui.screens.setup_check import SETUP_DATA_HINT, check_raw, plural, summary_line


def _run_refusal(*overrides: str) -> str:
    """The line `cifar-tui --run tiny --set ...` prints on stderr (in-process: no engine starts)."""
    args = ["--run", "quickstart", *(a for o in overrides for a in ("--set", o))]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 2, result.stderr
    line: str = result.stderr.strip()
    assert line.startswith("cifar-tui: error: ") and "\n" not in line
    return line.removeprefix("cifar-tui: error: ")


def _check_line(setup: SetupScreen) -> str:
    return str(setup.query_one("#check", Static).render())


async def _type(pilot: Any, setup: SetupScreen, path: tuple[str, ...], text: str) -> None:
    """Set a field as typing would end (one Changed message, not one per key), and wait for
    the screen to have taken it."""
    field = _control(setup, path, Input)
    field.focus()
    field.value = text

    def taken() -> bool:
        node: Any = setup.raw
        for key in path:
            node = node[key]
        return str(node) == text

    await wait_for(pilot, taken, 5, f"{'.'.join(path)} = {text}")


def test_setup_refuses_what_run_refuses_with_the_same_line(tmp_path, checkpoints) -> None:
    wrn = _run_refusal("model.name=wrn", "model.depth=12")
    no_data = tmp_path / "no-data"
    data = _run_refusal("data.dataset=cifar100", "data.download=false", f"data.data_dir={no_data}")
    assert WHERE_HINT in data

    async def scenario() -> None:
        write_tiny_preset(tmp_path / "presets")
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        async with app.run_test(size=(120, 40)) as pilot:
            setup = await _setup_ready(app, pilot)
            await _type(pilot, setup, ("model", "depth"), "12")
            assert _check_line(setup) == f"✗ {wrn}"
            await _type(pilot, setup, ("model", "depth"), "10")
            assert _check_line(setup).startswith("✓ valid")

            _control(setup, ("data", "dataset"), Select).value = "cifar100"
            _control(setup, ("data", "download"), Checkbox).value = False
            await wait_for(
                pilot,
                lambda: (
                    setup.raw["data"]["dataset"] == "cifar100"
                    and setup.raw["data"]["download"] is False
                ),
                5,
                "cifar100 without download",
            )
            await _type(pilot, setup, ("data", "data_dir"), str(no_data))
            # the dashboard's advice names its own field, not the command line's flag
            assert _check_line(setup) == "✗ " + data.replace(WHERE_HINT, SETUP_DATA_HINT)
            assert "--data-dir" not in _check_line(setup)
            # a preset started from the palette meets the same check before any run folder
            cfg = parse_config(
                {"data": {"dataset": "cifar100", "download": False, "data_dir": str(no_data)}}
            )
            await app.start_run("tiny", cfg)
            await pilot.pause()
            assert app.monitor is None and not checkpoints.exists()
            notes = [n.message for n in app._notifications]
            assert data.replace(WHERE_HINT, SETUP_DATA_HINT) in notes

    asyncio.run(scenario())


def _raw(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"name": "wrn", "depth": 10, "width": 1},
        "data": {"dataset": "synthetic", "batch_size": 32, "val_size": 100, "subset": 320},
        "train": {"epochs": 1},
    }
    return base | sections


def test_check_line_names_sam_and_mix_and_counts_epochs_in_english() -> None:
    cfg = check_raw(
        _raw(sam={"name": "asam", "rho": 2.0}, mix={"name": "mixup"}, augment=["hflip"])
    ).config
    assert cfg is not None
    line = summary_line(cfg)
    assert "+ asam rho 2.0" in line and line.endswith("hflip + mixup")
    assert "1 epoch x batch 32" in line
    assert (plural(1, "epoch"), plural(2, "epoch")) == ("1 epoch", "2 epochs")


def test_check_warns_about_a_warmup_as_long_as_the_run() -> None:
    check = check_raw(_raw(schedule={"name": "cosine", "warmup_epochs": 5}))
    assert check.config is not None
    (warning,) = check.warnings
    assert "warmup_epochs = 5 >= train.epochs = 1" in warning
    assert check_raw(_raw(schedule={"name": "cosine", "warmup_epochs": 0})).warnings == ()
