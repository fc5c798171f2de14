"""What the `cifar-tui` commands share: the typer app, the error console and exit, the common
options, and opening the dashboard (the one place the CLI imports Textual, lazily)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from engine import exit_codes
from engine.datafiles import ENV_DATA_DIR
from engine.errors import BadInputError
from engine.runs import CHECKPOINTS_ENV, checkpoints_root
from engine.runs import find_run as find_run_dir

EXIT_BAD_INPUT = exit_codes.BAD_INPUT

app = typer.Typer(
    rich_markup_mode="rich",
    help="Train CIFAR-100 classifiers: the dashboard, or headless with --run PRESET.",
)
err = Console(stderr=True)

DataDirOpt = Annotated[
    str | None,
    typer.Option(
        "--data-dir",
        envvar=ENV_DATA_DIR,
        help="folder holding cifar-100-python/ (default ./data)",
    ),
]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N")]
CheckpointsOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints", envvar=CHECKPOINTS_ENV, help="runs folder (default ./checkpoints)"
    ),
]


def stdout_console() -> Console:
    """Tables on stdout; piped output gets a wide page instead of wrapping at 80 columns."""
    return Console(width=None if sys.stdout.isatty() else 160)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"cifar-tui: error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def require_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise fail(
            "no terminal: run headless with `cifar-tui --run PRESET` (see `cifar-tui --help`)"
        )


@dataclass(frozen=True)
class StartRequest:
    """A preset to start as the dashboard opens (`cifar-tui --start PRESET`, `make run`)."""

    preset: str
    overrides: list[str] = field(default_factory=list)
    data_dir: str | None = None
    device: str | None = None


def run_dashboard(
    checkpoints: Path | None = None,
    attach: Path | None = None,
    results: Path | None = None,
    start: StartRequest | None = None,
) -> int:
    """Open the Textual dashboard (imported here: the headless paths never load Textual)."""
    from tui.app import CifarApp

    app = CifarApp(checkpoints=checkpoints, attach=attach, results=results, start_request=start)
    app.run()
    return app.return_code or 0


def find_run(run: str, checkpoints: Path | None) -> Path:
    """A run id (or `last`, or a unique prefix) -> its folder; typer.Exit(2) when unknown."""
    try:
        return find_run_dir(checkpoints_root(checkpoints), run)
    except BadInputError as exc:
        raise fail(f"{exc}: see `cifar-tui runs`") from None
