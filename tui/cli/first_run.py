"""`cifar-tui first-run`, what `make run` does: with a terminal the dashboard, training the
`first_run` preset in its Monitor; without one, the same recipe headless (`--run first_run`).
Also the headless preparation of a `sizing: auto` recipe (its data, its size)."""

from __future__ import annotations

import sys

import typer

from engine.config import RunConfig
from engine.download import text_progress
from tui.cli.common import CheckpointsOpt, DataDirOpt, DeviceOpt, StartRequest, app, err
from tui.orchestration.first_run import prepare_first_run, saved_preset

FIRST_RUN_PRESET = "first_run"


def first_run_mode(stdin_tty: bool, stdout_tty: bool) -> str:
    """'dashboard' when both ends are a terminal (a person is there), else 'headless'."""
    return "dashboard" if stdin_tty and stdout_tty else "headless"


def _say(line: str) -> None:
    err.print(f"cifar-tui: {line}", markup=False, highlight=False, soft_wrap=True)


def prepare_headless(preset: str, cfg: RunConfig) -> RunConfig:
    """A `sizing: auto` config ready for `launch`: what it found, fetched and chose, on stderr.
    `--set` values win over the sizing."""
    prepared = prepare_first_run(
        cfg,
        base=saved_preset(preset),
        progress=text_progress("downloading CIFAR-100", sys.stderr),
        say=_say,
    )
    for note in prepared.notes:  # the banner follows in the run's header
        _say(note)
    _say(f"sized for this machine: {prepared.config.sizing}")
    return prepared.config


@app.command("first-run")
def first_run(
    data_dir: DataDirOpt = None, device: DeviceOpt = None, checkpoints: CheckpointsOpt = None
) -> None:
    """What `make run` does: the dashboard training `first_run` (real CIFAR-100, sized to the
    device), or without a terminal the same run headless."""
    from tui.cli import run_headless
    from tui.cli.common import run_dashboard

    if first_run_mode(sys.stdin.isatty(), sys.stdout.isatty()) == "dashboard":
        request = StartRequest(FIRST_RUN_PRESET, [], data_dir, device)
        raise typer.Exit(run_dashboard(checkpoints=checkpoints, start=request))
    raise typer.Exit(run_headless(FIRST_RUN_PRESET, [], data_dir, device, False, checkpoints))
