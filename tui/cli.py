"""The `cifar-tui` command. Bare: the dashboard; `--run PRESET`: a headless run; subcommands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from engine.config import PRESETS_DIR, preset_description, preset_names
from engine.errors import ConfigError
from engine.events import Failed, Finished
from engine.runs import DB_FILE, RunRegistry, checkpoints_root
from tui.headless import duration

EXIT_BAD_INPUT = 2

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    help="Train CIFAR-100 classifiers: the dashboard, or headless with --run PRESET.",
)
err = Console(stderr=True)

CheckpointsOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints", help="runs folder (default $CIFAR_TUI_CHECKPOINTS or ./checkpoints)"
    ),
]


def stdout_console() -> Console:
    """Tables on stdout; piped output gets a wide page instead of wrapping at 80 columns."""
    return Console(width=None if sys.stdout.isatty() else 160)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"cifar-tui: error: {message}", markup=False, highlight=False)
    return typer.Exit(code)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    run: Annotated[
        str | None,
        typer.Option("--run", metavar="PRESET", help="train a preset (name or YAML path) headless"),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="override a config key, e.g. optim.lr=0.05"
        ),
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="folder holding cifar-100-python/")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="print the run summary as JSON on stdout")
    ] = False,
    checkpoints: CheckpointsOpt = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if run is None:
        if overrides or data_dir or device or json_out:
            raise _fail("--set, --data-dir, --device and --json need --run PRESET")
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise _fail(
                "no terminal: run headless with `cifar-tui --run PRESET` (see `cifar-tui --help`)"
            )
        raise _fail(
            "the dashboard is not available in this version; train headless with "
            "`cifar-tui --run PRESET` (list presets with `cifar-tui presets`)"
        )
    raise typer.Exit(run_headless(run, overrides or [], data_dir, device, json_out, checkpoints))


def run_headless(
    preset: str,
    overrides: list[str],
    data_dir: str | None,
    device: str | None,
    json_out: bool,
    checkpoints: Path | None,
) -> int:
    from tui.headless import HeadlessPrinter, follow
    from tui.launcher import ForwardSignals, exit_code, launch, resolve_config

    try:
        cfg = resolve_config(preset, overrides, data_dir=data_dir, device=device)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    launched = launch(preset, cfg, checkpoints)
    printer = HeadlessPrinter(err, echo_failures=False)  # the engine prints its own error line
    with ForwardSignals(launched.process):
        final = follow(launched.run_dir, launched.process, printer)
    code = exit_code(launched.process)
    if json_out:
        if isinstance(final, Finished):
            payload = final.summary
        elif isinstance(final, Failed):
            payload = {"run_id": launched.run_id, "status": final.status, "message": final.message}
        else:
            payload = {"run_id": launched.run_id, "status": "crashed", "exit_code": code}
        print(json.dumps(payload))
    return code


@app.command()
def presets() -> None:
    """List the bundled presets with a one-line description."""
    table = Table("preset", "description", title=f"presets in {PRESETS_DIR}", title_justify="left")
    for name in preset_names():
        table.add_row(name, preset_description(PRESETS_DIR / f"{name}.yaml"))
    stdout_console().print(table)


@app.command()
def runs(checkpoints: CheckpointsOpt = None) -> None:
    """List past runs from the registry (newest first)."""
    root = checkpoints_root(checkpoints)
    if not (root / DB_FILE).exists():
        stdout_console().print(f"no runs yet in {root}")
        return
    table = Table(
        Column("run", no_wrap=True),
        Column("preset", no_wrap=True),
        Column("status", no_wrap=True),
        Column("best val", no_wrap=True),
        Column("test top-1", no_wrap=True),
        Column("time", no_wrap=True),
        box=box.SIMPLE_HEAD,
        title=f"runs in {root}",
        title_justify="left",
    )
    for r in RunRegistry(root).runs():
        table.add_row(
            r.run_id,
            r.preset,
            r.status,
            "-" if r.best_val_top1 is None else f"{100 * r.best_val_top1:.2f}% (e{r.best_epoch})",
            "-" if r.test_top1 is None else f"{100 * r.test_top1:.2f}%",
            duration(r.wall_s),
        )
    stdout_console().print(table)


def main() -> None:
    app()
