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

from engine.checkpoint import CheckpointError
from engine.config import PRESETS_DIR, preset_description, preset_names
from engine.errors import BadInputError
from engine.events import EVENTS_FILE, Failed, Finished
from engine.runs import DB_FILE, RunRegistry, checkpoints_root
from engine.runs import find_run as find_run_dir
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
    err.print(f"cifar-tui: error: {message}", markup=False, highlight=False, soft_wrap=True)
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
    resume: Annotated[
        str | None,
        typer.Option("--resume", metavar="RUN", help="continue run RUN (an id, or `last`)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="with --resume: accept a changed config")
    ] = False,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if run is None and resume is None:
        if overrides or data_dir or device or json_out or force:
            raise _fail("--set, --data-dir, --device, --json and --force need --run PRESET")
        _require_terminal()
        raise typer.Exit(run_dashboard(checkpoints=checkpoints))
    if force and resume is None:
        raise _fail("--force only applies to --resume RUN")
    raise typer.Exit(
        run_headless(
            run,
            overrides or [],
            data_dir,
            device,
            json_out,
            checkpoints,
            resume=resume,
            force=force,
        )
    )


def _require_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise _fail(
            "no terminal: run headless with `cifar-tui --run PRESET` (see `cifar-tui --help`)"
        )


def run_dashboard(
    checkpoints: Path | None = None, attach: Path | None = None, results: Path | None = None
) -> int:
    """Open the Textual dashboard (imported here: the headless paths never load Textual)."""
    from tui.app import CifarApp

    app = CifarApp(checkpoints=checkpoints, attach=attach, results=results)
    app.run()
    return app.return_code or 0


def find_run(run: str, checkpoints: Path | None) -> Path:
    """A run id (or `last`, or a unique prefix) -> its folder; typer.Exit(2) when unknown."""
    try:
        return find_run_dir(checkpoints_root(checkpoints), run)
    except BadInputError as exc:
        raise _fail(f"{exc}: see `cifar-tui runs`") from None


def run_headless(
    preset: str | None,
    overrides: list[str],
    data_dir: str | None,
    device: str | None,
    json_out: bool,
    checkpoints: Path | None,
    *,
    resume: str | None = None,
    force: bool = False,
) -> int:
    """Train (or with `resume`, continue) a run in an engine process and render its events."""
    from tui.headless import HeadlessPrinter, follow
    from tui.launcher import (
        ForwardSignals,
        exit_code,
        launch,
        prepare_resume,
        resolve_config,
        start_engine,
    )

    try:
        if resume is not None:
            run_dir, changes = prepare_resume(
                resume,
                checkpoints,
                preset,
                overrides,
                data_dir=data_dir,
                device=device,
                force=force,
            )
            log = run_dir / EVENTS_FILE
            events_offset = log.stat().st_size if log.exists() else 0  # show only what is new
            process = start_engine(run_dir, ["--resume", *(f"--changed={c}" for c in changes)])
        else:
            assert preset is not None
            cfg = resolve_config(preset, overrides, data_dir=data_dir, device=device)
            launched = launch(preset, cfg, checkpoints)
            run_dir, process, events_offset = launched.run_dir, launched.process, 0
    except (BadInputError, CheckpointError) as exc:
        raise _fail(str(exc)) from None
    printer = HeadlessPrinter(err, echo_failures=False)  # the engine prints its own error line
    with ForwardSignals(process):
        final = follow(run_dir, process, printer, offset=events_offset)
    code = exit_code(process)
    if json_out:
        if isinstance(final, Finished):
            payload = final.summary
        elif isinstance(final, Failed):
            payload = {"run_id": run_dir.name, "status": final.status, "message": final.message}
        else:
            payload = {"run_id": run_dir.name, "status": "crashed", "exit_code": code}
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


@app.command()
def attach(
    run: Annotated[str, typer.Argument(metavar="RUN", help="a run id (or prefix), or `last`")],
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Reopen the live view of a running or finished run from its event log."""
    run_dir = find_run(run, checkpoints)
    _require_terminal()
    raise typer.Exit(run_dashboard(checkpoints=checkpoints, attach=run_dir))


def main() -> None:
    app()
